package agent

import (
	"context"
	"time"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// The node's half of a StatefulSet's claim retention (reconciler/volumes.go decides): the
// leader marks a volume for deletion (state.DeleteVolumes) once no record of its claim's pod
// is live; the node holding it deletes the directory (the runtime's DeleteLocalVolume) once it
// runs no pod of that name either, and then removes the record (state.RemoveVolumes), which
// lets the claim's next pod be created, with a new, empty volume.

// LocalVolumeDeleter is what the volume loop needs from a runtime; *runtime.Containerd and
// *runtime.Fake have it. A runtime without it leaves marked volumes alone.
type LocalVolumeDeleter interface {
	DeleteLocalVolume(namespace, claim string) error
}

var (
	_ LocalVolumeDeleter = (*runtime.Containerd)(nil)
	_ LocalVolumeDeleter = (*runtime.Fake)(nil)
)

// VolumesToDelete returns the volumes marked for deletion on node that can be deleted now, and
// how many must wait: a volume waits while a record of its claim's pod on this node has not
// terminated (Succeeded or Failed), or while the runtime holds a pod of that name in its
// namespace (running or stopped: its mounts are still there). It is a pure function.
func VolumesToDelete(node string, v *state.Snapshot, actual []runtime.PodStatus) (ready []state.VolumeRef, waiting int) {
	type podName struct{ ns, name string }
	busy := map[podName]bool{}
	for _, st := range actual {
		busy[podName{st.Key.Namespace, st.Key.Name}] = true
	}
	for _, p := range v.PodsOnNode(node) {
		if p.Status.Phase != state.PhaseSucceeded && p.Status.Phase != state.PhaseFailed {
			busy[podName{p.Namespace, p.Name}] = true
		}
	}
	for _, vol := range v.Volumes() {
		if vol.Node != node || vol.Deleting.IsZero() {
			continue
		}
		if vol.Pod != "" && busy[podName{vol.Namespace, vol.Pod}] {
			waiting++
			continue
		}
		ready = append(ready, state.VolumeRef{Namespace: vol.Namespace, Claim: vol.Claim, Node: node})
	}
	return ready, waiting
}

// runLocalVolumes runs the volume loop: on every change of the volumes or pods tables, and
// every Resync while a volume waits or a deletion failed.
func (a *Agent) runLocalVolumes(ctx context.Context, rt PodRuntime) {
	d, ok := rt.(LocalVolumeDeleter)
	if !ok {
		a.log.Warn("node runtime cannot delete local volumes: volumes marked for deletion here stay")
		return
	}
	a.runLoop(ctx, "local-volumes", []state.Table{state.TableVolumes, state.TablePods}, nil,
		func(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
			return a.localVolumesStep(ctx, rt, d, v)
		})
}

func (a *Agent) localVolumesStep(ctx context.Context, rt PodRuntime, d LocalVolumeDeleter, v *state.Snapshot) (time.Duration, error) {
	marked := false
	for _, vol := range v.Volumes() {
		marked = marked || vol.Node == a.cfg.NodeName && !vol.Deleting.IsZero()
	}
	if !marked {
		return 0, nil
	}
	actual, err := rt.ListPods(ctx)
	if err != nil {
		return 0, err
	}
	ready, waiting := VolumesToDelete(a.cfg.NodeName, v, actual)
	var done []state.VolumeRef
	for _, r := range ready {
		if err := d.DeleteLocalVolume(r.Namespace, r.Claim); err != nil {
			a.log.Warn("local volume not deleted: retrying", "claim", r.Namespace+"/"+r.Claim, "err", err)
			waiting++
			continue
		}
		a.log.Info("local volume deleted", "claim", r.Namespace+"/"+r.Claim)
		done = append(done, r)
	}
	for _, refs := range chunks(done) {
		res, err := a.apply(ctx, &state.RemoveVolumes{Volumes: refs})
		if err != nil {
			return 0, err
		}
		for _, r := range res.Rejected {
			a.log.Warn("volume record not removed", "claim", r.UID, "reason", r.Reason)
		}
	}
	if waiting > 0 {
		return time.Duration(a.cfg.Resync), nil
	}
	return 0, nil
}

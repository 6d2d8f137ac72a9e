package agent

import (
	"context"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// The node's half of a StatefulSet's claim retention (reconciler/volumes.go decides): the
// leader marks a volume for deletion (state.DeleteVolumes) once no record of its claim's pod
// is live; the node holding it deletes the directory (the runtime's DeleteLocalVolume) once it
// runs no pod of that name either, and then removes the record (state.RemoveVolumes), which
// lets the claim's next pod be created, with a new, empty volume.

// markFreshClaims tells the runtime which of the pod's claims get a new, empty volume: those
// the leader had no volume record of when it created the pod (state.PodSpec.FreshClaims). A
// directory the node holds for such a claim was made for an earlier incarnation of it (this
// node declared gone and back, its volumes forgotten) and is moved aside (under
// volumes/local-replaced) before use, unless this pod made it (runtime.Containerd's
// setupLocalVolume). The annotation is the record's word only: one the manifest sets is
// replaced or removed, so that no template can have a volume moved aside.
func markFreshClaims(p *corev1.Pod, rec *state.Pod) {
	delete(p.Annotations, runtime.AnnotationFreshClaims)
	if len(rec.Spec.FreshClaims) > 0 {
		if p.Annotations == nil {
			p.Annotations = map[string]string{}
		}
		p.Annotations[runtime.AnnotationFreshClaims] = strings.Join(rec.Spec.FreshClaims, ",")
	}
}

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
// how many must wait: a volume waits while a pod that may mount its claim has a record on this
// node that has not terminated (Succeeded or Failed), or is held by the runtime (running or
// stopped: its mounts are still there). A pod may mount the claim if it is the claim's recorded
// pod, or if its name ends the claim after a '-' (reconciler.ClaimMayBeOf): two StatefulSets
// can make one claim name (template data-x of set web, template data of set x-web), and the
// volume of one must not be deleted under the other's running pod. It is a pure function.
func VolumesToDelete(node string, v *state.Snapshot, actual []runtime.PodStatus) (ready []state.VolumeRef, waiting int) {
	busy := map[string][]string{} // namespace → names of pods that may mount a claim there
	for _, st := range actual {
		busy[st.Key.Namespace] = append(busy[st.Key.Namespace], st.Key.Name)
	}
	for _, p := range v.PodsOnNode(node) {
		if p.Status.Phase != state.PhaseSucceeded && p.Status.Phase != state.PhaseFailed {
			busy[p.Namespace] = append(busy[p.Namespace], p.Name)
		}
	}
	inUse := func(vol *state.Volume) bool {
		for _, name := range busy[vol.Namespace] {
			if name == vol.Pod || reconciler.ClaimMayBeOf(vol.Claim, name) {
				return true
			}
		}
		return false
	}
	for _, vol := range v.Volumes() {
		if vol.Node != node || vol.Deleting.IsZero() {
			continue
		}
		if inUse(vol) {
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

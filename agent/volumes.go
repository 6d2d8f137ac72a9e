package agent

import (
	"context"
	"sort"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// Mounted ConfigMaps and Secrets of pods that do not roll.
//
// A workload whose template references a ConfigMap or Secret rolls when its content changes
// (the content hashes are folded into its template hash, confighash.go), so its pods never need
// new content: the new pods have it. A pod whose record carries no config hash does not roll on
// such a change: a workload annotated shoal.dev/rollout-on-config-change: "false", or a bare
// Pod. Its configMap and secret volumes are updated in place, as the kubelet does: when the
// pinned commit moves, the pod loop asks the runtime to project them again from the pinned
// commit (RefreshVolumes), which swaps ..data atomically for each volume whose content changed.
// Environment variables and subPath mounts keep what the container started with.
//
// volumeCommits remembers, per pod UID, the commit its volumes were last projected from (its
// record's commit until a refresh). Only the pod loop touches it.
type volumeCommits struct {
	done   map[string]string // UID -> commit projected
	warned map[string]string // UID -> commit whose failed refresh was logged
}

func newVolumeCommits() *volumeCommits {
	return &volumeCommits{done: map[string]string{}, warned: map[string]string{}}
}

// VolumeRefreshes returns the pinned commit and the pods held here whose configMap or secret
// volumes are to be projected again from it: running, not rolling on a config change (no
// ConfigHash), with such a volume (specs, by UID), and last projected from another commit (done,
// by UID; the record's commit when absent). It is a pure function of its inputs.
func VolumeRefreshes(node string, v *state.Snapshot, actual []runtime.PodStatus, specs map[string]runtime.PodSpec, done map[string]string) (string, []runtime.PodKey) {
	pin := v.PinnedRevision()
	if pin == nil || pin.Commit == "" {
		return "", nil
	}
	var out []runtime.PodKey
	for _, st := range actual {
		rec := v.Pod(st.Key.UID)
		if rec == nil || rec.NodeName != node || rec.Desired != state.DesiredRun || rec.Status.Phase == state.PhaseLost ||
			rec.ConfigHash != "" || st.Stopped || !active(st) {
			continue
		}
		spec, ok := specs[rec.UID]
		if !ok || !hasObjectVolume(spec) {
			continue
		}
		last := done[rec.UID]
		if last == "" {
			last = rec.Commit
		}
		if last != pin.Commit {
			out = append(out, st.Key)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return pin.Commit, out
}

func hasObjectVolume(spec runtime.PodSpec) bool {
	for _, vol := range spec.Volumes {
		if vol.ConfigMap != nil || vol.Secret != nil {
			return true
		}
	}
	return false
}

// refreshVolumes carries out VolumeRefreshes. A pod whose refresh fails keeps its volumes as they
// were and is tried again next round; the failure is logged once per commit.
func (a *Agent) refreshVolumes(ctx context.Context, rt PodRuntime, v *state.Snapshot, actual []runtime.PodStatus, specs map[string]runtime.PodSpec) {
	held := make(map[string]bool, len(actual))
	for _, st := range actual {
		held[st.Key.UID] = true
	}
	for uid := range a.volCommits.done {
		if !held[uid] {
			delete(a.volCommits.done, uid)
			delete(a.volCommits.warned, uid)
		}
	}
	commit, keys := VolumeRefreshes(a.cfg.NodeName, v, actual, specs, a.volCommits.done)
	for _, key := range keys {
		log := a.log.With("pod", key.Namespace+"/"+key.Name, "uid", key.UID, "commit", commit)
		changed, err := rt.RefreshVolumes(withPodCommit(ctx, commit), key)
		if len(changed) > 0 {
			log.Info("mounted ConfigMaps and Secrets updated in place", "volumes", changed)
		}
		if err != nil {
			if a.volCommits.warned[key.UID] != commit {
				a.volCommits.warned[key.UID] = commit
				log.Warn("mounted ConfigMaps and Secrets not updated: the pod keeps what it has; retrying", "err", err)
			}
			continue
		}
		a.volCommits.done[key.UID] = commit
		delete(a.volCommits.warned, key.UID)
	}
}

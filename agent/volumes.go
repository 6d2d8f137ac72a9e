package agent

import (
	"context"
	"errors"
	"sort"
	"time"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// Mounted ConfigMaps and Secrets of pods that are not replaced on a config change.
//
// A workload whose template references a ConfigMap or Secret rolls when its content changes
// (the content hashes are folded into its template hash, confighash.go), so the pods it
// replaces never need new content: the new pods have it, and the old ones keep their
// revision's. A pod its owner will not replace for a config change gets it in place instead, as
// the kubelet does (RefreshedInPlace says which pods those are). When the pinned commit moves,
// the pod loop asks the runtime to project their configMap and secret volumes again from the
// pinned commit (RefreshVolumes), which swaps ..data atomically for each volume whose content
// changed; from then on a container of the pod that restarts reads its environment at that
// commit too (podValuesCommit), so that its env and its files come from one commit. A running
// container's environment and its subPath mounts keep what it started with, as in Kubernetes.
//
// volumeCommits remembers, per pod UID, the commit its values were last moved to (its record's
// commit until then). Only the pod loop touches it.
type volumeCommits struct {
	done   map[string]string // UID -> commit the pod's values are read at
	warned map[string]string // UID -> commit whose failed refresh was logged
	// stuck: pods whose volumes cannot be updated in place (runtime.ErrNotUpdatableInPlace),
	// not asked again until they go: their values stay at their record's commit.
	stuck map[string]bool

	// The pinned commit whose objects could not be read (a clone that lacks it and cannot
	// fetch it), logged once; it is read again no sooner than retryAt, the wait doubling with
	// each failure (loadRetry), so that an unreachable git server does not hold up every round.
	failedPin string
	failures  int
	retryAt   time.Time
}

// loadRetry is the wait before reading a pinned commit again after n failures in a row.
func loadRetry(n int) time.Duration {
	const first, most = 10 * time.Second, 5 * time.Minute
	d := first
	for i := 1; i < n && d < most; i++ {
		d *= 2
	}
	return min(d, most)
}

func newVolumeCommits() *volumeCommits {
	return &volumeCommits{done: map[string]string{}, warned: map[string]string{}, stuck: map[string]bool{}}
}

// forget drops what is remembered of a pod: it left the runtime, or was (re)started from its
// record's commit.
func (vc *volumeCommits) forget(uid string) {
	delete(vc.done, uid)
	delete(vc.warned, uid)
	delete(vc.stuck, uid)
}

// RefreshedInPlace reports whether rec's ConfigMaps and Secrets are updated in place when they
// change, which is when its owner, as set (the objects at the pinned commit) has it, will not
// replace it for that change:
//   - it has no config hash: a bare Pod, or a workload annotated
//     shoal.dev/rollout-on-config-change: "false";
//   - its owner keeps it although the change is in its template hash
//     (reconciler.KeepsPodOnConfigChange: Job pods, OnDelete, below a partition).
//
// A pod whose owner is not in set is about to be removed with it: not refreshed.
func RefreshedInPlace(rec *state.Pod, set *manifest.Set) bool {
	if rec.ConfigHash == "" {
		return true
	}
	if !mayRefreshInPlace(rec) || set == nil {
		return false
	}
	// The owner's presence first: a removed Job's pods go with it too.
	obj := set.Get(manifest.Key{Kind: rec.Owner.Kind, Namespace: rec.Namespace, Name: rec.Owner.Name})
	if obj == nil {
		return false
	}
	return reconciler.KeepsPodOnConfigChange(obj, rec.Name)
}

// mayRefreshInPlace is RefreshedInPlace as far as rec alone tells: false for a pod its owner
// replaces on a config change whatever that owner's spec says (a Deployment's, a ReplicaSet's).
// The pod loop reads the pinned commit only when a pod here passes it.
func mayRefreshInPlace(rec *state.Pod) bool {
	return rec.ConfigHash == "" || reconciler.MayKeepPodOnConfigChange(rec.Owner.Kind)
}

// VolumeRefreshes returns the pinned commit and the pods held here whose ConfigMaps and Secrets
// are to be read again from it: running, refreshed in place (RefreshedInPlace, with set the
// objects at the pinned commit), and last read at another commit (done, by UID; the record's
// commit when absent). Those with a configMap or secret volume (specs, by UID) have it projected
// again; for the others only the commit their restarts read at moves. It is a pure function of
// its inputs.
func VolumeRefreshes(node string, v *state.Snapshot, set *manifest.Set, actual []runtime.PodStatus, specs map[string]runtime.PodSpec, done map[string]string) (string, []runtime.PodKey) {
	pin := v.PinnedRevision()
	if pin == nil || pin.Commit == "" {
		return "", nil
	}
	var out []runtime.PodKey
	for _, st := range actual {
		if rec := refreshCandidate(node, v, st, specs, done, pin.Commit); rec != nil && RefreshedInPlace(rec, set) {
			out = append(out, st.Key)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return pin.Commit, out
}

// refreshCandidate returns the record of st when what the state says of it does not rule out
// reading its values again from pin: running here, with a spec, possibly refreshed in place
// (mayRefreshInPlace), and last read at another commit. Nil otherwise.
func refreshCandidate(node string, v *state.Snapshot, st runtime.PodStatus, specs map[string]runtime.PodSpec, done map[string]string, pin string) *state.Pod {
	rec := v.Pod(st.Key.UID)
	if rec == nil || rec.NodeName != node || rec.Desired != state.DesiredRun || rec.Status.Phase == state.PhaseLost ||
		st.Stopped || !active(st) {
		return nil
	}
	if _, ok := specs[rec.UID]; !ok || !mayRefreshInPlace(rec) || podValuesCommit(rec, done) == pin {
		return nil
	}
	return rec
}

func hasObjectVolume(spec runtime.PodSpec) bool {
	for _, vol := range spec.Volumes {
		if vol.ConfigMap != nil || vol.Secret != nil {
			return true
		}
	}
	return false
}

// refreshVolumes carries out VolumeRefreshes. It reads the pinned commit's objects only when a
// pod here may be refreshed (refreshCandidate); when they cannot be read, that is logged once per
// commit and they are read again with back-off (loadRetry), not every round. A pod whose refresh
// fails keeps its volumes, and the commit its restarts read at, as they were and is tried again
// next round; the failure is logged once per commit. A pod whose volumes cannot be updated in
// place at all is logged once and not asked again.
func (a *Agent) refreshVolumes(ctx context.Context, rt PodRuntime, v *state.Snapshot, actual []runtime.PodStatus, specs map[string]runtime.PodSpec) {
	vc := a.volCommits
	held := make(map[string]bool, len(actual))
	for _, st := range actual {
		held[st.Key.UID] = true
	}
	for _, m := range []map[string]string{vc.done, vc.warned} {
		for uid := range m {
			if !held[uid] {
				vc.forget(uid)
			}
		}
	}
	for uid := range vc.stuck {
		if !held[uid] {
			vc.forget(uid)
		}
	}
	pin := v.PinnedRevision()
	if pin == nil || pin.Commit == "" {
		return
	}
	// The objects at the pinned commit are read (and fetched, when the clone lacks them) only
	// when some pod here may need them.
	need := false
	for _, st := range actual {
		if !vc.stuck[st.Key.UID] && refreshCandidate(a.cfg.NodeName, v, st, specs, vc.done, pin.Commit) != nil {
			need = true
			break
		}
	}
	if !need {
		return
	}
	now := a.now()
	if vc.failedPin == pin.Commit && now.Before(vc.retryAt) {
		return
	}
	l, err := a.src.load(ctx, pin.Commit)
	if err != nil {
		if vc.failedPin != pin.Commit {
			vc.failedPin, vc.failures = pin.Commit, 0
			a.log.Warn("mounted ConfigMaps and Secrets not updated: the pinned commit cannot be read; retrying with back-off",
				"commit", pin.Commit, "err", err)
		}
		vc.failures++
		vc.retryAt = now.Add(loadRetry(vc.failures))
		return
	}
	if vc.failedPin != "" {
		if vc.failedPin == pin.Commit {
			a.log.Info("pinned commit read: updating mounted ConfigMaps and Secrets", "commit", pin.Commit)
		}
		vc.failedPin, vc.failures, vc.retryAt = "", 0, time.Time{}
	}
	commit, keys := VolumeRefreshes(a.cfg.NodeName, v, l.set, actual, specs, vc.done)
	for _, key := range keys {
		if vc.stuck[key.UID] {
			continue
		}
		if !hasObjectVolume(specs[key.UID]) {
			vc.done[key.UID] = commit // nothing mounted: only its restarts' env moves
			continue
		}
		log := a.log.With("pod", key.Namespace+"/"+key.Name, "uid", key.UID, "commit", commit)
		changed, err := rt.RefreshVolumes(withPodCommit(ctx, commit), key)
		if len(changed) > 0 {
			log.Info("mounted ConfigMaps and Secrets updated in place", "volumes", changed)
		}
		if errors.Is(err, runtime.ErrNotUpdatableInPlace) {
			vc.stuck[key.UID] = true
			log.Warn("mounted ConfigMaps and Secrets cannot be updated in place: the pod keeps its revision's until it is replaced", "err", err)
			continue
		}
		if err != nil {
			if vc.warned[key.UID] != commit {
				vc.warned[key.UID] = commit
				log.Warn("mounted ConfigMaps and Secrets not updated: the pod keeps what it has; retrying", "err", err)
			}
			continue
		}
		vc.done[key.UID] = commit
		delete(vc.warned, key.UID)
	}
}

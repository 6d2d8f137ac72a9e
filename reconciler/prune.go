package reconciler

import (
	"fmt"
	"sort"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// LabelPrune is stamped on the pods of a workload annotated with manifest.AnnotationPrune:
// disabled (its pods keep running, unmanaged, when the object is removed from Git) when they
// are created, so that the choice survives the object's removal even when the reconciler no
// longer has the object (the commit before the removal) at hand.
const LabelPrune = manifest.AnnotationPrune

// ReasonPruned is the event of a workload whose pods are deleted because it left Git.
const ReasonPruned = "Pruned"

// controllerKinds are the owners whose pods the reconciler prunes. Bare pods (no owner kind)
// are the agent's.
var controllerKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "Job": true, "CronJob": true}

// prune deletes the pods of workloads that are no longer in the object set. It walks every
// pod record once, so it finds the pods of an object removed several commits ago, or while
// another leader was in charge, as well as the last commit's removals.
func (r *run) prune() {
	type owner struct{ kind, ns, name string }
	orphans := map[owner][]*state.Pod{}
	for _, p := range r.in.State.Pods() {
		if !controllerKinds[p.Owner.Kind] {
			continue
		}
		if r.in.Objects.Get(manifest.Key{Kind: p.Owner.Kind, Namespace: p.Namespace, Name: p.Owner.Name}) != nil {
			continue
		}
		if p.Owner.Kind == "StatefulSet" {
			r.noteOrphanVolumes(p)
		}
		o := owner{p.Owner.Kind, p.Namespace, p.Owner.Name}
		orphans[o] = append(orphans[o], p)
	}
	keys := make([]owner, 0, len(orphans))
	for o := range orphans {
		keys = append(keys, o)
	}
	sort.Slice(keys, func(i, j int) bool {
		a, b := keys[i], keys[j]
		return manifest.Key{Kind: a.kind, Namespace: a.ns, Name: a.name}.Less(manifest.Key{Kind: b.kind, Namespace: b.ns, Name: b.name})
	})
	for _, o := range keys {
		key := manifest.Key{Kind: o.kind, Namespace: o.ns, Name: o.name}
		if r.keepOnRemoval(key) {
			continue
		}
		stopped, removed := 0, 0
		for _, p := range orphans[o] {
			if p.Labels[LabelPrune] == manifest.PruneDisabled {
				continue
			}
			fate := fateLive
			if o.kind == "StatefulSet" {
				// A StatefulSet's pod name is never live twice, even on its way out.
				fate = r.statefulFate(p)
			} else {
				fate = r.housekeep(p)
			}
			switch fate {
			case fateLive:
				r.setDesired(p, state.DesiredDelete)
				stopped++
			case fateGone:
				removed++
			}
		}
		if stopped > 0 || removed > 0 {
			r.event(key, "Normal", ReasonPruned, fmt.Sprintf("removed from Git: %s stopped, %s removed", plural(stopped, "pod"), plural(removed, "record")))
		}
	}
}

// keepOnRemoval reports whether the removed object asked, in the commit before its removal,
// for its pods to be kept.
func (r *run) keepOnRemoval(k manifest.Key) bool {
	if r.in.Previous == nil {
		return false
	}
	o := r.in.Previous.Get(k)
	return o != nil && keepOnPrune(o)
}

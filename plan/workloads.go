package plan

import (
	"fmt"
	"sort"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
)

// pair returns a change's two sides as their typed objects. ok is false when a side the op
// needs is missing or of another type (a caller then falls back to generic words rather than
// panic on a surprising object).
func pair[T runtime.Object](c manifest.Change) (b, h T, ok bool) {
	if c.Base != nil {
		if b, ok = c.Base.Obj.(T); !ok {
			return b, h, false
		}
	}
	if c.Head != nil {
		if h, ok = c.Head.Obj.(T); !ok {
			return b, h, false
		}
	}
	return b, h, c.Base != nil || c.Head != nil
}

// settingsOnly is the words for a change to how a workload rolls out that touches no pod.
const settingsOnly = "rollout settings changed, pods untouched"

// Deployment rules: Kubernetes' deployment controller, as shoal's reconciler implements it.
func deploymentConsequences(pl *planner, c manifest.Change) []string {
	b, h, ok := pair[*appsv1.Deployment](c)
	if !ok {
		return genericConsequences(pl, c)
	}
	switch c.Op {
	case manifest.Added:
		n := replicas(h.Spec.Replicas)
		switch {
		case h.Spec.Paused:
			// A paused Deployment never gets its first ReplicaSet.
			return []string{"created paused: no pods start until it is unpaused"}
		case n == 0:
			return []string{"no pods: replicas is 0"}
		}
		return []string{"create " + count(n, "pod")}
	case manifest.Removed:
		if n := replicas(b.Spec.Replicas); n > 0 {
			return []string{"delete " + count(n, "pod")}
		}
		return []string{"delete it; it runs no pods"}
	}

	out := pl.immutable(c, "spec.selector")
	from, to := replicas(b.Spec.Replicas), replicas(h.Spec.Replicas)
	if from != to {
		// A paused Deployment still scales.
		out = append(out, scale(from, to))
	}
	template := changedUnder(c.Fields, "spec.template")
	switch {
	case template && h.Spec.Paused:
		out = append(out, "paused: the new template is recorded, no rollout until unpaused")
	case template:
		out = append(out, deploymentRollout(from, to, h.Spec.Strategy))
	case !b.Spec.Paused && h.Spec.Paused:
		out = append(out, "paused: later template changes wait until it is unpaused")
	case b.Spec.Paused && !h.Spec.Paused:
		out = append(out, "unpaused: a template change recorded while paused rolls out now")
	case changedUnder(c.Fields, "spec.strategy", "spec.minReadySeconds", "spec.progressDeadlineSeconds", "spec.revisionHistoryLimit"):
		out = append(out, settingsOnly)
	}
	return out
}

// deploymentRollout describes replacing the pods of a Deployment whose template changed; from is
// the pod count before the commit, to after it.
func deploymentRollout(from, to int, s appsv1.DeploymentStrategy) string {
	if to == 0 {
		return "template recorded; no pods run (replicas 0)"
	}
	if s.Type == appsv1.RecreateDeploymentStrategyType {
		if from == 0 {
			return fmt.Sprintf("recreate: start %s", count(to, "pod"))
		}
		return fmt.Sprintf("recreate: stop all %s, then start %d", count(from, "pod"), to)
	}
	var surge, unavail *intstr.IntOrString
	if s.RollingUpdate != nil {
		surge, unavail = s.RollingUpdate.MaxSurge, s.RollingUpdate.MaxUnavailable
	}
	sv, uv, err := fenceposts(surge, unavail, to)
	if err != nil {
		return fmt.Sprintf("rolling update of %s (%v)", count(to, "pod"), err)
	}
	return fmt.Sprintf("rolling update of %s, maxSurge %d, maxUnavailable %d", count(to, "pod"), sv, uv)
}

// fenceposts resolves a rolling update's maxSurge and maxUnavailable against the replica count
// with the Deployment controller's own arithmetic (reconciler.Fenceposts), so that what the plan
// says is what the reconciler does.
func fenceposts(maxSurge, maxUnavailable *intstr.IntOrString, replicas int) (surge, unavailable int, err error) {
	return reconciler.Fenceposts(appsv1.DeploymentStrategy{
		Type:          appsv1.RollingUpdateDeploymentStrategyType,
		RollingUpdate: &appsv1.RollingUpdateDeployment{MaxSurge: maxSurge, MaxUnavailable: maxUnavailable},
	}, replicas)
}

// StatefulSet rules: stable names, ordered creation and deletion, reverse-ordinal updates.
func statefulSetConsequences(pl *planner, c manifest.Change) []string {
	b, h, ok := pair[*appsv1.StatefulSet](c)
	if !ok {
		return genericConsequences(pl, c)
	}
	name := c.Key.Name
	switch c.Op {
	case manifest.Added:
		n := replicas(h.Spec.Replicas)
		if n == 0 {
			return []string{"no pods: replicas is 0"}
		}
		out := []string{"create " + ordinals(name, 0, n, false) + inOrder(h)}
		if v := claimNames(h); v != "" {
			out = append(out, "each pod gets its own volume from volumeClaimTemplates: "+v)
		}
		return out
	case manifest.Removed:
		n := replicas(b.Spec.Replicas)
		if n == 0 {
			return []string{"delete it; it runs no pods"}
		}
		out := []string{"delete " + ordinals(name, 0, n, true)}
		if claimNames(b) != "" {
			out = append(out, volumesAfter(b, true))
		}
		return out
	}

	out := pl.immutable(c, "spec.volumeClaimTemplates", "spec.selector", "spec.serviceName", "spec.podManagementPolicy")
	from, to := replicas(b.Spec.Replicas), replicas(h.Spec.Replicas)
	switch {
	case to > from:
		out = append(out, fmt.Sprintf("%s: create %s%s", scale(from, to), ordinals(name, from, to, false), inOrder(h)))
	case to < from:
		words := fmt.Sprintf("%s: delete %s", scale(from, to), ordinals(name, to, from, true))
		if h.Spec.PodManagementPolicy == appsv1.ParallelPodManagement {
			words += " at once"
		}
		if claimNames(h) != "" {
			words += "; " + volumesAfter(h, false)
		}
		out = append(out, words)
	}

	switch {
	case changedUnder(c.Fields, "spec.template"):
		out = append(out, statefulSetRollout(name, min(from, to), h))
	case changedUnder(c.Fields, "spec.updateStrategy", "spec.minReadySeconds", "spec.revisionHistoryLimit", "spec.persistentVolumeClaimRetentionPolicy"):
		out = append(out, settingsOnly)
	}
	return out
}

// statefulSetRollout describes updating the existing pods (ordinals 0..existing-1) to a new
// template; pods created by a scale-up start with it already.
func statefulSetRollout(name string, existing int, s *appsv1.StatefulSet) string {
	u := s.Spec.UpdateStrategy
	if u.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return "pods pick up the new template only when deleted"
	}
	if existing == 0 {
		return "template recorded; no existing pod to update"
	}
	lo, hi := 0, existing
	partition := 0
	var maxUnavailable *intstr.IntOrString
	if u.RollingUpdate != nil {
		if u.RollingUpdate.Partition != nil {
			partition = int(*u.RollingUpdate.Partition)
		}
		maxUnavailable = u.RollingUpdate.MaxUnavailable
	}
	at := ""
	if maxUnavailable != nil {
		// Kubernetes rounds a StatefulSet's maxUnavailable up, and never below 1.
		if n, err := intstr.GetScaledValueFromIntOrPercent(maxUnavailable, replicas(s.Spec.Replicas), true); err == nil && n > 1 {
			at = fmt.Sprintf(", up to %d at a time", n)
		}
	}
	switch {
	case partition >= hi:
		return fmt.Sprintf("template recorded; no pod is updated: every ordinal is below partition %d", partition)
	case partition <= lo:
		return fmt.Sprintf("rolling update of %s in reverse order%s", ordinals(name, lo, hi, true), at)
	}
	return fmt.Sprintf("rolling update of pods with ordinal ≥ %d in reverse order: %s%s; %s keep the old template",
		partition, ordinals(name, partition, hi, true), at, ordinals(name, lo, partition, false))
}

// inOrder says how a StatefulSet creates pods: one at a time, each once the previous is ready
// (OrderedReady, the default), or all together (Parallel).
func inOrder(s *appsv1.StatefulSet) string {
	if s.Spec.PodManagementPolicy == appsv1.ParallelPodManagement {
		return " at once"
	}
	return " in order"
}

func claimNames(s *appsv1.StatefulSet) string {
	names := make([]string, 0, len(s.Spec.VolumeClaimTemplates))
	for _, t := range s.Spec.VolumeClaimTemplates {
		names = append(names, t.Name)
	}
	return strings.Join(names, ", ")
}

// volumesAfter says what happens to the volumes of deleted pods under the StatefulSet's
// retention policy (default Retain for both deletion and scale-down).
func volumesAfter(s *appsv1.StatefulSet, deleted bool) string {
	policy := appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	if p := s.Spec.PersistentVolumeClaimRetentionPolicy; p != nil {
		if deleted && p.WhenDeleted != "" {
			policy = p.WhenDeleted
		}
		if !deleted && p.WhenScaled != "" {
			policy = p.WhenScaled
		}
	}
	if policy == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
		return "their volumes are deleted"
	}
	return "their volumes are kept"
}

// DaemonSet rules: one pod per eligible node, updated node by node.
func daemonSetConsequences(pl *planner, c manifest.Change) []string {
	_, h, ok := pair[*appsv1.DaemonSet](c)
	if !ok {
		return genericConsequences(pl, c)
	}
	switch c.Op {
	case manifest.Added:
		words := "one pod on every eligible node"
		if sel := h.Spec.Template.Spec.NodeSelector; len(sel) > 0 {
			words += " (nodeSelector " + labelList(sel) + ")"
		}
		return []string{words}
	case manifest.Removed:
		return []string{"delete its pod on every node"}
	}
	out := pl.immutable(c, "spec.selector")
	switch {
	case changedUnder(c.Fields, "spec.template"):
		out = append(out, daemonSetRollout(h.Spec.UpdateStrategy))
	case changedUnder(c.Fields, "spec.updateStrategy", "spec.minReadySeconds", "spec.revisionHistoryLimit"):
		out = append(out, settingsOnly)
	}
	return out
}

func daemonSetRollout(u appsv1.DaemonSetUpdateStrategy) string {
	if u.Type == appsv1.OnDeleteDaemonSetStrategyType {
		return "pods pick up the new template only when deleted"
	}
	// The node count is not known to a plan, so a percentage stays a percentage.
	unavail, surge := intstr.FromInt32(1), intstr.FromInt32(0)
	if r := u.RollingUpdate; r != nil {
		if r.MaxUnavailable != nil {
			unavail = *r.MaxUnavailable
		}
		if r.MaxSurge != nil {
			surge = *r.MaxSurge
		}
	}
	words := "rolling update node by node, maxUnavailable " + ofNodes(unavail)
	if surge.String() != "0" && surge.String() != "0%" {
		words += ", maxSurge " + ofNodes(surge)
	}
	return words
}

func ofNodes(v intstr.IntOrString) string {
	if v.Type == intstr.String {
		return v.StrVal + " of nodes"
	}
	return v.String()
}

// labelList renders a label map as "a=1, b=2", sorted.
func labelList(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for i, k := range keys {
		keys[i] = k + "=" + m[k]
	}
	return strings.Join(keys, ", ")
}

// A bare Pod cannot be updated in place beyond its metadata: a change replaces it.
func podConsequences(_ *planner, c manifest.Change) []string {
	switch c.Op {
	case manifest.Added:
		return []string{"start the pod"}
	case manifest.Removed:
		return []string{"delete the pod"}
	}
	return []string{"replace the pod: it is deleted, then started with the new spec"}
}

package reconciler

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// daemonTolerations are the tolerations Kubernetes' DaemonSet controller adds to every daemon
// pod: a daemon keeps running on a node that is not ready, unreachable or cordoned.
var daemonTolerations = []corev1.Toleration{
	{Key: corev1.TaintNodeNotReady, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeUnreachable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoExecute},
	{Key: corev1.TaintNodeDiskPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeMemoryPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodePIDPressure, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
	{Key: corev1.TaintNodeUnschedulable, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule},
}

// daemonNode is one node and the DaemonSet's pods on it.
type daemonNode struct {
	node     *state.Node
	eligible bool
	live     []pod // meant to run, not terminated
	stopping int
}

// split returns the node's pod of revision hash (an available one first, then the oldest) and
// every other pod: older revisions and duplicates, all to be stopped in time.
func (d *daemonNode) split(hash string) (cur *pod, others []pod) {
	for i := range d.live {
		p := &d.live[i]
		if p.TemplateHash != hash {
			continue
		}
		if cur == nil || p.available && !cur.available || p.available == cur.available && p.Created.Before(cur.Created) {
			cur = p
		}
	}
	for i := range d.live {
		if &d.live[i] != cur {
			others = append(others, d.live[i])
		}
	}
	return cur, others
}

// daemonSet runs one pod on every eligible node: a node whose labels match the template's
// nodeSelector and required node affinity and whose NoSchedule/NoExecute taints the pod
// tolerates (with the tolerations Kubernetes adds to daemon pods). A node that is gone loses
// its pod; a new node gets one. Each pod is pinned to its node (PinnedNode) and placed by the
// scheduler, which checks that it fits. RollingUpdate replaces pods node by node within
// maxUnavailable, or with maxSurge a new pod starts beside the old one, which stops once the
// new one is available; OnDelete leaves existing pods alone.
func (r *run) daemonSet(o *manifest.Object, ds *appsv1.DaemonSet) {
	ns, name := o.Key.Namespace, o.Key.Name
	rev := r.newRevision(o, &ds.Spec.Template, LabelControllerHash)
	minReady := time.Duration(ds.Spec.MinReadySeconds) * time.Second
	tmpl := &ds.Spec.Template.Spec

	nodes := map[string]*daemonNode{}
	var order []string
	for _, n := range r.in.State.Nodes() {
		if n.Status == state.NodeGone {
			continue
		}
		nodes[n.Name] = &daemonNode{node: n, eligible: daemonEligible(n, tmpl)}
		order = append(order, n.Name)
	}
	taken := map[string]bool{}
	for _, p := range r.in.State.PodsByOwner(ns, "DaemonSet", name) {
		taken[p.Name] = true
		target := p.Spec.PinnedNode
		if target == "" {
			target = p.NodeName
		}
		dn := nodes[target]
		switch fate := r.housekeep(p); {
		case fate == fateGone:
		case dn == nil:
			// Its node is gone or unknown: nothing can run it here.
			if fate == fateLive {
				r.setDesired(p, state.DesiredDelete)
			}
		case fate == fateTerminating:
			dn.stopping++
		default:
			dn.live = append(dn.live, r.classify(p, minReady))
		}
	}

	rolling := ds.Spec.UpdateStrategy.Type != appsv1.OnDeleteDaemonSetStrategyType
	eligible := 0
	for _, n := range order {
		if nodes[n].eligible {
			eligible++
		}
	}
	// Both round up over the eligible nodes, as Kubernetes rounds them for DaemonSets.
	maxUnavail, maxSurge := 1, 0
	if ru := ds.Spec.UpdateStrategy.RollingUpdate; ru != nil {
		if ru.MaxUnavailable != nil {
			maxUnavail, _ = scaled(ru.MaxUnavailable, eligible)
		}
		maxSurge, _ = scaled(ru.MaxSurge, eligible)
	}
	if maxSurge > 0 {
		maxUnavail = 0
	}

	create := func(dn *daemonNode, why string) {
		p := r.podRecord(ns, daemonPodName(name, dn.node.Name, taken), "DaemonSet", name, rev)
		p.Spec.PinnedNode = dn.node.Name
		p.Spec.Tolerations = append(append([]corev1.Toleration(nil), p.Spec.Tolerations...), daemonTolerations...)
		r.plan.Create = append(r.plan.Create, p)
		r.event(o.Key, "Normal", ReasonCreated, fmt.Sprintf("create pod %s on node %s%s", p.Name, dn.node.Name, why))
	}
	stop := func(p *state.Pod, why string) {
		r.setDesired(p, state.DesiredDelete)
		r.event(o.Key, "Normal", ReasonDeleted, fmt.Sprintf("delete pod %s on node %s%s", p.Name, p.Spec.PinnedNode, why))
	}

	// Unavailable nodes count against maxUnavailable: eligible nodes without an available pod.
	unavailable := 0
	for _, n := range order {
		dn := nodes[n]
		if !dn.eligible {
			continue
		}
		ok := false
		for i := range dn.live {
			ok = ok || dn.live[i].available
		}
		if !ok {
			unavailable++
		}
	}
	// Nodes already surging: a new pod not yet available beside an old one.
	surging := 0
	for _, n := range order {
		if dn := nodes[n]; dn.eligible {
			if cur, others := dn.split(rev.hash); cur != nil && !cur.available && len(others) > 0 {
				surging++
			}
		}
	}
	st := Status{Key: o.Key, Commit: r.in.Commit, Revision: rev.hash, Replicas: eligible}
	for _, n := range order {
		dn := nodes[n]
		if !dn.eligible {
			for i := range dn.live {
				stop(dn.live[i].Pod, " (node no longer eligible)")
			}
			continue
		}
		cur, others := dn.split(rev.hash)
		if cur == nil && !rolling && len(others) > 0 {
			// OnDelete: the old pod stays until someone deletes it; duplicates go.
			sort.Slice(others, func(i, j int) bool { return others[i].Created.Before(others[j].Created) })
			cur, others = &others[0], others[1:]
		}
		// Of the other pods, at most one is worth keeping: an available one, which serves
		// until its replacement is available. The rest (duplicates, unavailable pods of
		// older revisions) go now: that costs no availability.
		var keep *pod
		for i := range others {
			if others[i].available && (keep == nil || others[i].Created.Before(keep.Created)) {
				keep = &others[i]
			}
		}
		for i := range others {
			if &others[i] != keep {
				stop(others[i].Pod, "")
			}
		}
		switch {
		case cur == nil && keep == nil:
			// A node without its pod; one being stopped (an update) finishes stopping first.
			if dn.stopping == 0 && len(others) == 0 {
				create(dn, "")
			}
		case cur == nil && maxSurge > 0:
			if surging < maxSurge {
				create(dn, " (surge)")
				surging++
			}
		case cur == nil:
			// maxUnavailable: an available old pod goes only within the budget.
			if unavailable < maxUnavail {
				unavailable++
				stop(keep.Pod, " (update)")
			}
		case keep != nil && cur.available:
			stop(keep.Pod, "")
		}
		if cur != nil && cur.TemplateHash == rev.hash {
			st.Updated++
		}
		for i := range dn.live {
			st.Current++
			if dn.live[i].ready {
				st.Ready++
			}
			if dn.live[i].available {
				st.Available++
			}
		}
		st.Terminating += dn.stopping
	}
	cond := Condition{Type: "Progressing", Status: "True", Reason: ReasonNewRevision, Message: "every eligible node runs revision " + rev.hash}
	if st.Updated != eligible || st.Available != eligible || st.Current != eligible || st.Terminating > 0 {
		cond = Condition{Type: "Progressing", Status: "True", Reason: ReasonRollingUpdate,
			Message: fmt.Sprintf("%d of %d nodes updated, %d available", st.Updated, eligible, st.Available)}
	}
	st.Conditions = []Condition{cond}
	r.plan.Status = append(r.plan.Status, st)
}

// daemonPodName is NAME-XXXXX, the suffix drawn from the node name, skipping taken names.
func daemonPodName(set, node string, taken map[string]bool) string {
	for i := 0; ; i++ {
		h := fnv.New64a()
		h.Write([]byte(node + "/" + strconv.Itoa(i)))
		n := set + "-" + encodeSafe(h.Sum64(), 5)
		if !taken[n] {
			taken[n] = true
			return n
		}
	}
}

// daemonEligible reports whether a daemon pod belongs on the node.
func daemonEligible(n *state.Node, spec *corev1.PodSpec) bool {
	for k, v := range spec.NodeSelector {
		if n.Labels[k] != v {
			return false
		}
	}
	if a := spec.Affinity; a != nil && a.NodeAffinity != nil && a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution != nil {
		ok := false
		for _, term := range a.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
			if termMatches(n, &term) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	tols := append(append([]corev1.Toleration(nil), spec.Tolerations...), daemonTolerations...)
	for i := range n.Taints {
		t := &n.Taints[i]
		if t.Effect == corev1.TaintEffectPreferNoSchedule {
			continue
		}
		tolerated := false
		for j := range tols {
			if tols[j].ToleratesTaint(logr.Discard(), t, false) {
				tolerated = true
				break
			}
		}
		if !tolerated {
			return false
		}
	}
	return true
}

// termMatches evaluates one node selector term (all its requirements hold). An empty term
// matches nothing, as in Kubernetes.
func termMatches(n *state.Node, t *corev1.NodeSelectorTerm) bool {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		return false
	}
	for _, r := range t.MatchExpressions {
		if !requirementHolds(n.Labels, r) {
			return false
		}
	}
	for _, r := range t.MatchFields {
		if r.Key != "metadata.name" || !requirementHolds(map[string]string{"metadata.name": n.Name}, r) {
			return false
		}
	}
	return true
}

func requirementHolds(labels map[string]string, r corev1.NodeSelectorRequirement) bool {
	v, ok := labels[r.Key]
	in := func() bool {
		for _, x := range r.Values {
			if x == v {
				return true
			}
		}
		return false
	}
	num := func() (int64, int64, bool) {
		if !ok || len(r.Values) != 1 {
			return 0, 0, false
		}
		a, err1 := strconv.ParseInt(v, 10, 64)
		b, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		return a, b, err1 == nil && err2 == nil
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return ok && in()
	case corev1.NodeSelectorOpNotIn:
		return !ok || !in()
	case corev1.NodeSelectorOpExists:
		return ok
	case corev1.NodeSelectorOpDoesNotExist:
		return !ok
	case corev1.NodeSelectorOpGt:
		a, b, good := num()
		return good && a > b
	case corev1.NodeSelectorOpLt:
		a, b, good := num()
		return good && a < b
	}
	return false
}

// scaled resolves an int-or-percent of a node count, rounding up.
func scaled(v *intstr.IntOrString, n int) (int, error) {
	if v == nil {
		return 0, nil
	}
	return intstr.GetScaledValueFromIntOrPercent(v, n, true)
}

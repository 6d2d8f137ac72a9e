package scheduler

import (
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// refCluster is the plain reference scheduler: the same rules as the
// package, written the obvious way. Every placement scores every node and
// recomputes every total (requests, ports, label matches per domain) from
// the full list of placed pods. It shares no code with the optimised path
// beyond the input types and the rule text, so agreement between the two is
// evidence, not tautology. It assumes valid pod specs.
type refCluster struct {
	nodes   []Node
	placed  []refPlaced
	weights Weights
	most    bool
	parsed  map[*metav1.LabelSelector]labels.Selector
}

type refPlaced struct {
	pod  Pod
	node int
}

func newRefCluster(snap Snapshot, cfg Config) *refCluster {
	cfg = cfg.withDefaults()
	rc := &refCluster{nodes: snap.Nodes(), weights: cfg.Weights, most: cfg.Strategy == MostAllocated,
		parsed: map[*metav1.LabelSelector]labels.Selector{}}
	for i, n := range rc.nodes {
		for _, p := range snap.PodsOn(n.Name) {
			rc.placed = append(rc.placed, refPlaced{p, i})
		}
	}
	return rc
}

// refEval is the reference's verdict for one pod on every node.
type refEval struct {
	reason []string // "" when the node is feasible
	score  []int64  // total weighted score of feasible nodes
}

func (e refEval) best() (int, bool) {
	best := -1
	for i, r := range e.reason {
		if r == "" && (best < 0 || e.score[i] > e.score[best]) {
			best = i
		}
	}
	return best, best >= 0
}

func (e refEval) counts() map[string]int {
	c := map[string]int{}
	for _, r := range e.reason {
		if r != "" {
			c[r]++
		}
	}
	return c
}

// schedule places pods in priority order and returns the result.
func (rc *refCluster) schedule(pods []Pod) Result {
	order := make([]int, len(pods))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int { return int(pods[b].Priority) - int(pods[a].Priority) })
	var res Result
	for _, i := range order {
		p := pods[i]
		e := rc.evaluate(p)
		if b, ok := e.best(); ok {
			rc.placed = append(rc.placed, refPlaced{p, b})
			res.Bindings = append(res.Bindings, Binding{PodID: p.ID, Node: rc.nodes[b].Name, Score: e.score[b]})
			continue
		}
		c := e.counts()
		res.Unplaced = append(res.Unplaced, Unplaced{PodID: p.ID, Reason: reasonMessage(len(rc.nodes), c), Counts: c})
	}
	return res
}

func (rc *refCluster) evaluate(p Pod) refEval {
	e := refEval{reason: make([]string, len(rc.nodes)), score: make([]int64, len(rc.nodes))}
	x := rc.context(p)
	for i := range rc.nodes {
		e.reason[i] = rc.why(p, i, x)
	}
	rc.scoreAll(p, e, x)
	return e
}

func refDomain(n Node, key string) (string, bool) {
	if key == HostnameKey {
		return n.Name, true
	}
	v, ok := n.Labels[key]
	return v, ok
}

// refTermMatches: does pod q match a term written in namespace ns?
func refTermMatches(ns string, nss []string, nsSel, sel *metav1.LabelSelector, q Pod) bool {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		panic(err)
	}
	return refNamespaceOK(ns, nss, nsSel, q) && s.Matches(labels.Set(q.Labels))
}

// matches is refTermMatches with each selector parsed once: pods of one
// owner share their selector, and parsing dominates otherwise. Only the
// parse is cached; every count is still recomputed.
func (rc *refCluster) matches(ns string, nss []string, nsSel, sel *metav1.LabelSelector, q Pod) bool {
	if !refNamespaceOK(ns, nss, nsSel, q) {
		return false
	}
	s, ok := rc.parsed[sel]
	if !ok {
		var err error
		if s, err = metav1.LabelSelectorAsSelector(sel); err != nil {
			panic(err)
		}
		rc.parsed[sel] = s
	}
	return s.Matches(labels.Set(q.Labels))
}

func refNamespaceOK(ns string, nss []string, nsSel *metav1.LabelSelector, q Pod) bool {
	switch {
	case nsSel != nil: // only the empty selector is valid: all namespaces
		return true
	case len(nss) == 0:
		return q.Namespace == ns
	default:
		return slices.Contains(nss, q.Namespace)
	}
}

func refNodeReq(r corev1.NodeSelectorRequirement, n Node, field bool) bool {
	v, ok := n.Labels[r.Key]
	if field {
		v, ok = n.Name, true
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn:
		return ok && slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpNotIn:
		return !ok || !slices.Contains(r.Values, v)
	case corev1.NodeSelectorOpExists:
		return ok
	case corev1.NodeSelectorOpDoesNotExist:
		return !ok
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		x, err1 := strconv.ParseInt(v, 10, 64)
		y, err2 := strconv.ParseInt(r.Values[0], 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return false
		}
		return (r.Operator == corev1.NodeSelectorOpGt && x > y) || (r.Operator == corev1.NodeSelectorOpLt && x < y)
	}
	return false
}

func refNodeTerm(t corev1.NodeSelectorTerm, n Node) bool {
	if len(t.MatchExpressions)+len(t.MatchFields) == 0 {
		return false
	}
	for _, r := range t.MatchExpressions {
		if !refNodeReq(r, n, false) {
			return false
		}
	}
	for _, r := range t.MatchFields {
		if !refNodeReq(r, n, true) {
			return false
		}
	}
	return true
}

func refNodeAffinity(p Pod, n Node) bool {
	for k, v := range p.NodeSelector {
		if n.Labels[k] != v {
			return false
		}
		if _, ok := n.Labels[k]; !ok {
			return false
		}
	}
	if p.Affinity == nil || p.Affinity.NodeAffinity == nil || p.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
		return true
	}
	for _, t := range p.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.NodeSelectorTerms {
		if refNodeTerm(t, n) {
			return true
		}
	}
	return false
}

func refTolerated(p Pod, t corev1.Taint) bool {
	for _, tol := range p.Tolerations {
		effectOK := tol.Effect == "" || tol.Effect == t.Effect
		keyOK := tol.Key == "" || tol.Key == t.Key
		valueOK := tol.Operator == corev1.TolerationOpExists ||
			((tol.Operator == "" || tol.Operator == corev1.TolerationOpEqual) && tol.Value == t.Value)
		if effectOK && keyOK && valueOK {
			return true
		}
	}
	return false
}

func refHardTaint(p Pod, n Node) (corev1.Taint, bool) {
	for _, t := range n.Taints {
		if (t.Effect == corev1.TaintEffectNoSchedule || t.Effect == corev1.TaintEffectNoExecute) && !refTolerated(p, t) {
			return t, true
		}
	}
	return corev1.Taint{}, false
}

func refProto(hp HostPort) HostPort {
	if hp.Protocol == "" {
		hp.Protocol = corev1.ProtocolTCP
	}
	return hp
}

func requiredAnti(p Pod) []corev1.PodAffinityTerm {
	if p.Affinity == nil || p.Affinity.PodAntiAffinity == nil {
		return nil
	}
	return p.Affinity.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution
}

func requiredAff(p Pod) []corev1.PodAffinityTerm {
	if p.Affinity == nil || p.Affinity.PodAffinity == nil {
		return nil
	}
	return p.Affinity.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution
}

// refCtx holds what one evaluation recomputes from scratch: the pods on
// each node, and for every term the pod carries, the count of matching
// placed pods per domain. Building it scans every placed pod once per term
// (nomad's approach, without the incremental totals).
type refCtx struct {
	podsOn    [][]*Pod
	counts    map[string]map[string]int // term id → domain → matching pods
	symAnti   map[string]bool           // key + "=" + domain blocked by a placed pod's anti-affinity
	symKeys   []string
	anyAff    bool
	selfAll   bool
	eligibleN map[int]int // spread constraint → eligible domain count
	minCount  map[int]int // spread constraint → global minimum
}

// domainCounts counts placed pods matching match per domain of key.
func (rc *refCluster) domainCounts(key string, match func(Pod) bool) map[string]int {
	c := map[string]int{}
	for _, q := range rc.placed {
		if d, ok := refDomain(rc.nodes[q.node], key); ok && match(q.pod) {
			c[d]++
		}
	}
	return c
}

func termID(kind string, i int) string { return fmt.Sprintf("%s%d", kind, i) }

func (rc *refCluster) context(p Pod) *refCtx {
	x := &refCtx{podsOn: make([][]*Pod, len(rc.nodes)), counts: map[string]map[string]int{},
		symAnti: map[string]bool{}, eligibleN: map[int]int{}, minCount: map[int]int{}, selfAll: true}
	for i := range rc.placed {
		q := &rc.placed[i]
		x.podsOn[q.node] = append(x.podsOn[q.node], &q.pod)
	}
	termMatch := func(t corev1.PodAffinityTerm) func(Pod) bool {
		return func(q Pod) bool {
			return rc.matches(p.Namespace, t.Namespaces, t.NamespaceSelector, t.LabelSelector, q)
		}
	}
	for i, t := range requiredAnti(p) {
		x.counts[termID("anti", i)] = rc.domainCounts(t.TopologyKey, termMatch(t))
	}
	for _, q := range rc.placed {
		for _, t := range requiredAnti(q.pod) {
			if d, ok := refDomain(rc.nodes[q.node], t.TopologyKey); ok &&
				rc.matches(q.pod.Namespace, t.Namespaces, t.NamespaceSelector, t.LabelSelector, p) {
				x.symAnti[t.TopologyKey+"="+d] = true
				if !slices.Contains(x.symKeys, t.TopologyKey) {
					x.symKeys = append(x.symKeys, t.TopologyKey)
				}
			}
		}
	}
	for i, t := range requiredAff(p) {
		c := rc.domainCounts(t.TopologyKey, termMatch(t))
		x.counts[termID("aff", i)] = c
		x.anyAff = x.anyAff || len(c) > 0
		x.selfAll = x.selfAll && termMatch(t)(p)
	}
	if p.Affinity != nil && p.Affinity.PodAffinity != nil {
		for i, t := range p.Affinity.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			x.counts[termID("pp", i)] = rc.domainCounts(t.PodAffinityTerm.TopologyKey, termMatch(t.PodAffinityTerm))
		}
	}
	if p.Affinity != nil && p.Affinity.PodAntiAffinity != nil {
		for i, t := range p.Affinity.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
			x.counts[termID("pa", i)] = rc.domainCounts(t.PodAffinityTerm.TopologyKey, termMatch(t.PodAffinityTerm))
		}
	}
	for i, c := range p.TopologySpreadConstraints {
		sel := spreadSelector(&p, c)
		counts := rc.domainCounts(c.TopologyKey, func(q Pod) bool { return rc.matches(p.Namespace, nil, nil, sel, q) })
		x.counts[termID("spread", i)] = counts
		if c.WhenUnsatisfiable == corev1.ScheduleAnyway {
			continue
		}
		eligible := map[string]bool{}
		for _, m := range rc.nodes {
			d, ok := refDomain(m, c.TopologyKey)
			if !ok || !m.Ready || m.Cordoned {
				continue
			}
			if (c.NodeAffinityPolicy == nil || *c.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor) && !refNodeAffinity(p, m) {
				continue
			}
			if c.NodeTaintsPolicy != nil && *c.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor {
				if _, bad := refHardTaint(p, m); bad {
					continue
				}
			}
			eligible[d] = true
		}
		minCount := -1
		for d := range eligible {
			if minCount < 0 || counts[d] < minCount {
				minCount = counts[d]
			}
		}
		if minCount < 0 || (c.MinDomains != nil && len(eligible) < int(*c.MinDomains)) {
			minCount = 0
		}
		x.minCount[i] = minCount
	}
	return x
}

// why returns the reason node i cannot take p, or "".
func (rc *refCluster) why(p Pod, i int, x *refCtx) string {
	n := rc.nodes[i]
	if !n.Ready {
		return "node(s) were not ready"
	}
	if n.Cordoned {
		return "node(s) were cordoned"
	}
	if p.PinnedNode != "" && p.PinnedNode != n.Name {
		return "node(s) did not hold the pod's local volume"
	}
	if !refNodeAffinity(p, n) {
		return "node(s) didn't match Pod's node affinity/selector"
	}
	if t, bad := refHardTaint(p, n); bad {
		return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
	}
	var cpu, mem int64
	var ports []HostPort
	for _, q := range x.podsOn[i] {
		cpu += q.MilliCPU
		mem += q.Memory
		for _, hp := range q.HostPorts {
			ports = append(ports, refProto(hp))
		}
	}
	if int64(len(x.podsOn[i]))+1 > n.MaxPods {
		return "too many pods"
	}
	if cpu+p.MilliCPU > n.MilliCPU {
		return "insufficient cpu"
	}
	if mem+p.Memory > n.Memory {
		return "insufficient memory"
	}
	for _, hp := range p.HostPorts {
		if slices.Contains(ports, refProto(hp)) {
			return "node(s) didn't have free ports for the requested pod ports"
		}
	}
	for j, t := range requiredAnti(p) {
		if dom, ok := refDomain(n, t.TopologyKey); ok && x.counts[termID("anti", j)][dom] > 0 {
			return "node(s) didn't match pod anti-affinity rules"
		}
	}
	for _, key := range x.symKeys {
		if dom, ok := refDomain(n, key); ok && x.symAnti[key+"="+dom] {
			return "node(s) didn't satisfy existing pods anti-affinity rules"
		}
	}
	for j, t := range requiredAff(p) {
		dom, ok := refDomain(n, t.TopologyKey)
		if !ok {
			return "node(s) didn't match pod affinity rules"
		}
		if x.counts[termID("aff", j)][dom] == 0 && (x.anyAff || !x.selfAll) {
			return "node(s) didn't match pod affinity rules"
		}
	}
	for j, c := range p.TopologySpreadConstraints {
		if c.WhenUnsatisfiable == corev1.ScheduleAnyway {
			continue
		}
		dom, ok := refDomain(n, c.TopologyKey)
		if !ok {
			return "node(s) didn't match pod topology spread constraints (missing required label)"
		}
		self := 0
		if rc.matches(p.Namespace, nil, nil, spreadSelector(&p, c), p) {
			self = 1
		}
		if x.counts[termID("spread", j)][dom]+self-x.minCount[j] > int(c.MaxSkew) {
			return "node(s) didn't match pod topology spread constraints"
		}
	}
	return ""
}

// scoreAll fills e.score for the feasible nodes: each score computed raw on
// every feasible node, normalised over them, weighted and summed.
func (rc *refCluster) scoreAll(p Pod, e refEval, x *refCtx) {
	var feasible []int
	for i, r := range e.reason {
		if r == "" {
			feasible = append(feasible, i)
		}
	}
	const missing = -1
	add := func(w int64, kind string, raw func(i int) int64) {
		vals := make([]int64, len(feasible))
		lo, hi, seen := int64(0), int64(0), false
		for j, i := range feasible {
			vals[j] = raw(i)
			if kind == "low" && vals[j] == missing {
				continue
			}
			if !seen || vals[j] < lo {
				lo = vals[j]
			}
			if !seen || vals[j] > hi {
				hi = vals[j]
			}
			seen = true
		}
		for j, i := range feasible {
			v := vals[j]
			switch {
			case kind == "none":
			case kind == "low" && v == missing:
				v = 0
			case hi == lo:
				v = 0
			case kind == "low":
				v = 100 * (hi - v) / (hi - lo)
			default:
				v = 100 * (v - lo) / (hi - lo)
			}
			e.score[i] += w * v
		}
	}
	w := rc.weights
	add(w.Resources, "none", func(i int) int64 {
		n := rc.nodes[i]
		cpu, mem := p.MilliCPU, p.Memory
		for _, q := range x.podsOn[i] {
			cpu += q.MilliCPU
			mem += q.Memory
		}
		f := func(used, capacity int64) int64 {
			if capacity <= 0 {
				return 0
			}
			used = min(used, capacity)
			if rc.most {
				return used * 100 / capacity
			}
			return (capacity - used) * 100 / capacity
		}
		return (f(cpu, n.MilliCPU) + f(mem, n.Memory)) / 2
	})
	add(w.OwnerSpread, "low", func(i int) int64 {
		var c int64
		for _, q := range x.podsOn[i] {
			if !p.Owner.IsZero() && q.Owner == p.Owner {
				c++
			}
		}
		return c
	})
	add(w.TopologySpread, "low", func(i int) int64 {
		var s int64
		for j, c := range p.TopologySpreadConstraints {
			if c.WhenUnsatisfiable != corev1.ScheduleAnyway {
				continue
			}
			dom, ok := refDomain(rc.nodes[i], c.TopologyKey)
			if !ok {
				return missing
			}
			s += int64(x.counts[termID("spread", j)][dom])
		}
		return s
	})
	add(w.NodeAffinity, "high", func(i int) int64 {
		var s int64
		if p.Affinity != nil && p.Affinity.NodeAffinity != nil {
			for _, t := range p.Affinity.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution {
				if refNodeTerm(t.Preference, rc.nodes[i]) {
					s += int64(t.Weight)
				}
			}
		}
		return s
	})
	add(w.PodAffinity, "high", func(i int) int64 {
		var s int64
		if p.Affinity == nil {
			return 0
		}
		add := func(kind string, sign int64, terms []corev1.WeightedPodAffinityTerm) {
			for j, t := range terms {
				if dom, ok := refDomain(rc.nodes[i], t.PodAffinityTerm.TopologyKey); ok {
					s += sign * int64(t.Weight) * int64(x.counts[termID(kind, j)][dom])
				}
			}
		}
		if a := p.Affinity.PodAffinity; a != nil {
			add("pp", 1, a.PreferredDuringSchedulingIgnoredDuringExecution)
		}
		if a := p.Affinity.PodAntiAffinity; a != nil {
			add("pa", -1, a.PreferredDuringSchedulingIgnoredDuringExecution)
		}
		return s
	})
	add(w.ImageLocality, "none", func(i int) int64 {
		if len(p.Images) == 0 {
			return 0
		}
		var have int64
		for _, im := range p.Images {
			if slices.Contains(rc.nodes[i].Images, im) {
				have++
			}
		}
		return have * 100 / int64(len(p.Images))
	})
	add(w.TaintPreferNoSchedule, "low", func(i int) int64 {
		var c int64
		for _, t := range rc.nodes[i].Taints {
			if t.Effect == corev1.TaintEffectPreferNoSchedule && !refTolerated(p, t) {
				c++
			}
		}
		return c
	})
}

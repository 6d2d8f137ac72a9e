package scheduler

// ranker is one score (nomad's Ranker, kube's Score plugin). raw scores a
// node for the pod; the stack then normalises the raw scores of all
// candidates to 0..100 by the ranker's norm, multiplies by its weight and
// sums. A ranker that does not apply to a pod scores 0 everywhere.
type ranker interface {
	name() string
	applies(pl *podPlan) bool
	raw(pl *podPlan, n *nodeState) int64
	norm() norm
}

// norm is how raw scores become 0..100 across the candidates. When every
// candidate has the same raw score the ranker cannot tell them apart and
// scores them all 0.
type norm uint8

const (
	// normNone: raw is already 0..100.
	normNone norm = iota
	// normHigh: higher is better; 100*(raw-min)/(max-min).
	normHigh
	// normLow: lower is better; 100*(max-raw)/(max-min). A raw of
	// missingDomain (the node lacks a topology key) scores 0 and is left
	// out of min and max.
	normLow
)

const missingDomain int64 = -1

// resourceScore: LeastAllocated prefers free room, MostAllocated packs;
// the mean of the cpu and memory fractions after placing the pod.
type resourceScore struct{ most bool }

func (resourceScore) name() string             { return "Resources" }
func (resourceScore) applies(pl *podPlan) bool { return true }
func (resourceScore) norm() norm               { return normNone }
func (r resourceScore) raw(pl *podPlan, n *nodeState) int64 {
	return (fraction(n.reqCPU+pl.pod.MilliCPU, n.MilliCPU, r.most) +
		fraction(n.reqMem+pl.pod.Memory, n.Memory, r.most)) / 2
}

// fraction is used*100/capacity (most) or free*100/capacity (least).
func fraction(used, capacity int64, most bool) int64 {
	if capacity <= 0 {
		return 0
	}
	if used > capacity {
		used = capacity
	}
	if most {
		return used * 100 / capacity
	}
	return (capacity - used) * 100 / capacity
}

// ownerSpread: fewer pods of the same owner on the node is better.
type ownerSpread struct{}

func (ownerSpread) name() string             { return "OwnerSpread" }
func (ownerSpread) applies(pl *podPlan) bool { return pl.owner != nil }
func (ownerSpread) norm() norm               { return normLow }
func (ownerSpread) raw(pl *podPlan, n *nodeState) int64 {
	return int64(pl.owner[n.idx])
}

// topologySpreadScore: ScheduleAnyway constraints; fewer matching pods in
// the node's domains is better, a node lacking a key is worst.
type topologySpreadScore struct{}

func (topologySpreadScore) name() string             { return "TopologySpread" }
func (topologySpreadScore) applies(pl *podPlan) bool { return len(pl.softSpread) > 0 }
func (topologySpreadScore) norm() norm               { return normLow }
func (topologySpreadScore) raw(pl *podPlan, n *nodeState) int64 {
	var s int64
	for _, c := range pl.softSpread {
		v, ok := c.at(n.idx)
		if !ok {
			return missingDomain
		}
		s += int64(v)
	}
	return s
}

// nodeAffinityScore: the sum of the weights of the preferred node
// affinity terms the node matches.
type nodeAffinityScore struct{}

func (nodeAffinityScore) name() string             { return "NodeAffinity" }
func (nodeAffinityScore) applies(pl *podPlan) bool { return len(pl.prefNode) > 0 }
func (nodeAffinityScore) norm() norm               { return normHigh }
func (nodeAffinityScore) raw(pl *podPlan, n *nodeState) int64 {
	var s int64
	for i := range pl.prefNode {
		if pl.prefNode[i].t.match(&n.Node) {
			s += pl.prefNode[i].w
		}
	}
	return s
}

// podAffinityScore: weight × matching pods in the node's domain, added for
// preferred affinity and subtracted for preferred anti-affinity.
type podAffinityScore struct{}

func (podAffinityScore) name() string             { return "PodAffinity" }
func (podAffinityScore) applies(pl *podPlan) bool { return len(pl.prefPod) > 0 }
func (podAffinityScore) norm() norm               { return normHigh }
func (podAffinityScore) raw(pl *podPlan, n *nodeState) int64 {
	var s int64
	for _, wc := range pl.prefPod {
		if v, ok := wc.c.at(n.idx); ok {
			s += wc.w * int64(v)
		}
	}
	return s
}

// imageLocality: the share of the pod's images already on the node.
type imageLocality struct{}

func (imageLocality) name() string             { return "ImageLocality" }
func (imageLocality) applies(pl *podPlan) bool { return len(pl.pod.Images) > 0 }
func (imageLocality) norm() norm               { return normNone }
func (imageLocality) raw(pl *podPlan, n *nodeState) int64 {
	if n.images == nil {
		return 0
	}
	var have int64
	for _, im := range pl.pod.Images {
		if _, ok := n.images[im]; ok {
			have++
		}
	}
	return have * 100 / int64(len(pl.pod.Images))
}

// taintPreferNoSchedule: fewer untolerated PreferNoSchedule taints is better.
type taintPreferNoSchedule struct{}

func (taintPreferNoSchedule) name() string             { return "TaintPreferNoSchedule" }
func (taintPreferNoSchedule) applies(pl *podPlan) bool { return pl.softTaintCount }
func (taintPreferNoSchedule) norm() norm               { return normLow }
func (taintPreferNoSchedule) raw(pl *podPlan, n *nodeState) int64 {
	var c int64
	for i := range n.softTaints {
		if !tolerates(pl.pod.Tolerations, &n.softTaints[i]) {
			c++
		}
	}
	return c
}

// normalise turns raw scores into 0..100 in place.
func normalise(k norm, s []int64) {
	if k == normNone || len(s) == 0 {
		return
	}
	lo, hi := int64(0), int64(0)
	first := true
	for _, v := range s {
		if k == normLow && v == missingDomain {
			continue
		}
		if first {
			lo, hi, first = v, v, false
			continue
		}
		lo, hi = min(lo, v), max(hi, v)
	}
	for i, v := range s {
		switch {
		case k == normLow && v == missingDomain, hi == lo:
			s[i] = 0
		case k == normLow:
			s[i] = 100 * (hi - v) / (hi - lo)
		default:
			s[i] = 100 * (v - lo) / (hi - lo)
		}
	}
}

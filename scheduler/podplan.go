package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// podPlan is a pod compiled against a ClusterState: every selector parsed,
// every counter the filters and scores read resolved to a slice, so that
// evaluating one node is a handful of loads and compares. It is rebuilt for
// each pod and reuses its slices.
type podPlan struct {
	pod     *Pod
	group   *labelGroup
	invalid string // non-empty: the pod fits nowhere, for this reason

	nodeSel    []kv
	reqAff     []nodeTerm // OR of terms
	hasReqAff  bool
	ports      []HostPort
	pinned     int32 // node index; -1 none; -2 names a node that does not exist
	ownAnti    []count
	ownAff     []count
	affSelfOK  bool // no pod matches the affinity terms yet but the pod matches them itself
	symAnti    []count
	hardSpread []spreadCheck
	softSpread []count
	prefNode   []weightedTerm
	prefPod    []weightedCount
	owner      []int32

	softTaintCount bool   // some node has a PreferNoSchedule taint
	staticKey      string // identity of what the static filters read from the pod
}

type kv struct{ k, v string }

type spreadCheck struct {
	c       count
	maxSkew int32
	self    int32 // 1 when the pod matches its own constraint
	min     int32 // global minimum over eligible domains, fixed per placement
}

type weightedTerm struct {
	w int64
	t nodeTerm
}

type weightedCount struct {
	w int64 // negative for anti-affinity
	c count
}

func (pl *podPlan) reset(p *Pod) {
	*pl = podPlan{
		pod:        p,
		pinned:     -1,
		nodeSel:    pl.nodeSel[:0],
		reqAff:     pl.reqAff[:0],
		ports:      pl.ports[:0],
		ownAnti:    pl.ownAnti[:0],
		ownAff:     pl.ownAff[:0],
		symAnti:    pl.symAnti[:0],
		hardSpread: pl.hardSpread[:0],
		softSpread: pl.softSpread[:0],
		prefNode:   pl.prefNode[:0],
		prefPod:    pl.prefPod[:0],
	}
}

// compile fills pl for pod p. Problems in the pod's own spec (a selector
// that does not parse, an unsupported operator) make it invalid rather
// than an error: it stays unplaced with that reason and blocks nothing.
func (cs *ClusterState) compile(p *Pod, pl *podPlan) {
	pl.reset(p)
	if err := cs.compileErr(p, pl); err != nil {
		pl.invalid = fmt.Sprintf("pod %s/%s: %v", p.Namespace, p.Name, err)
	}
}

func (cs *ClusterState) compileErr(p *Pod, pl *podPlan) error {
	pl.group = cs.group(p.Namespace, p.Labels)
	for _, k := range slices.Sorted(maps.Keys(p.NodeSelector)) {
		pl.nodeSel = append(pl.nodeSel, kv{k, p.NodeSelector[k]})
	}
	for _, hp := range p.HostPorts {
		pl.ports = append(pl.ports, normPort(hp))
	}
	if p.PinnedNode != "" {
		pl.pinned = -2
		if i, ok := cs.byName[p.PinnedNode]; ok {
			pl.pinned = i
		}
	}
	if !p.Owner.IsZero() {
		pl.owner = cs.ownerCounts(p.Owner)
	}
	pl.softTaintCount = cs.anySoftTaint
	pl.staticKey = staticKey(p)

	// Existing pods' required anti-affinity that this pod matches.
	for _, a := range pl.group.antis {
		c := count{counts: a.holders}
		if !a.topo.hostname {
			c.dom = a.topo.dom
		}
		pl.symAnti = append(pl.symAnti, c)
	}

	if a := p.Affinity; a != nil {
		if na := a.NodeAffinity; na != nil {
			if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
				pl.hasReqAff = true
				for i, t := range req.NodeSelectorTerms {
					ct, err := compileTerm(t)
					if err != nil {
						return fmt.Errorf("required node affinity term %d: %w", i, err)
					}
					pl.reqAff = append(pl.reqAff, ct)
				}
			}
			for i, pt := range na.PreferredDuringSchedulingIgnoredDuringExecution {
				ct, err := compileTerm(pt.Preference)
				if err != nil {
					return fmt.Errorf("preferred node affinity term %d: %w", i, err)
				}
				pl.prefNode = append(pl.prefNode, weightedTerm{w: int64(pt.Weight), t: ct})
			}
		}
		if pa := a.PodAffinity; pa != nil {
			allSelf, anyMatch := true, false
			for i, t := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				c, tot, self, err := cs.termCount(p, t)
				if err != nil {
					return fmt.Errorf("required pod affinity term %d: %w", i, err)
				}
				pl.ownAff = append(pl.ownAff, c)
				allSelf = allSelf && self
				anyMatch = anyMatch || tot > 0
			}
			pl.affSelfOK = allSelf && !anyMatch
			for i, wt := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				c, _, _, err := cs.termCount(p, wt.PodAffinityTerm)
				if err != nil {
					return fmt.Errorf("preferred pod affinity term %d: %w", i, err)
				}
				pl.prefPod = append(pl.prefPod, weightedCount{w: int64(wt.Weight), c: c})
			}
		}
		if pa := a.PodAntiAffinity; pa != nil {
			for i, t := range pa.RequiredDuringSchedulingIgnoredDuringExecution {
				c, _, _, err := cs.termCount(p, t)
				if err != nil {
					return fmt.Errorf("required pod anti-affinity term %d: %w", i, err)
				}
				pl.ownAnti = append(pl.ownAnti, c)
			}
			for i, wt := range pa.PreferredDuringSchedulingIgnoredDuringExecution {
				c, _, _, err := cs.termCount(p, wt.PodAffinityTerm)
				if err != nil {
					return fmt.Errorf("preferred pod anti-affinity term %d: %w", i, err)
				}
				pl.prefPod = append(pl.prefPod, weightedCount{w: -int64(wt.Weight), c: c})
			}
		}
	}

	for i, tsc := range p.TopologySpreadConstraints {
		if tsc.TopologyKey == "" {
			return fmt.Errorf("topologySpreadConstraint %d: topologyKey is empty", i)
		}
		sel := spreadSelector(p, tsc)
		m, err := newMatcher(p.Namespace, nil, nil, sel)
		if err != nil {
			return fmt.Errorf("topologySpreadConstraint %d: %w", i, err)
		}
		t := cs.tracked(m)
		topo := cs.topo(tsc.TopologyKey)
		counts, dom, _ := t.domainCounts(topo)
		c := count{counts: counts, dom: dom}
		switch tsc.WhenUnsatisfiable {
		case corev1.ScheduleAnyway:
			pl.softSpread = append(pl.softSpread, c)
		case corev1.DoNotSchedule, "":
			if tsc.MaxSkew < 1 {
				return fmt.Errorf("topologySpreadConstraint %d: maxSkew %d: must be at least 1", i, tsc.MaxSkew)
			}
			sc := spreadCheck{c: c, maxSkew: tsc.MaxSkew}
			if m.matches(p.Namespace, p.Labels) {
				sc.self = 1
			}
			sc.min = cs.globalMin(p, pl, tsc, topo, c)
			pl.hardSpread = append(pl.hardSpread, sc)
		default:
			return fmt.Errorf("topologySpreadConstraint %d: whenUnsatisfiable %q: want DoNotSchedule or ScheduleAnyway", i, tsc.WhenUnsatisfiable)
		}
	}
	return nil
}

// spreadSelector is the constraint's selector with matchLabelKeys folded in.
func spreadSelector(p *Pod, tsc corev1.TopologySpreadConstraint) *metav1.LabelSelector {
	if len(tsc.MatchLabelKeys) == 0 || tsc.LabelSelector == nil {
		return tsc.LabelSelector
	}
	sel := tsc.LabelSelector.DeepCopy()
	for _, k := range tsc.MatchLabelKeys {
		if v, ok := p.Labels[k]; ok {
			if sel.MatchLabels == nil {
				sel.MatchLabels = map[string]string{}
			}
			sel.MatchLabels[k] = v
		}
	}
	return sel
}

// termCount resolves a pod affinity term to its per-domain counter; it
// also reports how many bound pods match the term on nodes with the key and
// whether pod p matches the term itself.
func (cs *ClusterState) termCount(p *Pod, t corev1.PodAffinityTerm) (count, int64, bool, error) {
	if t.TopologyKey == "" {
		return count{}, 0, false, fmt.Errorf("topologyKey is empty")
	}
	m, err := newMatcher(p.Namespace, t.Namespaces, t.NamespaceSelector, t.LabelSelector)
	if err != nil {
		return count{}, 0, false, err
	}
	ts := cs.tracked(m)
	counts, dom, total := ts.domainCounts(cs.topo(t.TopologyKey))
	return count{counts: counts, dom: dom}, total, m.matches(p.Namespace, p.Labels), nil
}

// globalMin is the smallest count among the domains a DoNotSchedule
// constraint is measured over: domains of Ready, schedulable nodes that pass
// the pod's node affinity (unless nodeAffinityPolicy is Ignore) and, with
// nodeTaintsPolicy Honor, whose taints it tolerates. Fewer such domains
// than minDomains makes the minimum 0.
func (cs *ClusterState) globalMin(p *Pod, pl *podPlan, tsc corev1.TopologySpreadConstraint, topo *topoIndex, c count) int32 {
	doms := cs.eligibleDomains(p, pl, tsc, topo)
	if tsc.MinDomains != nil && int32(len(doms)) < *tsc.MinDomains {
		return 0
	}
	if len(doms) == 0 {
		return 0
	}
	min := c.counts[doms[0]]
	for _, d := range doms[1:] {
		if v := c.counts[d]; v < min {
			min = v
		}
	}
	return min
}

func (cs *ClusterState) eligibleDomains(p *Pod, pl *podPlan, tsc corev1.TopologySpreadConstraint, topo *topoIndex) []int32 {
	honorAff := tsc.NodeAffinityPolicy == nil || *tsc.NodeAffinityPolicy == corev1.NodeInclusionPolicyHonor
	honorTaints := tsc.NodeTaintsPolicy != nil && *tsc.NodeTaintsPolicy == corev1.NodeInclusionPolicyHonor
	var sb strings.Builder
	sb.WriteString(topo.key)
	if honorAff {
		sb.WriteString("\x00A")
		for _, e := range pl.nodeSel {
			sb.WriteString(e.k + "=" + e.v + ",")
		}
		if pl.hasReqAff {
			sb.WriteString(p.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution.String())
		}
	}
	if honorTaints {
		sb.WriteString("\x00T")
		for _, t := range p.Tolerations {
			sb.WriteString(t.String())
		}
	}
	key := sb.String()
	if doms, ok := cs.eligible[key]; ok {
		return doms
	}
	seen := make([]bool, len(topo.names))
	doms := []int32{}
	for i := range cs.nodes {
		n := &cs.nodes[i]
		d := topo.dom[i]
		if d < 0 || seen[d] || !n.Ready || n.Cordoned {
			continue
		}
		if honorAff && !matchNodeAffinity(pl, &n.Node) {
			continue
		}
		if honorTaints {
			if _, bad := untolerated(p.Tolerations, n.hardTaints); bad {
				continue
			}
		}
		seen[d] = true
		doms = append(doms, d)
	}
	cs.eligible[key] = doms
	return doms
}

// matchNodeAffinity is the nodeSelector plus required node affinity test.
func matchNodeAffinity(pl *podPlan, n *Node) bool {
	for _, e := range pl.nodeSel {
		if v, ok := n.Labels[e.k]; !ok || v != e.v {
			return false
		}
	}
	if !pl.hasReqAff {
		return true
	}
	for i := range pl.reqAff {
		if pl.reqAff[i].match(n) {
			return true
		}
	}
	return false
}

// staticKey identifies the parts of a pod's spec the static filters read;
// "" for the common pod with none of them.
func staticKey(p *Pod) string {
	var req *corev1.NodeSelector
	if p.Affinity != nil && p.Affinity.NodeAffinity != nil {
		req = p.Affinity.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
	}
	if len(p.NodeSelector) == 0 && req == nil && len(p.Tolerations) == 0 {
		return ""
	}
	var sb strings.Builder
	for _, k := range slices.Sorted(maps.Keys(p.NodeSelector)) {
		sb.WriteString(k + "=" + p.NodeSelector[k] + "\x00")
	}
	sb.WriteString("\x01")
	if req != nil {
		sb.WriteString(req.String())
	}
	sb.WriteString("\x01")
	for i := range p.Tolerations {
		sb.WriteString(p.Tolerations[i].String())
	}
	return sb.String()
}

// maxStaticSigs bounds the static verdict cache (a byte per node each):
// pods pinned by node name, one signature per node, must not grow it
// without limit.
const maxStaticSigs = 1024

// staticVerdicts returns, per node, whether it passes the static checkers,
// computing it on first use of the signature; nil when the cache is full.
func (cs *ClusterState) staticVerdicts(pl *podPlan, static []checker) []bool {
	if v, ok := cs.staticFit[pl.staticKey]; ok {
		return v
	}
	if len(cs.staticFit) >= maxStaticSigs {
		return nil
	}
	v := make([]bool, len(cs.nodes))
	for i := range cs.nodes {
		v[i] = true
		for _, f := range static {
			if f.feasible(pl, &cs.nodes[i]) != fitOK {
				v[i] = false
				break
			}
		}
	}
	cs.staticFit[pl.staticKey] = v
	return v
}

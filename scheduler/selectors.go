package scheduler

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
)

// topoIndex maps every node to its domain under one topology key.
type topoIndex struct {
	key      string
	hostname bool     // domains are the nodes themselves
	dom      []int32  // node → domain, -1 when the node lacks the label
	names    []string // domain → label value
}

// labelGroup is every bound pod sharing a namespace and a label set.
type labelGroup struct {
	ns     string
	labels map[string]string
	nodes  []int32 // the node of each bound pod of the group

	sels        []*trackedSel // tracked selectors that match the group
	selChecked  int           // prefix of ClusterState.selList already tested
	antis       []*antiTerm   // bound pods' anti-affinity terms that match the group
	antiChecked int
}

// podMatcher is "pods in these namespaces whose labels match this selector".
type podMatcher struct {
	allNS bool
	nss   []string
	sel   labels.Selector
}

func (m *podMatcher) matches(ns string, l map[string]string) bool {
	if !m.allNS && !slices.Contains(m.nss, ns) {
		return false
	}
	return m.sel.Matches(labels.Set(l))
}

func (m *podMatcher) key() string {
	ns := "*"
	if !m.allNS {
		ns = strings.Join(m.nss, ",")
	}
	return ns + "|" + m.sel.String()
}

var errNamespaceSelector = errors.New("namespaceSelector with match rules is not supported (namespace labels are not known to the scheduler); list namespaces instead")

// newMatcher compiles a selector and the namespaces it applies to, as pod
// affinity terms and spread constraints define them. The selector nil
// matches nothing, as in Kubernetes.
func newMatcher(podNS string, nss []string, nsSel *metav1.LabelSelector, sel *metav1.LabelSelector) (podMatcher, error) {
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return podMatcher{}, fmt.Errorf("labelSelector: %w", err)
	}
	m := podMatcher{sel: s}
	switch {
	case nsSel != nil && len(nsSel.MatchLabels) == 0 && len(nsSel.MatchExpressions) == 0:
		m.allNS = true
	case nsSel != nil:
		return podMatcher{}, errNamespaceSelector
	case len(nss) == 0:
		m.nss = []string{podNS}
	default:
		m.nss = slices.Sorted(slices.Values(nss))
		m.nss = slices.Compact(m.nss)
	}
	return m, nil
}

// trackedSel counts the bound pods a podMatcher matches, per node and per
// domain of each topology key asked about.
type trackedSel struct {
	m       podMatcher
	perNode []int32
	total   int64
	doms    []*selDomains
}

type selDomains struct {
	topo   *topoIndex
	counts []int32
	total  int64 // pods on nodes that have the key
}

func (t *trackedSel) inc(node int32, d int32) {
	t.perNode[node] += d
	t.total += int64(d)
	for _, sd := range t.doms {
		if dom := sd.topo.dom[node]; dom >= 0 {
			sd.counts[dom] += d
			sd.total += int64(d)
		}
	}
}

// tracked returns the counter for a matcher, creating it (and counting the
// already bound pods it matches) on first use.
func (cs *ClusterState) tracked(m podMatcher) *trackedSel {
	k := m.key()
	if t, ok := cs.sels[k]; ok {
		return t
	}
	t := &trackedSel{m: m, perNode: make([]int32, len(cs.nodes))}
	for _, g := range cs.groupList {
		cs.syncGroup(g)
		if m.matches(g.ns, g.labels) {
			g.sels = append(g.sels, t)
			for _, n := range g.nodes {
				t.perNode[n]++
			}
			t.total += int64(len(g.nodes))
		}
		g.selChecked++
	}
	cs.sels[k] = t
	cs.selList = append(cs.selList, t)
	return t
}

// domainCounts returns the per-domain counts of t under topo; for the
// hostname key that is the per-node count itself (dom nil).
func (t *trackedSel) domainCounts(topo *topoIndex) (counts, dom []int32, total int64) {
	if topo.hostname {
		return t.perNode, nil, t.total
	}
	for _, sd := range t.doms {
		if sd.topo == topo {
			return sd.counts, topo.dom, sd.total
		}
	}
	sd := &selDomains{topo: topo, counts: make([]int32, len(topo.names))}
	for n, c := range t.perNode {
		if d := topo.dom[n]; d >= 0 && c != 0 {
			sd.counts[d] += c
			sd.total += int64(c)
		}
	}
	t.doms = append(t.doms, sd)
	return sd.counts, topo.dom, sd.total
}

// antiTerm is a required anti-affinity term held by bound pods, with the
// number of holders per domain of its topology key.
type antiTerm struct {
	m       podMatcher
	topo    *topoIndex
	holders []int32
}

func (a *antiTerm) inc(node int32, d int32) {
	if dom := a.topo.dom[node]; dom >= 0 {
		a.holders[dom] += d
	}
}

func (cs *ClusterState) antiTermFor(podNS string, term corev1.PodAffinityTerm) (*antiTerm, error) {
	m, err := newMatcher(podNS, term.Namespaces, term.NamespaceSelector, term.LabelSelector)
	if err != nil {
		return nil, err
	}
	k := m.key() + "@" + term.TopologyKey
	if a, ok := cs.antis[k]; ok {
		return a, nil
	}
	topo := cs.topo(term.TopologyKey)
	a := &antiTerm{m: m, topo: topo, holders: make([]int32, len(topo.names))}
	cs.antis[k] = a
	cs.antiList = append(cs.antiList, a)
	return a, nil
}

// count is a lookup of a per-domain counter for one node: counts indexed by
// dom[node], or by node when dom is nil (hostname).
type count struct {
	counts []int32
	dom    []int32
}

// at returns the count in node n's domain, and false when n lacks the key.
func (c count) at(n int32) (int32, bool) {
	if c.dom == nil {
		return c.counts[n], true
	}
	d := c.dom[n]
	if d < 0 {
		return 0, false
	}
	return c.counts[d], true
}

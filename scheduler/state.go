package scheduler

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// ClusterState is the scheduler's working copy of the cluster: the nodes,
// the pods bound to them, and running per-node totals kept up to date as
// pods are placed or removed, so that checking a node costs the same on an
// empty cluster as on a full one. Nomad re-sums the allocations of every
// candidate node at every placement; that is what made it slow near full.
//
// A ClusterState is not safe for concurrent use. Its node set is fixed when
// it is built; a changed node list means building a new one.
type ClusterState struct {
	nodes  []nodeState
	byName map[string]int32
	byID   map[string]*boundPod

	// owners counts each owner's pods per node, for spreading.
	owners map[OwnerKey][]int32

	// Pods are grouped by (namespace, labels). A group remembers which
	// tracked selectors match it, so placing a pod updates exactly the
	// counters that care, without evaluating a selector.
	groups    map[string]*labelGroup
	groupList []*labelGroup

	// Tracked selectors: the (namespaces, label selector) pairs that some
	// pod's affinity or spread constraint asked about, with a count of
	// matching bound pods per node and per topology domain.
	sels    map[string]*trackedSel
	selList []*trackedSel

	// Required anti-affinity terms held by bound pods, with the number of
	// holders per domain: a new pod that matches one may not join them.
	antis    map[string]*antiTerm
	antiList []*antiTerm

	topos map[string]*topoIndex

	// eligible caches, per node-affinity signature and topology key, the
	// domains a spread constraint's minimum is taken over.
	eligible map[string][]int32

	// staticFit caches, per pod signature (nodeSelector, required node
	// affinity, tolerations), which nodes pass every static filter: most
	// pods share a handful of signatures, and a byte per node beats map
	// lookups on labels in the hot loop. Bounded by maxStaticSigs, beyond
	// which new signatures are evaluated filter by filter.
	staticFit map[string][]bool

	// anySoftTaint records whether any node has a PreferNoSchedule taint.
	anySoftTaint bool
}

var _ Snapshot = (*ClusterState)(nil)

type nodeState struct {
	Node
	idx    int32
	reqCPU int64
	reqMem int64
	pods   int64
	ports  []HostPort // protocol normalised to TCP/UDP/SCTP
	images map[string]struct{}

	hardTaints []corev1.Taint // NoSchedule, NoExecute
	softTaints []corev1.Taint // PreferNoSchedule
	bound      []*boundPod
}

// boundPod is a pod in the state with what must be undone to remove it.
type boundPod struct {
	pod   Pod
	node  int32
	group *labelGroup
	owner []int32
	anti  []*antiTerm
}

// NewClusterState builds the working state from a snapshot. Pods bound to a
// node the snapshot does not list are ignored.
func NewClusterState(snap Snapshot) *ClusterState {
	nodes := snap.Nodes()
	cs := &ClusterState{
		nodes:    make([]nodeState, len(nodes)),
		byName:   make(map[string]int32, len(nodes)),
		byID:     make(map[string]*boundPod),
		owners:   make(map[OwnerKey][]int32),
		groups:   make(map[string]*labelGroup),
		sels:     make(map[string]*trackedSel),
		antis:    make(map[string]*antiTerm),
		topos:    make(map[string]*topoIndex),
		eligible: make(map[string][]int32),

		staticFit: make(map[string][]bool),
	}
	for i, n := range nodes {
		ns := &cs.nodes[i]
		ns.Node = n
		ns.idx = int32(i)
		if len(n.Images) > 0 {
			ns.images = make(map[string]struct{}, len(n.Images))
			for _, im := range n.Images {
				ns.images[im] = struct{}{}
			}
		}
		for _, t := range n.Taints {
			switch t.Effect {
			case corev1.TaintEffectNoSchedule, corev1.TaintEffectNoExecute:
				ns.hardTaints = append(ns.hardTaints, t)
			case corev1.TaintEffectPreferNoSchedule:
				ns.softTaints = append(ns.softTaints, t)
				cs.anySoftTaint = true
			}
		}
		cs.byName[n.Name] = int32(i)
	}
	for i := range cs.nodes {
		for _, p := range snap.PodsOn(cs.nodes[i].Name) {
			if _, dup := cs.byID[p.ID]; dup {
				continue
			}
			cs.add(p, int32(i))
		}
	}
	return cs
}

// Nodes implements Snapshot.
func (cs *ClusterState) Nodes() []Node {
	out := make([]Node, len(cs.nodes))
	for i := range cs.nodes {
		out[i] = cs.nodes[i].Node
	}
	return out
}

// PodsOn implements Snapshot.
func (cs *ClusterState) PodsOn(node string) []Pod {
	i, ok := cs.byName[node]
	if !ok {
		return nil
	}
	out := make([]Pod, len(cs.nodes[i].bound))
	for j, b := range cs.nodes[i].bound {
		out[j] = b.pod
	}
	return out
}

// NodeOf returns the node a pod is bound to in this state.
func (cs *ClusterState) NodeOf(podID string) (string, bool) {
	b, ok := cs.byID[podID]
	if !ok {
		return "", false
	}
	return cs.nodes[b.node].Name, true
}

// Bind records pod as bound to node without checking any filter: it is how
// a caller replays bindings the state store has already committed. A pod
// already in the state is moved.
func (cs *ClusterState) Bind(pod Pod, node string) error {
	i, ok := cs.byName[node]
	if !ok {
		return fmt.Errorf("bind pod %s/%s: node %q not in state", pod.Namespace, pod.Name, node)
	}
	cs.Remove(pod.ID)
	cs.add(pod, i)
	return nil
}

// Remove takes a pod out of the state (deleted, lost, or moved) and reports
// whether it was there.
func (cs *ClusterState) Remove(podID string) bool {
	b, ok := cs.byID[podID]
	if !ok {
		return false
	}
	delete(cs.byID, podID)
	n := &cs.nodes[b.node]
	n.reqCPU -= b.pod.MilliCPU
	n.reqMem -= b.pod.Memory
	n.pods--
	for _, hp := range b.pod.HostPorts {
		hp = normPort(hp)
		if j := slices.Index(n.ports, hp); j >= 0 {
			n.ports = slices.Delete(n.ports, j, j+1)
		}
	}
	if j := slices.Index(n.bound, b); j >= 0 {
		n.bound = slices.Delete(n.bound, j, j+1)
	}
	if b.owner != nil {
		b.owner[b.node]--
	}
	g := b.group
	cs.syncGroup(g)
	if j := slices.Index(g.nodes, b.node); j >= 0 {
		g.nodes[j] = g.nodes[len(g.nodes)-1]
		g.nodes = g.nodes[:len(g.nodes)-1]
	}
	for _, t := range g.sels {
		t.inc(b.node, -1)
	}
	for _, a := range b.anti {
		a.inc(b.node, -1)
	}
	return true
}

// add records pod on node i and updates every running total.
func (cs *ClusterState) add(pod Pod, i int32) *boundPod {
	n := &cs.nodes[i]
	b := &boundPod{pod: pod, node: i}
	n.reqCPU += pod.MilliCPU
	n.reqMem += pod.Memory
	n.pods++
	for _, hp := range pod.HostPorts {
		n.ports = append(n.ports, normPort(hp))
	}
	n.bound = append(n.bound, b)
	if !pod.Owner.IsZero() {
		b.owner = cs.ownerCounts(pod.Owner)
		b.owner[i]++
	}
	g := cs.group(pod.Namespace, pod.Labels)
	b.group = g
	g.nodes = append(g.nodes, i)
	for _, t := range g.sels {
		t.inc(i, 1)
	}
	if a := pod.Affinity; a != nil && a.PodAntiAffinity != nil {
		for _, term := range a.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution {
			at, err := cs.antiTermFor(pod.Namespace, term)
			if err != nil {
				continue // an invalid term cannot match anything
			}
			at.inc(i, 1)
			b.anti = append(b.anti, at)
		}
	}
	cs.byID[pod.ID] = b
	return b
}

func (cs *ClusterState) ownerCounts(o OwnerKey) []int32 {
	c, ok := cs.owners[o]
	if !ok {
		c = make([]int32, len(cs.nodes))
		cs.owners[o] = c
	}
	return c
}

func normPort(hp HostPort) HostPort {
	if hp.Protocol == "" {
		hp.Protocol = corev1.ProtocolTCP
	}
	return hp
}

// topo returns the domain index of a topology key, building it on first use.
func (cs *ClusterState) topo(key string) *topoIndex {
	if t, ok := cs.topos[key]; ok {
		return t
	}
	t := &topoIndex{key: key, dom: make([]int32, len(cs.nodes))}
	if key == HostnameKey {
		t.hostname = true
		t.names = make([]string, len(cs.nodes))
		for i := range cs.nodes {
			t.dom[i] = int32(i)
			t.names[i] = cs.nodes[i].Name
		}
	} else {
		ids := map[string]int32{}
		for i := range cs.nodes {
			v, ok := cs.nodes[i].Labels[key]
			if !ok {
				t.dom[i] = -1
				continue
			}
			d, seen := ids[v]
			if !seen {
				d = int32(len(t.names))
				ids[v] = d
				t.names = append(t.names, v)
			}
			t.dom[i] = d
		}
	}
	cs.topos[key] = t
	return t
}

// groupKey is the identity of a (namespace, labels) pair.
func groupKey(ns string, l map[string]string) string {
	keys := make([]string, 0, len(l))
	size := len(ns) + 1
	for k, v := range l {
		keys = append(keys, k)
		size += len(k) + len(v) + 2
	}
	slices.Sort(keys)
	var sb strings.Builder
	sb.Grow(size)
	sb.WriteString(ns)
	sb.WriteByte(0)
	for _, k := range keys {
		sb.WriteString(k)
		sb.WriteByte('=')
		sb.WriteString(l[k])
		sb.WriteByte(0)
	}
	return sb.String()
}

// group returns the (namespace, labels) group, brought up to date with the
// tracked selectors and anti-affinity terms.
func (cs *ClusterState) group(ns string, l map[string]string) *labelGroup {
	k := groupKey(ns, l)
	g, ok := cs.groups[k]
	if !ok {
		g = &labelGroup{ns: ns, labels: maps.Clone(l)}
		cs.groups[k] = g
		cs.groupList = append(cs.groupList, g)
	}
	cs.syncGroup(g)
	return g
}

func (cs *ClusterState) syncGroup(g *labelGroup) {
	for ; g.selChecked < len(cs.selList); g.selChecked++ {
		if t := cs.selList[g.selChecked]; t.m.matches(g.ns, g.labels) {
			g.sels = append(g.sels, t)
		}
	}
	for ; g.antiChecked < len(cs.antiList); g.antiChecked++ {
		if a := cs.antiList[g.antiChecked]; a.m.matches(g.ns, g.labels) {
			g.antis = append(g.antis, a)
		}
	}
}

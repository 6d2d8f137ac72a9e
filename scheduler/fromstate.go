package scheduler

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/state"
)

// SnapshotOf adapts a state view to the scheduler's input, for the leader
// and for `shoal plan --cluster`: every node, and on each the pods that hold
// its resources (bound and not finished; a pod being deleted holds them
// until its record is gone). A node is Ready only if the state says so
// and, when alive is given, gossip sees it alive now: the leader does not
// bind to a node it already knows failed but has not yet marked NotReady.
func SnapshotOf(v *state.Snapshot, alive func(node string) bool) StaticSnapshot {
	snap := StaticSnapshot{Bound: map[string][]Pod{}}
	for _, n := range v.Nodes() {
		snap.NodeList = append(snap.NodeList, Node{
			Name:     n.Name,
			Labels:   n.Labels,
			Taints:   n.Taints,
			MilliCPU: n.Allocatable.MilliCPU,
			Memory:   n.Allocatable.Memory,
			MaxPods:  n.Allocatable.Pods,
			Ready:    n.Status == state.NodeReady && (alive == nil || alive(n.Name)),
			Cordoned: n.Cordoned,
		})
		for _, p := range v.PodsOnNode(n.Name) {
			if !p.Status.Phase.Terminal() {
				snap.Bound[n.Name] = append(snap.Bound[n.Name], PodOf(p))
			}
		}
	}
	return snap
}

// PodsOf is the scheduler's view of pod records, in order.
func PodsOf(ps []*state.Pod) []Pod {
	out := make([]Pod, len(ps))
	for i, p := range ps {
		out[i] = PodOf(p)
	}
	return out
}

// PodOf is the scheduler's view of a pod record.
func PodOf(p *state.Pod) Pod {
	sp := Pod{
		ID:                        p.UID,
		Namespace:                 p.Namespace,
		Name:                      p.Name,
		Labels:                    p.Labels,
		MilliCPU:                  p.Spec.Requests.MilliCPU,
		Memory:                    p.Spec.Requests.Memory,
		NodeSelector:              p.Spec.NodeSelector,
		Affinity:                  p.Spec.Affinity,
		Tolerations:               p.Spec.Tolerations,
		TopologySpreadConstraints: p.Spec.TopologySpread,
		PinnedNode:                p.Spec.PinnedNode,
		Images:                    p.Spec.Images,
	}
	if p.Owner.Kind != "" {
		sp.Owner = OwnerKey{Kind: p.Owner.Kind, Namespace: p.Namespace, Name: p.Owner.Name}
	}
	for _, hp := range p.Spec.HostPorts {
		sp.HostPorts = append(sp.HostPorts, HostPort{Port: hp.Port, Protocol: corev1.Protocol(hp.Protocol)})
	}
	return sp
}

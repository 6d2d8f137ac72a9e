package scheduler

import (
	"fmt"
	"slices"
)

// failure says why a node cannot take a pod; 0 means it can. Filters
// return codes, not strings, so the hot path allocates nothing; the text
// is produced only when a pod turns out to fit nowhere (explain).
type failure uint8

const (
	fitOK failure = iota
	failNotReady
	failCordoned
	failPinned
	failNodeAffinity
	failTaint
	failPods
	failCPU
	failMemory
	failPorts
	failPodAnti
	failExistingAnti
	failPodAffinity
	failSpread
	failSpreadLabel
)

// checker is one feasibility test (nomad's FeasibilityChecker): applies
// says whether the pod asks anything of it at all, so a pod without host
// ports never pays for the port check; feasible tests one node. A static
// checker reads only the node's fixed fields and the pod's spec, never
// what is placed, so its verdicts can be cached per pod signature (see
// ClusterState.staticFit).
type checker interface {
	name() string
	static() bool
	applies(pl *podPlan) bool
	feasible(pl *podPlan, n *nodeState) failure
}

// reasonText is the user-facing reason for a failure on node n. It may
// look at the node (which taint) but is only called to explain.
func reasonText(f failure, pl *podPlan, n *nodeState) string {
	switch f {
	case failNotReady:
		return "node(s) were not ready"
	case failCordoned:
		return "node(s) were cordoned"
	case failPinned:
		return "node(s) did not hold the pod's local volume"
	case failNodeAffinity:
		return "node(s) didn't match Pod's node affinity/selector"
	case failTaint:
		if t, ok := untolerated(pl.pod.Tolerations, n.hardTaints); ok {
			return fmt.Sprintf("node(s) had untolerated taint {%s: %s}", t.Key, t.Value)
		}
		return "node(s) had untolerated taint"
	case failPods:
		return "too many pods"
	case failCPU:
		return "insufficient cpu"
	case failMemory:
		return "insufficient memory"
	case failPorts:
		return "node(s) didn't have free ports for the requested pod ports"
	case failPodAnti:
		return "node(s) didn't match pod anti-affinity rules"
	case failExistingAnti:
		return "node(s) didn't satisfy existing pods anti-affinity rules"
	case failPodAffinity:
		return "node(s) didn't match pod affinity rules"
	case failSpread:
		return "node(s) didn't match pod topology spread constraints"
	case failSpreadLabel:
		return "node(s) didn't match pod topology spread constraints (missing required label)"
	}
	return fmt.Sprintf("unknown failure %d", f)
}

// nodeUsable: NotReady and cordoned nodes take no new pods.
type nodeUsable struct{}

func (nodeUsable) static() bool             { return true }
func (nodeUsable) name() string             { return "NodeUsable" }
func (nodeUsable) applies(pl *podPlan) bool { return true }
func (nodeUsable) feasible(pl *podPlan, n *nodeState) failure {
	if !n.Ready {
		return failNotReady
	}
	if n.Cordoned {
		return failCordoned
	}
	return fitOK
}

// pinnedNode: a pod whose local volume lives on one node runs there or nowhere.
type pinnedNode struct{}

func (pinnedNode) static() bool             { return false }
func (pinnedNode) name() string             { return "PinnedNode" }
func (pinnedNode) applies(pl *podPlan) bool { return pl.pinned != -1 }
func (pinnedNode) feasible(pl *podPlan, n *nodeState) failure {
	if n.idx != pl.pinned {
		return failPinned
	}
	return fitOK
}

// nodeAffinity: nodeSelector and required node affinity.
type nodeAffinity struct{}

func (nodeAffinity) static() bool { return true }
func (nodeAffinity) name() string { return "NodeAffinity" }
func (nodeAffinity) applies(pl *podPlan) bool {
	return len(pl.nodeSel) > 0 || pl.hasReqAff
}
func (nodeAffinity) feasible(pl *podPlan, n *nodeState) failure {
	if !matchNodeAffinity(pl, &n.Node) {
		return failNodeAffinity
	}
	return fitOK
}

// taintToleration: NoSchedule and NoExecute taints must be tolerated.
// PreferNoSchedule only scores.
type taintToleration struct{}

func (taintToleration) static() bool             { return true }
func (taintToleration) name() string             { return "TaintToleration" }
func (taintToleration) applies(pl *podPlan) bool { return true }
func (taintToleration) feasible(pl *podPlan, n *nodeState) failure {
	if len(n.hardTaints) == 0 {
		return fitOK
	}
	if _, bad := untolerated(pl.pod.Tolerations, n.hardTaints); bad {
		return failTaint
	}
	return fitOK
}

// resourcesFit: pod count, cpu and memory requests against allocatable,
// read from the node's running totals.
type resourcesFit struct{}

func (resourcesFit) static() bool             { return false }
func (resourcesFit) name() string             { return "ResourcesFit" }
func (resourcesFit) applies(pl *podPlan) bool { return true }
func (resourcesFit) feasible(pl *podPlan, n *nodeState) failure {
	if n.pods+1 > n.MaxPods {
		return failPods
	}
	if n.reqCPU+pl.pod.MilliCPU > n.MilliCPU {
		return failCPU
	}
	if n.reqMem+pl.pod.Memory > n.Memory {
		return failMemory
	}
	return fitOK
}

// hostPorts: a port and protocol is held by at most one pod per node.
type hostPorts struct{}

func (hostPorts) static() bool             { return false }
func (hostPorts) name() string             { return "HostPorts" }
func (hostPorts) applies(pl *podPlan) bool { return len(pl.ports) > 0 }
func (hostPorts) feasible(pl *podPlan, n *nodeState) failure {
	for _, hp := range pl.ports {
		if slices.Contains(n.ports, hp) {
			return failPorts
		}
	}
	return fitOK
}

// podAntiAffinity: the pod's own required anti-affinity (no matching pod in
// the node's domain), then the symmetric rule (no pod in the domain holds
// an anti-affinity term the new pod matches). A node without the topology
// key is outside every domain and so passes both.
type podAntiAffinity struct{}

func (podAntiAffinity) static() bool { return false }
func (podAntiAffinity) name() string { return "PodAntiAffinity" }
func (podAntiAffinity) applies(pl *podPlan) bool {
	return len(pl.ownAnti) > 0 || len(pl.symAnti) > 0
}
func (podAntiAffinity) feasible(pl *podPlan, n *nodeState) failure {
	for _, c := range pl.ownAnti {
		if v, ok := c.at(n.idx); ok && v > 0 {
			return failPodAnti
		}
	}
	for _, c := range pl.symAnti {
		if v, ok := c.at(n.idx); ok && v > 0 {
			return failExistingAnti
		}
	}
	return fitOK
}

// podAffinity: every required term has a matching pod in the node's domain;
// the first pod of a group that matches its own terms may go anywhere that
// has the keys.
type podAffinity struct{}

func (podAffinity) static() bool             { return false }
func (podAffinity) name() string             { return "PodAffinity" }
func (podAffinity) applies(pl *podPlan) bool { return len(pl.ownAff) > 0 }
func (podAffinity) feasible(pl *podPlan, n *nodeState) failure {
	for _, c := range pl.ownAff {
		v, ok := c.at(n.idx)
		if !ok {
			return failPodAffinity
		}
		if v == 0 && !pl.affSelfOK {
			return failPodAffinity
		}
	}
	return fitOK
}

// topologySpread: DoNotSchedule constraints. Placing the pod in the node's
// domain must keep count+self-minimum within maxSkew.
type topologySpread struct{}

func (topologySpread) static() bool             { return false }
func (topologySpread) name() string             { return "TopologySpread" }
func (topologySpread) applies(pl *podPlan) bool { return len(pl.hardSpread) > 0 }
func (topologySpread) feasible(pl *podPlan, n *nodeState) failure {
	for i := range pl.hardSpread {
		sc := &pl.hardSpread[i]
		v, ok := sc.c.at(n.idx)
		if !ok {
			return failSpreadLabel
		}
		if v+sc.self-sc.min > sc.maxSkew {
			return failSpread
		}
	}
	return fitOK
}

package scheduler

import (
	corev1 "k8s.io/api/core/v1"
)

// HostnameKey is the topology key whose domains are single nodes. A node's
// domain for it is the node itself, whether or not the label is set.
const HostnameKey = corev1.LabelHostname

// Node is the scheduler's view of one machine.
type Node struct {
	Name   string
	Labels map[string]string
	Taints []corev1.Taint

	// Allocatable capacity after the node's reserve. Zero means none: a
	// node with MaxPods 0 takes no pod (the kubelet's default is 110).
	MilliCPU int64
	Memory   int64 // bytes
	MaxPods  int64

	Ready    bool
	Cordoned bool

	// Images already present on the node, by reference, for image locality.
	Images []string
}

// OwnerKey names the controller that owns a pod; pods of one owner are
// spread across nodes. The zero OwnerKey means "no owner".
type OwnerKey struct {
	Kind, Namespace, Name string
}

// IsZero reports whether the key names no owner.
func (o OwnerKey) IsZero() bool { return o == OwnerKey{} }

// HostPort is a port a pod binds on its node. HostIP is not modelled: two
// pods asking for the same port and protocol conflict on any address.
type HostPort struct {
	Port     int32
	Protocol corev1.Protocol // "" means TCP
}

// Pod is the scheduler's view of a pod: only what placement reads.
type Pod struct {
	ID        string // the pod's UID; also the seed of its placement
	Namespace string
	Name      string
	Labels    map[string]string
	Owner     OwnerKey
	Priority  int32

	MilliCPU int64 // summed container requests
	Memory   int64 // bytes

	NodeSelector              map[string]string
	Affinity                  *corev1.Affinity
	Tolerations               []corev1.Toleration
	HostPorts                 []HostPort
	TopologySpreadConstraints []corev1.TopologySpreadConstraint

	// PinnedNode, when set, is the only node the pod may run on (a local
	// volume lives there).
	PinnedNode string

	// Images the pod's containers run, for image locality.
	Images []string
}

// Snapshot is the read-only state a placement is computed from.
type Snapshot interface {
	// Nodes returns every node, in a stable order.
	Nodes() []Node
	// PodsOn returns the pods already bound to the named node.
	PodsOn(node string) []Pod
}

// StaticSnapshot is a Snapshot held in plain values, for dry runs and tests.
type StaticSnapshot struct {
	NodeList []Node
	Bound    map[string][]Pod // node name → pods bound to it
}

var _ Snapshot = StaticSnapshot{}

// Nodes implements Snapshot.
func (s StaticSnapshot) Nodes() []Node { return s.NodeList }

// PodsOn implements Snapshot.
func (s StaticSnapshot) PodsOn(node string) []Pod { return s.Bound[node] }

// Binding places one pod on one node.
type Binding struct {
	PodID string
	Node  string
	Score int64 // weighted sum of the normalised scores of the chosen node
}

// Unplaced is a pod that fits nowhere, with why.
type Unplaced struct {
	PodID string
	// Reason reads like kube-scheduler's:
	// "0/3 nodes are available: 2 insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}."
	Reason string
	// Counts maps each reason to the number of nodes that failed for it.
	// Every node is counted once, under the first filter it failed.
	Counts map[string]int
}

// Result is the outcome of one Schedule call. Bindings are in the order
// they were made; Verify re-checks them in that order.
type Result struct {
	Bindings []Binding
	Unplaced []Unplaced
}

package state

import (
	"fmt"
	"net/netip"
	"time"

	"github.com/hashicorp/go-memdb"
	corev1 "k8s.io/api/core/v1"
)

// NodeStatus is the health the leader last decided for a node.
type NodeStatus uint8

const (
	NodeReady NodeStatus = iota + 1
	NodeNotReady
	// NodeGone: the node is known dead; its pods may be replaced, StatefulSet
	// pods included. Bindings to it are rejected.
	NodeGone
)

func (s NodeStatus) String() string {
	switch s {
	case NodeReady:
		return "Ready"
	case NodeNotReady:
		return "NotReady"
	case NodeGone:
		return "Gone"
	}
	return fmt.Sprintf("NodeStatus(%d)", uint8(s))
}

func (s NodeStatus) valid() bool { return s >= NodeReady && s <= NodeGone }

// Resources are quantities in the units the scheduler sums: millicores,
// bytes and a pod count.
type Resources struct {
	MilliCPU int64 `json:"cpu,omitempty"`
	Memory   int64 `json:"mem,omitempty"`
	Pods     int64 `json:"pods,omitempty"`
}

// Node is one machine of the cluster as the leader recorded it.
type Node struct {
	Name        string            `json:"name"`
	Address     string            `json:"addr,omitempty"`
	Labels      map[string]string `json:"labels,omitempty"`
	Taints      []corev1.Taint    `json:"taints,omitempty"`
	Capacity    Resources         `json:"capacity"`
	Allocatable Resources         `json:"allocatable"`
	Status      NodeStatus        `json:"status"`
	Cordoned    bool              `json:"cordoned,omitempty"`
	// PodCIDR mirrors the node's AllocPodCIDR allocation: commands that
	// carry one in the node record are ignored here.
	PodCIDR string `json:"podCIDR,omitempty"`
	// LastHeartbeat is the time carried by the last command that reported
	// on the node; Apply never reads the clock.
	LastHeartbeat time.Time `json:"heartbeat,omitzero"`
}

// Copy returns a deep copy; records read from the store are shared and must
// not be modified in place.
func (n *Node) Copy() *Node {
	c := *n
	if n.Labels != nil {
		c.Labels = make(map[string]string, len(n.Labels))
		for k, v := range n.Labels {
			c.Labels[k] = v
		}
	}
	c.Taints = append([]corev1.Taint(nil), n.Taints...)
	for i := range c.Taints {
		if c.Taints[i].TimeAdded != nil {
			t := *c.Taints[i].TimeAdded
			c.Taints[i].TimeAdded = &t
		}
	}
	return &c
}

func nodesSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: string(TableNodes),
		Indexes: map[string]*memdb.IndexSchema{
			indexIDName: {Name: indexIDName, Unique: true, Indexer: keyIndex[Node]{func(n *Node) (string, bool) { return n.Name, true }}},
		},
	}
}

// UpsertNode records a node, replacing the previous record except for its
// PodCIDR, which always mirrors the node's pod-CIDR allocation.
type UpsertNode struct {
	Node Node `json:"node"`
}

func (*UpsertNode) CommandType() CommandType { return CmdUpsertNode }

func (c *UpsertNode) validate() error {
	n := &c.Node
	if err := checkID("node name", n.Name); err != nil {
		return err
	}
	if !n.Status.valid() {
		return fmt.Errorf("node %s: invalid status %d", n.Name, n.Status)
	}
	if n.Address != "" {
		if _, err := netip.ParseAddr(n.Address); err != nil {
			return fmt.Errorf("node %s: address: %v", n.Name, err)
		}
	}
	if n.Capacity.MilliCPU < 0 || n.Capacity.Memory < 0 || n.Capacity.Pods < 0 ||
		n.Allocatable.MilliCPU < 0 || n.Allocatable.Memory < 0 || n.Allocatable.Pods < 0 {
		return fmt.Errorf("node %s: negative resources", n.Name)
	}
	return nil
}

func applyUpsertNode(w *writeTxn, c *UpsertNode) (*Result, error) {
	n := c.Node.Copy()
	n.LastHeartbeat = utc(n.LastHeartbeat)
	// The pod CIDR is the node's allocation, whether it was made before or
	// after the node was first recorded.
	n.PodCIDR = ""
	cidr, err := first[Allocation](w.tx, TableAllocations, indexAllocOwner, string(AllocPodCIDR), n.Name)
	if err != nil {
		return nil, err
	}
	if cidr != nil {
		n.PodCIDR = cidr.Value
	}
	if err := w.insert(TableNodes, n); err != nil {
		return nil, err
	}
	return &Result{Applied: 1}, nil
}

// SetNodeStatus records the health the leader decided for a node and the
// heartbeat time it observed.
type SetNodeStatus struct {
	Name      string     `json:"name"`
	Status    NodeStatus `json:"status"`
	Heartbeat time.Time  `json:"heartbeat,omitzero"`
	// Cordoned, when set, changes the node's cordon flag too.
	Cordoned *bool `json:"cordoned,omitempty"`
}

func (*SetNodeStatus) CommandType() CommandType { return CmdSetNodeStatus }

func (c *SetNodeStatus) validate() error {
	if err := checkID("node name", c.Name); err != nil {
		return err
	}
	if !c.Status.valid() {
		return fmt.Errorf("node %s: invalid status %d", c.Name, c.Status)
	}
	return nil
}

func applySetNodeStatus(w *writeTxn, c *SetNodeStatus) (*Result, error) {
	old, err := first[Node](w.tx, TableNodes, indexIDName, c.Name)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return nil, fmt.Errorf("%w: set status of node %s: no such node", ErrConflict, c.Name)
	}
	n := old.Copy()
	n.Status = c.Status
	if !c.Heartbeat.IsZero() {
		n.LastHeartbeat = utc(c.Heartbeat)
	}
	if c.Cordoned != nil {
		n.Cordoned = *c.Cordoned
	}
	if err := w.insert(TableNodes, n); err != nil {
		return nil, err
	}
	return &Result{Applied: 1}, nil
}

// DeleteNode removes a node record. Its pods and allocations are left alone:
// the leader releases and replaces them with their own commands.
type DeleteNode struct {
	Name string `json:"name"`
}

func (*DeleteNode) CommandType() CommandType { return CmdDeleteNode }

func (c *DeleteNode) validate() error { return checkID("node name", c.Name) }

func applyDeleteNode(w *writeTxn, c *DeleteNode) (*Result, error) {
	old, err := first[Node](w.tx, TableNodes, indexIDName, c.Name)
	if err != nil {
		return nil, err
	}
	if old == nil {
		return &Result{}, nil
	}
	if err := w.delete(TableNodes, old); err != nil {
		return nil, err
	}
	return &Result{Applied: 1}, nil
}

// Node returns the named node, or nil.
func (v *Snapshot) Node(name string) *Node {
	return must(first[Node](v.tx, TableNodes, indexIDName, name))
}

// Nodes returns every node, ordered by name.
func (v *Snapshot) Nodes() []*Node {
	return must(all[Node](v.tx, TableNodes, indexIDName))
}

// MarshalText and UnmarshalText give the JSON form ("Ready"); msgpack, a
// binary format, ignores them and stores the byte.
func (s NodeStatus) MarshalText() ([]byte, error) {
	return []byte(s.String()), nil
}

func (s *NodeStatus) UnmarshalText(b []byte) error {
	for v := NodeReady; v <= NodeGone; v++ {
		if v.String() == string(b) {
			*s = v
			return nil
		}
	}
	return fmt.Errorf("unknown node status %q", b)
}

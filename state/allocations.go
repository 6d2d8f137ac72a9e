package state

import (
	"fmt"
	"net/netip"
	"strconv"

	"github.com/hashicorp/go-memdb"
)

// AllocKind is the kind of a leader-allocated network resource.
type AllocKind string

const (
	// AllocPodCIDR: a node's pod CIDR; Owner is the node name.
	AllocPodCIDR AllocKind = "pod-cidr"
	// AllocClusterIP: a Service's ClusterIP; Owner is "namespace/name".
	AllocClusterIP AllocKind = "cluster-ip"
	// AllocNodePort: a Service port's NodePort; Owner is "namespace/name/port".
	AllocNodePort AllocKind = "node-port"
)

// Allocation is one value held by one owner. Values are unique per kind.
type Allocation struct {
	Kind  AllocKind `json:"kind"`
	Value string    `json:"value"`
	Owner string    `json:"owner"`
}

func (a *Allocation) validate() error {
	if err := checkID("allocation owner", a.Owner); err != nil {
		return err
	}
	switch a.Kind {
	case AllocPodCIDR:
		p, err := netip.ParsePrefix(a.Value)
		if err != nil || p.Masked() != p {
			return fmt.Errorf("pod CIDR %q for %s: not a canonical prefix", a.Value, a.Owner)
		}
	case AllocClusterIP:
		ip, err := netip.ParseAddr(a.Value)
		if err != nil || ip.String() != a.Value {
			return fmt.Errorf("cluster IP %q for %s: not a canonical address", a.Value, a.Owner)
		}
	case AllocNodePort:
		n, err := strconv.Atoi(a.Value)
		if err != nil || n < 1 || n > 65535 || strconv.Itoa(n) != a.Value {
			return fmt.Errorf("node port %q for %s: not a port number", a.Value, a.Owner)
		}
	default:
		return fmt.Errorf("unknown allocation kind %q", a.Kind)
	}
	return nil
}

const indexAllocOwner = "owner"

func allocationsSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: string(TableAllocations),
		Indexes: map[string]*memdb.IndexSchema{
			indexIDName: {Name: indexIDName, Unique: true, Indexer: keyIndex[Allocation]{func(a *Allocation) (string, bool) {
				return key(string(a.Kind), a.Value), true
			}}},
			indexAllocOwner: {Name: indexAllocOwner, Indexer: keyIndex[Allocation]{func(a *Allocation) (string, bool) {
				return key(string(a.Kind), a.Owner), true
			}}},
		},
	}
}

// Allocate records values the leader chose. It is all or nothing: a value
// held by another owner fails the whole command. Allocating a value to its
// current owner is a no-op. A node holds one pod CIDR, which is also
// written to its node record.
type Allocate struct {
	Allocations []Allocation `json:"allocations"`
}

func (*Allocate) CommandType() CommandType { return CmdAllocate }

func (c *Allocate) validate() error {
	for i := range c.Allocations {
		if err := c.Allocations[i].validate(); err != nil {
			return err
		}
	}
	return nil
}

func applyAllocate(w *writeTxn, c *Allocate) (*Result, error) {
	res := &Result{}
	for i := range c.Allocations {
		a := c.Allocations[i]
		old, err := first[Allocation](w.tx, TableAllocations, indexIDName, string(a.Kind), a.Value)
		if err != nil {
			return nil, err
		}
		if old != nil {
			if old.Owner != a.Owner {
				return nil, fmt.Errorf("%w: %s %s is held by %s, not %s", ErrConflict, a.Kind, a.Value, old.Owner, a.Owner)
			}
			continue
		}
		if a.Kind == AllocPodCIDR {
			held, err := first[Allocation](w.tx, TableAllocations, indexAllocOwner, string(a.Kind), a.Owner)
			if err != nil {
				return nil, err
			}
			if held != nil {
				return nil, fmt.Errorf("%w: %s already holds pod CIDR %s", ErrConflict, a.Owner, held.Value)
			}
			if err := setNodeCIDR(w, a.Owner, a.Value); err != nil {
				return nil, err
			}
		}
		if err := w.insert(TableAllocations, &a); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// setNodeCIDR keeps Node.PodCIDR equal to the node's pod-CIDR allocation.
// A node allocated its CIDR before it is recorded gets it from UpsertNode.
func setNodeCIDR(w *writeTxn, node, cidr string) error {
	n, err := first[Node](w.tx, TableNodes, indexIDName, node)
	if err != nil || n == nil {
		return err
	}
	if n.PodCIDR != "" && cidr != "" && n.PodCIDR != cidr {
		return fmt.Errorf("%w: node %s already has pod CIDR %s", ErrConflict, node, n.PodCIDR)
	}
	nn := n.Copy()
	nn.PodCIDR = cidr
	return w.insert(TableNodes, nn)
}

// AllocKey names one allocated value.
type AllocKey struct {
	Kind  AllocKind `json:"kind"`
	Value string    `json:"value"`
}

// Release frees values. Releasing a value nobody holds is a no-op.
type Release struct {
	Keys []AllocKey `json:"keys"`
}

func (*Release) CommandType() CommandType { return CmdRelease }

func (c *Release) validate() error {
	for _, k := range c.Keys {
		if err := checkID("allocation value", k.Value); err != nil {
			return err
		}
		switch k.Kind {
		case AllocPodCIDR, AllocClusterIP, AllocNodePort:
		default:
			return fmt.Errorf("unknown allocation kind %q", k.Kind)
		}
	}
	return nil
}

func applyRelease(w *writeTxn, c *Release) (*Result, error) {
	res := &Result{}
	for _, k := range c.Keys {
		old, err := first[Allocation](w.tx, TableAllocations, indexIDName, string(k.Kind), k.Value)
		if err != nil {
			return nil, err
		}
		if old == nil {
			continue
		}
		if old.Kind == AllocPodCIDR {
			n, err := first[Node](w.tx, TableNodes, indexIDName, old.Owner)
			if err != nil {
				return nil, err
			}
			if n != nil && n.PodCIDR == old.Value {
				if err := setNodeCIDR(w, old.Owner, ""); err != nil {
					return nil, err
				}
			}
		}
		if err := w.delete(TableAllocations, old); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// Allocation returns the holder of one value, or nil.
func (v *Snapshot) Allocation(kind AllocKind, value string) *Allocation {
	return must(first[Allocation](v.tx, TableAllocations, indexIDName, string(kind), value))
}

// Allocations returns every allocation of one kind, ordered by value
// (as a string: the allocator reads them into its own bitmap).
func (v *Snapshot) Allocations(kind AllocKind) []*Allocation {
	return must(all[Allocation](v.tx, TableAllocations, indexIDName+"_prefix", string(kind)))
}

// AllocationsOf returns what one owner holds of one kind.
func (v *Snapshot) AllocationsOf(kind AllocKind, owner string) []*Allocation {
	return must(all[Allocation](v.tx, TableAllocations, indexAllocOwner, string(kind), owner))
}

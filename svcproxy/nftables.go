package svcproxy

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"syscall"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// NetlinkNFT talks to nf_tables over netlink (github.com/google/nftables;
// no nft binary, and no cache of the ruleset to fetch first), in the
// network namespace of the calling thread.
type NetlinkNFT struct{}

var _ NFTRunner = NetlinkNFT{}

// NewNetlinkNFT returns the real NFTRunner.
func NewNetlinkNFT() NetlinkNFT { return NetlinkNFT{} }

// A full sync is one netlink message of ~10 MB at 10,000 Services; the
// kernel refuses a message larger than the socket's send buffer, and
// answers every part of the batch with an acknowledgement.
const nftSockBuf = 256 << 20

// nftElemsPerMessage keeps each element message under the 64 KiB that the
// length of a netlink attribute can express (an endpoint element is ~90
// bytes): longer lists are cut into several messages of one transaction.
const nftElemsPerMessage = 400

func (NetlinkNFT) conn() (*nftables.Conn, error) {
	return nftables.New(nftables.WithSockOptions(setSockBufs))
}

// setSockBufs raises the socket's buffers to nftSockBuf. The FORCE
// variants ignore wmem_max/rmem_max; they need CAP_NET_ADMIN, which
// programming nftables needs anyway.
func setSockBufs[C interface {
	SyscallConn() (syscall.RawConn, error)
}](c C) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) {
		if serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_SNDBUFFORCE, nftSockBuf); serr == nil {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, nftSockBuf)
		}
	}); err != nil {
		return err
	}
	return serr
}

// Apply implements NFTRunner.
func (n NetlinkNFT) Apply(_ context.Context, ops []nftOp) error {
	c, err := n.conn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	return applyOps(c, nftTable(NFTTable), ops)
}

func nftTable(name string) *nftables.Table {
	return &nftables.Table{Name: name, Family: nftables.TableFamilyIPv4}
}

func applyOps(c *nftables.Conn, t *nftables.Table, ops []nftOp) error {
	sets := map[string]*nftables.Set{}
	set := func(s *nftSet) *nftables.Set {
		if x := sets[s.name]; x != nil {
			return x
		}
		x := s.spec(t)
		sets[s.name] = x
		return x
	}
	for _, op := range ops {
		switch op.kind {
		case opAddTable:
			c.AddTable(t)
		case opFlushTable:
			c.FlushTable(t)
		case opDelTable:
			c.DelTable(t)
		case opAddChain:
			ch := &nftables.Chain{Table: t, Name: op.chain.name}
			if op.chain.hook != nil {
				accept := nftables.ChainPolicyAccept
				ch.Hooknum, ch.Priority, ch.Type, ch.Policy = op.chain.hook, op.chain.prio, op.chain.kind, &accept
			}
			c.AddChain(ch)
		case opFlushChain:
			c.FlushChain(&nftables.Chain{Table: t, Name: op.name})
		case opDelChain:
			c.DelChain(&nftables.Chain{Table: t, Name: op.name})
		case opAddSet:
			if err := c.AddSet(set(op.set), nil); err != nil {
				return fmt.Errorf("nftables: set %s: %w", op.set.name, err)
			}
		case opDelSet:
			c.DelSet(&nftables.Set{Table: t, Name: op.name})
		case opAddElems, opDelElems:
			s := set(op.set)
			for es := op.elems; len(es) > 0; {
				k := min(len(es), nftElemsPerMessage)
				batch := make([]nftables.SetElement, k)
				for i, e := range es[:k] {
					batch[i] = nftables.SetElement{Key: e.key, KeyEnd: e.keyEnd, Val: e.val}
					if e.chain != "" && op.kind == opAddElems {
						batch[i].VerdictData = &expr.Verdict{Kind: expr.VerdictJump, Chain: e.chain}
					}
				}
				var err error
				if op.kind == opAddElems {
					err = c.SetAddElements(s, batch)
				} else {
					err = c.SetDeleteElements(s, batch)
				}
				if err != nil {
					return fmt.Errorf("nftables: elements of %s: %w", op.set.name, err)
				}
				es = es[k:]
			}
		case opAddRule:
			c.AddRule(&nftables.Rule{Table: t, Chain: &nftables.Chain{Table: t, Name: op.chain.name}, Exprs: op.rule.exprs})
		default:
			return fmt.Errorf("nftables: unknown op %d", op.kind)
		}
	}
	if err := c.Flush(); err != nil {
		return fmt.Errorf("nftables: commit %d operations: %w", len(ops), err)
	}
	return nil
}

// Objects implements NFTRunner.
func (n NetlinkNFT) Objects(context.Context) (NFTObjects, error) {
	c, err := n.conn()
	if err != nil {
		return NFTObjects{}, fmt.Errorf("nftables: %w", err)
	}
	var o NFTObjects
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return o, fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range tables {
		o.Exists = o.Exists || t.Name == NFTTable
	}
	if !o.Exists {
		return o, nil
	}
	chains, err := c.ListChainsOfTableFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return o, fmt.Errorf("nftables: list chains: %w", err)
	}
	for _, ch := range chains {
		if ch.Table.Name == NFTTable {
			o.Chains = append(o.Chains, ch.Name)
		}
	}
	sets, err := c.GetSets(nftTable(NFTTable))
	if err != nil {
		return o, fmt.Errorf("nftables: list sets: %w", err)
	}
	for _, s := range sets {
		if !s.Anonymous {
			o.Sets = append(o.Sets, s.Name)
		}
	}
	return o, nil
}

// Canary implements NFTRunner.
func (n NetlinkNFT) Canary(context.Context) (bool, error) {
	c, err := n.conn()
	if err != nil {
		return false, fmt.Errorf("nftables: %w", err)
	}
	t := nftTable(NFTTable)
	rules, err := c.GetRules(t, &nftables.Chain{Table: t, Name: nftCanary})
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, unix.ENOENT) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("nftables: read canary: %w", err)
	}
	return len(rules) == 1, nil
}

// DeleteNFTTable removes svcproxy's nftables table, and with it every rule,
// set and chain the nftables backend made, from the calling thread's
// network namespace. No table: nothing to do.
func DeleteNFTTable() error {
	c, err := NetlinkNFT{}.conn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	tables, err := c.ListTablesOfFamily(nftables.TableFamilyIPv4)
	if err != nil {
		return fmt.Errorf("nftables: list tables: %w", err)
	}
	for _, t := range tables {
		if t.Name == NFTTable {
			c.DelTable(t)
			if err := c.Flush(); err != nil {
				return fmt.Errorf("nftables: delete table ip %s: %w", NFTTable, err)
			}
		}
	}
	return nil
}

// ProbeNFTables checks that the kernel accepts everything the nftables
// backend uses (a table, nat and filter base chains, a concatenated
// interval map, numgen, fib, dnat, masquerade, reject, a set with
// timeouts updated from the packet path) by building a small table with
// them and deleting it in the same transaction: nothing is left behind,
// whatever the outcome.
func ProbeNFTables() error {
	c, err := NetlinkNFT{}.conn()
	if err != nil {
		return fmt.Errorf("nftables: %w", err)
	}
	r := newNFTRenderer(Config{NodeName: "probe", ClusterCIDR: netip.MustParsePrefix("10.0.0.0/8"), MasqueradeEgress: true}).render([]Service{{
		Namespace: "probe", Name: "probe", ClusterIP: netip.MustParseAddr("10.255.0.1"), Type: TypeNodePort,
		SessionAffinity: AffinityClientIP,
		Ports:           []ServicePort{{Protocol: TCP, Port: 80, NodePort: 30000}},
		Endpoints:       []Endpoint{{PodIP: netip.MustParseAddr("10.0.0.2"), NodeName: "probe", Ready: true}},
	}})
	ops := fullOps(r, NFTObjects{})
	// One endpoint map element, so that the interval map type is exercised.
	ops = append(ops, nftOp{kind: opAddElems, set: &nftSet{name: svcBucketMap(1), kind: setEndpoints},
		elems: endpointElems(netip.MustParseAddr("10.255.0.1"), TCP, 80, []resolvedEndpoint{{ip: netip.MustParseAddr("10.0.0.2"), port: 80}})})
	ops = append(ops, nftOp{kind: opDelTable})
	if err := applyOps(c, nftTable(NFTTable+"-probe"), ops); err != nil {
		return fmt.Errorf("nftables probe: %w", err)
	}
	return nil
}

package svcproxy

import (
	"context"
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables"
	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// The nftables backend's model: what the renderer produces and the
// NFTRunner applies. Everything lives in one table, NFTTable, of family ip;
// deleting that table removes every trace of svcproxy.

// NFTTable is the name of svcproxy's nftables table (family ip).
const NFTTable = "shoal"

// nftSlots is the range of the random number that picks an endpoint: each
// of a Service port's n endpoints owns 1/n of [0, nftSlots) in the
// endpoint map, so changing the endpoints changes map elements only, never
// a rule (see docs/svcproxy.md, "nftables layout"). 65,536 slots keep the
// shares equal within 1/65,536.
const nftSlots = 1 << 16

// Registers, as the kernel numbers them: reg1 is the first 16-byte
// register, reg32(0..3) its 4-byte pieces.
const (
	regVerdict = 0
	reg1       = 1
	reg32_0    = 8 // same storage as reg1
	reg32_1    = 9
	reg32_2    = 10
	reg32_3    = 11
)

// nftChain is one chain of the table: a base chain when hook is set.
type nftChain struct {
	name     string
	hook     *nftables.ChainHook
	prio     *nftables.ChainPriority
	kind     nftables.ChainType
	rules    []nftRule
	hookName string // for String
}

// nftRule is a rule: its expressions and an nft-syntax rendering of them,
// which is what tests read and what the Proxier compares.
type nftRule struct {
	text  string
	exprs []expr.Any
}

// nftSetKind names the element layouts svcproxy uses.
type nftSetKind uint8

const (
	// ipv4_addr . inet_proto . inet_service . integer (interval) :
	// ipv4_addr . inet_service. The endpoint maps.
	setEndpoints nftSetKind = iota
	// ipv4_addr . inet_proto . inet_service
	setAddrPort
	// inet_proto . inet_service
	setPort
	// ipv4_addr . ipv4_addr
	setAddrPair
	// ipv4_addr : verdict (the ClusterIP bucket dispatch)
	setAddrVerdict
	// inet_service : verdict (the NodePort bucket dispatch)
	setPortVerdict
	// ipv4_addr with timeouts, filled by the packet path (affinity)
	setAffinity
)

// nftSet is a named set or map.
type nftSet struct {
	name    string
	kind    nftSetKind
	timeout time.Duration // setAffinity only
}

func (s *nftSet) spec(table *nftables.Table) *nftables.Set {
	t := &nftables.Set{Table: table, Name: s.name}
	switch s.kind {
	case setEndpoints:
		t.KeyType = mustConcat(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService, nftables.TypeInteger)
		t.DataType = mustConcat(nftables.TypeIPAddr, nftables.TypeInetService)
		t.IsMap, t.Interval, t.Concatenation = true, true, true
	case setAddrPort:
		t.KeyType = mustConcat(nftables.TypeIPAddr, nftables.TypeInetProto, nftables.TypeInetService)
		t.Concatenation = true
	case setPort:
		t.KeyType = mustConcat(nftables.TypeInetProto, nftables.TypeInetService)
		t.Concatenation = true
	case setAddrPair:
		t.KeyType = mustConcat(nftables.TypeIPAddr, nftables.TypeIPAddr)
		t.Concatenation = true
	case setAddrVerdict:
		t.KeyType, t.DataType, t.IsMap = nftables.TypeIPAddr, nftables.TypeVerdict, true
	case setPortVerdict:
		t.KeyType, t.DataType, t.IsMap = nftables.TypeInetService, nftables.TypeVerdict, true
	case setAffinity:
		t.KeyType = nftables.TypeIPAddr
		t.HasTimeout, t.Dynamic, t.Timeout = true, true, s.timeout
	}
	return t
}

func mustConcat(types ...nftables.SetDatatype) nftables.SetDatatype {
	t, err := nftables.ConcatSetType(types...)
	if err != nil {
		panic(err) // fixed arguments, at most 4 types
	}
	return t
}

// nftElem is one set or map element. For the endpoint maps key..keyEnd is
// a range; verdict maps jump to chain.
type nftElem struct {
	key, keyEnd, val []byte
	chain            string
}

// String renders the element as nft would list it, for tests and logs.
func (e nftElem) String() string {
	var b strings.Builder
	k := e.key
	switch len(k) {
	case 16: // endpoints
		fmt.Fprintf(&b, "%s . %s . %d . %d-%d", addr4(k[0:4]), protoName(k[4]), binary.BigEndian.Uint16(k[8:10]),
			binary.BigEndian.Uint32(k[12:16]), binary.BigEndian.Uint32(e.keyEnd[12:16]))
	case 12: // addr . proto . port
		fmt.Fprintf(&b, "%s . %s . %d", addr4(k[0:4]), protoName(k[4]), binary.BigEndian.Uint16(k[8:10]))
	case 8:
		if e.chain == "" && k[1] == 0 && k[2] == 0 && k[3] == 0 && (k[0] == unix.IPPROTO_TCP || k[0] == unix.IPPROTO_UDP) {
			fmt.Fprintf(&b, "%s . %d", protoName(k[0]), binary.BigEndian.Uint16(k[4:6]))
		} else {
			fmt.Fprintf(&b, "%s . %s", addr4(k[0:4]), addr4(k[4:8]))
		}
	case 4:
		b.WriteString(addr4(k).String())
	case 2:
		fmt.Fprintf(&b, "%d", binary.BigEndian.Uint16(k))
	default:
		fmt.Fprintf(&b, "%x", k)
	}
	if e.val != nil {
		fmt.Fprintf(&b, " : %s . %d", addr4(e.val[0:4]), binary.BigEndian.Uint16(e.val[4:6]))
	}
	if e.chain != "" {
		b.WriteString(" : jump " + e.chain)
	}
	return b.String()
}

func addr4(b []byte) netip.Addr { return netip.AddrFrom4([4]byte(b[:4])) }

func protoName(p byte) string {
	switch p {
	case unix.IPPROTO_TCP:
		return "tcp"
	case unix.IPPROTO_UDP:
		return "udp"
	}
	return fmt.Sprint(p)
}

func protoNum(p Protocol) byte {
	if p == UDP {
		return unix.IPPROTO_UDP
	}
	return unix.IPPROTO_TCP
}

// Element encoders. Concatenated keys pad every field to 4 bytes.

func addrPortKey(ip netip.Addr, proto Protocol, port int32) []byte {
	a := ip.As4()
	return []byte{a[0], a[1], a[2], a[3], protoNum(proto), 0, 0, 0, byte(port >> 8), byte(port), 0, 0}
}

func portKey2(proto Protocol, port int32) []byte {
	return []byte{protoNum(proto), 0, 0, 0, byte(port >> 8), byte(port), 0, 0}
}

func addrPairKey(a, b netip.Addr) []byte {
	x, y := a.As4(), b.As4()
	return []byte{x[0], x[1], x[2], x[3], y[0], y[1], y[2], y[3]}
}

// endpointElems splits [0, nftSlots) among eps. ip is the ClusterIP, or
// the zero address for a NodePort.
func endpointElems(ip netip.Addr, proto Protocol, port int32, eps []resolvedEndpoint) []nftElem {
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	base := addrPortKey(ip, proto, port)
	out := make([]nftElem, len(eps))
	n := len(eps)
	for i, e := range eps {
		k := append(append(make([]byte, 0, 16), base...), 0, 0, 0, 0)
		ke := append(append(make([]byte, 0, 16), base...), 0, 0, 0, 0)
		binary.BigEndian.PutUint32(k[12:], uint32(i*nftSlots/n))
		binary.BigEndian.PutUint32(ke[12:], uint32((i+1)*nftSlots/n-1))
		a := e.ip.As4()
		out[i] = nftElem{key: k, keyEnd: ke, val: []byte{a[0], a[1], a[2], a[3], byte(e.port >> 8), byte(e.port), 0, 0}}
	}
	return out
}

// nftOpKind is one step of a transaction.
type nftOpKind uint8

const (
	opAddTable nftOpKind = iota
	opFlushTable
	opDelTable
	opAddChain
	opFlushChain
	opDelChain
	opAddSet
	opDelSet
	opAddElems
	opDelElems
	opAddRule
)

// nftOp is one step of a transaction: the fields its kind needs are set.
type nftOp struct {
	kind  nftOpKind
	chain *nftChain // chain ops; opAddRule: the chain
	set   *nftSet   // set ops
	name  string    // opDelChain, opDelSet, opFlushChain: the object's name
	elems []nftElem
	rule  *nftRule
}

func (o nftOp) String() string {
	switch o.kind {
	case opAddTable:
		return "add table ip " + NFTTable
	case opFlushTable:
		return "flush table ip " + NFTTable
	case opDelTable:
		return "delete table ip " + NFTTable
	case opAddChain:
		return "add chain " + o.chain.name
	case opFlushChain:
		return "flush chain " + o.name
	case opDelChain:
		return "delete chain " + o.name
	case opAddSet:
		return "add set " + o.set.name
	case opDelSet:
		return "delete set " + o.name
	case opAddElems, opDelElems:
		verb := "add"
		if o.kind == opDelElems {
			verb = "delete"
		}
		parts := make([]string, len(o.elems))
		for i, e := range o.elems {
			parts[i] = e.String()
		}
		return fmt.Sprintf("%s element %s { %s }", verb, o.set.name, strings.Join(parts, ", "))
	case opAddRule:
		return "add rule " + o.chain.name + " " + o.rule.text
	}
	return fmt.Sprintf("op %d", o.kind)
}

// NFTObjects is what exists of svcproxy's table.
type NFTObjects struct {
	Exists bool
	Chains []string
	Sets   []string
}

// NFTRunner is what the nftables Proxier needs from the kernel. NetlinkNFT
// is the real one; tests use a fake that records the transactions.
type NFTRunner interface {
	// Apply commits ops as one nftables transaction: all or nothing.
	Apply(ctx context.Context, ops []nftOp) error
	// Objects lists the chains and sets of svcproxy's table.
	Objects(ctx context.Context) (NFTObjects, error)
	// Canary says whether the canary chain still holds its rule: false
	// when the table was deleted or flushed from outside.
	Canary(ctx context.Context) (bool, error)
}

package svcproxy

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"strings"
	"time"

	"github.com/google/nftables/expr"
	"golang.org/x/sys/unix"
)

// rule builds one nftRule: each step appends its nft syntax and its
// expressions, so the text always says what the kernel gets.
type rule struct {
	text []string
	ex   []expr.Any
}

func (r *rule) add(text string, ex ...expr.Any) *rule {
	r.text = append(r.text, text)
	r.ex = append(r.ex, ex...)
	return r
}

func (r *rule) done() nftRule { return nftRule{text: strings.Join(r.text, " "), exprs: r.ex} }

func native32(v uint32) []byte {
	b := make([]byte, 4)
	binary.NativeEndian.PutUint32(b, v)
	return b
}

func be16(v int32) []byte { return []byte{byte(v >> 8), byte(v)} }

func loadDaddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 16, Len: 4}
}

func loadSaddr(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseNetworkHeader, Offset: 12, Len: 4}
}

func loadDport(reg uint32) expr.Any {
	return &expr.Payload{DestRegister: reg, Base: expr.PayloadBaseTransportHeader, Offset: 2, Len: 2}
}

func loadL4proto(reg uint32) expr.Any { return &expr.Meta{Key: expr.MetaKeyL4PROTO, Register: reg} }

// prefix matches (or, with neg, excludes) a prefix in reg1.
func (r *rule) prefix(field string, load expr.Any, p netip.Prefix, neg bool) *rule {
	a := p.Masked().Addr().As4()
	var m [4]byte
	for i := 0; i < p.Bits(); i++ {
		m[i/8] |= 0x80 >> (i % 8)
	}
	op, sym := expr.CmpOpEq, ""
	if neg {
		op, sym = expr.CmpOpNeq, "!= "
	}
	return r.add(fmt.Sprintf("%s %s%s", field, sym, p.Masked()), load,
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: m[:], Xor: []byte{0, 0, 0, 0}},
		&expr.Cmp{Op: op, Register: reg1, Data: a[:]})
}

func (r *rule) l4proto(p Protocol) *rule {
	return r.add("meta l4proto "+strings.ToLower(string(p)), loadL4proto(reg1),
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: []byte{protoNum(p)}})
}

func (r *rule) daddr(ip netip.Addr) *rule {
	a := ip.As4()
	return r.add("ip daddr "+ip.String(), loadDaddr(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: a[:]})
}

func (r *rule) dport(port int32) *rule {
	return r.add(fmt.Sprintf("th dport %d", port), loadDport(reg1), &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: be16(port)})
}

// fibLocal matches packets whose destination (or source) is an address of
// this node.
func (r *rule) fibLocal(saddr bool) *rule {
	f := &expr.Fib{Register: reg1, ResultADDRTYPE: true, FlagDADDR: !saddr, FlagSADDR: saddr}
	text := "fib daddr type local"
	if saddr {
		text = "fib saddr type local"
	}
	return r.add(text, f, &expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native32(unix.RTN_LOCAL)})
}

func (r *rule) ctNew() *rule {
	return r.add("ct state new", &expr.Ct{Register: reg1, Key: expr.CtKeySTATE},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(expr.CtStateBitNEW), Xor: native32(0)},
		&expr.Cmp{Op: expr.CmpOpNeq, Register: reg1, Data: native32(0)})
}

// inAddrPort matches "ip daddr . meta l4proto . th dport @set".
func (r *rule) inAddrPort(set string) *rule {
	return r.add("ip daddr . meta l4proto . th dport @"+set, loadDaddr(reg32_0), loadL4proto(reg32_1), loadDport(reg32_2),
		&expr.Lookup{SourceRegister: reg1, SetName: set})
}

// inPort matches "meta l4proto . th dport @set".
func (r *rule) inPort(set string) *rule {
	return r.add("meta l4proto . th dport @"+set, loadL4proto(reg32_0), loadDport(reg32_1),
		&expr.Lookup{SourceRegister: reg1, SetName: set})
}

func (r *rule) setMark(mark uint32) *rule {
	return r.add(fmt.Sprintf("meta mark set meta mark | %#x", mark), &expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(^mark), Xor: native32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1})
}

func (r *rule) jump(chain string) *rule {
	return r.add("jump "+chain, &expr.Verdict{Kind: expr.VerdictJump, Chain: chain})
}

// dnatMap picks an endpoint: a random slot looked up, with the packet's
// destination, in an endpoint map. nodePort keys the map with 0.0.0.0
// instead of the destination address.
func (r *rule) dnatMap(set string, nodePort bool) *rule {
	first, text := loadDaddr(reg32_0), "ip daddr"
	if nodePort {
		first, text = &expr.Immediate{Register: reg32_0, Data: []byte{0, 0, 0, 0}}, "0.0.0.0"
	}
	return r.add(fmt.Sprintf("dnat to %s . meta l4proto . th dport . numgen random mod %d map @%s", text, nftSlots, set),
		first, loadL4proto(reg32_1), loadDport(reg32_2),
		&expr.Numgen{Register: reg32_3, Modulus: nftSlots, Type: unix.NFT_NG_RANDOM},
		// numgen gives a host-order integer; the map's ranges are
		// compared as big-endian bytes.
		&expr.Byteorder{SourceRegister: reg32_3, DestRegister: reg32_3, Op: expr.ByteorderHton, Len: 4, Size: 4},
		&expr.Lookup{SourceRegister: reg1, DestRegister: reg1, IsDestRegSet: true, SetName: set},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg32_0, RegProtoMin: reg32_1, Specified: true})
}

func (r *rule) dnatTo(e resolvedEndpoint) *rule {
	a := e.ip.As4()
	return r.add(fmt.Sprintf("dnat to %s:%d", e.ip, e.port),
		&expr.Immediate{Register: reg32_0, Data: a[:]}, &expr.Immediate{Register: reg32_1, Data: be16(e.port)},
		&expr.NAT{Type: expr.NATTypeDestNAT, Family: unix.NFPROTO_IPV4, RegAddrMin: reg32_0, RegProtoMin: reg32_1, Specified: true})
}

// random matches with probability 1/n.
func (r *rule) random(n int) *rule {
	return r.add(fmt.Sprintf("numgen random mod %d == 0", n), &expr.Numgen{Register: reg1, Modulus: uint32(n), Type: unix.NFT_NG_RANDOM},
		&expr.Cmp{Op: expr.CmpOpEq, Register: reg1, Data: native32(0)})
}

// affinitySeen matches clients in set and refreshes their entry.
func (r *rule) affinitySeen(set string, timeout time.Duration) *rule {
	return r.add(fmt.Sprintf("ip saddr @%s update @%s { ip saddr timeout %ds }", set, set, int64(timeout.Seconds())), loadSaddr(reg1),
		&expr.Lookup{SourceRegister: reg1, SetName: set},
		&expr.Dynset{SrcRegKey: reg1, SetName: set, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: timeout})
}

// affinityRecord puts the client into set.
func (r *rule) affinityRecord(set string, timeout time.Duration) *rule {
	return r.add(fmt.Sprintf("update @%s { ip saddr timeout %ds }", set, int64(timeout.Seconds())), loadSaddr(reg1),
		&expr.Dynset{SrcRegKey: reg1, SetName: set, Operation: unix.NFT_DYNSET_OP_UPDATE, Timeout: timeout})
}

func (r *rule) reject(p Protocol) *rule {
	if p == TCP {
		return r.add("reject with tcp reset", &expr.Reject{Type: unix.NFT_REJECT_TCP_RST})
	}
	return r.add("reject with icmp port-unreachable", &expr.Reject{Type: unix.NFT_REJECT_ICMP_UNREACH, Code: 3})
}

func bitwise2(hi, lo byte) expr.Any {
	return &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 2, Mask: []byte{hi, lo}, Xor: []byte{0, 0}}
}

func bitwise4(mask [4]byte) expr.Any {
	return &expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: mask[:], Xor: []byte{0, 0, 0, 0}}
}

func lookup(set string) expr.Any { return &expr.Lookup{SourceRegister: reg1, SetName: set} }

// vmapLookup jumps to the chain the verdict map gives.
func vmapLookup(set string) expr.Any {
	return &expr.Lookup{SourceRegister: reg1, DestRegister: regVerdict, IsDestRegSet: true, SetName: set}
}

const exprReturn = expr.VerdictReturn

func verdict(k expr.VerdictKind) expr.Any { return &expr.Verdict{Kind: k} }

func masq() expr.Any { return &expr.Masq{FullyRandom: true} }

// markTest matches packets whose mark has (or, with clear, lacks) the bit.
func markTest(mark uint32, clear bool) *rule {
	op, text := expr.CmpOpNeq, fmt.Sprintf("meta mark & %#x != 0", mark)
	if clear {
		op, text = expr.CmpOpEq, fmt.Sprintf("meta mark & %#x == 0", mark)
	}
	return new(rule).add(text, &expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(mark), Xor: native32(0)},
		&expr.Cmp{Op: op, Register: reg1, Data: native32(0)})
}

// markXor clears the bit (set by then) so that the packet leaves unmarked.
func markXor(mark uint32) nftRule {
	return new(rule).add(fmt.Sprintf("meta mark set meta mark ^ %#x", mark), &expr.Meta{Key: expr.MetaKeyMARK, Register: reg1},
		&expr.Bitwise{SourceRegister: reg1, DestRegister: reg1, Len: 4, Mask: native32(0xffffffff), Xor: native32(mark)},
		&expr.Meta{Key: expr.MetaKeyMARK, SourceRegister: true, Register: reg1}).done()
}

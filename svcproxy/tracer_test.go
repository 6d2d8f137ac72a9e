package svcproxy

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// tracer walks rendered rules the way the kernel would for the first packet
// of a connection (kube-proxy's tracePacket idea). Random matches are not
// drawn but enumerated: every outcome comes with its probability.

type addrMatch struct {
	neg        bool
	addr, mask uint32
}

func (m *addrMatch) matches(a netip.Addr) bool {
	v := a.As4()
	u := uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	return (u&m.mask == m.addr&m.mask) != m.neg
}

type trule struct {
	line       string
	src, dst   *addrMatch
	proto      string
	dportLo    int
	dportHi    int
	prob       float64 // 0: no statistic match
	recentName string
	recentOp   string // "update" or "set"
	srcLocal   bool
	dstLocal   bool
	markSet    bool
	markNeg    bool
	markVal    uint32
	target     string
	toDest     netip.AddrPort
	orMark     uint32
	xorMark    uint32
	rejectWith string
	ctDNAT     bool
	ctOrigDst  *addrMatch
}

type tracer struct {
	tables map[string]map[string][]trule
}

func parseU32(t *testing.T, s string) uint32 {
	t.Helper()
	v, err := strconv.ParseUint(s, 0, 32)
	if err != nil {
		t.Fatalf("tracer: bad number %q", s)
	}
	return uint32(v)
}

func parseAddr(t *testing.T, s string, neg bool) *addrMatch {
	t.Helper()
	ip, mask, ok := strings.Cut(s, "/")
	a, err := netip.ParseAddr(ip)
	if err != nil || !ok {
		t.Fatalf("tracer: bad address %q", s)
	}
	m := &addrMatch{neg: neg}
	v := a.As4()
	m.addr = uint32(v[0])<<24 | uint32(v[1])<<16 | uint32(v[2])<<8 | uint32(v[3])
	if strings.Contains(mask, ".") {
		mv := netip.MustParseAddr(mask).As4()
		m.mask = uint32(mv[0])<<24 | uint32(mv[1])<<16 | uint32(mv[2])<<8 | uint32(mv[3])
	} else {
		n, _ := strconv.Atoi(mask)
		if n > 0 {
			m.mask = ^uint32(0) << (32 - n)
		}
	}
	return m
}

// newTracer parses iptables-restore payloads (as the fake runner captured
// them, in order) and keeps the last content of every chain. Any token it
// does not understand fails the test, so the tracer cannot silently ignore a
// match the kernel would apply.
func newTracer(t *testing.T, payloads ...[]byte) *tracer {
	t.Helper()
	tr := &tracer{tables: map[string]map[string][]trule{}}
	for _, p := range payloads {
		var table string
		sc := bufio.NewScanner(bytes.NewReader(p))
		sc.Buffer(nil, 1<<20)
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, "*"):
				table = line[1:]
				if tr.tables[table] == nil {
					tr.tables[table] = map[string][]trule{}
				}
			case strings.HasPrefix(line, ":"):
				tr.tables[table][strings.Fields(line[1:])[0]] = []trule{}
			case strings.HasPrefix(line, "-X "):
				delete(tr.tables[table], line[3:])
			case line == "COMMIT":
			case strings.HasPrefix(line, "-A "):
				chain, r := parseRule(t, line)
				if _, ok := tr.tables[table][chain]; !ok {
					t.Fatalf("tracer: rule for undeclared chain: %s", line)
				}
				tr.tables[table][chain] = append(tr.tables[table][chain], r)
			default:
				t.Fatalf("tracer: unexpected line %q", line)
			}
		}
	}
	return tr
}

func parseRule(t *testing.T, line string) (string, trule) {
	t.Helper()
	f := strings.Fields(line)
	r := trule{line: line}
	chain := f[1]
	neg := false
	next := func(i *int) string {
		*i++
		if *i >= len(f) {
			t.Fatalf("tracer: missing value in %q", line)
		}
		return f[*i]
	}
	for i := 2; i < len(f); i++ {
		tok := f[i]
		switch tok {
		case "!":
			neg = true
			continue
		case "-s":
			r.src = parseAddr(t, next(&i), neg)
		case "-d":
			r.dst = parseAddr(t, next(&i), neg)
		case "-p":
			r.proto = next(&i)
		case "-m":
			switch m := next(&i); m {
			case "tcp", "udp", "statistic", "recent", "addrtype", "comment", "mark", "conntrack":
			default:
				t.Fatalf("tracer: unknown match %q in %q", m, line)
			}
		case "--dport":
			v := next(&i)
			lo, hi, isRange := strings.Cut(v, ":")
			r.dportLo, _ = strconv.Atoi(lo)
			r.dportHi = r.dportLo
			if isRange {
				r.dportHi, _ = strconv.Atoi(hi)
			}
		case "--comment", "--mode", "--mask", "--seconds":
			next(&i)
		case "--probability":
			p, err := strconv.ParseFloat(next(&i), 64)
			if err != nil || p <= 0 || p > 1 {
				t.Fatalf("tracer: bad probability in %q", line)
			}
			r.prob = p
		case "--name":
			r.recentName = next(&i)
		case "--rsource", "--reap", "--random-fully":
		case "--ctstate":
			if v := next(&i); v != "DNAT" {
				t.Fatalf("tracer: ctstate %q unsupported", v)
			}
			r.ctDNAT = true
		case "--ctorigdst":
			r.ctOrigDst = parseAddr(t, next(&i), neg)
		case "--update":
			r.recentOp = "update"
		case "--set":
			r.recentOp = "set"
		case "--src-type", "--dst-type":
			if v := next(&i); v != "LOCAL" {
				t.Fatalf("tracer: addrtype %q unsupported", v)
			}
			if tok == "--src-type" {
				r.srcLocal = true
			} else {
				r.dstLocal = true
			}
		case "--mark":
			v, m, _ := strings.Cut(next(&i), "/")
			if parseU32(t, v) != parseU32(t, m) {
				t.Fatalf("tracer: only single-bit mark matches are supported: %q", line)
			}
			r.markSet, r.markNeg, r.markVal = true, neg, parseU32(t, v)
		case "-j":
			r.target = next(&i)
		case "--to-destination":
			ap, err := netip.ParseAddrPort(next(&i))
			if err != nil {
				t.Fatalf("tracer: bad DNAT destination in %q", line)
			}
			r.toDest = ap
		case "--or-mark":
			r.orMark = parseU32(t, next(&i))
		case "--xor-mark":
			r.xorMark = parseU32(t, next(&i))
		case "--reject-with":
			r.rejectWith = next(&i)
		default:
			t.Fatalf("tracer: unknown token %q in %q", tok, line)
		}
		if neg && tok != "-s" && tok != "-d" && tok != "--mark" && tok != "--ctorigdst" {
			t.Fatalf("tracer: negation of %q unsupported", tok)
		}
		neg = false
	}
	if r.target == "" {
		t.Fatalf("tracer: rule without target: %q", line)
	}
	return chain, r
}

// packet is the first packet of a connection.
type packet struct {
	src, dst netip.Addr
	proto    string // "tcp" or "udp"
	port     int
	// origDst is set once the packet was DNATed (what conntrack remembers).
	origDst netip.Addr
	// recent holds the names of the xt_recent lists that already contain
	// src (session affinity state).
	recent map[string]bool
}

type branch struct {
	prob   float64
	mark   uint32
	dnat   netip.AddrPort
	recent []string // lists that this packet's source is added to
	reject string
}

type node struct {
	local map[netip.Addr]bool
}

// walk runs chain from rule i on a copy of b and returns every way the
// packet can leave it: terminated (DNAT/REJECT/MASQUERADE) or fallen off the
// end (or RETURNed), with probabilities summing to b.prob.
func (tr *tracer) walk(t *testing.T, n node, table, chain string, i int, p packet, b branch) (terminal, fallthru []branch) {
	t.Helper()
	rules, ok := tr.tables[table][chain]
	if !ok {
		t.Fatalf("tracer: jump to missing chain %s/%s", table, chain)
	}
	for ; i < len(rules); i++ {
		r := &rules[i]
		if !tr.matches(n, r, p, b) {
			continue
		}
		if r.prob > 0 && r.prob < 1 {
			miss := b
			miss.prob *= 1 - r.prob
			ts, fs := tr.walk(t, n, table, chain, i+1, p, miss)
			terminal, fallthru = append(terminal, ts...), append(fallthru, fs...)
			b.prob *= r.prob
		}
		if r.recentOp == "set" {
			b.recent = append(slices.Clone(b.recent), r.recentName)
		}
		switch r.target {
		case "DNAT":
			b.dnat = r.toDest
			return append(terminal, b), fallthru
		case "REJECT":
			b.reject = r.rejectWith
			return append(terminal, b), fallthru
		case "MASQUERADE":
			return append(terminal, b), fallthru
		case "RETURN":
			return terminal, append(fallthru, b)
		case "MARK":
			b.mark = (b.mark | r.orMark) ^ r.xorMark
		default:
			if !strings.HasPrefix(r.target, ChainPrefix) {
				t.Fatalf("tracer: unsupported target %q", r.target)
			}
			ts, fs := tr.walk(t, n, table, r.target, 0, p, b)
			terminal = append(terminal, ts...)
			for _, f := range fs {
				tf, ff := tr.walk(t, n, table, chain, i+1, p, f)
				terminal, fallthru = append(terminal, tf...), append(fallthru, ff...)
			}
			return terminal, fallthru
		}
	}
	return terminal, append(fallthru, b)
}

func (tr *tracer) matches(n node, r *trule, p packet, b branch) bool {
	switch {
	case r.src != nil && !r.src.matches(p.src),
		r.dst != nil && !r.dst.matches(p.dst),
		r.proto != "" && r.proto != p.proto,
		r.dportLo != 0 && (p.port < r.dportLo || p.port > r.dportHi),
		r.srcLocal && !n.local[p.src],
		r.dstLocal && !n.local[p.dst],
		r.markSet && ((b.mark&r.markVal != 0) == r.markNeg),
		r.recentOp == "update" && !p.recent[r.recentName],
		r.ctDNAT && !p.origDst.IsValid(),
		r.ctOrigDst != nil && (!p.origDst.IsValid() || !r.ctOrigDst.matches(p.origDst)):
		return false
	}
	return true
}

// outcome is one way a connection ends, for table tests:
// "10.244.1.1:8080" (DNAT, not masqueraded), "10.244.1.1:8080 masq",
// "reject tcp-reset", or "pass" (our rules leave it alone).
func (tr *tracer) trace(t *testing.T, n node, p packet) map[string]float64 {
	t.Helper()
	out := map[string]float64{}
	term, fall := tr.walk(t, n, "nat", ChainServices, 0, p, branch{prob: 1})
	for _, b := range append(term, fall...) {
		key := "pass"
		if b.dnat.IsValid() {
			// POSTROUTING sees the translated destination.
			q := p
			q.dst, q.origDst = b.dnat.Addr(), p.dst
			pt, pf := tr.walk(t, n, "nat", ChainPostrouting, 0, q, branch{prob: 1, mark: b.mark})
			masq := len(pt) > 0
			if len(pt)+len(pf) != 1 {
				t.Fatalf("tracer: POSTROUTING is not deterministic")
			}
			key = b.dnat.String()
			if masq {
				key += " masq"
			}
		} else {
			ft, _ := tr.walk(t, n, "filter", ChainReject, 0, p, branch{prob: 1})
			if len(ft) > 0 && ft[0].reject != "" {
				key = "reject " + ft[0].reject
			}
		}
		out[key] += b.prob
	}
	return out
}

// recentSets reports, for each DNAT destination, the affinity lists the
// client is recorded in when that destination is chosen.
func (tr *tracer) recentSets(t *testing.T, n node, p packet) map[string][]string {
	term, _ := tr.walk(t, n, "nat", ChainServices, 0, p, branch{prob: 1})
	out := map[string][]string{}
	for _, b := range term {
		if b.dnat.IsValid() {
			out[b.dnat.String()] = b.recent
		}
	}
	return out
}

func sameOutcomes(got, want map[string]float64) error {
	for k, w := range want {
		if g := got[k]; g < w-1e-6 || g > w+1e-6 {
			return fmt.Errorf("outcome %q: probability %.6f, want %.6f (all: %v)", k, g, w, got)
		}
	}
	for k, g := range got {
		if _, ok := want[k]; !ok && g > 1e-9 {
			return fmt.Errorf("unexpected outcome %q with probability %.6f (all: %v)", k, g, got)
		}
	}
	return nil
}

package svcproxy

import (
	"encoding/binary"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// nftTrace is the nftables counterpart of tracer.trace: it follows the
// table's fixed chains (nft_render.go's skeleton) for the first packet of
// a connection from a client no affinity set holds yet, reading the
// elements and the per-Service (affinity) rules that RenderNFT produced,
// and returns the outcomes in tracer.trace's words. Comparing the two over
// random Services checks that both backends do the same thing.
func nftTrace(t *testing.T, cfg Config, rs *NFTRuleset, n node, p packet) map[string]float64 {
	t.Helper()
	elems := map[string][]nftElem{}
	for set, es := range rs.static {
		elems[set] = append(elems[set], es...)
	}
	for _, out := range rs.services {
		for _, se := range out.elems {
			elems[se.set] = append(elems[se.set], se.elem)
		}
	}
	chains := map[string][]nftRule{}
	for _, c := range rs.chains {
		chains[c.name] = c.rules
	}
	a := p.dst.As4()
	proto := byte(protoNum(TCP))
	if p.proto == "udp" {
		proto = byte(protoNum(UDP))
	}
	has := func(set string, key []byte) bool {
		return slices.ContainsFunc(elems[set], func(e nftElem) bool { return string(e.key) == string(key) })
	}
	addrPort := append([]byte{a[0], a[1], a[2], a[3], proto, 0, 0, 0}, byte(p.port>>8), byte(p.port), 0, 0)
	port := []byte{proto, 0, 0, 0, byte(p.port >> 8), byte(p.port), 0, 0}

	type dnat struct {
		to   netip.AddrPort
		prob float64
	}
	// bucket walks a bucket chain: the affinity rules, then the endpoint
	// map keyed by key (ip daddr or 0.0.0.0, proto, port).
	bucket := func(chain, set string, key []byte) (out []dnat, rest float64) {
		rest = 1
		for _, r := range chains[chain] {
			f := strings.Fields(r.text)
			if f[0] == "dnat" && strings.Contains(r.text, " map @") {
				break
			}
			if strings.Contains(r.text, "ip saddr @") {
				continue // a client seen before: not this one
			}
			var prob float64 = 1
			match := true
			for i := 0; i+1 < len(f); i++ {
				switch f[i] {
				case "daddr":
					match = match && f[i+1] == p.dst.String()
				case "l4proto":
					match = match && f[i+1] == p.proto
				case "dport":
					match = match && f[i+1] == strconv.Itoa(p.port)
				case "mod":
					k, _ := strconv.Atoi(f[i+1])
					prob = 1 / float64(k)
				}
			}
			if !match {
				continue
			}
			to := netip.MustParseAddrPort(f[len(f)-1])
			out = append(out, dnat{to, rest * prob})
			rest *= 1 - prob
		}
		for _, e := range elems[set] {
			if string(e.key[:12]) != string(key) {
				continue
			}
			lo, hi := binary.BigEndian.Uint32(e.key[12:]), binary.BigEndian.Uint32(e.keyEnd[12:])
			to := netip.AddrPortFrom(addr4(e.val[:4]), binary.BigEndian.Uint16(e.val[4:6]))
			out = append(out, dnat{to, rest * float64(hi-lo+1) / nftSlots})
		}
		var total float64
		for _, d := range out {
			total += d.prob
		}
		return out, 1 - total
	}

	mark := false
	if cfg.ClusterCIDR.IsValid() && !cfg.ClusterCIDR.Contains(p.src) && has(nftClusterMasq, addrPort) {
		mark = true
	}
	dnats, rest := bucket(svcBucketChain(a[3]), svcBucketMap(a[3]), addrPort)
	if rest > 1e-9 && n.local[p.dst] && !netip.MustParsePrefix("127.0.0.0/8").Contains(p.dst) {
		if has(nftNodePortMasq, port) || (n.local[p.src] && has(nftNodePortLocal, port)) {
			mark = true
		}
		b := npBucketOf(int32(p.port))
		np, npRest := bucket(npBucketChain(b), npBucketMap(b), append([]byte{0, 0, 0, 0}, addrPort[4:]...))
		for _, d := range np {
			dnats = append(dnats, dnat{d.to, rest * d.prob})
		}
		rest *= npRest
	}
	out := map[string]float64{}
	for _, d := range dnats {
		m := mark || has(nftHairpin, addrPairKey(p.src, d.to.Addr())) ||
			cfg.MasqueradeEgress && cfg.ClusterCIDR.IsValid() && cfg.ClusterCIDR.Contains(p.src) && !cfg.ClusterCIDR.Contains(d.to.Addr())
		key := d.to.String()
		if m {
			key += " masq"
		}
		out[key] += d.prob
	}
	if rest > 1e-9 {
		key := "pass"
		reject := "tcp-reset"
		if p.proto == "udp" {
			reject = "icmp-port-unreachable"
		}
		if has(nftNoEndpoints, addrPort) || n.local[p.dst] && has(nftNoEndpointNP, port) {
			key = "reject " + reject
		}
		out[key] += rest
	}
	return out
}

// TestBackendsAgree traces the same packets through Render's rules and
// RenderNFT's table for random sets of Services (conflicts, NodePorts of
// both policies, affinity, named ports, unready endpoints, UDP) and wants
// the same outcomes: endpoints with their probabilities, masquerade,
// reject, or pass.
func TestBackendsAgree(t *testing.T) {
	local := node{local: map[netip.Addr]bool{nodeIP: true, netip.MustParseAddr("127.0.0.1"): true}}
	for seed := range uint64(40) {
		rng := rand.New(rand.NewPCG(seed, 3))
		cfg := testConfig
		if seed%2 == 1 {
			cfg.ServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
		}
		if seed%4 >= 2 {
			cfg.MasqueradeEgress = true
		}
		var svcs []Service
		for range 40 {
			svcs = mutateMore(rng, svcs)
		}
		if seed%3 == 0 && len(svcs) > 0 {
			// The same namespace/name twice (not something the agent
			// sends, but nothing in the input forbids it).
			d := svcs[rng.IntN(len(svcs))]
			d.ClusterIP = netip.AddrFrom4([4]byte{10, 96, 2, byte(rng.IntN(6))})
			svcs = append(svcs, d)
		}
		r := Render(cfg, svcs)
		tr := newTracer(t, full(r)...)
		rs := RenderNFT(cfg, svcs)
		if fmt.Sprint(r.Errors) != fmt.Sprint(rs.Errors) {
			t.Fatalf("seed %d: errors differ:\niptables %v\nnftables %v", seed, r.Errors, rs.Errors)
		}
		if fmt.Sprint(r.UDP) != fmt.Sprint(rs.UDP) {
			t.Fatalf("seed %d: UDP ports differ:\niptables %v\nnftables %v", seed, r.UDP, rs.UDP)
		}
		// Clients: a pod elsewhere, outside, the node, and every endpoint
		// (hairpin). Destinations: every ClusterIP and NodePort in play.
		srcs := []netip.Addr{podOnN2, outsideIP, nodeIP}
		var pkts []packet
		for _, s := range svcs {
			for _, e := range s.Endpoints {
				srcs = append(srcs, e.PodIP)
			}
			for _, sp := range s.Ports {
				proto := strings.ToLower(string(sp.Protocol))
				pkts = append(pkts, packet{dst: s.ClusterIP, proto: proto, port: int(sp.Port)})
				if sp.NodePort != 0 {
					pkts = append(pkts, packet{dst: nodeIP, proto: proto, port: int(sp.NodePort)},
						packet{dst: netip.MustParseAddr("127.0.0.1"), proto: proto, port: int(sp.NodePort)})
				}
			}
		}
		for _, p := range pkts {
			for _, src := range srcs {
				p.src = src
				want := tr.trace(t, local, p)
				if err := closeOutcomes(nftTrace(t, cfg, rs, local, p), want); err != nil {
					t.Fatalf("seed %d: %s %s -> %s:%d: nftables differs from iptables: %v", seed, p.proto, p.src, p.dst, p.port, err)
				}
			}
		}
	}
}

// closeOutcomes is sameOutcomes within the nftables backend's granularity:
// an endpoint's share is a whole number of the 65,536 slots.
func closeOutcomes(got, want map[string]float64) error {
	const tol = 1.0 / nftSlots
	for k, w := range want {
		if g := got[k]; g < w-tol || g > w+tol {
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

// TestRenderDuplicateKey: a Service listed twice under one namespace/name
// is rendered once, from its first listing, by both backends, and the
// second is reported. (The nftables renderer used to keep the claims of
// the first but the elements of the second: the first's ClusterIP was
// left unprogrammed while still blocking the port for others.)
func TestRenderDuplicateKey(t *testing.T) {
	first, second := web(), web()
	second.ClusterIP = netip.MustParseAddr("10.96.0.11")
	for _, order := range [][]Service{{first, second}, {second, first}} {
		want := order[0].ClusterIP.String()
		other := order[1].ClusterIP.String()
		r := Render(testConfig, order)
		rs := RenderNFT(testConfig, order)
		for name, errs := range map[string][]error{"iptables": r.Errors, "nftables": rs.Errors} {
			if len(errs) != 1 || !strings.Contains(errs[0].Error(), "default/web: listed more than once") {
				t.Errorf("%s: errors %v, want one for the second default/web", name, errs)
			}
		}
		tr := newTracer(t, full(r)...)
		third := 1.0 / 3
		spread := map[string]float64{"10.244.1.1:8080": third, "10.244.2.1:8080": third, "10.244.3.1:8080": third}
		for ip, want := range map[string]map[string]float64{want: spread, other: {"pass": 1}} {
			p := tcpTo(podOnN2, ip, 80)
			if err := sameOutcomes(tr.trace(t, testLocal, p), want); err != nil {
				t.Errorf("iptables, %s: %v", ip, err)
			}
			if err := closeOutcomes(nftTrace(t, testConfig, rs, testLocal, p), want); err != nil {
				t.Errorf("nftables, %s: %v", ip, err)
			}
		}
	}
}

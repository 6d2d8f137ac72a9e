package svcproxy

import (
	"encoding/binary"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"
)

// elemsOf returns the rendered elements of one set, as nft lists them.
func elemsOf(r *NFTRuleset, set string) []string {
	var out []string
	for _, e := range r.static[set] {
		out = append(out, e.String())
	}
	for _, so := range r.services {
		for _, se := range so.elems {
			if se.set == set {
				out = append(out, se.elem.String())
			}
		}
	}
	slices.Sort(out)
	return out
}

func chainRules(r *NFTRuleset, name string) []string {
	for _, c := range r.chains {
		if c.name == name {
			var out []string
			for _, rl := range c.rules {
				out = append(out, rl.text)
			}
			return out
		}
	}
	return nil
}

func wantElems(t *testing.T, r *NFTRuleset, set string, want ...string) {
	t.Helper()
	slices.Sort(want)
	if got := elemsOf(r, set); !slices.Equal(got, want) {
		t.Errorf("set %s:\n got %q\nwant %q", set, got, want)
	}
}

// TestRenderNFTServices checks what each feature puts in the table: the
// endpoint ranges (an equal share each), named target ports, readiness,
// NodePorts under both policies, rejects, hairpin and the mark sets.
func TestRenderNFTServices(t *testing.T) {
	w := web() // 10.96.0.10:80 → 3 endpoints on n1, n2, n3 (n1 is this node)
	w.Type, w.Ports[0].NodePort = TypeNodePort, 30080
	local := web()
	local.Name, local.ClusterIP, local.Type, local.ExternalTrafficPolicy = "local", netip.MustParseAddr("10.96.0.11"), TypeNodePort, PolicyLocal
	local.Ports = []ServicePort{{Name: "http", Protocol: TCP, Port: 80, TargetPort: TargetPort{Name: "web"}, NodePort: 30081}}
	local.Endpoints = []Endpoint{ep("10.244.1.2", "n1", true, "web", 8081), ep("10.244.2.2", "n2", true, "web", 8082),
		ep("10.244.3.2", "n3", false, "web", 8083), ep("10.244.4.2", "n4", true)} // unready; no "web" port
	empty := Service{Namespace: "default", Name: "empty", ClusterIP: netip.MustParseAddr("10.96.1.12"), Type: TypeNodePort,
		Ports: []ServicePort{{Name: "dns", Protocol: UDP, Port: 53, NodePort: 30053}}}
	r := RenderNFT(testConfig, []Service{w, local, empty})
	if len(r.Errors) != 0 {
		t.Fatal(r.Errors)
	}
	wantElems(t, r, "svc-0a-endpoints",
		"10.96.0.10 . tcp . 80 . 0-21844 : 10.244.1.1 . 8080",
		"10.96.0.10 . tcp . 80 . 21845-43689 : 10.244.2.1 . 8080",
		"10.96.0.10 . tcp . 80 . 43690-65535 : 10.244.3.1 . 8080")
	wantElems(t, r, "svc-0b-endpoints",
		"10.96.0.11 . tcp . 80 . 0-32767 : 10.244.1.2 . 8081",
		"10.96.0.11 . tcp . 80 . 32768-65535 : 10.244.2.2 . 8082")
	wantElems(t, r, npBucketMap(npBucketOf(30080)), "0.0.0.0 . tcp . 30080 . 0-21844 : 10.244.1.1 . 8080",
		"0.0.0.0 . tcp . 30080 . 21845-43689 : 10.244.2.1 . 8080", "0.0.0.0 . tcp . 30080 . 43690-65535 : 10.244.3.1 . 8080")
	// Local: only this node's endpoint.
	wantElems(t, r, npBucketMap(npBucketOf(30081)), "0.0.0.0 . tcp . 30081 . 0-65535 : 10.244.1.2 . 8081")
	wantElems(t, r, nftNodePortMasq, "tcp . 30080")
	wantElems(t, r, nftNodePortLocal, "tcp . 30081")
	wantElems(t, r, nftClusterMasq, "10.96.0.10 . tcp . 80", "10.96.0.11 . tcp . 80")
	wantElems(t, r, nftNoEndpoints, "10.96.1.12 . udp . 53")
	wantElems(t, r, nftNoEndpointNP, "udp . 30053")
	wantElems(t, r, nftHairpin, "10.244.1.1 . 10.244.1.1", "10.244.1.2 . 10.244.1.2")
	if len(r.UDP) != 1 || r.UDP[0].NodePort != 0 || len(r.UDP[0].Endpoints) != 0 {
		t.Errorf("UDP = %+v", r.UDP)
	}
	if got := chainRules(r, "svc-0a"); !slices.Equal(got, []string{"dnat to ip daddr . meta l4proto . th dport . numgen random mod 65536 map @svc-0a-endpoints"}) {
		t.Errorf("chain svc-0a: %q", got)
	}
}

// TestRenderNFTSlotsCoverEverything: whatever the number of endpoints, the
// ranges of a port tile [0, nftSlots) with no gap and no overlap, and the
// shares differ by at most one slot.
func TestRenderNFTSlotsCoverEverything(t *testing.T) {
	for n := 1; n <= 70; n++ {
		eps := make([]resolvedEndpoint, n)
		for i := range eps {
			eps[i] = resolvedEndpoint{ip: netip.AddrFrom4([4]byte{10, 244, byte(i >> 8), byte(i)}), port: 80}
		}
		next, lo, hi := uint32(0), uint32(nftSlots), uint32(0)
		for _, e := range endpointElems(netip.MustParseAddr("10.96.0.1"), TCP, 80, eps) {
			a, b := binary.BigEndian.Uint32(e.key[12:]), binary.BigEndian.Uint32(e.keyEnd[12:])
			if a != next || b < a {
				t.Fatalf("n=%d: range %d-%d after %d", n, a, b, next)
			}
			lo, hi = min(lo, b-a+1), max(hi, b-a+1)
			next = b + 1
		}
		if next != nftSlots || hi-lo > 1 {
			t.Fatalf("n=%d: ranges end at %d, shares %d..%d", n, next, lo, hi)
		}
	}
}

func TestRenderNFTAffinityAndMasquerade(t *testing.T) {
	s := web()
	s.SessionAffinity, s.AffinityTimeout = AffinityClientIP, 30*time.Second
	cfg := testConfig
	cfg.MasqueradeEgress = true
	r := RenderNFT(cfg, []Service{s})
	rules := chainRules(r, "svc-0a")
	if len(rules) != 7 { // 3 "seen", 3 random choices, the map rule
		t.Fatalf("svc-0a: %q", rules)
	}
	if !strings.Contains(rules[0], "ip daddr 10.96.0.10 meta l4proto tcp th dport 80 ip saddr @affinity-") ||
		!strings.Contains(rules[0], "timeout 30s } dnat to 10.244.1.1:8080") {
		t.Errorf("first affinity rule: %s", rules[0])
	}
	if !strings.Contains(rules[3], "numgen random mod 3 == 0 update @affinity-") || strings.Contains(rules[5], "numgen") {
		t.Errorf("random choice: %q", rules[3:6])
	}
	wantElems(t, r, "svc-0a-endpoints") // affinity Services DNAT in rules, not in the map
	var sets int
	for _, st := range r.sets {
		if st.kind == setAffinity {
			sets++
			if st.timeout != 30*time.Second {
				t.Errorf("set %s timeout %v", st.name, st.timeout)
			}
		}
	}
	if sets != 3 {
		t.Errorf("%d affinity sets, want 3", sets)
	}
	post := chainRules(r, nftMasquerading)
	i := slices.Index(post, "ip saddr 10.244.0.0/16 ip daddr != 10.244.0.0/16 meta mark set meta mark | 0x2000")
	j := slices.Index(post, "meta mark & 0x2000 == 0 return")
	if i < 0 || j < i {
		t.Errorf("egress masquerade before the return of unmarked traffic: %q", post)
	}
	if post := chainRules(RenderNFT(testConfig, []Service{s}), nftMasquerading); slices.ContainsFunc(post, func(r string) bool { return strings.Contains(r, "!= 10.244.0.0/16 meta mark") }) {
		t.Errorf("egress masquerade without MasqueradeEgress: %q", post)
	}
}

func TestRenderNFTConflictsAndInvalid(t *testing.T) {
	a, b := web(), web()
	b.Name = "web2"
	bad := web()
	bad.Name, bad.Ports[0].Protocol = "bad", "SCTP"
	r := RenderNFT(testConfig, []Service{b, bad, a})
	if len(r.Errors) != 2 {
		t.Fatalf("errors %v, want the conflict and the invalid Service", r.Errors)
	}
	if len(elemsOf(r, "svc-0a-endpoints")) != 3 || r.services["default/web2"].elems != nil {
		t.Errorf("the first Service by key should keep 10.96.0.10:80")
	}
}

// TestRenderNFTDeterministic: the same input gives the same table.
func TestRenderNFTDeterministic(t *testing.T) {
	svcs := manyServices(200, 3)
	a := RenderNFT(testConfig, svcs).Text()
	slices.Reverse(svcs)
	if b := RenderNFT(testConfig, svcs).Text(); a != b {
		t.Fatal("render depends on the order of the Services")
	}
}

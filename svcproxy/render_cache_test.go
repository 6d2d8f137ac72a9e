package svcproxy

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// mutate applies one random change to a copy of svcs, the way the state
// store would hand a new list to the proxy (changed Services get new
// slices; unchanged ones are shared).
func mutate(rng *rand.Rand, svcs []Service) []Service {
	next := slices.Clone(svcs)
	if len(next) == 0 || rng.IntN(8) == 0 {
		i := rng.IntN(1000)
		s := Service{Namespace: "ns", Name: fmt.Sprintf("s%d", i), ClusterIP: netip.AddrFrom4([4]byte{10, 96, byte(rng.IntN(2)), byte(rng.IntN(4))}),
			Type: TypeClusterIP, Ports: []ServicePort{{Name: "p", Protocol: TCP, Port: 80, TargetPort: TargetPort{Name: "web"}}}}
		return append(next, s)
	}
	i := rng.IntN(len(next))
	s := next[i]
	s.Ports = slices.Clone(s.Ports)
	s.Endpoints = slices.Clone(s.Endpoints)
	switch rng.IntN(10) {
	case 0:
		return slices.Delete(next, i, i+1)
	case 1, 2:
		ip := netip.AddrFrom4([4]byte{10, 244, byte(rng.IntN(3)), byte(rng.IntN(8))})
		s.Endpoints = append(s.Endpoints, Endpoint{PodIP: ip, NodeName: []string{"n1", "n2"}[rng.IntN(2)], Ready: rng.IntN(4) > 0,
			Ports: map[string]int32{"web": int32(8000 + rng.IntN(3))}})
	case 3:
		if len(s.Endpoints) > 0 {
			j := rng.IntN(len(s.Endpoints))
			s.Endpoints[j].Ready = !s.Endpoints[j].Ready
		}
	case 4:
		if len(s.Endpoints) > 0 {
			s.Endpoints = slices.Delete(s.Endpoints, 0, 1)
		}
	case 5:
		s.Type, s.Ports[0].NodePort = TypeNodePort, int32(30000+rng.IntN(4))
	case 6:
		s.ExternalTrafficPolicy = []TrafficPolicy{PolicyCluster, PolicyLocal}[rng.IntN(2)]
	case 7:
		s.SessionAffinity, s.AffinityTimeout = AffinityClientIP, time.Duration(1+rng.IntN(3))*time.Minute
	case 8:
		s.Ports = append(s.Ports, ServicePort{Name: "u", Protocol: UDP, Port: int32(50 + rng.IntN(3)), NodePort: int32(30000 + rng.IntN(4))})
	case 9:
		s.PublishNotReadyAddresses = !s.PublishNotReadyAddresses
	}
	next[i] = s
	return next
}

func sameRuleset(a, b *Ruleset) error {
	for _, p := range [][2]*Table{{&a.NAT, &b.NAT}, {&a.Filter, &b.Filter}} {
		x, y := p[0].Payload(p[0].Chains(), nil), p[1].Payload(p[1].Chains(), nil)
		if !bytes.Equal(x, y) {
			return fmt.Errorf("%s differs:\n%s\nvs\n%s", p[0].Name, x, y)
		}
	}
	if fmt.Sprint(a.Errors) != fmt.Sprint(b.Errors) || fmt.Sprint(a.UDP) != fmt.Sprint(b.UDP) {
		return fmt.Errorf("errors/UDP differ: %v %v vs %v %v", a.Errors, a.UDP, b.Errors, b.UDP)
	}
	return nil
}

// The cached renderer must give exactly what a fresh one gives, through
// random histories that include conflicts (few ClusterIPs and NodePorts
// for many Services), removals and in-place-looking changes.
func TestRendererCacheMatchesFresh(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 1))
		rd := newRenderer(testConfig)
		var svcs []Service
		for step := range 200 {
			svcs = mutate(rng, svcs)
			if err := sameRuleset(rd.render(svcs), Render(testConfig, svcs)); err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
		}
	}
}

func BenchmarkRenderCachedOneChange10k(b *testing.B) {
	svcs := manyServices(benchServices, benchEndpoints)
	rd := newRenderer(benchConfig)
	rd.render(svcs)
	i := 0
	for b.Loop() {
		next := slices.Clone(svcs)
		s := next[4321]
		s.Endpoints = slices.Clone(s.Endpoints)
		s.Endpoints[0].Ready = i%2 == 1
		next[4321] = s
		i++
		rd.render(next)
	}
}

package svcproxy

import (
	"math/rand/v2"
	"net/netip"
	"slices"
	"testing"
	"time"
)

// mutateMore is mutate plus the changes it never makes: a ClusterIP moving
// to another bucket, a port removed, a targetPort or NodePort changed,
// affinity switched off or its timeout changed, endpoints renumbered.
func mutateMore(rng *rand.Rand, svcs []Service) []Service {
	if len(svcs) == 0 || rng.IntN(3) > 0 {
		return mutate(rng, svcs)
	}
	next := slices.Clone(svcs)
	i := rng.IntN(len(next))
	s := next[i]
	s.Ports = slices.Clone(s.Ports)
	s.Endpoints = slices.Clone(s.Endpoints)
	switch rng.IntN(6) {
	case 0:
		s.ClusterIP = netip.AddrFrom4([4]byte{10, 96, byte(rng.IntN(2)), byte(rng.IntN(6))})
	case 1:
		if len(s.Ports) > 1 {
			s.Ports = slices.Delete(s.Ports, 0, 1)
		}
	case 2:
		j := rng.IntN(len(s.Ports))
		s.Ports[j].TargetPort = TargetPort{Number: int32(9000 + rng.IntN(2))}
	case 3:
		j := rng.IntN(len(s.Ports))
		if s.Type == TypeNodePort {
			s.Ports[j].NodePort = int32(30000 + rng.IntN(70)) // several NodePort buckets
		}
	case 4:
		s.SessionAffinity = []SessionAffinity{AffinityNone, AffinityClientIP}[rng.IntN(2)]
		s.AffinityTimeout = time.Duration(1+rng.IntN(2)) * time.Minute
	case 5:
		for j := range s.Endpoints {
			if rng.IntN(2) == 0 {
				s.Endpoints[j].Ports = map[string]int32{"web": int32(8000 + rng.IntN(3))}
			}
		}
	}
	next[i] = s
	return next
}

// TestNFTProxierHistories checks, over random histories with every kind of
// change, that each incremental transaction applies to the table left by
// the previous one (the fake refuses overlapping endpoint ranges, missing
// elements and duplicates, as the kernel does) and that the table equals
// what a full sync writes into an empty one.
func TestNFTProxierHistories(t *testing.T) {
	for seed := range uint64(12) {
		rng := rand.New(rand.NewPCG(seed, 11))
		node := testConfig
		if seed%2 == 1 {
			node.MasqueradeEgress = true
		}
		f := newNFTFixture(t, node)
		var svcs []Service
		for step := range 60 {
			svcs = mutateMore(rng, svcs)
			if res := f.sync(t, svcs); step > 0 && res.Full {
				t.Fatalf("seed %d step %d: unexpected full sync", seed, step)
			}
			if step%4 != 3 {
				continue
			}
			if got, want := f.nft.dump(), freshDump(t, node, svcs); got != want {
				t.Fatalf("seed %d step %d:\n%s", seed, step, diffLines(want, got))
			}
		}
	}
}

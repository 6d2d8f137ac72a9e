package svcproxy

import (
	"bytes"
	"context"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// Figures for docs/benchmarks.md. The netns benchmarks need root; run them
// one at a time with -benchtime=1x or 3x, they take seconds per iteration:
//
//	go test ./svcproxy -run '^$' -bench 'FullSync|Incremental' -benchtime 3x

const benchServices, benchEndpoints = 10000, 5

// benchConfig is a node as the agent configures it: pod network and
// service range known.
var benchConfig = Config{NodeName: testNode, ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16"), ServiceCIDR: netip.MustParsePrefix("10.96.0.0/12")}

func BenchmarkRender10k(b *testing.B) {
	svcs := manyServices(benchServices, benchEndpoints)
	b.ReportAllocs()
	for b.Loop() {
		Render(benchConfig, svcs)
	}
}

func newBenchProxier(b *testing.B, backend Backend, syncPeriod time.Duration) *Proxier {
	b.Helper()
	ipt, err := NewIPTables(backend)
	if err != nil {
		b.Skipf("backend %q: %v", backend, err)
	}
	p, err := NewProxier(ProxierConfig{Node: benchConfig, Runner: ipt, SyncPeriod: syncPeriod})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkFullSync10k renders and applies 10,000 Services × 5 endpoints
// into a fresh namespace, and in the same iteration feeds the same payload
// to a bare iptables-restore --noflush in another fresh namespace.
func BenchmarkFullSync10k(b *testing.B) {
	requireNetAdmin(b)
	for _, backend := range []Backend{BackendNFT, BackendLegacy} {
		b.Run(string(backend), func(b *testing.B) {
			restore := "iptables-nft-restore"
			if backend == BackendLegacy {
				restore = "iptables-legacy-restore"
			}
			svcs := manyServices(benchServices, benchEndpoints)
			rs := Render(benchConfig, svcs)
			payload := append(rs.NAT.Payload(rs.NAT.Chains(), nil), rs.Filter.Payload(rs.Filter.Chains(), nil)...)
			var proxyTotal, bareTotal time.Duration
			i := 0
			for b.Loop() {
				b.StopTimer()
				bareNS, proxyNS := newNetns(b, "bare"), newNetns(b, "proxy")
				p := newBenchProxier(b, backend, 0)
				b.StartTimer()

				proxy := func() {
					start := time.Now()
					inNetns(b, proxyNS, func() {
						p.Update(svcs)
						if _, err := p.Sync(context.Background()); err != nil {
							b.Fatal(err)
						}
					})
					proxyTotal += time.Since(start)
				}
				bare := func() {
					b.StopTimer()
					defer b.StartTimer()
					start := time.Now()
					cmd := exec.Command("ip", "netns", "exec", bareNS, restore, "-w", "--noflush")
					cmd.Stdin = bytes.NewReader(payload)
					if out, err := cmd.CombinedOutput(); err != nil {
						b.Fatalf("bare restore: %v: %s", err, out)
					}
					bareTotal += time.Since(start)
				}
				// Alternate which goes first: the machine is shared.
				if i++; i%2 == 1 {
					proxy()
					bare()
				} else {
					bare()
					proxy()
				}
			}
			n := float64(b.N)
			b.ReportMetric(proxyTotal.Seconds()/n, "proxy-s/op")
			b.ReportMetric(bareTotal.Seconds()/n, "bare-s/op")
			b.ReportMetric(proxyTotal.Seconds()/bareTotal.Seconds(), "proxy/bare")
			b.ReportMetric(float64(len(payload))/1e6, "payload-MB")
		})
	}
}

// BenchmarkIncremental10k changes one endpoint of one Service with 10,000
// Services present and syncs: one bucket chain rewritten. "checks" adds the
// periodic canary and jump checks to every sync.
func BenchmarkIncremental10k(b *testing.B) {
	requireNetAdmin(b)
	for _, bc := range []struct {
		name       string
		backend    Backend
		syncPeriod time.Duration
	}{{"nft", BackendNFT, time.Hour}, {"nft-checks", BackendNFT, time.Nanosecond}, {"legacy", BackendLegacy, time.Hour}} {
		b.Run(bc.name, func(b *testing.B) {
			ns := newNetns(b, "incr")
			p := newBenchProxier(b, bc.backend, bc.syncPeriod)
			svcs := manyServices(benchServices, benchEndpoints)
			inNetns(b, ns, func() {
				p.Update(svcs)
				if _, err := p.Sync(context.Background()); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					next := make([]Service, len(svcs))
					copy(next, svcs)
					s := next[4321]
					s.Endpoints = append([]Endpoint(nil), s.Endpoints...)
					// Endpoint 0 is on another node: only its bucket changes
					// (endpoint 1 is local and would touch the hairpin rules).
					s.Endpoints[0].Ready = i%2 == 1
					next[4321] = s
					i++
					p.Update(next)
					res, err := p.Sync(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					if res.Full || res.Written != 1 {
						b.Fatalf("sync %+v, want one chain rewritten", res)
					}
				}
			})
		})
	}
}

func newBenchNFTProxier(b *testing.B, syncPeriod time.Duration) *NFTProxier {
	b.Helper()
	p, err := NewNFTProxier(ProxierConfig{Node: benchConfig, NFT: NewNetlinkNFT(), SyncPeriod: syncPeriod})
	if err != nil {
		b.Fatal(err)
	}
	return p
}

// BenchmarkNFTFullSync10k renders and applies 10,000 Services × 5
// endpoints with the nftables backend into a fresh namespace: one
// transaction.
func BenchmarkNFTFullSync10k(b *testing.B) {
	requireNetAdmin(b)
	requireNFT(b)
	svcs := manyServices(benchServices, benchEndpoints)
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		ns := newNetns(b, "nftfull")
		p := newBenchNFTProxier(b, 0)
		b.StartTimer()
		start := time.Now()
		inNetns(b, ns, func() {
			p.Update(svcs)
			if _, err := p.Sync(context.Background()); err != nil {
				b.Fatal(err)
			}
		})
		total += time.Since(start)
	}
	b.ReportMetric(total.Seconds()/float64(b.N), "proxy-s/op")
}

// BenchmarkNFTIncremental10k changes one endpoint of one Service with
// 10,000 Services present and syncs with the nftables backend: one map's
// elements change, no rule. "checks" adds the canary check to every sync.
// "affinity" gives the changed Service ClientIP affinity, whose endpoints
// are rules: its bucket chain is rewritten, and the kernel re-validates
// the table.
func BenchmarkNFTIncremental10k(b *testing.B) {
	requireNetAdmin(b)
	requireNFT(b)
	for _, bc := range []struct {
		name       string
		syncPeriod time.Duration
		affinity   bool
	}{{"nftables", time.Hour, false}, {"nftables-checks", time.Nanosecond, false}, {"nftables-affinity", time.Hour, true}} {
		b.Run(bc.name, func(b *testing.B) {
			ns := newNetns(b, "nftincr")
			p := newBenchNFTProxier(b, bc.syncPeriod)
			svcs := manyServices(benchServices, benchEndpoints)
			if bc.affinity {
				svcs[4321].SessionAffinity = AffinityClientIP
			}
			inNetns(b, ns, func() {
				p.Update(svcs)
				if _, err := p.Sync(context.Background()); err != nil {
					b.Fatal(err)
				}
				i := 0
				for b.Loop() {
					next := make([]Service, len(svcs))
					copy(next, svcs)
					s := next[4321]
					s.Endpoints = append([]Endpoint(nil), s.Endpoints...)
					s.Endpoints[0].Ready = i%2 == 1
					next[4321] = s
					i++
					p.Update(next)
					res, err := p.Sync(context.Background())
					if err != nil {
						b.Fatal(err)
					}
					if res.Full || (!bc.affinity && (res.Written != 1 || res.Elements == 0)) {
						b.Fatalf("sync %+v, want one map's elements changed", res)
					}
				}
			})
		})
	}
}

// BenchmarkRenderNFT10k renders the nftables model of 10,000 Services from
// scratch; /one-change renders after one endpoint change, fragments and
// outputs of the other Services reused (the part of an incremental sync
// spent before the kernel).
func BenchmarkRenderNFT10k(b *testing.B) {
	svcs := manyServices(benchServices, benchEndpoints)
	b.Run("fresh", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			RenderNFT(benchConfig, svcs)
		}
	})
	b.Run("one-change", func(b *testing.B) {
		rd := newNFTRenderer(benchConfig)
		prev := rd.render(svcs)
		b.ReportAllocs()
		i := 0
		for b.Loop() {
			next := make([]Service, len(svcs))
			copy(next, svcs)
			s := next[4321]
			s.Endpoints = append([]Endpoint(nil), s.Endpoints...)
			s.Endpoints[0].Ready = i%2 == 1
			next[4321] = s
			i++
			cur := rd.render(next)
			incrementalOps(prev, cur)
			prev = cur
		}
	})
}

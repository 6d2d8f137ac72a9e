package svcproxy

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type nftFixture struct {
	p     *NFTProxier
	nft   *fakeNFT
	ct    *fakeConntrack
	clock *fakeClock
}

func newNFTFixture(t *testing.T, node Config) *nftFixture {
	f := &nftFixture{nft: &fakeNFT{}, ct: &fakeConntrack{}, clock: newFakeClock()}
	p, err := NewNFTProxier(ProxierConfig{Node: node, NFT: f.nft, Conntrack: f.ct, Clock: f.clock, Log: testLogger(t),
		MinSyncInterval: time.Second, SyncPeriod: 30 * time.Second, FullSyncPeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	return f
}

func (f *nftFixture) sync(t *testing.T, svcs []Service) SyncResult {
	t.Helper()
	f.p.Update(svcs)
	res, err := f.p.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// freshDump is what a new proxier writes for svcs into an empty table.
func freshDump(t *testing.T, node Config, svcs []Service) string {
	t.Helper()
	f := newNFTFixture(t, node)
	f.sync(t, svcs)
	return f.nft.dump()
}

func opsMatching(txs [][]string, prefix string) []string {
	var out []string
	for _, tx := range txs {
		for _, op := range tx {
			if strings.HasPrefix(op, prefix) {
				out = append(out, op)
			}
		}
	}
	return out
}

func TestNFTProxierIncremental(t *testing.T) {
	f := newNFTFixture(t, testConfig)
	svcs := manyServices(300, 3)
	if res := f.sync(t, svcs); !res.Full {
		t.Fatalf("first sync %+v, want full", res)
	}
	f.nft.takeTxs()

	if res := f.sync(t, svcs); res.Full || res.Written+res.Deleted+res.Elements != 0 {
		t.Fatalf("sync without change: %+v, want nothing", res)
	}
	if txs := f.nft.takeTxs(); len(txs) != 0 {
		t.Fatalf("sync without change sent %v", txs)
	}

	// One endpoint of one Service becomes unready: only that Service's
	// endpoint map elements change, no rule, no other Service.
	next := append([]Service(nil), svcs...)
	s := next[42]
	s.Endpoints = append([]Endpoint(nil), s.Endpoints...)
	s.Endpoints[0].Ready = false // not on this node: no hairpin change
	next[42] = s
	res := f.sync(t, next)
	if res.Full || res.Written != 1 || res.Deleted != 0 {
		t.Fatalf("one endpoint change: %+v, want one set changed", res)
	}
	txs := f.nft.takeTxs()
	if len(txs) != 1 {
		t.Fatalf("%d transactions, want 1", len(txs))
	}
	bucket := svcBucketMap(s.ClusterIP.As4()[3])
	for _, op := range txs[0] {
		if !strings.Contains(op, "element "+bucket+" ") || !strings.Contains(op, s.ClusterIP.String()+" . tcp . 80") {
			t.Errorf("op %q touches more than %s's endpoints", op, s.Key())
		}
	}
	if got := len(opsMatching(txs, "add rule")) + len(opsMatching(txs, "flush chain")); got != 0 {
		t.Errorf("an endpoint change rewrote rules: %v", txs)
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, next); got != want {
		t.Fatalf("incremental result differs from a fresh full sync:\n%s", diffLines(want, got))
	}

	// A Service removed: its elements go, nothing else.
	next = append(next[:7:7], next[8:]...)
	f.sync(t, next)
	for _, op := range opsMatching(f.nft.takeTxs(), "") {
		if !strings.HasPrefix(op, "delete element") || !strings.Contains(op, svcs[7].ClusterIP.String()+" . tcp") {
			t.Errorf("removing %s: unexpected %q", svcs[7].Key(), op)
		}
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, next); got != want {
		t.Fatalf("after a removal:\n%s", diffLines(want, got))
	}
}

func TestNFTProxierAffinitySetsComeAndGo(t *testing.T) {
	f := newNFTFixture(t, testConfig)
	s := web()
	s.Type, s.Ports[0].NodePort = TypeNodePort, 30080
	f.sync(t, []Service{s})
	f.nft.takeTxs()

	s.SessionAffinity = AffinityClientIP
	res := f.sync(t, []Service{s})
	txs := f.nft.takeTxs()
	if adds := opsMatching(txs, "add set affinity-"); len(adds) != 3 {
		t.Errorf("affinity on: %d affinity sets added, want one per ready endpoint (3): %v", len(adds), txs)
	}
	if fl := opsMatching(txs, "flush chain "); len(fl) != 2 { // ClusterIP and NodePort bucket
		t.Errorf("affinity on: chains rewritten %v, want the two buckets of web", fl)
	}
	if res.Full {
		t.Fatalf("%+v", res)
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, []Service{s}); got != want {
		t.Fatalf("affinity on:\n%s", diffLines(want, got))
	}

	// A full sync keeps the live affinity sets (and the clients in them).
	f.clock.Advance(2 * time.Hour)
	if res := f.sync(t, []Service{s}); !res.Full {
		t.Fatalf("after FullSyncPeriod: %+v, want full", res)
	}
	txs = f.nft.takeTxs()
	if del := opsMatching(txs, "delete set affinity-"); len(del) != 0 {
		t.Errorf("full sync deleted live affinity sets: %v", del)
	}

	s.SessionAffinity = AffinityNone
	f.sync(t, []Service{s})
	if del := opsMatching(f.nft.takeTxs(), "delete set affinity-"); len(del) != 3 {
		t.Errorf("affinity off: deleted %v, want all three sets", del)
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, []Service{s}); got != want {
		t.Fatalf("affinity off:\n%s", diffLines(want, got))
	}
}

func TestNFTProxierFullSyncRemovesStaleObjects(t *testing.T) {
	f := newNFTFixture(t, testConfig)
	// Left by an older shoal: a chain and a set the renderer does not make.
	f.nft.st = &fakeNFTState{chains: map[string][]string{"old-chain": {"return"}, nftServices: {"stale rule"}},
		sets: map[string]map[string]bool{"affinity-gone": {"10.0.0.1": true}, nftNoEndpoints: {"10.96.0.99 . tcp . 80": true}}}
	svcs := []Service{web()}
	if res := f.sync(t, svcs); !res.Full || res.Deleted != 3 { // old-chain, affinity-gone, no-endpoints (recreated)
		t.Fatalf("first sync %+v", res)
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, svcs); got != want {
		t.Fatalf("stale objects survived:\n%s", diffLines(want, got))
	}
}

func TestNFTProxierFailureForcesFullResync(t *testing.T) {
	f := newNFTFixture(t, testConfig)
	svcs := manyServices(20, 2)
	f.sync(t, svcs)
	next := mutate(rand.New(rand.NewPCG(1, 2)), svcs)
	f.p.Update(next)
	f.nft.failNext = errors.New("netlink: boom")
	if _, err := f.p.Sync(context.Background()); err == nil {
		t.Fatal("sync with a failing commit succeeded")
	}
	if res := f.sync(t, next); !res.Full {
		t.Fatalf("sync after a failure: %+v, want full", res)
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, next); got != want {
		t.Fatalf("after the resync:\n%s", diffLines(want, got))
	}
}

func TestNFTProxierCanaryAndPeriodicFullSync(t *testing.T) {
	f := newNFTFixture(t, testConfig)
	svcs := []Service{web()}
	f.sync(t, svcs)

	// Flushed from outside ("nft flush table ip shoal"): noticed at the
	// next check, SyncPeriod later.
	f.nft.Apply(context.Background(), []nftOp{{kind: opFlushTable}})
	if res := f.sync(t, svcs); res.Full {
		t.Fatalf("canary checked before SyncPeriod: %+v", res)
	}
	f.clock.Advance(31 * time.Second)
	if res := f.sync(t, svcs); !res.Full {
		t.Fatalf("sync after an outside flush: %+v, want full", res)
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, svcs); got != want {
		t.Fatalf("after the flush:\n%s", diffLines(want, got))
	}

	// Deleted from outside ("nft delete table ip shoal").
	f.nft.Apply(context.Background(), []nftOp{{kind: opDelTable}})
	f.clock.Advance(31 * time.Second)
	if res := f.sync(t, svcs); !res.Full {
		t.Fatalf("sync after an outside delete: %+v, want full", res)
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, svcs); got != want {
		t.Fatalf("after the delete:\n%s", diffLines(want, got))
	}

	f.clock.Advance(59 * time.Minute)
	if res := f.sync(t, svcs); res.Full {
		t.Fatalf("full sync before FullSyncPeriod: %+v", res)
	}
	f.clock.Advance(2 * time.Minute)
	if res := f.sync(t, svcs); !res.Full {
		t.Fatalf("no full sync after FullSyncPeriod: %+v", res)
	}
}

// TestNFTProxierMatchesFresh checks, over random histories, that what the
// incremental syncs leave in the table is what a full sync of the same
// Services writes into an empty one.
func TestNFTProxierMatchesFresh(t *testing.T) {
	for seed := range uint64(20) {
		rng := rand.New(rand.NewPCG(seed, 7))
		node := testConfig
		if seed%2 == 1 {
			node.ServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
			node.MasqueradeEgress = true
		}
		f := newNFTFixture(t, node)
		var svcs []Service
		for step := range 60 {
			svcs = mutate(rng, svcs)
			if res := f.sync(t, svcs); step > 0 && res.Full {
				t.Fatalf("seed %d step %d: unexpected full sync", seed, step)
			}
			if step%10 == 9 {
				if got, want := f.nft.dump(), freshDump(t, node, svcs); got != want {
					t.Fatalf("seed %d step %d:\n%s", seed, step, diffLines(want, got))
				}
			}
		}
	}
}

func TestNFTProxierUDPConntrack(t *testing.T) {
	f := newNFTFixture(t, testConfig)
	s := Service{Namespace: "ns", Name: "dns", ClusterIP: netip.MustParseAddr("10.96.0.53"), Type: TypeClusterIP,
		Ports:     []ServicePort{{Name: "dns", Protocol: UDP, Port: 53}},
		Endpoints: []Endpoint{ep("10.244.1.5", "n1", true), ep("10.244.2.5", "n2", true)}}
	f.sync(t, []Service{s})
	take := func() []UDPFlow {
		f.ct.mu.Lock()
		defer f.ct.mu.Unlock()
		flows := f.ct.flows
		f.ct.flows = nil
		return flows
	}
	take()
	s.Endpoints = s.Endpoints[:1]
	if res := f.sync(t, []Service{s}); res.Flows != 1 {
		t.Fatalf("%+v, want one flow cleared", res)
	}
	if got := fmt.Sprint(take()); !strings.Contains(got, "endpoint=10.244.2.5") {
		t.Fatalf("cleared %s", got)
	}
}

// diffLines shows the lines only in want (-) or only in got (+).
func diffLines(want, got string) string {
	w, g := map[string]int{}, map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		w[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		g[l]++
	}
	var b strings.Builder
	for _, l := range strings.Split(want, "\n") {
		if g[l] < w[l] {
			fmt.Fprintf(&b, "- %s\n", l)
			g[l]++
		}
	}
	w2 := map[string]int{}
	for _, l := range strings.Split(want, "\n") {
		w2[l]++
	}
	for _, l := range strings.Split(got, "\n") {
		if w2[l] == 0 {
			fmt.Fprintf(&b, "+ %s\n", l)
		} else {
			w2[l]--
		}
	}
	return b.String()
}

// A full sync that fails makes the next one replace the table in one
// transaction, rather than rewrite it in place again and fail the same way.
func TestNFTProxierRecreatesAfterFailedFullSync(t *testing.T) {
	f := newNFTFixture(t, testConfig)
	svcs := []Service{web()}
	f.sync(t, svcs)

	f.clock.Advance(2 * time.Hour) // past FullSyncPeriod
	f.nft.failNext = errors.New("netlink: operation not supported")
	f.p.Update(svcs)
	if _, err := f.p.Sync(context.Background()); err == nil {
		t.Fatal("sync with a failing commit succeeded")
	}
	if res := f.sync(t, svcs); !res.Full {
		t.Fatalf("sync after a failed full sync: %+v, want full", res)
	}
	last := f.nft.txs[len(f.nft.txs)-1]
	if len(last) < 2 || last[0] != "delete table ip "+NFTTable || last[1] != "add table ip "+NFTTable {
		t.Fatalf("the sync after a failed full sync should replace the table; it began %q", last[:min(len(last), 3)])
	}
	if got, want := f.nft.dump(), freshDump(t, testConfig, svcs); got != want {
		t.Fatalf("after the replacement:\n%s", diffLines(want, got))
	}

	// Once a full sync succeeds, the next full one rewrites in place again.
	f.clock.Advance(2 * time.Hour)
	f.sync(t, svcs)
	if last := f.nft.txs[len(f.nft.txs)-1]; last[0] == "delete table ip "+NFTTable {
		t.Fatalf("a full sync after a good one replaced the table: %q", last[:2])
	}
}

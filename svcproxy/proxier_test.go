package svcproxy

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"testing"
	"time"
)

type tlogWriter struct{ t *testing.T }

func (w tlogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSpace(string(p)))
	return len(p), nil
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(tlogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type proxierFixture struct {
	p     *Proxier
	ipt   *fakeIPTables
	ct    *fakeConntrack
	clock *fakeClock
}

func newProxierFixture(t *testing.T) *proxierFixture {
	f := &proxierFixture{ipt: newFakeIPTables(), ct: &fakeConntrack{}, clock: newFakeClock()}
	p, err := NewProxier(ProxierConfig{Node: testConfig, Runner: f.ipt, Conntrack: f.ct, Clock: f.clock, Log: testLogger(t),
		MinSyncInterval: time.Second, SyncPeriod: 30 * time.Second, FullSyncPeriod: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	f.p = p
	return f
}

func (f *proxierFixture) sync(t *testing.T) SyncResult {
	t.Helper()
	res, err := f.p.Sync(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	return res
}

// manyServices returns n Services with eps endpoints each, ClusterIPs
// 10.96.x.y spread over every bucket, and about 100 endpoints per node
// (nodes n0, n1, …), as on a real cluster.
func manyServices(n, eps int) []Service {
	nodes := max(3, n*eps/100)
	out := make([]Service, n)
	for i := range out {
		s := Service{Namespace: "ns", Name: fmt.Sprintf("svc%05d", i), ClusterIP: netip.AddrFrom4([4]byte{10, 96 + byte(i>>16), byte(i >> 8), byte(i)}),
			Type: TypeClusterIP, Ports: []ServicePort{{Name: "http", Protocol: TCP, Port: 80, TargetPort: TargetPort{Number: 8080}}}}
		for j := range eps {
			k := i*eps + j
			s.Endpoints = append(s.Endpoints, Endpoint{PodIP: netip.AddrFrom4([4]byte{10, 244, byte(k >> 8), byte(k)}), NodeName: fmt.Sprintf("n%d", k%nodes), Ready: true})
		}
		out[i] = s
	}
	return out
}

func payloadChains(p string) []string {
	var out []string
	for _, l := range strings.Split(p, "\n") {
		if strings.HasPrefix(l, ":") {
			out = append(out, strings.Fields(l[1:])[0])
		}
	}
	return out
}

func TestProxierIncremental(t *testing.T) {
	f := newProxierFixture(t)
	svcs := manyServices(600, 3)
	f.p.Update(svcs)
	res := f.sync(t)
	if !res.Full || res.Written != 256+4+2 {
		t.Fatalf("first sync %+v, want full with 262 chains", res)
	}
	if got := f.ipt.tables["nat"]["PREROUTING"]; len(got) != 1 || !strings.HasSuffix(got[0], "-j SHOAL-SERVICES") {
		t.Fatalf("PREROUTING = %v", got)
	}
	f.ipt.takePayloads()

	// One endpoint of svc00300 (10.96.1.44, bucket 2C) becomes unready:
	// only that bucket is rewritten, filter is not touched.
	next := manyServices(600, 3)
	next[300].Endpoints[2].Ready = false // on n2: no hairpin rule changes
	f.p.Update(next)
	f.clock.Advance(time.Second)
	res = f.sync(t)
	ps := f.ipt.takePayloads()
	if res.Full || len(ps) != 1 || !strings.HasPrefix(ps[0], "nat\n") {
		t.Fatalf("incremental sync %+v wrote %d payloads", res, len(ps))
	}
	if got := payloadChains(ps[0]); len(got) != 1 || got[0] != "SHOAL-SVC-2C" {
		t.Fatalf("rewrote %v, want only SHOAL-SVC-2C", got)
	}
	tr := newTracer(t, f.ipt.dump()...)
	if err := sameOutcomes(tr.trace(t, testLocal, tcpTo(podOnN2, "10.96.1.44", 80)), map[string]float64{"10.244.3.132:8080": .5, "10.244.3.133:8080": .5}); err != nil {
		t.Fatal(err)
	}

	// Nothing changed: nothing written.
	f.clock.Advance(time.Second)
	if res := f.sync(t); res.Written+res.Deleted != 0 || len(f.ipt.takePayloads()) != 0 {
		t.Fatalf("no-op sync wrote %+v", res)
	}

	// svc00300 loses every endpoint: its rules leave the nat bucket and a
	// REJECT appears in filter.
	next[300].Endpoints = nil
	f.clock.Advance(time.Second)
	f.sync(t)
	tr = newTracer(t, f.ipt.dump()...)
	if err := sameOutcomes(tr.trace(t, testLocal, tcpTo(podOnN2, "10.96.1.44", 80)), map[string]float64{"reject tcp-reset": 1}); err != nil {
		t.Fatal(err)
	}

	// Only one Service left: 255 buckets go away.
	f.p.Update(next[:1])
	f.clock.Advance(time.Second)
	res = f.sync(t)
	if res.Deleted != 255 {
		t.Fatalf("deleted %d chains, want 255", res.Deleted)
	}
	if _, ok := f.ipt.tables["nat"]["SHOAL-SVC-2C"]; ok {
		t.Fatal("stale bucket survived")
	}
	tr = newTracer(t, f.ipt.dump()...)
	if err := sameOutcomes(tr.trace(t, testLocal, tcpTo(podOnN2, "10.96.0.0", 80)), map[string]float64{"10.244.0.0:8080": 1. / 3, "10.244.0.1:8080": 1. / 3, "10.244.0.2:8080": 1. / 3}); err != nil {
		t.Fatal(err)
	}
}

func TestProxierFullSyncRemovesOnlyOurStaleChains(t *testing.T) {
	f := newProxierFixture(t)
	f.ipt.tables["nat"]["SHOAL-SVC-77"] = []string{"-A SHOAL-SVC-77 -j RETURN"}
	f.ipt.tables["nat"]["KUBE-SERVICES"] = []string{"-A KUBE-SERVICES -j RETURN"}
	f.ipt.tables["filter"]["SHOAL-OLD"] = nil
	f.p.Update([]Service{web()})
	res := f.sync(t)
	if !res.Full || res.Deleted != 2 {
		t.Fatalf("%+v, want full with 2 deletions", res)
	}
	if _, ok := f.ipt.tables["nat"]["SHOAL-SVC-77"]; ok {
		t.Fatal("stale SHOAL- chain kept")
	}
	if got := f.ipt.tables["nat"]["KUBE-SERVICES"]; len(got) != 1 {
		t.Fatalf("foreign chain touched: %v", got)
	}
}

func TestProxierFailureForcesFullResync(t *testing.T) {
	f := newProxierFixture(t)
	f.p.Update(manyServices(10, 2))
	f.sync(t)
	f.ipt.failNext = errors.New("iptables-restore: exit status 1")
	f.p.Update(manyServices(11, 2))
	f.clock.Advance(time.Second)
	if _, err := f.p.Sync(context.Background()); err == nil {
		t.Fatal("failure not reported")
	}
	f.ipt.takePayloads()
	f.clock.Advance(time.Second)
	if res := f.sync(t); !res.Full || res.Written != 11+4+2 {
		t.Fatalf("after a failure: %+v, want a full sync of 17 chains", res)
	}
}

func TestProxierCanaryAndPeriodicFullSync(t *testing.T) {
	f := newProxierFixture(t)
	f.p.Update([]Service{web()})
	f.sync(t)

	// Within SyncPeriod nothing is checked, so a flush goes unnoticed …
	delete(f.ipt.tables["nat"], ChainCanary)
	f.clock.Advance(10 * time.Second)
	if res := f.sync(t); res.Full {
		t.Fatal("full sync before the check was due")
	}
	// … until the periodic check finds the canary gone.
	f.clock.Advance(30 * time.Second)
	if res := f.sync(t); !res.Full {
		t.Fatal("missing canary did not force a full sync")
	}
	if _, ok := f.ipt.tables["nat"][ChainCanary]; !ok {
		t.Fatal("canary not restored")
	}
	// A jump removed from outside comes back at the next check.
	f.ipt.tables["filter"]["FORWARD"] = nil
	f.clock.Advance(30 * time.Second)
	if res := f.sync(t); res.Full {
		t.Fatal("unexpected full sync")
	}
	if len(f.ipt.tables["filter"]["FORWARD"]) != 1 {
		t.Fatal("FORWARD jump not restored")
	}
	f.clock.Advance(time.Hour)
	if res := f.sync(t); !res.Full {
		t.Fatal("no full resync after FullSyncPeriod")
	}
	for _, j := range jumps {
		if got := f.ipt.tables[j.table][j.chain]; len(got) != 1 {
			t.Errorf("%s/%s = %q, want exactly our jump", j.table, j.chain, got)
		}
	}
}

func TestProxierUDPConntrack(t *testing.T) {
	f := newProxierFixture(t)
	s := web()
	s.Type = TypeNodePort
	s.Ports = []ServicePort{{Name: "dns", Protocol: UDP, Port: 53, NodePort: 30053}}
	s.Endpoints = nil
	f.p.Update([]Service{s})
	f.sync(t)
	if len(f.ct.flows) != 0 {
		t.Fatalf("flows cleared without a change: %v", f.ct.flows)
	}

	// Endpoints appear: whatever went to the port before is cleared.
	s.Endpoints = web().Endpoints
	f.p.Update([]Service{s})
	f.sync(t)
	want := []UDPFlow{{OrigDst: s.ClusterIP, OrigDstPort: 53}, {OrigDstPort: 30053}}
	if fmt.Sprint(f.ct.flows) != fmt.Sprint(want) {
		t.Fatalf("flows %v, want %v", f.ct.flows, want)
	}
	f.ct.flows = nil

	// One endpoint goes: its flows (ClusterIP and NodePort) are cleared.
	s.Endpoints = s.Endpoints[1:]
	f.p.Update([]Service{s})
	f.sync(t)
	gone := netip.MustParseAddr("10.244.1.1")
	want = []UDPFlow{{OrigDst: s.ClusterIP, OrigDstPort: 53, ReplySrc: gone}, {OrigDstPort: 30053, ReplySrc: gone}}
	if fmt.Sprint(f.ct.flows) != fmt.Sprint(want) {
		t.Fatalf("flows %v, want %v", f.ct.flows, want)
	}
}

func TestProxierRunHonoursMinSyncInterval(t *testing.T) {
	f := newProxierFixture(t)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.p.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
	}()

	<-f.clock.waits // Run waits for the first trigger or SyncPeriod
	f.p.Update([]Service{web()})
	<-f.clock.waits // synced and back to waiting
	first := len(f.ipt.takePayloads())
	if first == 0 {
		t.Fatal("the update was not applied")
	}
	for len(f.ipt.restored) > 0 {
		<-f.ipt.restored
	}

	// An update right away must wait out the rest of MinSyncInterval.
	f.clock.Advance(300 * time.Millisecond)
	s := web()
	s.Endpoints = s.Endpoints[:2]
	f.p.Update([]Service{s})
	if d := <-f.clock.waits; d != 700*time.Millisecond {
		t.Fatalf("Run waits %v, want the 700ms left of MinSyncInterval", d)
	}
	select {
	case tb := <-f.ipt.restored:
		t.Fatalf("synced %s before MinSyncInterval", tb)
	default:
	}
	f.clock.Advance(700 * time.Millisecond)
	if tb := <-f.ipt.restored; tb != "nat" {
		t.Fatalf("restored %s, want nat only", tb)
	}
	<-f.clock.waits
	// Nothing happens until SyncPeriod, then a periodic sync with the
	// checks (nothing to write).
	f.clock.Advance(30 * time.Second)
	<-f.clock.waits
	f.ipt.mu.Lock()
	n := len(f.ipt.payloads)
	f.ipt.mu.Unlock()
	if n != 1 {
		t.Fatalf("%d payloads after the first sync, want 1", n)
	}
}

func TestProxierRunRetriesAfterFailure(t *testing.T) {
	f := newProxierFixture(t)
	f.ipt.failNext = errors.New("iptables-restore: exit status 4")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- f.p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()
	<-f.clock.waits
	f.p.Update([]Service{web()})
	// The failed sync makes Run come back after MinSyncInterval, not
	// SyncPeriod, and the retry is a full sync that succeeds.
	if d := <-f.clock.waits; d != time.Second {
		t.Fatalf("after a failure Run waits %v, want MinSyncInterval", d)
	}
	if len(f.ipt.takePayloads()) != 0 {
		t.Fatal("a payload was recorded for the failed sync")
	}
	f.clock.Advance(time.Second)
	<-f.clock.waits
	ps := f.ipt.takePayloads()
	if len(ps) == 0 || !strings.Contains(strings.Join(ps, ""), ":SHOAL-SVC-0A") {
		t.Fatalf("retry did not apply the rules: %q", ps)
	}
}

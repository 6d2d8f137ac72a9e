package dns

import (
	"context"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/shoal-dev/shoal/svcproxy"
)

func services() []svcproxy.Service {
	ep := func(ip, host string, ready bool) svcproxy.Endpoint {
		return svcproxy.Endpoint{PodIP: netip.MustParseAddr(ip), Hostname: host, Ready: ready, Ports: map[string]int32{"pg": 5432}}
	}
	return []svcproxy.Service{
		{Namespace: "default", Name: "web", ClusterIP: netip.MustParseAddr("10.96.0.10"), Type: svcproxy.TypeClusterIP,
			Ports:     []svcproxy.ServicePort{{Name: "http", Protocol: svcproxy.TCP, Port: 80, TargetPort: svcproxy.TargetPort{Number: 8080}}},
			Endpoints: []svcproxy.Endpoint{ep("10.244.1.1", "", true)}},
		{Namespace: "data", Name: "db", Type: svcproxy.TypeClusterIP, // headless
			Ports:     []svcproxy.ServicePort{{Name: "pg", Protocol: svcproxy.TCP, Port: 5432, TargetPort: svcproxy.TargetPort{Name: "pg"}}},
			Endpoints: []svcproxy.Endpoint{ep("10.244.2.5", "db-1", true), ep("10.244.1.5", "db-0", true), ep("10.244.3.5", "db-2", false)}},
		{Namespace: "data", Name: "anon", Type: svcproxy.TypeClusterIP, // headless, pods without hostnames
			Ports:     []svcproxy.ServicePort{{Name: "dns", Protocol: svcproxy.UDP, Port: 53}},
			Endpoints: []svcproxy.Endpoint{ep("10.244.4.4", "", true)}},
	}
}

// startServer runs a Server on a random loopback port and returns its
// address.
func startServer(t testing.TB, cfg Config, svcs []svcproxy.Service) (*Server, string) {
	t.Helper()
	s, err := NewServer(cfg)
	if err != nil {
		t.Fatal(err)
	}
	s.Update(svcs)
	ctx, cancel := context.WithCancel(context.Background())
	addr := make(chan string, 1)
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, "127.0.0.1:0", func(a net.Addr) { addr <- a.String() }) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != context.Canceled {
			t.Errorf("Serve: %v", err)
		}
	})
	select {
	case a := <-addr:
		return s, a
	case err := <-done:
		t.Fatalf("Serve: %v", err)
	}
	return nil, ""
}

// fakeUpstream answers every A query with 192.0.2.1 (a documentation
// address: it is only data here).
func fakeUpstream(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &mdns.Server{PacketConn: pc, Handler: mdns.HandlerFunc(func(w mdns.ResponseWriter, r *mdns.Msg) {
		m := new(mdns.Msg)
		m.SetReply(r)
		m.Answer = []mdns.RR{&mdns.A{Hdr: mdns.RR_Header{Name: r.Question[0].Name, Rrtype: mdns.TypeA, Class: mdns.ClassINET, Ttl: 60}, A: net.IPv4(192, 0, 2, 1)}}
		w.WriteMsg(m)
	})}
	started := make(chan struct{})
	srv.NotifyStartedFunc = func() { close(started) }
	go srv.ActivateAndServe()
	<-started
	t.Cleanup(func() { srv.Shutdown() })
	return pc.LocalAddr().String()
}

func ask(t *testing.T, network, addr, name string, qtype uint16) *mdns.Msg {
	t.Helper()
	m := new(mdns.Msg)
	m.SetQuestion(name, qtype)
	c := &mdns.Client{Net: network, Timeout: 5 * time.Second}
	r, _, err := c.Exchange(m, addr)
	if err != nil {
		t.Fatalf("%s %s: %v", name, mdns.TypeToString[qtype], err)
	}
	return r
}

func answers(r *mdns.Msg) []string {
	var out []string
	for _, rr := range r.Answer {
		switch v := rr.(type) {
		case *mdns.A:
			out = append(out, v.A.String())
		case *mdns.SRV:
			out = append(out, v.Target+":"+itoa(v.Port))
		}
	}
	slices.Sort(out)
	return out
}

func itoa(p uint16) string { return strconv.Itoa(int(p)) }

func TestServerRecords(t *testing.T) {
	up := fakeUpstream(t)
	_, addr := startServer(t, Config{Upstreams: []string{up}}, services())
	cases := []struct {
		name  string
		qtype uint16
		rcode int
		want  []string
	}{
		{"web.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.96.0.10"}},
		{"WEB.Default.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.96.0.10"}},
		{"_http._tcp.web.default.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, []string{"web.default.svc.cluster.local.:80"}},
		{"web.default.svc.cluster.local.", mdns.TypeAAAA, mdns.RcodeSuccess, nil},
		{"db.data.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.244.1.5", "10.244.2.5"}},
		{"db-0.db.data.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.244.1.5"}},
		{"db-2.db.data.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"_pg._tcp.db.data.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, []string{"db-0.db.data.svc.cluster.local.:5432", "db-1.db.data.svc.cluster.local.:5432"}},
		{"_dns._udp.anon.data.svc.cluster.local.", mdns.TypeSRV, mdns.RcodeSuccess, []string{"10-244-4-4.anon.data.svc.cluster.local.:53"}},
		{"10-244-4-4.anon.data.svc.cluster.local.", mdns.TypeA, mdns.RcodeSuccess, []string{"10.244.4.4"}},
		{"nope.default.svc.cluster.local.", mdns.TypeA, mdns.RcodeNameError, nil},
		{"example.com.", mdns.TypeA, mdns.RcodeSuccess, []string{"192.0.2.1"}},
	}
	for _, c := range cases {
		for _, network := range []string{"udp", "tcp"} {
			r := ask(t, network, addr, c.name, c.qtype)
			if r.Rcode != c.rcode || !slices.Equal(answers(r), c.want) {
				t.Errorf("%s %s over %s: rcode %s answers %v, want %s %v", c.name, mdns.TypeToString[c.qtype], network,
					mdns.RcodeToString[r.Rcode], answers(r), mdns.RcodeToString[c.rcode], c.want)
			}
		}
	}
	// SRV answers carry the targets' addresses.
	r := ask(t, "udp", addr, "_pg._tcp.db.data.svc.cluster.local.", mdns.TypeSRV)
	if len(r.Extra) != 2 {
		t.Errorf("SRV additional section: %v", r.Extra)
	}
}

func TestServerUpdate(t *testing.T) {
	s, addr := startServer(t, Config{}, services())
	svcs := services()
	svcs[1].Endpoints[0].Ready = false // db-1
	s.Update(svcs)
	if got := answers(ask(t, "udp", addr, "db.data.svc.cluster.local.", mdns.TypeA)); !slices.Equal(got, []string{"10.244.1.5"}) {
		t.Fatalf("after db-1 turned unready: %v", got)
	}
	svcs[1].PublishNotReadyAddresses = true
	s.Update(svcs)
	if got := answers(ask(t, "udp", addr, "db.data.svc.cluster.local.", mdns.TypeA)); len(got) != 3 {
		t.Fatalf("publishNotReadyAddresses: %v", got)
	}
}

func TestServerUpstreamDown(t *testing.T) {
	// A loopback port nobody listens on: the exchange fails at once.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := pc.LocalAddr().String()
	pc.Close()
	_, addr := startServer(t, Config{Upstreams: []string{dead}, UpstreamTimeout: 5 * time.Second}, nil)
	if r := ask(t, "udp", addr, "example.com.", mdns.TypeA); r.Rcode != mdns.RcodeServerFailure {
		t.Fatalf("rcode %s, want SERVFAIL", mdns.RcodeToString[r.Rcode])
	}
}

func TestResolvConf(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	if err := os.WriteFile(p, []byte("search example.org\nnameserver 192.0.2.53\nnameserver 192.0.2.54\noptions ndots:1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	ups, err := UpstreamsFromResolvConf(p)
	if err != nil || !slices.Equal(ups, []string{"192.0.2.53:53", "192.0.2.54:53"}) {
		t.Fatalf("upstreams %v, %v", ups, err)
	}
	want := "search web.svc.cluster.local svc.cluster.local cluster.local\nnameserver 10.244.1.1\noptions ndots:5\n"
	if got := PodResolvConf("10.244.1.1", "web", ""); got != want {
		t.Fatalf("PodResolvConf = %q", got)
	}
	if _, err := NewServer(Config{Upstreams: []string{"192.0.2.53"}}); err == nil {
		t.Fatal("upstream without a port accepted")
	}
}

// BenchmarkQueriesLoopback measures A queries per second over UDP on
// loopback with 10,000 Services loaded, from 8 concurrent clients.
func BenchmarkQueriesLoopback(b *testing.B) {
	var svcs []svcproxy.Service
	for i := range 10000 {
		svcs = append(svcs, svcproxy.Service{Namespace: "ns", Name: "svc" + strconv.Itoa(i),
			ClusterIP: netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}), Type: svcproxy.TypeClusterIP})
	}
	_, addr := startServer(b, Config{}, svcs)
	q := new(mdns.Msg)
	q.SetQuestion("svc1234.ns.svc.cluster.local.", mdns.TypeA)
	wire, err := q.Pack()
	if err != nil {
		b.Fatal(err)
	}
	const clients = 8
	var wg sync.WaitGroup
	work := make(chan struct{}, 1024)
	b.ResetTimer()
	start := time.Now()
	for range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, err := net.Dial("udp", addr)
			if err != nil {
				b.Error(err)
				return
			}
			defer c.Close()
			buf := make([]byte, 512)
			for range work {
				c.SetDeadline(time.Now().Add(5 * time.Second))
				if _, err := c.Write(wire); err != nil {
					b.Error(err)
					return
				}
				n, err := c.Read(buf)
				if err != nil || n < 12 {
					b.Errorf("read: %v", err)
					return
				}
			}
		}()
	}
	for range b.N {
		work <- struct{}{}
	}
	close(work)
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "queries/s")
}

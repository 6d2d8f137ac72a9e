package svcproxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// Real iptables in throwaway namespaces:
//
//	client 10.251.1.2 ── 10.251.1.1 [node] br0 10.251.0.1 ── ep1..ep3 10.251.0.11-13
//
// The node namespace holds the rules. The cluster CIDR is 10.251.0.0/16, so
// the client counts as a pod (its source is kept) except on the NodePort.

type netnsCluster struct {
	node, client string
	eps          []string
	mode         string // "iptables" or "nftables"
	proxier      testProxier
}

// testProxier is what both backends' proxiers offer the tests.
type testProxier interface {
	Update([]Service)
	Sync(context.Context) (SyncResult, error)
}

var (
	_ testProxier = (*Proxier)(nil)
	_ testProxier = (*NFTProxier)(nil)
)

// backends are the proxy modes the netns tests run against.
var backends = []string{"iptables", "nftables"}

// hostTablesUnchanged fails the test if the host's nftables tables differ
// at the end from what they were at the start: everything must happen in
// the test's namespaces.
func hostTablesUnchanged(t *testing.T) {
	t.Helper()
	list := func() string {
		out, err := exec.Command("nft", "list", "tables").CombinedOutput()
		if err != nil {
			return "nft list tables: " + err.Error() + ": " + string(out)
		}
		return string(out)
	}
	before := list()
	t.Cleanup(func() {
		if after := list(); after != before {
			t.Errorf("host nftables tables changed:\nbefore:\n%s\nafter:\n%s", before, after)
		}
	})
}

const (
	svcIP      = "10.251.100.10"
	emptyIP    = "10.251.100.11"
	nodeAddr   = "10.251.1.1"
	clientAddr = "10.251.1.2"
)

// newNetnsCluster builds the namespaces above and a proxier of the given
// mode for the node; opts adjust its configuration before the proxier is
// made.
func newNetnsCluster(t *testing.T, mode string, opts ...func(*ProxierConfig)) *netnsCluster {
	requireNetAdmin(t)
	if mode == "nftables" {
		requireNFT(t)
		hostTablesUnchanged(t)
	}
	c := &netnsCluster{node: newNetns(t, "node"), client: newNetns(t, "client"), mode: mode}
	sh(t, "ip", "netns", "exec", c.node, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err == nil {
		// br_netfilter is in the kernel: as on a real node (the agent sets
		// it), bridged traffic passes the IPv4 hooks, whatever the default
		// of new namespaces.
		sh(t, "ip", "netns", "exec", c.node, "sysctl", "-qw", "net.bridge.bridge-nf-call-iptables=1")
	}
	sh(t, "ip", "-n", c.node, "link", "add", "br0", "type", "bridge")
	sh(t, "ip", "-n", c.node, "addr", "add", "10.251.0.1/24", "dev", "br0")
	sh(t, "ip", "-n", c.node, "link", "set", "br0", "up")
	// A real node has a default route; ClusterIPs without endpoints are
	// routed there (and rejected by our filter rules before they leave).
	sh(t, "ip", "-n", c.node, "link", "add", "uplink", "type", "veth", "peer", "name", "uplink-peer")
	sh(t, "ip", "-n", c.node, "link", "set", "uplink", "up")
	sh(t, "ip", "-n", c.node, "link", "set", "uplink-peer", "up")
	sh(t, "ip", "-n", c.node, "route", "add", "default", "dev", "uplink")
	for i := 1; i <= 3; i++ {
		ns := newNetns(t, fmt.Sprintf("ep%d", i))
		c.eps = append(c.eps, ns)
		host := fmt.Sprintf("vep%d", i)
		sh(t, "ip", "-n", c.node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
		sh(t, "ip", "-n", c.node, "link", "set", host, "master", "br0", "up")
		// As the runtime's CNI bridge does: with br_netfilter, a pod
		// reaching itself through a Service is bridged back out of its
		// own port.
		sh(t, "ip", "-n", c.node, "link", "set", host, "type", "bridge_slave", "hairpin", "on")
		sh(t, "ip", "-n", ns, "addr", "add", fmt.Sprintf("10.251.0.1%d/24", i), "dev", "eth0")
		sh(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		sh(t, "ip", "-n", ns, "route", "add", "default", "via", "10.251.0.1")
		echoServer(t, ns, fmt.Sprintf("ep%d", i), 8080, 5353)
	}
	sh(t, "ip", "-n", c.node, "link", "add", "vcl", "type", "veth", "peer", "name", "eth0", "netns", c.client)
	sh(t, "ip", "-n", c.node, "addr", "add", nodeAddr+"/24", "dev", "vcl")
	sh(t, "ip", "-n", c.node, "link", "set", "vcl", "up")
	sh(t, "ip", "-n", c.client, "addr", "add", clientAddr+"/24", "dev", "eth0")
	sh(t, "ip", "-n", c.client, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", c.client, "route", "add", "default", "via", nodeAddr)

	// SyncPeriod of 1ns: every sync checks the canary (and the jumps).
	cfg := ProxierConfig{Node: Config{NodeName: "node", ClusterCIDR: netip.MustParsePrefix("10.251.0.0/16")},
		Log: testLogger(t), SyncPeriod: time.Nanosecond}
	for _, o := range opts {
		o(&cfg)
	}
	var err error
	if mode == "nftables" {
		cfg.NFT = NewNetlinkNFT()
		c.proxier, err = NewNFTProxier(cfg)
	} else {
		if cfg.Runner, err = NewIPTables(BackendAuto); err != nil {
			t.Skipf("iptables unusable: %v", err)
		}
		c.proxier, err = NewProxier(cfg)
	}
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (c *netnsCluster) sync(t *testing.T, svcs []Service) SyncResult {
	t.Helper()
	c.proxier.Update(svcs)
	var res SyncResult
	inNetns(t, c.node, func() {
		var err error
		if res, err = c.proxier.Sync(context.Background()); err != nil {
			t.Fatal(err)
		}
	})
	return res
}

func echoService() Service {
	s := Service{
		Namespace: "default", Name: "echo", ClusterIP: netip.MustParseAddr(svcIP), Type: TypeNodePort,
		Ports: []ServicePort{
			{Name: "tcp", Protocol: TCP, Port: 80, TargetPort: TargetPort{Name: "echo"}, NodePort: 30080},
			{Name: "udp", Protocol: UDP, Port: 53, TargetPort: TargetPort{Number: 5353}},
		},
	}
	for i := 1; i <= 3; i++ {
		s.Endpoints = append(s.Endpoints, Endpoint{PodIP: netip.MustParseAddr(fmt.Sprintf("10.251.0.1%d", i)), NodeName: "node", Ready: true,
			Ports: map[string]int32{"echo": 8080}})
	}
	return s
}

func emptyService() Service {
	return Service{Namespace: "default", Name: "empty", ClusterIP: netip.MustParseAddr(emptyIP), Type: TypeClusterIP,
		Ports: []ServicePort{{Name: "tcp", Protocol: TCP, Port: 80}, {Name: "udp", Protocol: UDP, Port: 53}}}
}

// ask opens one connection from the client namespace and returns the
// endpoint's answer, split into its id and the source it saw.
func (c *netnsCluster) ask(t *testing.T, network, addr string) (id, seen string, err error) {
	t.Helper()
	return askFrom(t, c.client, network, addr)
}

// askFrom is ask from namespace ns.
func askFrom(t *testing.T, ns, network, addr string) (id, seen string, err error) {
	t.Helper()
	var conn net.Conn
	inNetns(t, ns, func() {
		// The timeout only stops a broken test from hanging; no result
		// depends on it.
		conn, err = net.DialTimeout(network, addr, 10*time.Second)
	})
	if err != nil {
		return "", "", err
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	if network == "udp4" {
		if _, err := conn.Write([]byte("hi")); err != nil {
			return "", "", err
		}
	}
	line, err := readLine(conn)
	if err != nil {
		return "", "", err
	}
	id, seen, _ = strings.Cut(line, " ")
	return id, seen, nil
}

func (c *netnsCluster) spread(t *testing.T, network, addr string, n int, wantSeen string) map[string]int {
	t.Helper()
	counts := map[string]int{}
	for range n {
		id, seen, err := c.ask(t, network, addr)
		if err != nil {
			t.Fatalf("%s %s: %v", network, addr, err)
		}
		if seen != wantSeen {
			t.Fatalf("%s %s: endpoint saw source %s, want %s", network, addr, seen, wantSeen)
		}
		counts[id]++
	}
	return counts
}

// roughlyEven fails unless each id got at least min of the connections.
// With n=300 over 3 endpoints the expected count is 100 (sd 8.2), so 50 is
// six standard deviations away: a real skew fails, chance does not.
func roughlyEven(t *testing.T, what string, counts map[string]int, ids []string, min int) {
	t.Helper()
	for _, id := range ids {
		if counts[id] < min {
			t.Errorf("%s: spread %v, want at least %d each for %v", what, counts, min, ids)
			return
		}
	}
}

func TestNetnsProxy(t *testing.T) {
	for _, mode := range backends {
		t.Run(mode, func(t *testing.T) { testNetnsProxy(t, mode) })
	}
}

func testNetnsProxy(t *testing.T, mode string) {
	c := newNetnsCluster(t, mode)
	all := []string{"ep1", "ep2", "ep3"}
	svc := echoService()
	if res := c.sync(t, []Service{svc, emptyService()}); !res.Full {
		t.Fatalf("first sync not full: %+v", res)
	}

	t.Run("clusterIP spreads evenly and keeps the pod's source", func(t *testing.T) {
		roughlyEven(t, "tcp", c.spread(t, "tcp4", svcIP+":80", 300, clientAddr), all, 50)
	})
	t.Run("nodePort spreads and masquerades", func(t *testing.T) {
		roughlyEven(t, "nodeport", c.spread(t, "tcp4", nodeAddr+":30080", 150, "10.251.0.1"), all, 20)
	})
	t.Run("udp", func(t *testing.T) {
		roughlyEven(t, "udp", c.spread(t, "udp4", svcIP+":53", 150, clientAddr), all, 20)
	})
	t.Run("no endpoint: refused at once", func(t *testing.T) {
		if _, _, err := c.ask(t, "tcp4", emptyIP+":80"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("tcp to a Service without endpoints: %v, want connection refused", err)
		}
		if _, _, err := c.ask(t, "udp4", emptyIP+":53"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("udp to a Service without endpoints: %v, want connection refused (port unreachable)", err)
		}
	})
	t.Run("unready endpoint gets nothing", func(t *testing.T) {
		s := echoService()
		s.Endpoints[1].Ready = false
		if res := c.sync(t, []Service{s, emptyService()}); res.Full || res.Written == 0 {
			t.Fatalf("sync %+v, want an incremental one", res)
		}
		counts := c.spread(t, "tcp4", svcIP+":80", 150, clientAddr)
		if counts["ep2"] != 0 {
			t.Fatalf("unready ep2 got %d connections", counts["ep2"])
		}
		roughlyEven(t, "without ep2", counts, []string{"ep1", "ep3"}, 40)
	})
	t.Run("session affinity sticks", func(t *testing.T) {
		s := echoService()
		s.SessionAffinity = AffinityClientIP
		c.sync(t, []Service{s, emptyService()})
		counts := c.spread(t, "tcp4", svcIP+":80", 30, clientAddr)
		if len(counts) != 1 {
			t.Fatalf("with ClientIP affinity one client reached %v", counts)
		}
	})
	t.Run("removed endpoint loses its UDP flows", func(t *testing.T) {
		c.sync(t, []Service{echoService(), emptyService()})
		var conn net.Conn
		var err error
		inNetns(t, c.client, func() { conn, err = net.Dial("udp4", svcIP+":53") })
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		askOn := func() string {
			conn.SetDeadline(time.Now().Add(10 * time.Second))
			if _, err := conn.Write([]byte("hi")); err != nil {
				t.Fatal(err)
			}
			line, err := readLine(conn)
			if err != nil {
				t.Fatal(err)
			}
			id, _, _ := strings.Cut(line, " ")
			return id
		}
		first := askOn()
		if again := askOn(); again != first {
			t.Fatalf("one UDP flow went to %s then %s", first, again)
		}
		// The endpoint leaves the Service but keeps running: only the
		// conntrack clean-up can move the flow.
		s := echoService()
		for i := range s.Endpoints {
			if fmt.Sprintf("ep%d", i+1) == first {
				s.Endpoints = append(s.Endpoints[:i:i], s.Endpoints[i+1:]...)
				break
			}
		}
		if res := c.sync(t, []Service{s, emptyService()}); res.Flows == 0 {
			t.Fatalf("sync %+v cleared no UDP flow", res)
		}
		if now := askOn(); now == first {
			t.Fatalf("the flow still goes to removed endpoint %s", first)
		}
	})
	t.Run("an outside flush is repaired", func(t *testing.T) {
		flushes := [][]string{{"iptables", "-w", "-t", "nat", "-F"}, {"iptables", "-w", "-t", "nat", "-X"}}
		if mode == "nftables" {
			flushes = [][]string{{"nft", "flush", "table", "ip", NFTTable}}
		}
		for _, f := range flushes {
			sh(t, append([]string{"ip", "netns", "exec", c.node}, f...)...)
		}
		if res := c.sync(t, []Service{echoService(), emptyService()}); !res.Full {
			t.Fatalf("sync after a flush: %+v, want full", res)
		}
		roughlyEven(t, "after flush", c.spread(t, "tcp4", svcIP+":80", 90, clientAddr), all, 10)
	})
	if mode == "nftables" {
		t.Run("a deleted table is recreated", func(t *testing.T) {
			sh(t, "ip", "netns", "exec", c.node, "nft", "delete", "table", "ip", NFTTable)
			if res := c.sync(t, []Service{echoService(), emptyService()}); !res.Full {
				t.Fatalf("sync after the table was deleted: %+v, want full", res)
			}
			roughlyEven(t, "after delete", c.spread(t, "tcp4", svcIP+":80", 90, clientAddr), all, 10)
		})
		t.Run("nothing outside our table", func(t *testing.T) {
			out, err := exec.Command("ip", "netns", "exec", c.node, "nft", "list", "tables").CombinedOutput()
			if err != nil {
				t.Fatalf("nft list tables: %v: %s", err, out)
			}
			if got := strings.TrimSpace(string(out)); got != "table ip "+NFTTable {
				t.Errorf("tables in the node namespace:\n%s\nwant only table ip %s", got, NFTTable)
			}
		})
		t.Run("deleting the table removes everything", func(t *testing.T) {
			var err error
			inNetns(t, c.node, func() { err = DeleteNFTTable() })
			if err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command("ip", "netns", "exec", c.node, "nft", "list", "ruleset").CombinedOutput()
			if err != nil || strings.TrimSpace(string(out)) != "" {
				t.Errorf("ruleset left: %v\n%s", err, out)
			}
			if _, _, err := c.ask(t, "tcp4", svcIP+":80"); err == nil {
				t.Errorf("the ClusterIP still answers without the table")
			}
		})
		return
	}
	t.Run("nothing outside our chains changed", func(t *testing.T) {
		out, err := exec.Command("ip", "netns", "exec", c.node, "iptables-save").Output()
		if err != nil {
			t.Fatal(err)
		}
		jumps := 0
		for _, l := range strings.Split(string(out), "\n") {
			if strings.HasPrefix(l, "-A ") && !strings.HasPrefix(l, "-A SHOAL-") {
				if !strings.Contains(l, "-j SHOAL-") {
					t.Errorf("rule outside our chains: %s", l)
				}
				jumps++
			}
		}
		if jumps != 6 {
			t.Errorf("%d jumps from built-in chains, want 6:\n%s", jumps, out)
		}
	})
	t.Run("cleanup removes everything", func(t *testing.T) {
		ipt, err := NewIPTables(BackendAuto)
		if err != nil {
			t.Fatal(err)
		}
		inNetns(t, c.node, func() { err = ipt.Cleanup(context.Background()) })
		if err != nil {
			t.Fatal(err)
		}
		out, err := exec.Command("ip", "netns", "exec", c.node, "iptables-save").Output()
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(string(out), "SHOAL") {
			t.Errorf("left after cleanup:\n%s", out)
		}
	})
}

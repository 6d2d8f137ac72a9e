package svcproxy

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"
)

// The paths the tracer and the renderer tests can only describe, through
// real rules in the namespaces of newNetnsCluster, for both backends:
//
//   - hairpin: an endpoint reaching a Service that selects only itself;
//   - externalTrafficPolicy Local on a NodePort: answered by the local
//     endpoint only, with the client's source kept, and refused by a node
//     without a local endpoint;
//   - egress masquerade: a pod reaching an address outside the cluster CIDR
//     leaves with the node's address, while pod-to-pod traffic keeps its
//     source.
//
// The cluster gets one more namespace, "outside" (10.252.0.2, routed back
// through the node so that a missing masquerade shows as a wrong source
// rather than a lost reply):
//
//	outside 10.252.0.2 ── 10.252.0.1 [node]

const (
	hairpinIP   = "10.251.100.20"
	localIP     = "10.251.100.21"
	remoteIP    = "10.251.100.22"
	bridgeAddr  = "10.251.0.1" // the node's address on br0: what masquerade gives pods' peers
	outsideNode = "10.252.0.1"
	outsideAddr = "10.252.0.2"
)

func TestNetnsPaths(t *testing.T) {
	for _, mode := range backends {
		t.Run(mode, func(t *testing.T) { testNetnsPaths(t, mode) })
	}
}

func addr(s string) netip.Addr { return netip.MustParseAddr(s) }

// pathServices: "hairpin" selects ep1 only; "local" (policy Local, TCP and
// UDP NodePorts) has ep1 on this node and ep2, ep3 elsewhere; "remote"
// (policy Local) has no endpoint on this node.
func pathServices() []Service {
	epOn := func(i int, node string) Endpoint {
		return Endpoint{PodIP: addr(fmt.Sprintf("10.251.0.1%d", i)), NodeName: node, Ready: true, Ports: map[string]int32{"echo": 8080}}
	}
	ports := func(tcpNode, udpNode int32) []ServicePort {
		return []ServicePort{
			{Name: "tcp", Protocol: TCP, Port: 80, TargetPort: TargetPort{Name: "echo"}, NodePort: tcpNode},
			{Name: "udp", Protocol: UDP, Port: 53, TargetPort: TargetPort{Number: 5353}, NodePort: udpNode},
		}
	}
	return []Service{
		{Namespace: "default", Name: "hairpin", ClusterIP: addr(hairpinIP), Type: TypeClusterIP,
			Ports: ports(0, 0), Endpoints: []Endpoint{epOn(1, "node")}},
		{Namespace: "default", Name: "local", ClusterIP: addr(localIP), Type: TypeNodePort, ExternalTrafficPolicy: PolicyLocal,
			Ports: ports(30081, 30053), Endpoints: []Endpoint{epOn(1, "node"), epOn(2, "other"), epOn(3, "other")}},
		{Namespace: "default", Name: "remote", ClusterIP: addr(remoteIP), Type: TypeNodePort, ExternalTrafficPolicy: PolicyLocal,
			Ports: ports(30082, 30054), Endpoints: []Endpoint{epOn(2, "other"), epOn(3, "other")}},
	}
}

func testNetnsPaths(t *testing.T, mode string) {
	c := newNetnsCluster(t, mode, func(cfg *ProxierConfig) { cfg.Node.MasqueradeEgress = true })
	outside := newNetns(t, "outside")
	sh(t, "ip", "-n", c.node, "link", "add", "vout", "type", "veth", "peer", "name", "eth0", "netns", outside)
	sh(t, "ip", "-n", c.node, "addr", "add", outsideNode+"/24", "dev", "vout")
	sh(t, "ip", "-n", c.node, "link", "set", "vout", "up")
	sh(t, "ip", "-n", outside, "addr", "add", outsideAddr+"/24", "dev", "eth0")
	sh(t, "ip", "-n", outside, "link", "set", "eth0", "up")
	sh(t, "ip", "-n", outside, "route", "add", "default", "via", outsideNode)
	echoServer(t, outside, "outside", 8080, 5353)
	c.sync(t, pathServices())

	// expect asks once from ns and wants the answer from id, seeing seen.
	expect := func(t *testing.T, ns, network, to, id, seen string) {
		t.Helper()
		gotID, gotSeen, err := askFrom(t, ns, network, to)
		if err != nil {
			t.Fatalf("%s %s: %v", network, to, err)
		}
		if gotID != id || gotSeen != seen {
			t.Fatalf("%s %s: answered by %s seeing source %s, want %s seeing %s", network, to, gotID, gotSeen, id, seen)
		}
	}

	t.Run("hairpin: an endpoint reaching itself through its Service", func(t *testing.T) {
		// Without the masquerade the endpoint would get a packet from
		// its own address (a martian) and never answer.
		for _, network := range []string{"tcp4", "udp4"} {
			port := "80"
			if network == "udp4" {
				port = "53"
			}
			expect(t, c.eps[0], network, hairpinIP+":"+port, "ep1", bridgeAddr)
		}
	})

	t.Run("policy Local: the local endpoint only, client source kept", func(t *testing.T) {
		for range 30 {
			expect(t, c.client, "tcp4", nodeAddr+":30081", "ep1", clientAddr)
		}
		for range 10 {
			expect(t, c.client, "udp4", nodeAddr+":30053", "ep1", clientAddr)
		}
	})
	t.Run("policy Local: the node's own traffic to its NodePort is masqueraded", func(t *testing.T) {
		expect(t, c.node, "tcp4", nodeAddr+":30081", "ep1", bridgeAddr)
	})
	t.Run("policy Local: the ClusterIP keeps every endpoint", func(t *testing.T) {
		roughlyEven(t, "local clusterIP", c.spread(t, "tcp4", localIP+":80", 90, clientAddr), []string{"ep1", "ep2", "ep3"}, 10)
		roughlyEven(t, "remote clusterIP", c.spread(t, "tcp4", remoteIP+":80", 60, clientAddr), []string{"ep2", "ep3"}, 10)
	})
	t.Run("policy Local: refused by a node without a local endpoint", func(t *testing.T) {
		if id, seen, err := c.ask(t, "tcp4", nodeAddr+":30082"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("tcp NodePort without a local endpoint: answered by %q (source %q), err %v; want connection refused", id, seen, err)
		}
		if id, seen, err := c.ask(t, "udp4", nodeAddr+":30054"); !errors.Is(err, syscall.ECONNREFUSED) {
			t.Fatalf("udp NodePort without a local endpoint: answered by %q (source %q), err %v; want connection refused", id, seen, err)
		}
	})

	t.Run("egress: a pod reaching outside the cluster CIDR leaves as the node", func(t *testing.T) {
		expect(t, c.eps[1], "tcp4", outsideAddr+":8080", "outside", outsideNode)
		expect(t, c.eps[1], "udp4", outsideAddr+":5353", "outside", outsideNode)
	})
	t.Run("egress: pod to pod keeps its source", func(t *testing.T) {
		// The client is in the cluster CIDR and routed through the node.
		expect(t, c.client, "tcp4", "10.251.0.12:8080", "ep2", clientAddr)
		expect(t, c.client, "udp4", "10.251.0.12:5353", "ep2", clientAddr)
	})
}

// TestNetnsFullSyncOverLiveRules: a full sync (every FullSyncPeriod, or
// after a failure) rewrites rules that are live, not only an empty or
// flushed table; the Services keep answering and ClientIP affinity keeps
// its clients across it, also when another endpoint leaves. Twelve client
// addresses, each sticking to an endpoint: were the affinity state lost,
// all twelve would find their endpoint again with probability 3^-12.
func TestNetnsFullSyncOverLiveRules(t *testing.T) {
	for _, mode := range backends {
		t.Run(mode, func(t *testing.T) {
			c := newNetnsCluster(t, mode, func(cfg *ProxierConfig) { cfg.FullSyncPeriod = time.Nanosecond })
			var clients []string
			for i := range 12 {
				a := fmt.Sprintf("10.251.1.%d", 20+i)
				sh(t, "ip", "-n", c.client, "addr", "add", a+"/24", "dev", "eth0")
				clients = append(clients, a)
			}
			s := echoService()
			s.SessionAffinity = AffinityClientIP
			c.sync(t, []Service{s, emptyService()})
			ask := func(client string) string {
				t.Helper()
				var conn net.Conn
				var err error
				inNetns(t, c.client, func() {
					d := net.Dialer{Timeout: 10 * time.Second, LocalAddr: &net.TCPAddr{IP: net.ParseIP(client)}}
					conn, err = d.Dial("tcp4", svcIP+":80")
				})
				if err != nil {
					t.Fatalf("from %s: %v", client, err)
				}
				defer conn.Close()
				conn.SetDeadline(time.Now().Add(10 * time.Second))
				line, err := readLine(conn)
				if err != nil {
					t.Fatalf("from %s: %v", client, err)
				}
				id, seen, _ := strings.Cut(line, " ")
				if seen != client {
					t.Fatalf("from %s: endpoint saw %s", client, seen)
				}
				return id
			}
			sticky := map[string]string{}
			for _, cl := range clients {
				sticky[cl] = ask(cl)
			}
			check := func(what, gone string) {
				t.Helper()
				for _, cl := range clients {
					id := ask(cl)
					if sticky[cl] != gone && id != sticky[cl] || id == gone {
						t.Fatalf("%s: client %s went to %s, was on %s (gone: %q)", what, cl, id, sticky[cl], gone)
					}
				}
				if _, _, err := c.ask(t, "tcp4", emptyIP+":80"); !errors.Is(err, syscall.ECONNREFUSED) {
					t.Fatalf("%s: tcp to a Service without endpoints: %v, want connection refused", what, err)
				}
			}
			if res := c.sync(t, []Service{s, emptyService()}); !res.Full {
				t.Fatalf("second sync %+v, want full", res)
			}
			check("after a full sync over live rules", "")
			s.Endpoints = s.Endpoints[:2]
			if res := c.sync(t, []Service{s, emptyService()}); !res.Full {
				t.Fatalf("third sync %+v, want full", res)
			}
			check("after ep3 left", "ep3")
		})
	}
}

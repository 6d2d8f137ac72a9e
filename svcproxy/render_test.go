package svcproxy

import (
	"bytes"
	"math/rand/v2"
	"net/netip"
	"strings"
	"testing"
	"time"
)

var (
	testNode   = "n1"
	nodeIP     = netip.MustParseAddr("192.168.50.10")
	podOnN1    = netip.MustParseAddr("10.244.1.9") // a client pod on this node
	podOnN2    = netip.MustParseAddr("10.244.2.9")
	outsideIP  = netip.MustParseAddr("172.16.0.5")
	testConfig = Config{NodeName: testNode, ClusterCIDR: netip.MustParsePrefix("10.244.0.0/16")}
	testLocal  = node{local: map[netip.Addr]bool{nodeIP: true, netip.MustParseAddr("127.0.0.1"): true}}
)

func ep(ip, node string, ready bool, ports ...any) Endpoint {
	e := Endpoint{PodIP: netip.MustParseAddr(ip), NodeName: node, Ready: ready}
	for i := 0; i+1 < len(ports); i += 2 {
		if e.Ports == nil {
			e.Ports = map[string]int32{}
		}
		e.Ports[ports[i].(string)] = int32(ports[i+1].(int))
	}
	return e
}

func web() Service {
	return Service{
		Namespace: "default", Name: "web", ClusterIP: netip.MustParseAddr("10.96.0.10"), Type: TypeClusterIP,
		Ports: []ServicePort{{Name: "http", Protocol: TCP, Port: 80, TargetPort: TargetPort{Number: 8080}}},
		Endpoints: []Endpoint{
			ep("10.244.1.1", "n1", true), ep("10.244.2.1", "n2", true), ep("10.244.3.1", "n3", true),
		},
	}
}

func tcpTo(src netip.Addr, dst string, port int) packet {
	return packet{src: src, dst: netip.MustParseAddr(dst), proto: "tcp", port: port}
}

func full(r *Ruleset) [][]byte {
	return [][]byte{r.NAT.Payload(r.NAT.Chains(), nil), r.Filter.Payload(r.Filter.Chains(), nil)}
}

func TestRenderTrace(t *testing.T) {
	third := 1.0 / 3
	cases := []struct {
		name   string
		svcs   func() []Service
		pkt    packet
		want   map[string]float64
		errors int
	}{
		{"clusterIP from a pod: even split, source kept", func() []Service { return []Service{web()} },
			tcpTo(podOnN2, "10.96.0.10", 80),
			map[string]float64{"10.244.1.1:8080": third, "10.244.2.1:8080": third, "10.244.3.1:8080": third}, 0},
		{"clusterIP from outside the cluster CIDR is masqueraded", func() []Service { return []Service{web()} },
			tcpTo(outsideIP, "10.96.0.10", 80),
			map[string]float64{"10.244.1.1:8080 masq": third, "10.244.2.1:8080 masq": third, "10.244.3.1:8080 masq": third}, 0},
		{"from the node itself is masqueraded", func() []Service { return []Service{web()} },
			tcpTo(nodeIP, "10.96.0.10", 80),
			map[string]float64{"10.244.1.1:8080 masq": third, "10.244.2.1:8080 masq": third, "10.244.3.1:8080 masq": third}, 0},
		{"hairpin: an endpoint reaching itself is masqueraded, others not", func() []Service { return []Service{web()} },
			tcpTo(netip.MustParseAddr("10.244.1.1"), "10.96.0.10", 80),
			map[string]float64{"10.244.1.1:8080 masq": third, "10.244.2.1:8080": third, "10.244.3.1:8080": third}, 0},
		{"other port and other address pass untouched", func() []Service { return []Service{web()} },
			tcpTo(podOnN2, "10.96.0.10", 81), map[string]float64{"pass": 1}, 0},
		{"same last byte, other address passes", func() []Service { return []Service{web()} },
			tcpTo(podOnN2, "10.96.7.10", 80), map[string]float64{"pass": 1}, 0},
		{"udp to a tcp port passes", func() []Service { return []Service{web()} },
			packet{src: podOnN2, dst: netip.MustParseAddr("10.96.0.10"), proto: "udp", port: 80}, map[string]float64{"pass": 1}, 0},
		{"unready endpoints get nothing", func() []Service {
			s := web()
			s.Endpoints[1].Ready = false
			return []Service{s}
		}, tcpTo(podOnN2, "10.96.0.10", 80), map[string]float64{"10.244.1.1:8080": 0.5, "10.244.3.1:8080": 0.5}, 0},
		{"publishNotReadyAddresses keeps them", func() []Service {
			s := web()
			s.Endpoints[1].Ready = false
			s.PublishNotReadyAddresses = true
			return []Service{s}
		}, tcpTo(podOnN2, "10.96.0.10", 80), map[string]float64{"10.244.1.1:8080": third, "10.244.2.1:8080": third, "10.244.3.1:8080": third}, 0},
		{"no ready endpoint: tcp reset", func() []Service {
			s := web()
			for i := range s.Endpoints {
				s.Endpoints[i].Ready = false
			}
			return []Service{s}
		}, tcpTo(podOnN2, "10.96.0.10", 80), map[string]float64{"reject tcp-reset": 1}, 0},
		{"no endpoint at all, udp: port unreachable", func() []Service {
			s := web()
			s.Ports[0].Protocol = UDP
			s.Endpoints = nil
			return []Service{s}
		}, packet{src: podOnN2, dst: netip.MustParseAddr("10.96.0.10"), proto: "udp", port: 80}, map[string]float64{"reject icmp-port-unreachable": 1}, 0},
		{"named targetPort resolved per endpoint; endpoints without it skipped", func() []Service {
			s := web()
			s.Ports[0].TargetPort = TargetPort{Name: "web"}
			s.Endpoints = []Endpoint{ep("10.244.1.1", "n1", true, "web", 8081), ep("10.244.2.1", "n2", true, "web", 9090), ep("10.244.3.1", "n3", true, "other", 1)}
			return []Service{s}
		}, tcpTo(podOnN2, "10.96.0.10", 80), map[string]float64{"10.244.1.1:8081": 0.5, "10.244.2.1:9090": 0.5}, 0},
		{"second port, udp, default targetPort", func() []Service {
			s := web()
			s.Ports = append(s.Ports, ServicePort{Name: "dns", Protocol: UDP, Port: 53})
			return []Service{s}
		}, packet{src: podOnN2, dst: netip.MustParseAddr("10.96.0.10"), proto: "udp", port: 53},
			map[string]float64{"10.244.1.1:53": third, "10.244.2.1:53": third, "10.244.3.1:53": third}, 0},
		{"nodePort, policy Cluster: all endpoints, masqueraded", func() []Service {
			s := web()
			s.Type, s.Ports[0].NodePort = TypeNodePort, 30080
			return []Service{s}
		}, tcpTo(outsideIP, nodeIP.String(), 30080),
			map[string]float64{"10.244.1.1:8080 masq": third, "10.244.2.1:8080 masq": third, "10.244.3.1:8080 masq": third}, 0},
		{"nodePort on loopback passes", func() []Service {
			s := web()
			s.Type, s.Ports[0].NodePort = TypeNodePort, 30080
			return []Service{s}
		}, tcpTo(nodeIP, "127.0.0.1", 30080), map[string]float64{"pass": 1}, 0},
		{"nodePort on a non-local address passes", func() []Service {
			s := web()
			s.Type, s.Ports[0].NodePort = TypeNodePort, 30080
			return []Service{s}
		}, tcpTo(outsideIP, "192.168.50.99", 30080), map[string]float64{"pass": 1}, 0},
		{"nodePort, policy Local: local endpoints only, source kept", func() []Service {
			s := web()
			s.Type, s.Ports[0].NodePort, s.ExternalTrafficPolicy = TypeNodePort, 30080, PolicyLocal
			s.Endpoints = append(s.Endpoints, ep("10.244.1.2", "n1", true))
			return []Service{s}
		}, tcpTo(outsideIP, nodeIP.String(), 30080), map[string]float64{"10.244.1.1:8080": 0.5, "10.244.1.2:8080": 0.5}, 0},
		{"nodePort, policy Local, from the node itself: masqueraded", func() []Service {
			s := web()
			s.Type, s.Ports[0].NodePort, s.ExternalTrafficPolicy = TypeNodePort, 30080, PolicyLocal
			return []Service{s}
		}, tcpTo(nodeIP, nodeIP.String(), 30080), map[string]float64{"10.244.1.1:8080 masq": 1}, 0},
		{"nodePort, policy Local, no local endpoint: rejected", func() []Service {
			s := web()
			s.Type, s.Ports[0].NodePort, s.ExternalTrafficPolicy = TypeNodePort, 30080, PolicyLocal
			s.Endpoints = s.Endpoints[1:]
			return []Service{s}
		}, tcpTo(outsideIP, nodeIP.String(), 30080), map[string]float64{"reject tcp-reset": 1}, 0},
		{"policy Local does not limit the clusterIP", func() []Service {
			s := web()
			s.Type, s.Ports[0].NodePort, s.ExternalTrafficPolicy = TypeNodePort, 30080, PolicyLocal
			s.Endpoints = s.Endpoints[1:]
			return []Service{s}
		}, tcpTo(podOnN1, "10.96.0.10", 80), map[string]float64{"10.244.2.1:8080": 0.5, "10.244.3.1:8080": 0.5}, 0},
		{"headless: no rules", func() []Service {
			s := web()
			s.ClusterIP = netip.Addr{}
			return []Service{s}
		}, tcpTo(podOnN2, "10.96.0.10", 80), map[string]float64{"pass": 1}, 0},
		{"invalid service left out and reported, others rendered", func() []Service {
			bad := web()
			bad.Name, bad.ClusterIP, bad.Ports[0].Protocol = "bad", netip.MustParseAddr("10.96.0.11"), "SCTP"
			return []Service{bad, web()}
		}, tcpTo(podOnN2, "10.96.0.10", 80),
			map[string]float64{"10.244.1.1:8080": third, "10.244.2.1:8080": third, "10.244.3.1:8080": third}, 1},
		{"duplicate clusterIP:port: the first Service by key keeps it", func() []Service {
			dup := web()
			dup.Name = "zzz"
			dup.Endpoints = []Endpoint{ep("10.244.9.9", "n9", true)}
			return []Service{dup, web()}
		}, tcpTo(podOnN2, "10.96.0.10", 80),
			map[string]float64{"10.244.1.1:8080": third, "10.244.2.1:8080": third, "10.244.3.1:8080": third}, 1},
		{"five endpoints: 1/5 each", func() []Service {
			s := web()
			s.Endpoints = append(s.Endpoints, ep("10.244.4.1", "n4", true), ep("10.244.5.1", "n5", true))
			return []Service{s}
		}, tcpTo(podOnN2, "10.96.0.10", 80), map[string]float64{"10.244.1.1:8080": .2, "10.244.2.1:8080": .2, "10.244.3.1:8080": .2, "10.244.4.1:8080": .2, "10.244.5.1:8080": .2}, 0},
	}
	withSvcCIDR := testConfig
	withSvcCIDR.ServiceCIDR = netip.MustParsePrefix("10.96.0.0/12")
	outOfRange := func(svcs []Service) []Service {
		for i := range svcs {
			if svcs[i].ClusterIP.IsValid() {
				svcs[i].ClusterIP = netip.MustParseAddr("172.30.0.10")
			}
		}
		return svcs
	}
	for _, c := range cases {
		// Same outcomes with the per-port masquerade rules, the single
		// ServiceCIDR rule, and a ClusterIP outside the ServiceCIDR.
		for _, v := range []struct {
			name string
			cfg  Config
			move bool
		}{{"", testConfig, false}, {"/serviceCIDR", withSvcCIDR, false}, {"/outside serviceCIDR", withSvcCIDR, true}} {
			t.Run(c.name+v.name, func(t *testing.T) {
				svcs, pkt := c.svcs(), c.pkt
				if v.move {
					if pkt.dst.String() != "10.96.0.10" {
						t.Skip("not a ClusterIP case")
					}
					svcs, pkt.dst = outOfRange(svcs), netip.MustParseAddr("172.30.0.10")
				}
				r := Render(v.cfg, svcs)
				if len(r.Errors) != c.errors {
					t.Fatalf("errors = %v, want %d", r.Errors, c.errors)
				}
				tr := newTracer(t, full(r)...)
				if err := sameOutcomes(tr.trace(t, testLocal, pkt), c.want); err != nil {
					t.Error(err)
				}
			})
		}
	}
}

func TestRenderSessionAffinity(t *testing.T) {
	s := web()
	s.SessionAffinity, s.AffinityTimeout = AffinityClientIP, 30*time.Second
	s.Type, s.Ports[0].NodePort = TypeNodePort, 30080
	r := Render(testConfig, []Service{s})
	tr := newTracer(t, full(r)...)
	if !bytes.Contains(r.NAT.Rules("SHOAL-SVC-0A"), []byte("--seconds 30 --reap")) {
		t.Fatalf("timeout not rendered:\n%s", r.NAT.Rules("SHOAL-SVC-0A"))
	}

	// A new client: random choice, and it is recorded in the chosen
	// endpoint's list only.
	p := tcpTo(podOnN2, "10.96.0.10", 80)
	third := 1.0 / 3
	if err := sameOutcomes(tr.trace(t, testLocal, p), map[string]float64{"10.244.1.1:8080": third, "10.244.2.1:8080": third, "10.244.3.1:8080": third}); err != nil {
		t.Fatal(err)
	}
	sets := tr.recentSets(t, testLocal, p)
	names := map[string]bool{}
	for dst, lists := range sets {
		if len(lists) != 1 {
			t.Fatalf("choosing %s records the client in %v, want exactly one list", dst, lists)
		}
		names[lists[0]] = true
	}
	if len(names) != 3 {
		t.Fatalf("endpoints share affinity lists: %v", sets)
	}

	// A known client sticks to its endpoint, through the ClusterIP and the
	// NodePort alike.
	chosen := sets["10.244.2.1:8080"][0]
	p.recent = map[string]bool{chosen: true}
	if err := sameOutcomes(tr.trace(t, testLocal, p), map[string]float64{"10.244.2.1:8080": 1}); err != nil {
		t.Fatal(err)
	}
	np := tcpTo(outsideIP, nodeIP.String(), 30080)
	np.recent = map[string]bool{chosen: true}
	if err := sameOutcomes(tr.trace(t, testLocal, np), map[string]float64{"10.244.2.1:8080 masq": 1}); err != nil {
		t.Fatal(err)
	}
	// Without affinity there is no recent match at all.
	if bytes.Contains(Render(testConfig, []Service{web()}).NAT.Rules("SHOAL-SVC-0A"), []byte("recent")) {
		t.Fatal("recent rules rendered without session affinity")
	}
}

func TestRenderDeterministicAndBucketed(t *testing.T) {
	var svcs []Service
	for i := range 300 {
		s := web()
		s.Name = "web" + string(rune('a'+i%26)) + strings.Repeat("x", i/26)
		s.ClusterIP = netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)})
		svcs = append(svcs, s)
	}
	a := Render(testConfig, svcs)
	rand.Shuffle(len(svcs), func(i, j int) { svcs[i], svcs[j] = svcs[j], svcs[i] })
	b := Render(testConfig, svcs)
	for _, p := range [][2][]byte{{a.NAT.Payload(a.NAT.Chains(), nil), b.NAT.Payload(b.NAT.Chains(), nil)}} {
		if !bytes.Equal(p[0], p[1]) {
			t.Fatal("rendering depends on input order")
		}
	}
	// 300 Services, 256 buckets + SERVICES, NODEPORTS, POSTROUTING, CANARY.
	if n := len(a.NAT.Chains()); n != 260 {
		t.Fatalf("%d nat chains, want 260", n)
	}
	for _, c := range append(a.NAT.Chains(), a.Filter.Chains()...) {
		if !Owned(c) || len(c) > 28 {
			t.Fatalf("chain name %q", c)
		}
	}
	tr := newTracer(t, full(a)...)
	for _, i := range []int{0, 255, 256, 299} {
		p := tcpTo(podOnN2, netip.AddrFrom4([4]byte{10, 96, byte(i >> 8), byte(i)}).String(), 80)
		got := tr.trace(t, testLocal, p)
		if got["pass"] != 0 || len(got) != 3 {
			t.Fatalf("service %d: %v", i, got)
		}
	}
}

func TestRenderUDPPorts(t *testing.T) {
	s := web()
	s.Type = TypeNodePort
	s.Ports = []ServicePort{{Name: "dns", Protocol: UDP, Port: 53, NodePort: 30053}}
	s.Endpoints[2].Ready = false
	r := Render(testConfig, []Service{s})
	if len(r.UDP) != 1 {
		t.Fatalf("UDP = %+v", r.UDP)
	}
	u := r.UDP[0]
	if u.Key != "default/web:dns" || u.ClusterIP != s.ClusterIP || u.Port != 53 || u.NodePort != 30053 || len(u.Endpoints) != 2 {
		t.Fatalf("UDP = %+v", u)
	}
}

// TestRenderEgressMasquerade: with MasqueradeEgress, traffic from the pod
// network to anywhere outside it is marked for masquerade; pod-to-pod
// traffic is not; without it nothing is added.
func TestRenderEgressMasquerade(t *testing.T) {
	rule := "-A SHOAL-POSTROUTING -s 10.244.0.0/16 ! -d 10.244.0.0/16 -j MARK --or-mark 0x2000"
	cfg := testConfig
	if post := string(Render(cfg, []Service{web()}).NAT.Rules(ChainPostrouting)); strings.Contains(post, "! -d 10.244.0.0/16") {
		t.Errorf("egress masquerade without MasqueradeEgress:\n%s", post)
	}
	cfg.MasqueradeEgress = true
	post := string(Render(cfg, []Service{web()}).NAT.Rules(ChainPostrouting))
	i, j := strings.Index(post, rule), strings.Index(post, "-j RETURN")
	if i < 0 || j < 0 || i > j {
		t.Errorf("want %q before the RETURN of unmarked traffic:\n%s", rule, post)
	}
}

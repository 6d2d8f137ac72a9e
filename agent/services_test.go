package agent

import (
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/state"
	"github.com/shoal-dev/shoal/svcproxy"
)

// svcOpt adjusts a test Service.
type svcOpt func(*corev1.Service)

func testSvc(name string, opts ...svcOpt) *corev1.Service {
	s := &corev1.Service{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec: corev1.ServiceSpec{Type: corev1.ServiceTypeClusterIP, Selector: map[string]string{"app": name},
			Ports: []corev1.ServicePort{{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80}}},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

func withIP(ip string) svcOpt { return func(s *corev1.Service) { s.Spec.ClusterIP = ip } }

func asNodePort(ports ...corev1.ServicePort) svcOpt {
	return func(s *corev1.Service) {
		s.Spec.Type = corev1.ServiceTypeNodePort
		s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
		if len(ports) > 0 {
			s.Spec.Ports = ports
		}
	}
}

func ipAl(v, owner string) state.Allocation {
	return state.Allocation{Kind: state.AllocClusterIP, Value: v, Owner: owner}
}

func portAl(v, owner string) state.Allocation {
	return state.Allocation{Kind: state.AllocNodePort, Value: v, Owner: owner}
}

func TestPlanServiceAllocations(t *testing.T) {
	cidr := netip.MustParsePrefix("10.96.0.0/29") // usable: .2 to .6
	ports := PortRange{30000, 30002}
	cases := []struct {
		name     string
		have     []state.Allocation
		svcs     []*corev1.Service
		release  []string // "kind value"
		allocate []string // "kind value owner"
		problems []string // "service reason", message must name the holder when given after " by "
	}{
		{
			name:     "lowest free, network and first address reserved",
			svcs:     []*corev1.Service{testSvc("a"), testSvc("b")},
			allocate: []string{"cluster-ip 10.96.0.2 default/a", "cluster-ip 10.96.0.3 default/b"},
		},
		{
			name:     "what is held is kept",
			have:     []state.Allocation{ipAl("10.96.0.5", "default/a")},
			svcs:     []*corev1.Service{testSvc("a"), testSvc("b")},
			allocate: []string{"cluster-ip 10.96.0.2 default/b"},
		},
		{
			name:     "explicit first, so a dynamic one never takes it",
			svcs:     []*corev1.Service{testSvc("a"), testSvc("b", withIP("10.96.0.2"))},
			allocate: []string{"cluster-ip 10.96.0.2 default/b", "cluster-ip 10.96.0.3 default/a"},
		},
		{
			name:     "explicit value held by another Service",
			have:     []state.Allocation{ipAl("10.96.0.2", "default/a")},
			svcs:     []*corev1.Service{testSvc("a"), testSvc("b", withIP("10.96.0.2"))},
			problems: []string{"default/b ClusterIPConflict by default/a"},
		},
		{
			name:     "two Services asking for one explicit value",
			svcs:     []*corev1.Service{testSvc("a", withIP("10.96.0.4")), testSvc("b", withIP("10.96.0.4"))},
			allocate: []string{"cluster-ip 10.96.0.4 default/a"},
			problems: []string{"default/b ClusterIPConflict by default/a"},
		},
		{
			name:     "the holder keeps it even when it sorts later",
			have:     []state.Allocation{ipAl("10.96.0.4", "default/b")},
			svcs:     []*corev1.Service{testSvc("a", withIP("10.96.0.4")), testSvc("b", withIP("10.96.0.4"))},
			problems: []string{"default/a ClusterIPConflict by default/b"},
		},
		{
			name:     "a Service gone from Git frees its values for others",
			have:     []state.Allocation{ipAl("10.96.0.2", "default/old"), portAl("30000", "default/old/http")},
			svcs:     []*corev1.Service{testSvc("b", withIP("10.96.0.2"))},
			release:  []string{"cluster-ip 10.96.0.2", "node-port 30000"},
			allocate: []string{"cluster-ip 10.96.0.2 default/b"},
		},
		{
			name:    "headless releases its ClusterIP",
			have:    []state.Allocation{ipAl("10.96.0.2", "default/a")},
			svcs:    []*corev1.Service{testSvc("a", withIP(corev1.ClusterIPNone))},
			release: []string{"cluster-ip 10.96.0.2"},
		},
		{
			name:     "a new explicit value replaces the old one",
			have:     []state.Allocation{ipAl("10.96.0.2", "default/a")},
			svcs:     []*corev1.Service{testSvc("a", withIP("10.96.0.4"))},
			release:  []string{"cluster-ip 10.96.0.2"},
			allocate: []string{"cluster-ip 10.96.0.4 default/a"},
		},
		{
			name:     "dropping the explicit value keeps the address",
			have:     []state.Allocation{ipAl("10.96.0.4", "default/a")},
			svcs:     []*corev1.Service{testSvc("a")},
			allocate: nil,
		},
		{
			name: "explicit values outside the usable range",
			svcs: []*corev1.Service{testSvc("a", withIP("10.97.0.1")), testSvc("b", withIP("10.96.0.1")),
				testSvc("c", withIP("10.96.0.7")), testSvc("d", withIP("10.96.0.0"))},
			problems: []string{"default/a ClusterIPOutOfRange", "default/b ClusterIPOutOfRange", "default/c ClusterIPOutOfRange", "default/d ClusterIPOutOfRange"},
		},
		{
			name: "range full",
			svcs: []*corev1.Service{testSvc("a"), testSvc("b"), testSvc("c"), testSvc("d"), testSvc("e"), testSvc("f")},
			allocate: []string{"cluster-ip 10.96.0.2 default/a", "cluster-ip 10.96.0.3 default/b", "cluster-ip 10.96.0.4 default/c",
				"cluster-ip 10.96.0.5 default/d", "cluster-ip 10.96.0.6 default/e"},
			problems: []string{"default/f ClusterIPRangeFull"},
		},
		{
			name: "node ports: explicit and allocated, per port",
			have: []state.Allocation{ipAl("10.96.0.2", "default/np")},
			svcs: []*corev1.Service{testSvc("np", asNodePort(
				corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80},
				corev1.ServicePort{Name: "metrics", Protocol: corev1.ProtocolTCP, Port: 9090, NodePort: 30000}))},
			allocate: []string{"node-port 30000 default/np/metrics", "node-port 30001 default/np/http"},
		},
		{
			name:     "an unnamed port is owned by its number and protocol",
			have:     []state.Allocation{ipAl("10.96.0.2", "default/np")},
			svcs:     []*corev1.Service{testSvc("np", asNodePort(corev1.ServicePort{Protocol: corev1.ProtocolUDP, Port: 53}))},
			allocate: []string{"node-port 30000 default/np/53-UDP"},
		},
		{
			name: "TCP and UDP of one Service share a node port",
			have: []state.Allocation{ipAl("10.96.0.2", "default/dns")},
			svcs: []*corev1.Service{testSvc("dns", asNodePort(
				corev1.ServicePort{Name: "dns-tcp", Protocol: corev1.ProtocolTCP, Port: 53, NodePort: 30002},
				corev1.ServicePort{Name: "dns-udp", Protocol: corev1.ProtocolUDP, Port: 53, NodePort: 30002}))},
			allocate: []string{"node-port 30002 default/dns/dns-tcp"},
		},
		{
			name: "node port held by another Service",
			have: []state.Allocation{ipAl("10.96.0.2", "default/a"), ipAl("10.96.0.3", "default/b"), portAl("30001", "default/a/http")},
			svcs: []*corev1.Service{testSvc("a", asNodePort()),
				testSvc("b", asNodePort(corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 30001}))},
			problems: []string{"default/b NodePortConflict by default/a"},
		},
		{
			name:    "a NodePort Service turned ClusterIP releases its node ports",
			have:    []state.Allocation{ipAl("10.96.0.2", "default/a"), portAl("30001", "default/a/http")},
			svcs:    []*corev1.Service{testSvc("a")},
			release: []string{"node-port 30001"},
		},
		{
			name: "node port outside the range, and the range full",
			have: []state.Allocation{ipAl("10.96.0.2", "default/a"), ipAl("10.96.0.3", "default/b")},
			svcs: []*corev1.Service{
				testSvc("a", asNodePort(corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, NodePort: 31000})),
				testSvc("b", asNodePort(
					corev1.ServicePort{Name: "p1", Protocol: corev1.ProtocolTCP, Port: 1},
					corev1.ServicePort{Name: "p2", Protocol: corev1.ProtocolTCP, Port: 2},
					corev1.ServicePort{Name: "p3", Protocol: corev1.ProtocolTCP, Port: 3},
					corev1.ServicePort{Name: "p4", Protocol: corev1.ProtocolTCP, Port: 4}))},
			allocate: []string{"node-port 30000 default/b/p1", "node-port 30001 default/b/p2", "node-port 30002 default/b/p3"},
			problems: []string{"default/a NodePortOutOfRange", "default/b NodePortRangeFull"},
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			s, _ := state.NewStore()
			if len(c.have) > 0 {
				mustApply(t, s, &state.Allocate{Allocations: c.have})
			}
			v := s.Snapshot()
			plan := PlanServiceAllocations(v, c.svcs, cidr, ports)
			var rel, al, probs []string
			for _, k := range plan.Release {
				rel = append(rel, fmt.Sprintf("%s %s", k.Kind, k.Value))
			}
			for _, a := range plan.Allocate {
				al = append(al, fmt.Sprintf("%s %s %s", a.Kind, a.Value, a.Owner))
			}
			for _, p := range plan.Problems {
				probs = append(probs, p.Service+" "+p.Reason)
			}
			var wantProbs []string
			for i, p := range c.problems {
				head, holder, named := strings.Cut(p, " by ")
				wantProbs = append(wantProbs, head)
				if named && i < len(plan.Problems) && !strings.Contains(plan.Problems[i].Message, "Service "+holder) {
					t.Errorf("problem %q does not name %s", plan.Problems[i].Message, holder)
				}
			}
			if !slices.Equal(rel, c.release) || !slices.Equal(al, c.allocate) || !slices.Equal(probs, wantProbs) {
				t.Errorf("plan:\nrelease  %q want %q\nallocate %q want %q\nproblems %q want %q", rel, c.release, al, c.allocate, probs, wantProbs)
			}
			// Applying the plan is accepted by the store, and planning again
			// on the result writes nothing more (the problems stay).
			if len(plan.Release) > 0 {
				mustApply(t, s, &state.Release{Keys: plan.Release})
			}
			if len(plan.Allocate) > 0 {
				mustApply(t, s, &state.Allocate{Allocations: plan.Allocate})
			}
			again := PlanServiceAllocations(s.Snapshot(), c.svcs, cidr, ports)
			if len(again.Release)+len(again.Allocate) > 0 || len(again.Problems) != len(plan.Problems) {
				t.Errorf("second plan not empty: %+v", again)
			}
		})
	}
}

func TestParsePortRangeAndConfig(t *testing.T) {
	if r, err := ParsePortRange("30000-32767"); err != nil || r != (PortRange{30000, 32767}) {
		t.Errorf("ParsePortRange: %v %v", r, err)
	}
	for _, bad := range []string{"", "30000", "2-1", "0-10", "1-65536", "a-b"} {
		if _, err := ParsePortRange(bad); err == nil {
			t.Errorf("ParsePortRange(%q): no error", bad)
		}
	}
	c := Config{Repo: "r", DataDir: "d", NodeName: "n", ClusterKeyFile: "k", AdvertiseAddr: "10.0.0.1"}.WithDefaults()
	if c.ServiceCIDR != DefaultServiceCIDR || c.NodePortRange != DefaultNodePortRange || c.ClusterDomain != DefaultClusterDomain {
		t.Errorf("defaults: %q %q %q", c.ServiceCIDR, c.NodePortRange, c.ClusterDomain)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("defaults do not validate: %v", err)
	}
	file := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(file, []byte("serviceCIDR: 10.100.0.0/20\nnodePortRange: 31000-31999\nclusterDomain: example.internal\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if fc, err := LoadConfigFile(file); err != nil || fc.ServiceCIDR != "10.100.0.0/20" || fc.NodePortRange != "31000-31999" || fc.ClusterDomain != "example.internal" {
		t.Errorf("config file: %+v %v", fc, err)
	}
	c.ServiceCIDR, c.NodePortRange, c.ClusterDomain = "10.240.0.0/12", "9-1", "Not_A_Domain"
	err := c.Validate()
	for _, want := range []string{"service-cidr", "overlaps", "node-port-range", "cluster-domain"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate: %v, want it to mention %s", err, want)
		}
	}
}

// viewStore builds a state with two nodes (n2 NotReady) and pods in every
// situation the view distinguishes.
func viewStore(t *testing.T) *state.Store {
	t.Helper()
	s, _ := state.NewStore()
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	mustApply(t, s, &state.UpsertNode{Node: testNode("n2")})
	mustApply(t, s, &state.SetNodeStatus{Name: "n2", Status: state.NodeNotReady, Heartbeat: t0})
	type pod struct {
		ns, name, app, node, ip string
		phase                   state.Phase
		ready, deleting         bool
	}
	pods := []pod{
		{"default", "web-1", "web", "n1", "10.244.1.5", state.PhaseRunning, true, false},
		{"default", "web-2", "web", "n1", "10.244.1.6", state.PhaseRunning, false, false},
		{"default", "web-3", "web", "n2", "10.244.2.5", state.PhaseRunning, true, false},
		{"default", "web-4", "web", "n1", "", state.PhasePending, false, false},
		{"default", "web-5", "web", "n1", "10.244.1.8", state.PhaseFailed, false, false},
		{"default", "web-6", "web", "n1", "10.244.1.9", state.PhaseRunning, true, true},
		{"prod", "web-1", "web", "n1", "10.244.1.10", state.PhaseRunning, true, false},
		{"default", "db-0", "db", "n1", "10.244.1.7", state.PhaseRunning, true, false},
		{"default", "db-1", "db", "n1", "10.244.1.11", state.PhaseRunning, false, false},
	}
	var recs []state.Pod
	var binds []state.Binding
	for _, p := range pods {
		r := podRecord(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Namespace: p.ns, Name: p.name, Labels: map[string]string{"app": p.app}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "img"}}}}, "h", "c1", t0)
		recs = append(recs, r)
		binds = append(binds, state.Binding{UID: r.UID, Node: p.node})
	}
	mustApply(t, s, &state.CreatePods{Pods: recs, Time: t0})
	mustApply(t, s, &state.BindPods{Bindings: binds})
	for i, p := range pods {
		mustApply(t, s, &state.UpdatePodStatus{Node: p.node, Updates: []state.PodStatusUpdate{{UID: recs[i].UID,
			Status: state.PodStatus{Phase: p.phase, PodIP: p.ip, Ready: p.ready}}}})
		if p.deleting {
			mustApply(t, s, &state.SetPodsDesired{Changes: []state.DesiredChange{{UID: recs[i].UID, Desired: state.DesiredDelete}}})
		}
	}
	mustApply(t, s, &state.Allocate{Allocations: []state.Allocation{
		ipAl("10.96.0.10", "default/web"), portAl("30080", "default/web/http"),
		ipAl("10.96.0.11", "default/lonely"),
		ipAl("10.96.0.9", "default/other"),
		ipAl("10.96.0.12", "default/fixed"), portAl("30090", "default/fixed/http"),
	}})
	return s
}

func TestBuildServiceView(t *testing.T) {
	v := viewStore(t).Snapshot()
	timeout := int32(60)
	web := testSvc("web", asNodePort(corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolTCP, Port: 80, TargetPort: intstr.FromString("http")}))
	web.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
	web.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: &timeout}}
	web.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
	db := testSvc("db", withIP(corev1.ClusterIPNone))
	db.Spec.Ports = []corev1.ServicePort{{Name: "pg", Protocol: corev1.ProtocolTCP, Port: 5432, TargetPort: intstr.FromInt32(5432)}}
	db.Spec.PublishNotReadyAddresses = true
	fixed := testSvc("fixed", withIP("10.96.0.12"), asNodePort(corev1.ServicePort{Name: "http", Protocol: corev1.ProtocolUDP, Port: 80, NodePort: 30090},
		corev1.ServicePort{Name: "other", Protocol: corev1.ProtocolUDP, Port: 81}))
	svcs := []*corev1.Service{
		db, fixed, web,
		testSvc("lonely", func(s *corev1.Service) { s.Spec.Selector = nil }),
		testSvc("pending"),                     // no ClusterIP yet: left out
		testSvc("stolen", withIP("10.96.0.9")), // held by default/other: left out, reported
	}
	nets := map[string]PodNet{
		"default/web-1": {Ports: map[string]int32{"http": 8080}},
		"default/db-0":  {Hostname: "db-0", Subdomain: "db"},
		"default/db-1":  {Hostname: "db-1", Subdomain: "elsewhere"},
	}
	calls := map[string]int{}
	view, errs := BuildServiceView(v, svcs, func(p *state.Pod) (PodNet, error) {
		calls[p.Key()]++
		if p.Name == "web-3" {
			return PodNet{}, fmt.Errorf("manifest unavailable")
		}
		return nets[p.Key()], nil
	})
	ep := func(ip, node string, ready bool, ports map[string]int32, host string) svcproxy.Endpoint {
		return svcproxy.Endpoint{PodIP: netip.MustParseAddr(ip), NodeName: node, Ready: ready, Ports: ports, Hostname: host}
	}
	want := []svcproxy.Service{
		{Namespace: "default", Name: "db", Type: svcproxy.TypeClusterIP, SessionAffinity: svcproxy.AffinityNone,
			ExternalTrafficPolicy: svcproxy.PolicyCluster, PublishNotReadyAddresses: true,
			Ports: []svcproxy.ServicePort{{Name: "pg", Protocol: svcproxy.TCP, Port: 5432, TargetPort: svcproxy.TargetPort{Number: 5432}}},
			Endpoints: []svcproxy.Endpoint{
				ep("10.244.1.7", "n1", true, nil, "db-0"),
				ep("10.244.1.11", "n1", false, nil, ""), // its subdomain is another Service
			}},
		{Namespace: "default", Name: "fixed", ClusterIP: netip.MustParseAddr("10.96.0.12"), Type: svcproxy.TypeNodePort,
			SessionAffinity: svcproxy.AffinityNone, ExternalTrafficPolicy: svcproxy.PolicyCluster,
			Ports: []svcproxy.ServicePort{{Name: "http", Protocol: svcproxy.UDP, Port: 80, NodePort: 30090},
				{Name: "other", Protocol: svcproxy.UDP, Port: 81}}}, // node port not allocated yet
		{Namespace: "default", Name: "web", ClusterIP: netip.MustParseAddr("10.96.0.10"), Type: svcproxy.TypeNodePort,
			SessionAffinity: svcproxy.AffinityClientIP, AffinityTimeout: time.Minute, ExternalTrafficPolicy: svcproxy.PolicyLocal,
			Ports: []svcproxy.ServicePort{{Name: "http", Protocol: svcproxy.TCP, Port: 80, TargetPort: svcproxy.TargetPort{Name: "http"}, NodePort: 30080}},
			Endpoints: []svcproxy.Endpoint{
				ep("10.244.1.5", "n1", true, map[string]int32{"http": 8080}, ""),
				ep("10.244.1.6", "n1", false, nil, ""), // not ready
				ep("10.244.2.5", "n2", false, nil, ""), // its node is NotReady
				ep("10.244.1.9", "n1", false, nil, ""), // being deleted
			}},
		{Namespace: "default", Name: "lonely", ClusterIP: netip.MustParseAddr("10.96.0.11"), Type: svcproxy.TypeClusterIP,
			SessionAffinity: svcproxy.AffinityNone, ExternalTrafficPolicy: svcproxy.PolicyCluster,
			Ports: []svcproxy.ServicePort{{Name: "http", Protocol: svcproxy.TCP, Port: 80}}},
	}
	if !reflect.DeepEqual(view, want) {
		t.Errorf("view:\n%+v\nwant:\n%+v", view, want)
	}
	if len(errs) != 2 || !strings.Contains(errs[0].Error(), "default/stolen") && !strings.Contains(errs[1].Error(), "default/stolen") {
		t.Errorf("problems: %v", errs)
	}
	joined := fmt.Sprint(errs)
	for _, w := range []string{"default/other", "default/web-3", "manifest unavailable"} {
		if !strings.Contains(joined, w) {
			t.Errorf("problems %v do not mention %s", errs, w)
		}
	}
	for k, n := range calls {
		if n != 1 {
			t.Errorf("podNet called %d times for %s", n, k)
		}
	}
	for _, s := range view {
		if err := s.Validate(); err != nil {
			t.Errorf("svcproxy refuses the view: %v", err)
		}
	}
}

func TestPodNetOf(t *testing.T) {
	p := &corev1.Pod{Spec: corev1.PodSpec{Hostname: "h", Subdomain: "s",
		InitContainers: []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "init", ContainerPort: 1}}}},
		Containers: []corev1.Container{{Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080}, {ContainerPort: 9}}},
			{Ports: []corev1.ContainerPort{{Name: "dns", ContainerPort: 53, Protocol: corev1.ProtocolUDP}}}}}}
	got := podNetOf(p)
	want := PodNet{Ports: map[string]int32{"init": 1, "http": 8080, "dns": 53}, Hostname: "h", Subdomain: "s"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("podNetOf: %+v", got)
	}
}

func TestPodDNS(t *testing.T) {
	a := &Agent{cfg: Config{Runtime: RuntimeContainerd, ClusterDomain: "cluster.local"}}
	got := a.podDNS("10.244.1.0/24", "shop")
	want := "nameserver [10.244.1.1] search [shop.svc.cluster.local svc.cluster.local cluster.local] options [ndots:5]"
	if got == nil || fmt.Sprintf("nameserver %v search %v options %v", got.Nameservers, got.Searches, got.Options) != want {
		t.Errorf("podDNS: %+v", got)
	}
	if a.podDNS("", "shop") != nil {
		t.Error("podDNS without a pod CIDR is not nil")
	}
	a.deps.Runtime = newWatchedRuntime("10.244.1.0/24")
	if a.podDNS("10.244.1.0/24", "shop") != nil {
		t.Error("podDNS with a runtime from Deps (no DNS served) is not nil")
	}
}

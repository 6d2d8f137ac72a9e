package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
	"github.com/shoal-dev/shoal/svcproxy"
)

// Services: the leader allocates every Service at the pinned commit its
// ClusterIP and NodePorts (PlanServiceAllocations, pure; serviceAllocStep
// applies it), and every node turns the Services, their allocations and the
// pods they select into svcproxy's view (BuildServiceView, pure), which
// services_node.go hands to the proxier and the cluster DNS server.
//
// Allocations live in the state store (state.AllocClusterIP, owner
// "namespace/name"; state.AllocNodePort, owner "namespace/name/port" where
// port is the port's name, or "PORT-PROTOCOL" for an unnamed one), so they
// are stable across commits and leaders: a Service keeps its addresses until
// it leaves Git, becomes headless, or asks for other explicit values.

// PortRange is an inclusive range of ports.
type PortRange struct{ Min, Max int }

func (r PortRange) String() string { return fmt.Sprintf("%d-%d", r.Min, r.Max) }

// ParsePortRange reads "min-max".
func ParsePortRange(s string) (PortRange, error) {
	lo, hi, ok := strings.Cut(s, "-")
	a, err1 := strconv.Atoi(strings.TrimSpace(lo))
	b, err2 := strconv.Atoi(strings.TrimSpace(hi))
	if !ok || err1 != nil || err2 != nil || a < 1 || b > 65535 || a > b {
		return PortRange{}, fmt.Errorf("%q is not a port range such as 30000-32767", s)
	}
	return PortRange{a, b}, nil
}

// validateServices checks the Service settings of a defaulted config.
func (c Config) validateServices() []error {
	var errs []error
	sc, err := netip.ParsePrefix(c.ServiceCIDR)
	switch {
	case err != nil || !sc.Addr().Is4() || sc.Masked() != sc:
		errs = append(errs, fmt.Errorf("service-cidr: %q is not a canonical IPv4 prefix", c.ServiceCIDR))
	case sc.Bits() > 30:
		errs = append(errs, fmt.Errorf("service-cidr: %s is too small: want /30 or larger (two addresses are reserved)", sc))
	default:
		if pc, err := netip.ParsePrefix(c.PodCIDRRange); err == nil && pc.Overlaps(sc) {
			errs = append(errs, fmt.Errorf("service-cidr: %s overlaps the pod range %s", sc, pc))
		}
	}
	if _, err := ParsePortRange(c.NodePortRange); err != nil {
		errs = append(errs, fmt.Errorf("node-port-range: %w", err))
	}
	if msgs := validation.IsDNS1123Subdomain(c.ClusterDomain); len(msgs) > 0 {
		errs = append(errs, fmt.Errorf("cluster-domain: %q: %s", c.ClusterDomain, strings.Join(msgs, "; ")))
	}
	return errs
}

// servicesOf returns the Services of a set, in key order.
func servicesOf(set *manifest.Set) []*corev1.Service {
	var out []*corev1.Service
	for _, o := range set.Objects() {
		if s, ok := o.Obj.(*corev1.Service); ok && o.Key.Kind == "Service" {
			out = append(out, s)
		}
	}
	sort.Slice(out, func(i, j int) bool { return serviceKey(out[i]) < serviceKey(out[j]) })
	return out
}

func serviceKey(s *corev1.Service) string {
	ns := s.Namespace
	if ns == "" {
		ns = "default"
	}
	return ns + "/" + s.Name
}

func portProtocol(sp *corev1.ServicePort) corev1.Protocol {
	if sp.Protocol == "" {
		return corev1.ProtocolTCP
	}
	return sp.Protocol
}

// nodePortOwner is the owner of a Service port's NodePort allocation.
func nodePortOwner(svc string, sp *corev1.ServicePort) string {
	id := sp.Name
	if id == "" {
		id = fmt.Sprintf("%d-%s", sp.Port, portProtocol(sp))
	}
	return svc + "/" + id
}

// ownerService is the Service key ("namespace/name") of an allocation owner.
func ownerService(owner string) string {
	if i := strings.Index(owner, "/"); i >= 0 {
		if j := strings.Index(owner[i+1:], "/"); j >= 0 {
			return owner[:i+1+j]
		}
	}
	return owner
}

// ServiceAllocPlan is what the Service allocation loop writes: releases
// first, then allocations.
type ServiceAllocPlan struct {
	Release  []state.AllocKey
	Allocate []state.Allocation
	// Problems are Services that cannot get what they ask for; they are
	// reported as Warning events on "Service/namespace/name".
	Problems []ServiceProblem
}

// ServiceProblem says why a Service lacks an address.
type ServiceProblem struct {
	Service string // "namespace/name"
	Reason  string
	Message string
}

// Empty reports whether the plan writes nothing.
func (p ServiceAllocPlan) Empty() bool { return len(p.Release)+len(p.Allocate)+len(p.Problems) == 0 }

// allocWant is one owner's wish for one value of a kind: a given value
// (explicit) or any free one.
type allocWant struct {
	owner, service string
	value          string // "" for any
	field          string // where the explicit value is written, for messages
}

// PlanServiceAllocations decides, from the Services at the pinned commit and
// the allocations in v, which ClusterIPs and NodePorts to release and to
// allocate. A Service keeps what it holds unless it leaves Git, becomes
// headless (or loses a NodePort port), or asks for another explicit value.
// Explicit values are allocated too, so that nothing else takes them; one
// held by another Service, or outside the range, is a problem, not a
// silent override. New values are the lowest free ones: the ClusterIP
// range's network address, its first host address (reserved, as in
// Kubernetes) and its broadcast address are never handed out. It is a pure
// function: same inputs, same plan.
func PlanServiceAllocations(v *state.Snapshot, svcs []*corev1.Service, cidr netip.Prefix, ports PortRange) ServiceAllocPlan {
	var plan ServiceAllocPlan
	var ipWants, portWants []allocWant
	problem := func(svc, reason, format string, a ...any) {
		plan.Problems = append(plan.Problems, ServiceProblem{Service: svc, Reason: reason, Message: fmt.Sprintf(format, a...)})
	}
	first, last := ipBounds(cidr)
	for _, s := range svcs {
		key := serviceKey(s)
		switch ip := s.Spec.ClusterIP; {
		case ip == corev1.ClusterIPNone:
		case ip == "":
			ipWants = append(ipWants, allocWant{owner: key, service: key})
		default:
			a, err := netip.ParseAddr(ip)
			if err != nil || !a.Is4() || !cidr.Contains(a) || ipNum(a) < first || ipNum(a) > last {
				problem(key, "ClusterIPOutOfRange", "spec.clusterIP %s is not a usable address of the service range %s (its first two and its last address are reserved): pick one inside it, or remove clusterIP to have one allocated", ip, cidr)
				continue
			}
			ipWants = append(ipWants, allocWant{owner: key, service: key, value: a.String(), field: "spec.clusterIP"})
		}
		if s.Spec.Type != corev1.ServiceTypeNodePort {
			continue
		}
		for i := range s.Spec.Ports {
			sp := &s.Spec.Ports[i]
			w := allocWant{owner: nodePortOwner(key, sp), service: key}
			if sp.NodePort != 0 {
				if int(sp.NodePort) < ports.Min || int(sp.NodePort) > ports.Max {
					problem(key, "NodePortOutOfRange", "spec.ports[%d].nodePort %d is outside this cluster's node port range %s: pick one inside it, or remove nodePort to have one allocated", i, sp.NodePort, ports)
					continue
				}
				w.value, w.field = strconv.Itoa(int(sp.NodePort)), fmt.Sprintf("spec.ports[%d].nodePort", i)
			}
			portWants = append(portWants, w)
		}
	}
	nextIP := first
	freeIP := func(used map[string]string) (string, bool) {
		for ; nextIP <= last; nextIP++ {
			if s := numIP(nextIP).String(); used[s] == "" {
				return s, true
			}
		}
		return "", false
	}
	nextPort := ports.Min
	freePort := func(used map[string]string) (string, bool) {
		for ; nextPort <= ports.Max; nextPort++ {
			if s := strconv.Itoa(nextPort); used[s] == "" {
				return s, true
			}
		}
		return "", false
	}
	planKind(v, state.AllocClusterIP, ipWants, freeIP, &plan, func(w allocWant, holder string) {
		problem(w.service, "ClusterIPConflict", "%s %s is already held by Service %s: each Service needs its own ClusterIP; change one, or remove clusterIP to have one allocated", w.field, w.value, holder)
	}, func(w allocWant) {
		problem(w.service, "ClusterIPRangeFull", "no free ClusterIP left in the service range %s: widen --service-cidr or remove Services", cidr)
	})
	planKind(v, state.AllocNodePort, portWants, freePort, &plan, func(w allocWant, holder string) {
		problem(w.service, "NodePortConflict", "%s %s is already held by Service %s: each node port belongs to one Service; change one, or remove nodePort to have one allocated", w.field, w.value, holder)
	}, func(w allocWant) {
		problem(w.service, "NodePortRangeFull", "no free node port left in %s (for port %s): widen --node-port-range or remove NodePort Services", ports, w.owner[len(w.service)+1:])
	})
	return plan
}

// planKind plans one allocation kind: keep what is still wanted, release
// the rest, then give the explicit wishes their values and the others the
// lowest free ones.
func planKind(v *state.Snapshot, kind state.AllocKind, wants []allocWant, free func(used map[string]string) (string, bool),
	plan *ServiceAllocPlan, conflict func(w allocWant, holder string), full func(w allocWant)) {
	sort.SliceStable(wants, func(i, j int) bool { return wants[i].owner < wants[j].owner })
	byOwner := make(map[string]allocWant, len(wants))
	for _, w := range wants {
		byOwner[w.owner] = w
	}
	used := map[string]string{} // value → owner, after the releases
	satisfied := map[string]bool{}
	for _, al := range v.Allocations(kind) {
		w, ok := byOwner[al.Owner]
		keep := ok && !satisfied[al.Owner] && (w.value == "" || w.value == al.Value)
		if !keep {
			plan.Release = append(plan.Release, state.AllocKey{Kind: kind, Value: al.Value})
			continue
		}
		used[al.Value] = al.Owner
		satisfied[al.Owner] = true
	}
	for _, w := range wants {
		if satisfied[w.owner] || w.value == "" {
			continue
		}
		if holder, taken := used[w.value]; taken {
			// Two ports of one Service may share a node port (TCP and UDP
			// of the same number, as Kubernetes allows); anyone else may not.
			if ownerService(holder) != w.service {
				conflict(w, ownerService(holder))
			}
			satisfied[w.owner] = true
			continue
		}
		used[w.value] = w.owner
		satisfied[w.owner] = true
		plan.Allocate = append(plan.Allocate, state.Allocation{Kind: kind, Value: w.value, Owner: w.owner})
	}
	for _, w := range wants {
		if satisfied[w.owner] {
			continue
		}
		val, ok := free(used)
		if !ok {
			full(w)
			continue
		}
		used[val] = w.owner
		satisfied[w.owner] = true
		plan.Allocate = append(plan.Allocate, state.Allocation{Kind: kind, Value: val, Owner: w.owner})
	}
}

// ipBounds returns the first and last address of cidr that may be handed
// out: the network address and the first host address are reserved, and so
// is the broadcast address.
func ipBounds(cidr netip.Prefix) (uint32, uint32) {
	base := ipNum(cidr.Masked().Addr())
	size := uint32(1) << (32 - cidr.Bits())
	return base + 2, base + size - 2
}

func ipNum(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func numIP(n uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
}

// serviceAllocStep allocates and releases the Services' ClusterIPs and
// NodePorts at the pinned commit, and reports what it cannot allocate.
func (a *Agent) serviceAllocStep(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
	pinned := v.PinnedRevision()
	if pinned == nil {
		return 0, nil
	}
	l, err := a.src.load(ctx, pinned.Commit)
	if err != nil {
		return 0, err
	}
	if l.set == nil {
		return 0, fmt.Errorf("pinned commit %s holds no objects", pinned.Commit)
	}
	cidr, err := netip.ParsePrefix(a.cfg.ServiceCIDR)
	if err != nil {
		return 0, fmt.Errorf("service CIDR: %w", err)
	}
	ports, err := ParsePortRange(a.cfg.NodePortRange)
	if err != nil {
		return 0, fmt.Errorf("node port range: %w", err)
	}
	plan := PlanServiceAllocations(v, servicesOf(l.set), cidr, ports)
	for _, keys := range chunks(plan.Release) {
		if _, err := a.apply(ctx, &state.Release{Keys: keys}); err != nil {
			return 0, err
		}
		for _, k := range keys {
			a.log.Info("service address released", "kind", k.Kind, "value", k.Value)
		}
	}
	for _, als := range chunks(plan.Allocate) {
		if _, err := a.apply(ctx, &state.Allocate{Allocations: als}); err != nil {
			return 0, err
		}
		for _, al := range als {
			a.log.Info("service address allocated", "kind", al.Kind, "value", al.Value, "to", al.Owner)
		}
	}
	now := a.now().UTC()
	var events []state.Event
	for _, p := range plan.Problems {
		key := "Service/" + p.Service
		if evs := v.Events(key); len(evs) > 0 && evs[len(evs)-1].Reason == p.Reason && evs[len(evs)-1].Message == p.Message {
			continue // said already
		}
		a.log.Warn("service address not allocated", "service", p.Service, "reason", p.Reason, "message", p.Message, "commit", pinned.Commit)
		events = append(events, state.Event{Key: key, Type: "Warning", Reason: p.Reason, Message: p.Message, Commit: pinned.Commit, Time: now})
	}
	for _, evs := range chunks(events) {
		if _, err := a.apply(ctx, &state.AppendEvents{Events: evs}); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// PodNet is what the Service view needs from a pod's manifest.
type PodNet struct {
	// Ports maps named container ports to their numbers.
	Ports     map[string]int32
	Hostname  string
	Subdomain string
}

// podNetOf extracts a Pod's named ports, hostname and subdomain.
func podNetOf(p *corev1.Pod) PodNet {
	n := PodNet{Hostname: p.Spec.Hostname, Subdomain: p.Spec.Subdomain}
	for _, cs := range [][]corev1.Container{p.Spec.Containers, p.Spec.InitContainers} {
		for _, c := range cs {
			for _, port := range c.Ports {
				if port.Name == "" {
					continue
				}
				if n.Ports == nil {
					n.Ports = map[string]int32{}
				}
				n.Ports[port.Name] = port.ContainerPort
			}
		}
	}
	return n
}

// BuildServiceView turns the Services at the pinned commit, their
// allocations and the pods of v into svcproxy's view, in key order.
//
// A Service is left out until the leader allocated its ClusterIP (an
// explicit spec.clusterIP counts only once it is allocated to this Service:
// a conflict is never rendered); a NodePort port without its node port yet
// serves its ClusterIP only. Headless Services (clusterIP: None) have no
// ClusterIP but their endpoints, for DNS. Endpoints are the pods of the
// Service's namespace whose labels carry the whole selector (an empty
// selector selects nothing) and that have an IP and have not finished; one
// is ready when its status says so, it is not being stopped and its node is
// Ready. podNet gives a pod's named ports and hostname (a pod's manifest is
// fixed by its record, so the caller may cache it by UID); when it fails the
// endpoint has neither, and the error is returned with the view.
func BuildServiceView(v *state.Snapshot, svcs []*corev1.Service, podNet func(*state.Pod) (PodNet, error)) ([]svcproxy.Service, []error) {
	var errs []error
	idx := podIndex(v)
	nodeReady := map[string]bool{}
	for _, n := range v.Nodes() {
		nodeReady[n.Name] = n.Status == state.NodeReady
	}
	nets := map[string]PodNet{}
	out := make([]svcproxy.Service, 0, len(svcs))
	for _, s := range svcs {
		key := serviceKey(s)
		ns := key[:strings.IndexByte(key, '/')]
		sv := svcproxy.Service{
			Namespace:                ns,
			Name:                     s.Name,
			Type:                     svcproxy.TypeClusterIP,
			SessionAffinity:          svcproxy.AffinityNone,
			PublishNotReadyAddresses: s.Spec.PublishNotReadyAddresses,
		}
		switch ip := s.Spec.ClusterIP; ip {
		case corev1.ClusterIPNone:
		case "":
			als := v.AllocationsOf(state.AllocClusterIP, key)
			if len(als) == 0 {
				continue // not allocated yet
			}
			sv.ClusterIP, _ = netip.ParseAddr(als[0].Value)
		default:
			al := v.Allocation(state.AllocClusterIP, ip)
			if al == nil {
				continue // not allocated yet, or refused (the leader reports why)
			}
			if al.Owner != key {
				errs = append(errs, fmt.Errorf("service %s: spec.clusterIP %s is held by Service %s: left out", key, ip, al.Owner))
				continue
			}
			sv.ClusterIP, _ = netip.ParseAddr(ip)
		}
		nodePort := s.Spec.Type == corev1.ServiceTypeNodePort
		if nodePort {
			sv.Type = svcproxy.TypeNodePort
		}
		if s.Spec.SessionAffinity == corev1.ServiceAffinityClientIP {
			sv.SessionAffinity = svcproxy.AffinityClientIP
			if c := s.Spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
				sv.AffinityTimeout = time.Duration(*c.ClientIP.TimeoutSeconds) * time.Second
			}
		}
		switch s.Spec.ExternalTrafficPolicy {
		case corev1.ServiceExternalTrafficPolicyLocal:
			sv.ExternalTrafficPolicy = svcproxy.PolicyLocal
		case corev1.ServiceExternalTrafficPolicyCluster, "":
			sv.ExternalTrafficPolicy = svcproxy.PolicyCluster
		default:
			// svcproxy refuses it by name (Validate).
			sv.ExternalTrafficPolicy = svcproxy.TrafficPolicy(s.Spec.ExternalTrafficPolicy)
		}
		for i := range s.Spec.Ports {
			sp := &s.Spec.Ports[i]
			p := svcproxy.ServicePort{Name: sp.Name, Protocol: svcproxy.Protocol(portProtocol(sp)), Port: sp.Port}
			if sp.TargetPort.Type == intstr.String {
				p.TargetPort.Name = sp.TargetPort.StrVal
			} else {
				p.TargetPort.Number = sp.TargetPort.IntVal
			}
			if nodePort {
				p.NodePort = allocatedNodePort(v, key, sp)
			}
			sv.Ports = append(sv.Ports, p)
		}
		for _, rec := range idx.selected(ns, s.Spec.Selector) {
			ip, err := netip.ParseAddr(rec.Status.PodIP)
			if err != nil {
				errs = append(errs, fmt.Errorf("service %s: pod %s has a bad IP %q: left out", key, rec.Key(), rec.Status.PodIP))
				continue
			}
			pn, ok := nets[rec.UID]
			if !ok {
				var err error
				if pn, err = podNet(rec); err != nil {
					errs = append(errs, fmt.Errorf("service %s: pod %s: no named ports or hostname: %w", key, rec.Key(), err))
				}
				nets[rec.UID] = pn
			}
			ep := svcproxy.Endpoint{
				PodIP:    ip,
				NodeName: rec.NodeName,
				Ready:    rec.Status.Ready && rec.Desired == state.DesiredRun && nodeReady[rec.NodeName],
				Ports:    pn.Ports,
			}
			if pn.Subdomain == s.Name && pn.Hostname != "" {
				ep.Hostname = pn.Hostname
			}
			sv.Endpoints = append(sv.Endpoints, ep)
		}
		out = append(out, sv)
	}
	return out, errs
}

// allocatedNodePort returns a Service port's node port once it is
// allocated to this Service, else 0.
func allocatedNodePort(v *state.Snapshot, svc string, sp *corev1.ServicePort) int32 {
	if sp.NodePort != 0 {
		al := v.Allocation(state.AllocNodePort, strconv.Itoa(int(sp.NodePort)))
		if al == nil || ownerService(al.Owner) != svc {
			return 0
		}
		return sp.NodePort
	}
	als := v.AllocationsOf(state.AllocNodePort, nodePortOwner(svc, sp))
	if len(als) == 0 {
		return 0
	}
	n, err := strconv.Atoi(als[0].Value)
	if err != nil {
		return 0
	}
	return int32(n)
}

// podLabelIndex finds the pods a selector matches by walking the shortest
// list of pods carrying one of its labels, not every pod for every Service.
type podLabelIndex map[[3]string][]*state.Pod

// podIndex indexes the pods that can be endpoints: bound, with an IP, and
// not finished.
func podIndex(v *state.Snapshot) podLabelIndex {
	idx := podLabelIndex{}
	for _, p := range v.Pods() {
		if p.Status.PodIP == "" || p.NodeName == "" || p.Status.Phase.Terminal() {
			continue
		}
		for k, val := range p.Labels {
			idx[[3]string{p.Namespace, k, val}] = append(idx[[3]string{p.Namespace, k, val}], p)
		}
	}
	return idx
}

func (idx podLabelIndex) selected(ns string, selector map[string]string) []*state.Pod {
	if len(selector) == 0 {
		return nil
	}
	var shortest []*state.Pod
	first := true
	for k, val := range selector {
		l := idx[[3]string{ns, k, val}]
		if len(l) == 0 {
			return nil
		}
		if first || len(l) < len(shortest) {
			shortest, first = l, false
		}
	}
	var out []*state.Pod
	for _, p := range shortest {
		match := true
		for k, val := range selector {
			if got, ok := p.Labels[k]; !ok || got != val {
				match = false
				break
			}
		}
		if match {
			out = append(out, p)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out
}

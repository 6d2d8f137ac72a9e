package svcproxy

import (
	"cmp"
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Chain names. Every chain svcproxy owns starts with ChainPrefix; nothing
// else is ever written or deleted.
const (
	ChainPrefix = "SHOAL-"
	// nat: entered from PREROUTING and OUTPUT; dispatches to the ClusterIP
	// buckets by the destination's last byte, then to SHOAL-NODEPORTS for
	// local destinations.
	ChainServices = "SHOAL-SERVICES"
	// nat: dispatches NodePort traffic to the port buckets.
	ChainNodePorts = "SHOAL-NODEPORTS"
	// nat: entered from POSTROUTING; masquerades marked and hairpin traffic.
	ChainPostrouting = "SHOAL-POSTROUTING"
	// filter: entered from INPUT, FORWARD and OUTPUT for new connections;
	// rejects Service ports that have no endpoint.
	ChainReject = "SHOAL-REJECT"
	// nat and filter: always empty; if it disappears someone flushed our
	// rules and the next sync is a full one.
	ChainCanary = "SHOAL-CANARY"

	// ClusterIP bucket chains: SHOAL-SVC-00 … SHOAL-SVC-FF, one per value
	// of the ClusterIP's last byte, each holding the inline rules of every
	// Service port whose ClusterIP ends in that byte.
	svcBucketPrefix = "SHOAL-SVC-"
	// NodePort bucket chains: SHOAL-NP-000 … SHOAL-NP-3FF, one per 64
	// consecutive port numbers (port>>6).
	npBucketPrefix = "SHOAL-NP-"
	npBucketShift  = 6
)

// Table is the rendered content of one iptables table: for each of our
// chains, its rules as iptables-restore "-A" lines.
type Table struct {
	Name   string
	chains map[string][]byte
}

func newTable(name string) Table { return Table{Name: name, chains: map[string][]byte{}} }

// Chains returns the table's chain names, sorted.
func (t *Table) Chains() []string {
	names := make([]string, 0, len(t.chains))
	for n := range t.chains {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Rules returns a chain's "-A" lines (nil for an empty or unknown chain).
func (t *Table) Rules(chain string) []byte { return t.chains[chain] }

// Has says whether the table contains chain.
func (t *Table) Has(chain string) bool { _, ok := t.chains[chain]; return ok }

// Payload renders an iptables-restore --noflush input that rewrites the
// given chains of t (declaring a chain flushes it) and deletes the chains in
// del (flushed first so that -X succeeds).
func (t *Table) Payload(write, del []string) []byte {
	n := 32
	for _, c := range write {
		n += len(t.chains[c]) + len(c) + 10
	}
	b := make([]byte, 0, n+len(del)*40)
	b = append(b, '*')
	b = append(b, t.Name...)
	b = append(b, '\n')
	for _, c := range write {
		b = append(b, ':')
		b = append(b, c...)
		b = append(b, " - [0:0]\n"...)
	}
	for _, c := range del {
		b = append(b, ':')
		b = append(b, c...)
		b = append(b, " - [0:0]\n"...)
	}
	for _, c := range write {
		b = append(b, t.chains[c]...)
	}
	for _, c := range del {
		b = append(b, "-X "...)
		b = append(b, c...)
		b = append(b, '\n')
	}
	b = append(b, "COMMIT\n"...)
	return b
}

// Ruleset is the complete desired state of svcproxy's chains.
type Ruleset struct {
	NAT    Table
	Filter Table
	// Errors lists the Services (or ports) left out, with the reason.
	Errors []error
	// UDP lists every UDP Service port, for conntrack clean-up.
	UDP []UDPPort
}

// UDPPort is a rendered UDP Service port and the endpoint IPs it sends to.
type UDPPort struct {
	Key       string // "ns/name:port"
	ClusterIP netip.Addr
	Port      int32
	NodePort  int32 // 0 when no NodePort rule was rendered
	Endpoints []netip.Addr
}

type resolvedEndpoint struct {
	ip    netip.Addr
	port  int32
	local bool
}

// Render computes the complete desired ruleset for services on the node
// described by cfg. It is a pure function: same input, same bytes. Invalid
// Services are left out and reported in Ruleset.Errors; the rest are
// rendered.
func Render(cfg Config, services []Service) *Ruleset {
	return newRenderer(cfg).render(services)
}

// renderer renders Services one by one into fragments and remembers them:
// a Service equal to the one a fragment was rendered from reuses it, so a
// sync after one endpoint change renders one Service, not 10,000. The
// output is byte for byte what a fresh renderer gives (checked by
// TestRendererCacheMatchesFresh).
type renderer struct {
	cfg   Config
	mark  string
	cache map[string]*fragment
}

func newRenderer(cfg Config) *renderer {
	return &renderer{cfg: cfg, mark: "0x" + strconv.FormatUint(uint64(cfg.mark()), 16)}
}

// fragment is what one Service contributes, before conflicts between
// Services are resolved.
type fragment struct {
	svc   Service // the input, with Ports and Endpoints copied
	err   error
	ports []portFragment
}

// portFragment is what one Service port contributes.
type portFragment struct {
	portBase
	rules    []byte   // SHOAL-SVC-<bucket> rules; nil without endpoints
	reject   []byte   // SHOAL-REJECT rule when there is no endpoint
	udp      *UDPPort // UDP ports only; NodePort filled in by assemble
	node     portKey  // port 0: no NodePort
	npBucket int32
	npRules  []byte // SHOAL-NP-<npBucket> rules; nil when rejected
	npReject []byte
}

// portBase is what both renderers derive first for one port of a
// Service.
type portBase struct {
	owner   string // "ns/name:port", or "ns/name:N" for an unnamed port
	cluster portKey
	bucket  byte         // the ClusterIP's last byte
	local   []netip.Addr // this node's endpoints
}

// newPortBase derives the portBase of port sp of s, whose endpoints for
// that port are eps (from resolve).
func newPortBase(s *Service, sp *ServicePort, eps []resolvedEndpoint) portBase {
	owner := s.Key() + ":" + sp.Name
	if sp.Name == "" {
		owner = s.Key() + ":" + strconv.Itoa(int(sp.Port))
	}
	b := portBase{owner: owner, cluster: portKey{s.ClusterIP, sp.Protocol, sp.Port}, bucket: s.ClusterIP.As4()[3]}
	for _, e := range eps {
		if e.local {
			b.local = append(b.local, e.ip)
		}
	}
	return b
}

// clonedService is a copy of s that shares no slice with it, for a
// fragment to keep.
func clonedService(s *Service) Service {
	c := *s
	c.Ports = slices.Clone(s.Ports)
	c.Endpoints = slices.Clone(s.Endpoints)
	return c
}

// portClaims records which Service port holds each ClusterIP:port and
// NodePort while a ruleset is assembled: the first claim wins.
type portClaims map[portKey]string

// claim gives k to owner if it is free, and otherwise returns the error
// that says who holds it.
func (c portClaims) claim(k portKey, owner string) error {
	if prev, ok := c[k]; ok {
		what := fmt.Sprintf("%s %s:%d", k.proto, k.ip, k.port)
		if !k.ip.IsValid() {
			what = fmt.Sprintf("%s nodePort %d", k.proto, k.port)
		}
		return fmt.Errorf("service %s: %s is already used by %s; port left out", owner, what, prev)
	}
	c[k] = owner
	return nil
}

type portKey struct {
	ip    netip.Addr // zero for NodePorts
	proto Protocol
	port  int32
}

const hexByte = "0123456789ABCDEF"

func (rd *renderer) render(services []Service) *Ruleset {
	var frags []*fragment
	frags, rd.cache = renderCached(services, rd.cache, func(f *fragment) *Service { return &f.svc }, rd.service,
		func(err error) *fragment { return &fragment{err: err} })
	return rd.assemble(frags)
}

// renderCached renders services in renderOrder for either backend: the
// fragment of a Service unchanged since it was rendered comes from cache
// (svcOf gives the Service a fragment was rendered from), the others from
// render. It returns the fragments, one made by failed first for each
// duplicate left out, and the cache for the next call.
func renderCached[F any](services []Service, cache map[string]F, svcOf func(F) *Service, render func(*Service) F,
	failed func(error) F) ([]F, map[string]F) {
	order, dups := renderOrder(services)
	next := make(map[string]F, len(services))
	frags := make([]F, 0, len(services)+len(dups))
	for _, err := range dups {
		frags = append(frags, failed(err))
	}
	for _, o := range order {
		s, key := &services[o.i], o.key
		f, ok := cache[key]
		if !ok || !sameService(svcOf(f), s) {
			f = render(s)
		}
		next[key] = f
		frags = append(frags, f)
	}
	return frags, next
}

// keyedIndex is the index of a Service in renderCached's input, with its
// key.
type keyedIndex struct {
	i   int
	key string
}

// renderOrder returns the indexes of services (with their keys) sorted by
// namespace and name, and an error for each Service whose key an earlier one in the input
// already has: that one is left out (both backends key their caches and
// outputs by namespace/name, and "the first by namespace/name keeps a
// contested port" needs the key to be unique).
func renderOrder(services []Service) (order []keyedIndex, dups []error) {
	order = make([]keyedIndex, 0, len(services))
	seen := make(map[string]bool, len(services))
	for i := range services {
		key := services[i].Key()
		if seen[key] {
			dups = append(dups, fmt.Errorf("service %s: listed more than once; only the first is used", key))
			continue
		}
		seen[key] = true
		order = append(order, keyedIndex{i, key})
	}
	slices.SortFunc(order, func(a, b keyedIndex) int {
		sa, sb := &services[a.i], &services[b.i]
		return cmp.Or(cmp.Compare(sa.Namespace, sb.Namespace), cmp.Compare(sa.Name, sb.Name))
	})
	return order, dups
}

// sameService compares everything rendering reads.
func sameService(a, b *Service) bool {
	if a.Namespace != b.Namespace || a.Name != b.Name || a.ClusterIP != b.ClusterIP || a.Type != b.Type ||
		a.SessionAffinity != b.SessionAffinity || a.AffinityTimeout != b.AffinityTimeout ||
		a.ExternalTrafficPolicy != b.ExternalTrafficPolicy || a.PublishNotReadyAddresses != b.PublishNotReadyAddresses ||
		!slices.Equal(a.Ports, b.Ports) || len(a.Endpoints) != len(b.Endpoints) {
		return false
	}
	for i := range a.Endpoints {
		x, y := &a.Endpoints[i], &b.Endpoints[i]
		if x.PodIP != y.PodIP || x.NodeName != y.NodeName || x.Ready != y.Ready || x.Hostname != y.Hostname || !maps.Equal(x.Ports, y.Ports) {
			return false
		}
	}
	return true
}

// service renders one Service on its own.
func (rd *renderer) service(s *Service) *fragment {
	f := &fragment{svc: clonedService(s)}
	if f.err = s.Validate(); f.err != nil || !s.ClusterIP.IsValid() {
		return f // invalid, or headless (DNS only)
	}
	timeout := strconv.FormatInt(int64(s.affinityTimeout().Seconds()), 10)
	var match []byte
	for pi := range s.Ports {
		sp := &s.Ports[pi]
		eps := resolve(s, sp, rd.cfg.NodeName)
		pf := portFragment{portBase: newPortBase(s, sp, eps)}
		comment, bucket := pf.owner, pf.bucket
		proto := "tcp"
		reject := "tcp-reset"
		if sp.Protocol == UDP {
			proto = "udp"
			reject = "icmp-port-unreachable"
		}
		var recent []string
		if s.SessionAffinity == AffinityClientIP {
			recent = make([]string, len(eps))
			for i, e := range eps {
				recent[i] = recentName(comment, sp.Protocol, e)
			}
		}

		// ClusterIP.
		match = append(match[:0], "-A "...)
		match = append(match, svcBucketPrefix...)
		match = append(match, hexByte[bucket>>4], hexByte[bucket&15])
		match = append(match, " -d "...)
		match = s.ClusterIP.AppendTo(match)
		match = append(match, "/32 -p "...)
		match = append(match, proto...)
		match = append(match, " -m "...)
		match = append(match, proto...)
		match = append(match, " --dport "...)
		match = strconv.AppendInt(match, int64(sp.Port), 10)
		// The first rule of each port's block names the Service: enough to
		// read iptables-save, and a comment on every rule costs ~25% more
		// restore time at 10,000 Services.
		named := " -m comment --comment " + comment
		if len(eps) == 0 {
			pf.reject = fmt.Appendf(nil, "-A %s -d %s/32 -p %s -m %s --dport %d -m comment --comment %s -j REJECT --reject-with %s\n",
				ChainReject, s.ClusterIP, proto, proto, sp.Port, comment, reject)
		} else {
			n := len(eps) + 1
			if recent != nil {
				n += len(eps)
			}
			b := make([]byte, 0, n*(len(match)+len(named)+80))
			if rd.cfg.ClusterCIDR.IsValid() && !rd.cfg.ServiceCIDR.Contains(s.ClusterIP) {
				// Outside clients are marked per Service port, unless the
				// ClusterIP is in ServiceCIDR: one POSTROUTING rule covers those.
				b = append(b, match...)
				b = append(b, named...)
				named = ""
				b = append(b, " ! -s "...)
				b = rd.cfg.ClusterCIDR.AppendTo(b)
				b = append(b, " -j MARK --or-mark "...)
				b = append(b, rd.mark...)
				b = append(b, '\n')
			}
			pf.rules = dnatRules(b, match, named, eps, recent, timeout)
		}
		if sp.Protocol == UDP {
			pf.udp = udpPort(comment, s.ClusterIP, sp.Port, eps)
		}

		// NodePort.
		if s.Type == TypeNodePort && sp.NodePort != 0 {
			pf.node = portKey{proto: sp.Protocol, port: sp.NodePort}
			local := s.ExternalTrafficPolicy == PolicyLocal
			npEps, npRecent := nodePortEndpoints(local, eps, recent)
			if len(npEps) == 0 {
				pf.npReject = fmt.Appendf(nil, "-A %s -m addrtype --dst-type LOCAL -p %s -m %s --dport %d -m comment --comment %s -j REJECT --reject-with %s\n",
					ChainReject, proto, proto, sp.NodePort, comment, reject)
			} else {
				pf.npBucket = sp.NodePort >> npBucketShift
				npMatch := fmt.Appendf(nil, "-A %s%03X -p %s -m %s --dport %d", npBucketPrefix, pf.npBucket, proto, proto, sp.NodePort)
				var b []byte
				if local {
					// Only traffic the node sends itself needs masquerading:
					// remote clients keep their source address, which is the
					// point of Local.
					b = fmt.Appendf(b, "%s -m comment --comment %s -m addrtype --src-type LOCAL -j MARK --or-mark %s\n", npMatch, comment, rd.mark)
				} else {
					b = fmt.Appendf(b, "%s -m comment --comment %s -j MARK --or-mark %s\n", npMatch, comment, rd.mark)
				}
				pf.npRules = dnatRules(b, npMatch, "", npEps, npRecent, timeout)
			}
		}
		f.ports = append(f.ports, pf)
	}
	return f
}

// assemble resolves conflicts (the first Service by key keeps a contested
// ClusterIP:port or NodePort) and concatenates the fragments into chains.
func (rd *renderer) assemble(frags []*fragment) *Ruleset {
	r := &Ruleset{NAT: newTable("nat"), Filter: newTable("filter")}
	claims := make(portClaims, len(frags))
	claim := func(k portKey, owner string) bool {
		err := claims.claim(k, owner)
		if err != nil {
			r.Errors = append(r.Errors, err)
		}
		return err == nil
	}
	type use struct {
		pf   *portFragment
		node bool
	}
	uses := make([]use, 0, len(frags))
	var sizes [256]int
	for _, f := range frags {
		if f.err != nil {
			r.Errors = append(r.Errors, f.err)
			continue
		}
		for i := range f.ports {
			pf := &f.ports[i]
			if !claim(pf.cluster, pf.owner) {
				continue
			}
			u := use{pf: pf, node: pf.node.port != 0 && claim(pf.node, pf.owner)}
			uses = append(uses, u)
			sizes[pf.bucket] += len(pf.rules)
		}
	}
	var svc [256][]byte
	for i, n := range sizes {
		if n > 0 {
			svc[i] = make([]byte, 0, n)
		}
	}
	np := map[int32][]byte{}
	npProto := map[int32]uint8{}
	var reject []byte
	localIPs := map[netip.Addr]bool{}
	for _, u := range uses {
		pf := u.pf
		svc[pf.bucket] = append(svc[pf.bucket], pf.rules...)
		reject = append(reject, pf.reject...)
		for _, ip := range pf.local {
			localIPs[ip] = true
		}
		var udp UDPPort
		if pf.udp != nil {
			udp = *pf.udp
		}
		if u.node {
			reject = append(reject, pf.npReject...)
			if pf.npRules != nil {
				np[pf.npBucket] = append(np[pf.npBucket], pf.npRules...)
				bit := uint8(1)
				if pf.node.proto == UDP {
					bit = 2
				}
				npProto[pf.npBucket] |= bit
				udp.NodePort = pf.node.port
			}
		}
		if pf.udp != nil {
			r.UDP = append(r.UDP, udp)
		}
	}
	rd.finish(r, &svc, np, npProto, reject, localIPs)
	return r
}

// dnatRules appends the balancing rules for one Service port: with session
// affinity first one "recent --update" rule per endpoint (a client seen
// within the timeout goes back to the same endpoint and refreshes its
// entry), then the random choice: rule i matches with probability 1/(n-i),
// so every endpoint gets 1/n, and records the client in the endpoint's
// recent list when affinity is on.
func dnatRules(b []byte, match []byte, named string, eps []resolvedEndpoint, recent []string, timeout string) []byte {
	for i, e := range eps {
		if recent == nil {
			break
		}
		b = append(b, match...)
		b = append(b, named...)
		named = ""
		b = append(b, " -m recent --name "...)
		b = append(b, recent[i]...)
		b = append(b, " --mask 255.255.255.255 --rsource --update --seconds "...)
		b = append(b, timeout...)
		b = append(b, " --reap"...)
		b = appendDNAT(b, e)
	}
	n := len(eps)
	for i, e := range eps {
		b = append(b, match...)
		b = append(b, named...)
		named = ""
		if i < n-1 {
			b = append(b, " -m statistic --mode random --probability "...)
			b = strconv.AppendFloat(b, 1/float64(n-i), 'f', 10, 64)
		}
		if recent != nil {
			b = append(b, " -m recent --name "...)
			b = append(b, recent[i]...)
			b = append(b, " --mask 255.255.255.255 --rsource --set"...)
		}
		b = appendDNAT(b, e)
	}
	return b
}

func appendDNAT(b []byte, e resolvedEndpoint) []byte {
	b = append(b, " -j DNAT --to-destination "...)
	b = e.ip.AppendTo(b)
	b = append(b, ':')
	b = strconv.AppendInt(b, int64(e.port), 10)
	return append(b, '\n')
}

// recentName names the xt_recent list of one endpoint of one Service port.
// The ClusterIP and NodePort rules share it, so affinity holds across both.
func recentName(portID string, proto Protocol, e resolvedEndpoint) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%s:%d", portID, proto, e.ip, e.port))
	return ChainPrefix + base32.StdEncoding.EncodeToString(h[:10])
}

// resolve returns the endpoints that should receive traffic for sp, with
// their target port, sorted by address. Not-ready endpoints count only when
// the Service publishes them; an endpoint without the named target port is
// skipped, as Kubernetes does.
func resolve(s *Service, sp *ServicePort, node string) []resolvedEndpoint {
	out := make([]resolvedEndpoint, 0, len(s.Endpoints))
	for i := range s.Endpoints {
		e := &s.Endpoints[i]
		if !e.Ready && !s.PublishNotReadyAddresses {
			continue
		}
		port := sp.Port
		switch {
		case sp.TargetPort.Name != "":
			p, ok := e.Ports[sp.TargetPort.Name]
			if !ok || p <= 0 || p > 65535 {
				continue
			}
			port = p
		case sp.TargetPort.Number != 0:
			port = sp.TargetPort.Number
		}
		out = append(out, resolvedEndpoint{ip: e.PodIP, port: port, local: e.NodeName == node})
	}
	slices.SortFunc(out, func(a, b resolvedEndpoint) int {
		return cmp.Or(a.ip.Compare(b.ip), cmp.Compare(a.port, b.port))
	})
	return slices.CompactFunc(out, func(a, b resolvedEndpoint) bool { return a.ip == b.ip && a.port == b.port })
}

// finish writes the dispatch and fixed chains.
func (rd *renderer) finish(r *Ruleset, svc *[256][]byte, np map[int32][]byte, npProto map[int32]uint8, reject []byte, localIPs map[netip.Addr]bool) {
	nat, filter := &r.NAT, &r.Filter
	var sv []byte
	for i := range svc {
		if len(svc[i]) == 0 {
			continue
		}
		name := fmt.Sprintf("%s%02X", svcBucketPrefix, i)
		nat.chains[name] = svc[i]
		sv = fmt.Appendf(sv, "-A %s -d 0.0.0.%d/0.0.0.255 -j %s\n", ChainServices, i, name)
	}
	// NodePorts on every local address but loopback: DNAT from 127.0.0.1
	// would need route_localnet, as in kube-proxy's default.
	sv = fmt.Appendf(sv, "-A %s -m addrtype --dst-type LOCAL ! -d 127.0.0.0/8 -j %s\n", ChainServices, ChainNodePorts)
	nat.chains[ChainServices] = sv

	var npDispatch []byte
	buckets := make([]int32, 0, len(np))
	for k := range np {
		buckets = append(buckets, k)
	}
	slices.Sort(buckets)
	for _, k := range buckets {
		name := fmt.Sprintf("%s%03X", npBucketPrefix, k)
		nat.chains[name] = np[k]
		lo, hi := k<<npBucketShift, (k<<npBucketShift)|(1<<npBucketShift-1)
		for _, p := range []struct {
			bit   uint8
			proto string
		}{{1, "tcp"}, {2, "udp"}} {
			if npProto[k]&p.bit != 0 {
				npDispatch = fmt.Appendf(npDispatch, "-A %s -p %s -m %s --dport %d:%d -j %s\n", ChainNodePorts, p.proto, p.proto, lo, hi, name)
			}
		}
	}
	nat.chains[ChainNodePorts] = npDispatch

	// Hairpin: a pod that reaches itself through a Service must see the
	// node as the source, or its reply would skip the un-DNAT. Only local
	// endpoints can be their own clients here.
	var post []byte
	locals := make([]netip.Addr, 0, len(localIPs))
	for ip := range localIPs {
		locals = append(locals, ip)
	}
	slices.SortFunc(locals, netip.Addr.Compare)
	for _, ip := range locals {
		post = fmt.Appendf(post, "-A %s -s %s/32 -d %s/32 -j MARK --or-mark %s\n", ChainPostrouting, ip, ip, rd.mark)
	}
	if rd.cfg.ClusterCIDR.IsValid() && rd.cfg.ServiceCIDR.IsValid() {
		// Clients outside the pod network reaching a ClusterIP: one rule
		// for every Service, instead of one per Service port (10,000 fewer
		// rules for the kernel to validate on every change).
		post = fmt.Appendf(post, "-A %s ! -s %s -m conntrack --ctstate DNAT --ctorigdst %s -j MARK --or-mark %s\n",
			ChainPostrouting, rd.cfg.ClusterCIDR, rd.cfg.ServiceCIDR, rd.mark)
	}
	if rd.cfg.MasqueradeEgress && rd.cfg.ClusterCIDR.IsValid() {
		// Pods reaching beyond the pod network leave as the node.
		post = fmt.Appendf(post, "-A %s -s %s ! -d %s -j MARK --or-mark %s\n",
			ChainPostrouting, rd.cfg.ClusterCIDR, rd.cfg.ClusterCIDR, rd.mark)
	}
	post = fmt.Appendf(post, "-A %s -m mark ! --mark %s/%s -j RETURN\n", ChainPostrouting, rd.mark, rd.mark)
	post = fmt.Appendf(post, "-A %s -j MARK --xor-mark %s\n", ChainPostrouting, rd.mark)
	post = fmt.Appendf(post, "-A %s -j MASQUERADE --random-fully\n", ChainPostrouting)
	nat.chains[ChainPostrouting] = post
	nat.chains[ChainCanary] = nil

	filter.chains[ChainReject] = reject
	filter.chains[ChainCanary] = nil
}

// udpPort is a UDP Service port as conntrack clean-up needs it (both backends).
func udpPort(key string, clusterIP netip.Addr, port int32, eps []resolvedEndpoint) *UDPPort {
	u := &UDPPort{Key: key, ClusterIP: clusterIP, Port: port}
	for _, e := range eps {
		u.Endpoints = append(u.Endpoints, e.ip)
	}
	return u
}

// nodePortEndpoints returns the endpoints a NodePort sends to, with the
// per-endpoint affinity items (aff: nil, or one per endpoint) that go with
// them: all of them, or with externalTrafficPolicy Local this node's only.
func nodePortEndpoints[A any](local bool, eps []resolvedEndpoint, aff []A) ([]resolvedEndpoint, []A) {
	if !local {
		return eps, aff
	}
	var out []resolvedEndpoint
	var outAff []A
	for i, e := range eps {
		if e.local {
			out = append(out, e)
			if aff != nil {
				outAff = append(outAff, aff[i])
			}
		}
	}
	return out, outAff
}

// Owned says whether chain belongs to svcproxy.
func Owned(chain string) bool { return strings.HasPrefix(chain, ChainPrefix) }

package svcproxy

import (
	"crypto/sha256"
	"encoding/base32"
	"fmt"
	"maps"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/nftables"
)

// The nftables layout (docs/svcproxy.md, "nftables layout"). Its shape
// depends on Config only: 256 ClusterIP bucket chains and 64 NodePort
// bucket chains always exist, each ending in one rule that DNATs through
// its endpoint map. Services are elements of those maps and of a few sets,
// so adding, changing or removing a Service changes elements, not rules:
// the kernel re-validates the table's rules only when a rule changes
// (ClientIP affinity, whose rules live in the bucket chains).
const (
	nftServices     = "services"
	nftNodePorts    = "nodeports"
	nftMasquerading = "masquerading"
	nftRejectCheck  = "reject-check"
	nftCanary       = "canary"

	nftClusterBuckets  = "cluster-buckets"  // ip daddr & 0.0.0.255 → jump svc-XX
	nftNodePortBuckets = "nodeport-buckets" // th dport & 0x3f → jump np-XX
	nftClusterMasq     = "cluster-masq"     // ClusterIP ports with endpoints: outside clients are masqueraded
	nftNodePortMasq    = "nodeport-masq"    // NodePorts (policy Cluster) with endpoints
	nftNodePortLocal   = "nodeport-local"   // NodePorts (policy Local) with a local endpoint
	nftNoEndpoints     = "no-endpoints"     // ClusterIP ports to reject
	nftNoEndpointNP    = "no-endpoint-nodeports"
	nftHairpin         = "hairpin" // local endpoint . itself

	nftNPBuckets = 64
)

func svcBucketChain(b byte) string     { return fmt.Sprintf("svc-%02x", b) }
func svcBucketMap(b byte) string       { return fmt.Sprintf("svc-%02x-endpoints", b) }
func npBucketChain(b uint8) string     { return fmt.Sprintf("np-%02x", b) }
func npBucketMap(b uint8) string       { return fmt.Sprintf("np-%02x-endpoints", b) }
func npBucketOf(port int32) uint8      { return uint8(port % nftNPBuckets) }
func affinitySetName(id string) string { return "affinity-" + id }

// NFTRuleset is the complete desired state of svcproxy's nftables table.
type NFTRuleset struct {
	// chains in creation order, each with all its rules.
	chains []*nftChain
	sets   []*nftSet
	// static holds the elements that do not belong to one Service: the
	// bucket dispatch maps and the hairpin set.
	static map[string][]nftElem
	// services holds what each Service adds to the shared sets, by key.
	// A Service whose input and claims did not change keeps its pointer.
	services map[string]*nftServiceOut
	// Errors lists the Services (or ports) left out, with the reason.
	Errors []error
	// UDP lists every UDP Service port, for conntrack clean-up.
	UDP []UDPPort
}

// nftServiceOut is one Service's elements.
type nftServiceOut struct {
	frag  *nftFragment
	won   []bool // per port: ClusterIP claimed, NodePort claimed
	elems []setElem
}

type setElem struct {
	set  string
	elem nftElem
}

// RenderNFT computes the complete desired nftables state for services on
// the node described by cfg. It is a pure function.
func RenderNFT(cfg Config, services []Service) *NFTRuleset {
	return newNFTRenderer(cfg).render(services)
}

// nftRenderer caches each Service's fragment, as renderer does, and each
// Service's output, so that a sync after one endpoint change renders one
// Service and the Proxier compares pointers for the other 9,999.
type nftRenderer struct {
	cfg   Config
	cache map[string]*nftFragment
	outs  map[string]*nftServiceOut
	// The last rule of each bucket chain, and the bucket dispatch
	// elements: the same in every render.
	svcMapRule [256]nftRule
	npMapRule  [nftNPBuckets]nftRule
	dispatch   map[string][]nftElem
}

func newNFTRenderer(cfg Config) *nftRenderer {
	rd := &nftRenderer{cfg: cfg, dispatch: map[string][]nftElem{}}
	for b := range 256 {
		rd.svcMapRule[b] = new(rule).dnatMap(svcBucketMap(byte(b)), false).done()
		rd.dispatch[nftClusterBuckets] = append(rd.dispatch[nftClusterBuckets], nftElem{key: []byte{0, 0, 0, byte(b)}, chain: svcBucketChain(byte(b))})
	}
	for b := range uint8(nftNPBuckets) {
		rd.npMapRule[b] = new(rule).dnatMap(npBucketMap(b), true).done()
		rd.dispatch[nftNodePortBuckets] = append(rd.dispatch[nftNodePortBuckets], nftElem{key: []byte{0, b}, chain: npBucketChain(b)})
	}
	return rd
}

// nftFragment is what one Service contributes before conflicts between
// Services are resolved.
type nftFragment struct {
	svc   Service
	key   string
	err   error
	ports []nftPortFrag
}

type nftPortFrag struct {
	portBase
	node         portKey // port 0: no NodePort
	clusterElems []setElem
	nodeElems    []setElem
	clusterRules []nftRule // affinity only: rules for chain svc-XX
	nodeRules    []nftRule // affinity only: rules for chain np-XX
	sets         []*nftSet // affinity sets
	udp          *UDPPort
	npEndpoints  bool // the NodePort has endpoints (for UDP clean-up)
}

func (rd *nftRenderer) render(services []Service) *NFTRuleset {
	var frags []*nftFragment
	frags, rd.cache = renderCached(services, rd.cache, func(f *nftFragment) *Service { return &f.svc }, rd.service,
		func(err error) *nftFragment { return &nftFragment{err: err} })
	return rd.assemble(frags)
}

// service renders one Service on its own.
func (rd *nftRenderer) service(s *Service) *nftFragment {
	f := &nftFragment{svc: clonedService(s), key: s.Key()}
	if f.err = s.Validate(); f.err != nil || !s.ClusterIP.IsValid() {
		return f
	}
	timeout := s.affinityTimeout()
	for pi := range s.Ports {
		sp := &s.Ports[pi]
		eps := resolve(s, sp, rd.cfg.NodeName)
		pf := nftPortFrag{portBase: newPortBase(s, sp, eps)}
		owner, bucket := pf.owner, pf.bucket
		var affinity []*nftSet
		if s.SessionAffinity == AffinityClientIP && len(eps) > 0 {
			affinity = make([]*nftSet, len(eps))
			for i, e := range eps {
				affinity[i] = &nftSet{name: affinitySetName(nftAffinityID(owner, sp.Protocol, e, timeout)), kind: setAffinity, timeout: timeout}
			}
			pf.sets = affinity
		}

		// ClusterIP.
		if len(eps) == 0 {
			pf.clusterElems = []setElem{{nftNoEndpoints, nftElem{key: addrPortKey(s.ClusterIP, sp.Protocol, sp.Port)}}}
		} else {
			pf.clusterElems = append(pf.clusterElems, setElem{nftClusterMasq, nftElem{key: addrPortKey(s.ClusterIP, sp.Protocol, sp.Port)}})
			if affinity == nil {
				for _, e := range endpointElems(s.ClusterIP, sp.Protocol, sp.Port, eps) {
					pf.clusterElems = append(pf.clusterElems, setElem{svcBucketMap(bucket), e})
				}
			} else {
				match := func() *rule {
					return new(rule).daddr(s.ClusterIP).l4proto(sp.Protocol).dport(sp.Port)
				}
				pf.clusterRules = affinityRules(match, eps, affinity, timeout)
			}
		}
		if sp.Protocol == UDP {
			pf.udp = udpPort(owner, s.ClusterIP, sp.Port, eps)
		}

		// NodePort.
		if s.Type == TypeNodePort && sp.NodePort != 0 {
			pf.node = portKey{proto: sp.Protocol, port: sp.NodePort}
			local := s.ExternalTrafficPolicy == PolicyLocal
			npEps, npAffinity := nodePortEndpoints(local, eps, affinity)
			k := portKey2(sp.Protocol, sp.NodePort)
			switch {
			case len(npEps) == 0:
				pf.nodeElems = []setElem{{nftNoEndpointNP, nftElem{key: k}}}
			case local:
				pf.nodeElems = []setElem{{nftNodePortLocal, nftElem{key: k}}}
			default:
				pf.nodeElems = []setElem{{nftNodePortMasq, nftElem{key: k}}}
			}
			if len(npEps) > 0 {
				pf.npEndpoints = true
				if npAffinity == nil {
					for _, e := range endpointElems(netip.Addr{}, sp.Protocol, sp.NodePort, npEps) {
						pf.nodeElems = append(pf.nodeElems, setElem{npBucketMap(npBucketOf(sp.NodePort)), e})
					}
				} else {
					match := func() *rule { return new(rule).l4proto(sp.Protocol).dport(sp.NodePort) }
					pf.nodeRules = affinityRules(match, npEps, npAffinity, timeout)
				}
			}
		}
		f.ports = append(f.ports, pf)
	}
	return f
}

// affinityRules are the rules of one Service port with ClientIP affinity,
// as in the iptables layout: a client seen within the timeout goes back to
// its endpoint (and refreshes its entry); otherwise rule i picks endpoint i
// with probability 1/(n-i) and records the client in that endpoint's set.
func affinityRules(match func() *rule, eps []resolvedEndpoint, sets []*nftSet, to time.Duration) []nftRule {
	out := make([]nftRule, 0, 2*len(eps))
	for i, e := range eps {
		out = append(out, match().affinitySeen(sets[i].name, to).dnatTo(e).done())
	}
	n := len(eps)
	for i, e := range eps {
		r := match()
		if i < n-1 {
			r.random(n - i)
		}
		out = append(out, r.affinityRecord(sets[i].name, to).dnatTo(e).done())
	}
	return out
}

// nftAffinityID names the affinity set of one endpoint of one Service
// port. The ClusterIP and NodePort rules share it; the timeout is part of
// the name because a set's timeout cannot change.
func nftAffinityID(portID string, proto Protocol, e resolvedEndpoint, timeout time.Duration) string {
	h := sha256.Sum256(fmt.Appendf(nil, "%s/%s/%s:%d/%d", portID, proto, e.ip, e.port, int64(timeout.Seconds())))
	return strings.ToLower(base32.StdEncoding.EncodeToString(h[:10]))
}

// assemble resolves conflicts (the first Service by key keeps a contested
// ClusterIP:port or NodePort, as in Render) and builds the table.
func (rd *nftRenderer) assemble(frags []*nftFragment) *NFTRuleset {
	r := &NFTRuleset{services: make(map[string]*nftServiceOut, len(frags))}
	claims := make(portClaims, len(frags))
	claim := func(k portKey, owner string) bool {
		err := claims.claim(k, owner)
		if err != nil {
			r.Errors = append(r.Errors, err)
		}
		return err == nil
	}
	var svcRules [256][]nftRule
	var npRules [nftNPBuckets][]nftRule
	var affinity []*nftSet
	hairpin := map[netip.Addr]bool{}
	var won []bool // per Service, reused
	nextOuts := make(map[string]*nftServiceOut, len(frags))
	for _, f := range frags {
		if f.err != nil {
			r.Errors = append(r.Errors, f.err)
			continue
		}
		won = slices.Grow(won[:0], 2*len(f.ports))[:2*len(f.ports)]
		clear(won)
		for i := range f.ports {
			pf := &f.ports[i]
			if won[2*i] = claim(pf.cluster, pf.owner); !won[2*i] {
				continue
			}
			won[2*i+1] = pf.node.port != 0 && claim(pf.node, pf.owner)
			svcRules[pf.bucket] = append(svcRules[pf.bucket], pf.clusterRules...)
			affinity = append(affinity, pf.sets...)
			for _, ip := range pf.local {
				hairpin[ip] = true
			}
			udp := pf.udp
			if won[2*i+1] {
				npRules[npBucketOf(pf.node.port)] = append(npRules[npBucketOf(pf.node.port)], pf.nodeRules...)
				if udp != nil && pf.npEndpoints {
					u := *udp
					u.NodePort = pf.node.port
					udp = &u
				}
			}
			if udp != nil {
				r.UDP = append(r.UDP, *udp)
			}
		}
		key := f.key
		out := rd.outs[key]
		if out == nil || out.frag != f || !slices.Equal(out.won, won) {
			out = &nftServiceOut{frag: f, won: slices.Clone(won)}
			for i := range f.ports {
				if won[2*i] {
					out.elems = append(out.elems, f.ports[i].clusterElems...)
				}
				if won[2*i+1] {
					out.elems = append(out.elems, f.ports[i].nodeElems...)
				}
			}
		}
		nextOuts[key] = out
		r.services[key] = out
	}
	rd.outs = nextOuts
	rd.skeleton(r, &svcRules, &npRules)
	// Affinity sets shared by a ClusterIP and its NodePort appear once.
	slices.SortFunc(affinity, func(a, b *nftSet) int { return strings.Compare(a.name, b.name) })
	r.sets = append(r.sets, slices.CompactFunc(affinity, func(a, b *nftSet) bool { return a.name == b.name })...)
	locals := make([]netip.Addr, 0, len(hairpin))
	for ip := range hairpin {
		locals = append(locals, ip)
	}
	slices.SortFunc(locals, netip.Addr.Compare)
	for _, ip := range locals {
		r.static[nftHairpin] = append(r.static[nftHairpin], nftElem{key: addrPairKey(ip, ip)})
	}
	return r
}

// skeleton adds the chains, their rules and the fixed sets.
func (rd *nftRenderer) skeleton(r *NFTRuleset, svcRules *[256][]nftRule, npRules *[nftNPBuckets][]nftRule) {
	cfg := rd.cfg
	mark := cfg.mark()
	r.static = make(map[string][]nftElem, len(rd.dispatch)+1)
	maps.Copy(r.static, rd.dispatch)
	add := func(c *nftChain) { r.chains = append(r.chains, c) }

	// Regular chains first: base chains jump to them.
	for b := range 256 {
		c := &nftChain{name: svcBucketChain(byte(b))}
		c.rules = append(slices.Clip(svcRules[b]), rd.svcMapRule[b])
		add(c)
		r.sets = append(r.sets, &nftSet{name: svcBucketMap(byte(b)), kind: setEndpoints})
	}
	for b := range uint8(nftNPBuckets) {
		c := &nftChain{name: npBucketChain(b)}
		c.rules = append(slices.Clip(npRules[b]), rd.npMapRule[b])
		add(c)
		r.sets = append(r.sets, &nftSet{name: npBucketMap(b), kind: setEndpoints})
	}
	r.sets = append(r.sets,
		&nftSet{name: nftClusterBuckets, kind: setAddrVerdict},
		&nftSet{name: nftNodePortBuckets, kind: setPortVerdict},
		&nftSet{name: nftClusterMasq, kind: setAddrPort},
		&nftSet{name: nftNodePortMasq, kind: setPort},
		&nftSet{name: nftNodePortLocal, kind: setPort},
		&nftSet{name: nftNoEndpoints, kind: setAddrPort},
		&nftSet{name: nftNoEndpointNP, kind: setPort},
		&nftSet{name: nftHairpin, kind: setAddrPair},
	)

	// nodeports: NodePort traffic (to any local address but loopback).
	np := &nftChain{name: nftNodePorts}
	np.rules = append(np.rules,
		new(rule).inPort(nftNodePortMasq).setMark(mark).done(),
		// Policy Local: only traffic the node sends itself is masqueraded;
		// remote clients keep their address, which is the point of Local.
		new(rule).fibLocal(true).inPort(nftNodePortLocal).setMark(mark).done(),
		new(rule).add("th dport & 0x3f vmap @"+nftNodePortBuckets, loadDport(reg1),
			bitwise2(0x00, nftNPBuckets-1), vmapLookup(nftNodePortBuckets)).done(),
	)
	add(np)

	// services: entered from prerouting and output.
	sv := &nftChain{name: nftServices}
	if cfg.ClusterCIDR.IsValid() {
		// Clients outside the pod network reaching a ClusterIP are
		// masqueraded so that replies come back through this node.
		sv.rules = append(sv.rules, new(rule).prefix("ip saddr", loadSaddr(reg1), cfg.ClusterCIDR, true).inAddrPort(nftClusterMasq).setMark(mark).done())
	}
	sv.rules = append(sv.rules,
		new(rule).add("ip daddr & 0.0.0.255 vmap @"+nftClusterBuckets, loadDaddr(reg1),
			bitwise4([4]byte{0, 0, 0, 255}), vmapLookup(nftClusterBuckets)).done(),
		// NodePorts on every local address but loopback: DNAT from
		// 127.0.0.1 would need route_localnet, as in kube-proxy's default.
		new(rule).fibLocal(false).prefix("ip daddr", loadDaddr(reg1), netip.MustParsePrefix("127.0.0.0/8"), true).jump(nftNodePorts).done(),
	)
	add(sv)

	// masquerading: entered from postrouting.
	ms := &nftChain{name: nftMasquerading}
	// Hairpin: a pod that reaches itself through a Service must see the
	// node as the source, or its reply would skip the un-DNAT.
	ms.rules = append(ms.rules, new(rule).add("ip saddr . ip daddr @"+nftHairpin, loadSaddr(reg32_0), loadDaddr(reg32_1),
		lookup(nftHairpin)).setMark(mark).done())
	if cfg.MasqueradeEgress && cfg.ClusterCIDR.IsValid() {
		// Pods reaching beyond the pod network leave as the node.
		ms.rules = append(ms.rules, new(rule).prefix("ip saddr", loadSaddr(reg1), cfg.ClusterCIDR, false).
			prefix("ip daddr", loadDaddr(reg1), cfg.ClusterCIDR, true).setMark(mark).done())
	}
	ms.rules = append(ms.rules,
		markTest(mark, true).add("return", verdict(exprReturn)).done(),
		markXor(mark),
		new(rule).add("masquerade fully-random", masq()).done(),
	)
	add(ms)

	// reject-check: new connections to a Service port without endpoints.
	rj := &nftChain{name: nftRejectCheck}
	rj.rules = append(rj.rules,
		new(rule).l4proto(TCP).inAddrPort(nftNoEndpoints).reject(TCP).done(),
		new(rule).inAddrPort(nftNoEndpoints).reject(UDP).done(),
		new(rule).l4proto(TCP).fibLocal(false).inPort(nftNoEndpointNP).reject(TCP).done(),
		new(rule).fibLocal(false).inPort(nftNoEndpointNP).reject(UDP).done(),
	)
	add(rj)
	add(&nftChain{name: nftCanary, rules: []nftRule{new(rule).add("return", verdict(exprReturn)).done()}})

	// Base chains last.
	base := func(name, hookName string, hook *nftables.ChainHook, prio *nftables.ChainPriority, kind nftables.ChainType, rules ...nftRule) {
		add(&nftChain{name: name, hook: hook, prio: prio, kind: kind, hookName: hookName, rules: rules})
	}
	base("nat-prerouting", "prerouting", nftables.ChainHookPrerouting, nftables.ChainPriorityNATDest, nftables.ChainTypeNAT,
		new(rule).jump(nftServices).done())
	base("nat-output", "output", nftables.ChainHookOutput, nftables.ChainPriorityNATDest, nftables.ChainTypeNAT,
		new(rule).jump(nftServices).done())
	base("nat-postrouting", "postrouting", nftables.ChainHookPostrouting, nftables.ChainPriorityNATSource, nftables.ChainTypeNAT,
		new(rule).jump(nftMasquerading).done())
	for _, h := range []struct {
		name string
		hook *nftables.ChainHook
	}{{"input", nftables.ChainHookInput}, {"forward", nftables.ChainHookForward}, {"output", nftables.ChainHookOutput}} {
		base("filter-"+h.name, h.name, h.hook, nftables.ChainPriorityFilter, nftables.ChainTypeFilter,
			new(rule).ctNew().jump(nftRejectCheck).done())
	}
}

// Text renders the ruleset in nft syntax (elements of the endpoint maps
// included), for tests and debugging.
func (r *NFTRuleset) Text() string {
	var b strings.Builder
	elems := map[string][]string{}
	for set, es := range r.static {
		for _, e := range es {
			elems[set] = append(elems[set], e.String())
		}
	}
	keys := make([]string, 0, len(r.services))
	for k := range r.services {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		for _, se := range r.services[k].elems {
			elems[se.set] = append(elems[se.set], se.elem.String())
		}
	}
	fmt.Fprintf(&b, "table ip %s {\n", NFTTable)
	for _, s := range r.sets {
		fmt.Fprintf(&b, "\tset %s {", s.name)
		if s.kind == setAffinity {
			fmt.Fprintf(&b, " timeout %ds;", int64(s.timeout.Seconds()))
		}
		if es := elems[s.name]; len(es) > 0 {
			slices.Sort(es)
			fmt.Fprintf(&b, " elements = { %s }", strings.Join(es, ", "))
		}
		b.WriteString(" }\n")
	}
	for _, c := range r.chains {
		fmt.Fprintf(&b, "\tchain %s {\n", c.name)
		if c.hook != nil {
			fmt.Fprintf(&b, "\t\ttype %s hook %s priority %d;\n", c.kind, c.hookName, *c.prio)
		}
		for _, rl := range c.rules {
			fmt.Fprintf(&b, "\t\t%s\n", rl.text)
		}
		b.WriteString("\t}\n")
	}
	b.WriteString("}\n")
	return b.String()
}

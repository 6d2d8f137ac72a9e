package dns

import (
	"net"
	"slices"
	"strings"

	mdns "github.com/miekg/dns"

	"github.com/shoal-dev/shoal/svcproxy"
)

// zone is an immutable index of the cluster's names, rebuilt on every
// Update and swapped in atomically: lookups never lock.
type zone struct {
	domain string // "cluster.local." (lower case, fully qualified)
	names  map[string]*entry
}

// entry is what one name answers. A name present with no records answers
// NOERROR with no data (e.g. AAAA for an IPv4 Service).
type entry struct {
	a   []net.IP
	srv []srvTarget
}

type srvTarget struct {
	target string // fully qualified
	port   uint16
	a      []net.IP // for the additional section
}

// buildZone computes the records for services. It is a pure function of
// its arguments.
//
//   - svc.ns.svc.<domain>: A with the ClusterIP, or for a headless Service
//     the ready endpoints' pod IPs (all of them if publishNotReadyAddresses);
//   - _port._proto.svc.ns.svc.<domain>: SRV for each named port, to the
//     Service name (ClusterIP) or to each endpoint (headless);
//   - hostname.svc.ns.svc.<domain>: A for endpoints that carry a hostname
//     (StatefulSet pods of a headless Service); a-b-c-d.svc.ns.svc.<domain>
//     for the other endpoints of a headless Service.
func buildZone(domain string, services []svcproxy.Service) *zone {
	z := &zone{domain: mdns.Fqdn(strings.ToLower(domain)), names: make(map[string]*entry, len(services)*2)}
	for i := range services {
		s := &services[i]
		base := strings.ToLower(s.Name + "." + s.Namespace + ".svc." + z.domain)
		svc := z.get(base)
		type ep struct {
			ip   net.IP
			name string
			e    *svcproxy.Endpoint
		}
		var eps []ep
		if !s.ClusterIP.IsValid() {
			for j := range s.Endpoints {
				e := &s.Endpoints[j]
				if !e.PodIP.Is4() || (!e.Ready && !s.PublishNotReadyAddresses) {
					continue
				}
				// A pod is named by its hostname (StatefulSet pods) or, like
				// CoreDNS does, by its dashed address.
				name := strings.ReplaceAll(e.PodIP.String(), ".", "-") + "." + base
				if e.Hostname != "" {
					name = strings.ToLower(e.Hostname) + "." + base
				}
				pod := z.get(name)
				pod.a = append(pod.a, net.IP(e.PodIP.AsSlice()))
				eps = append(eps, ep{net.IP(e.PodIP.AsSlice()), name, e})
			}
			slices.SortFunc(eps, func(a, b ep) int { return a.e.PodIP.Compare(b.e.PodIP) })
			for _, e := range eps {
				svc.a = append(svc.a, e.ip)
			}
		} else if s.ClusterIP.Is4() {
			svc.a = []net.IP{net.IP(s.ClusterIP.AsSlice())}
		}
		for _, p := range s.Ports {
			if p.Name == "" {
				continue
			}
			srvName := "_" + strings.ToLower(p.Name) + "._" + strings.ToLower(string(p.Protocol)) + "." + base
			rec := z.get(srvName)
			if s.ClusterIP.IsValid() {
				rec.srv = append(rec.srv, srvTarget{target: base, port: uint16(p.Port), a: svc.a})
				continue
			}
			for _, e := range eps {
				port, ok := targetPort(p, e.e)
				if ok {
					rec.srv = append(rec.srv, srvTarget{target: e.name, port: port, a: []net.IP{e.ip}})
				}
			}
		}
	}
	return z
}

// targetPort is the port a headless Service's SRV record gives for one
// endpoint: what the proxy would have sent to, had there been a ClusterIP.
func targetPort(p svcproxy.ServicePort, e *svcproxy.Endpoint) (uint16, bool) {
	switch {
	case p.TargetPort.Name != "":
		n, ok := e.Ports[p.TargetPort.Name]
		return uint16(n), ok && n > 0 && n < 65536
	case p.TargetPort.Number != 0:
		return uint16(p.TargetPort.Number), true
	}
	return uint16(p.Port), true
}

func (z *zone) get(name string) *entry {
	e := z.names[name]
	if e == nil {
		e = &entry{}
		z.names[name] = e
	}
	return e
}

// inDomain says whether name (lower case, fully qualified) is ours to answer.
func (z *zone) inDomain(name string) bool {
	return name == z.domain || strings.HasSuffix(name, "."+z.domain)
}

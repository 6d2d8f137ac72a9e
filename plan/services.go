package plan

import (
	"fmt"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
)

// Service rules (shoal supports types ClusterIP and NodePort). The leader allocates ClusterIPs and NodePorts and keeps them stable across
// commits; every node programs the same rules; a headless Service is DNS only.
func serviceConsequences(pl *planner, c manifest.Change) []string {
	b, h, ok := pair[*corev1.Service](c)
	if !ok {
		return genericConsequences(pl, c)
	}
	switch c.Op {
	case manifest.Added:
		return serviceAdded(h)
	case manifest.Removed:
		return serviceRemoved(b)
	}

	var out []string
	if b.Spec.Type != h.Spec.Type {
		out = append(out, fmt.Sprintf("type %s → %s", b.Spec.Type, h.Spec.Type))
	}
	out = append(out, clusterIPChange(b.Spec.ClusterIP, h.Spec.ClusterIP)...)
	switch had, has := hasNodePorts(b), hasNodePorts(h); {
	case !had && has:
		out = append(out, nodePortWords(h)...)
	case had && !has:
		out = append(out, "its NodePorts are released: "+nodePortList(b))
	}
	if changedUnder(c.Fields, "spec.ports", "spec.selector",
		"spec.sessionAffinity", "spec.sessionAffinityConfig", "spec.externalTrafficPolicy",
		"spec.internalTrafficPolicy", "spec.publishNotReadyAddresses", "spec.type", "spec.clusterIP") {
		if h.Spec.ClusterIP == corev1.ClusterIPNone {
			out = append(out, "DNS records updated on every node")
		} else {
			out = append(out, "rules updated on every node")
		}
	}
	return out
}

func serviceAdded(s *corev1.Service) []string {
	var out []string
	switch ip := s.Spec.ClusterIP; ip {
	case corev1.ClusterIPNone:
		out = append(out, "headless: DNS only")
	case "":
		out = append(out, "allocate a ClusterIP")
	default:
		out = append(out, "keeps ClusterIP "+ip+" (as written)")
	}
	out = append(out, nodePortWords(s)...)
	if len(s.Spec.Selector) == 0 {
		out = append(out, "no selector: shoal manages no endpoints for it")
	}
	return out
}

func serviceRemoved(s *corev1.Service) []string {
	var out []string
	switch ip := s.Spec.ClusterIP; {
	case ip == corev1.ClusterIPNone:
		out = append(out, "its DNS records are removed")
	case ip == "":
		out = append(out, "its ClusterIP is released")
	default:
		out = append(out, "its ClusterIP "+ip+" is released")
	}
	if hasNodePorts(s) {
		out = append(out, "its NodePorts are released: "+nodePortList(s))
	}
	return out
}

// clusterIPChange explains a change of spec.clusterIP. An allocated address is stable across
// commits, so dropping a written address keeps it.
func clusterIPChange(from, to string) []string {
	none := corev1.ClusterIPNone
	switch {
	case from == to:
		return nil
	case to == none:
		return []string{"headless: its ClusterIP is released; DNS only"}
	case from == none && to == "":
		return []string{"no longer headless: allocate a ClusterIP"}
	case from == none:
		return []string{"no longer headless: keeps ClusterIP " + to + " (as written)"}
	case from == "":
		return []string{"ClusterIP becomes " + to + " (as written); the allocated one is released"}
	case to == "":
		return []string{"keeps ClusterIP " + from}
	}
	return []string{fmt.Sprintf("ClusterIP %s → %s: clients using the old address lose the Service", from, to)}
}

// hasNodePorts: shoal supports the ClusterIP and NodePort types only.
func hasNodePorts(s *corev1.Service) bool { return s.Spec.Type == corev1.ServiceTypeNodePort }

// nodePortWords says which NodePorts a Service gets: allocated, or as written.
func nodePortWords(s *corev1.Service) []string {
	if !hasNodePorts(s) {
		return nil
	}
	var alloc []string
	var out []string
	for _, p := range s.Spec.Ports {
		if p.NodePort == 0 {
			alloc = append(alloc, strconv.Itoa(int(p.Port)))
			continue
		}
		out = append(out, fmt.Sprintf("keeps NodePort %d for port %d (as written)", p.NodePort, p.Port))
	}
	switch len(alloc) {
	case 0:
	case 1:
		out = append([]string{"allocate a NodePort for port " + alloc[0]}, out...)
	default:
		out = append([]string{"allocate NodePorts for ports " + strings.Join(alloc, ", ")}, out...)
	}
	return out
}

// nodePortList names a Service's NodePorts by port: "port 80 (30080), port 443".
func nodePortList(s *corev1.Service) string {
	parts := make([]string, 0, len(s.Spec.Ports))
	for _, p := range s.Spec.Ports {
		w := "port " + strconv.Itoa(int(p.Port))
		if p.NodePort != 0 {
			w += " (" + strconv.Itoa(int(p.NodePort)) + ")"
		}
		parts = append(parts, w)
	}
	return strings.Join(parts, ", ")
}

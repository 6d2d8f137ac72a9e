package agent

import (
	"context"
	"net/http"
	"net/url"
	"sort"
	"strconv"

	"github.com/shoal-dev/shoal/svcproxy"
)

// ServiceList is the answer to /v1/services: the Services of the pinned
// commit as this node programs them.
type ServiceList struct {
	Services []ServiceInfo `json:"services"`
	// Problems are Services left out of the rules, and why.
	Problems []string `json:"problems,omitempty"`
}

// ServiceInfo is one Service with its addresses and endpoints.
type ServiceInfo struct {
	Namespace string                   `json:"namespace"`
	Name      string                   `json:"name"`
	Type      string                   `json:"type"`
	ClusterIP string                   `json:"clusterIP,omitempty"` // empty for a headless Service
	Ports     []ServicePortInfo        `json:"ports"`
	Endpoints []EndpointInfo           `json:"endpoints"`
	Affinity  svcproxy.SessionAffinity `json:"sessionAffinity,omitempty"`
}

// ServicePortInfo is one port of a Service.
type ServicePortInfo struct {
	Name       string `json:"name,omitempty"`
	Protocol   string `json:"protocol"`
	Port       int32  `json:"port"`
	TargetPort string `json:"targetPort"`
	NodePort   int32  `json:"nodePort,omitempty"`
}

// EndpointInfo is one pod behind a Service.
type EndpointInfo struct {
	IP    string `json:"ip"`
	Node  string `json:"node"`
	Ready bool   `json:"ready"`
}

// services answers /v1/services from this node's replica.
func (a *Agent) services(ctx context.Context, namespace string) (ServiceList, error) {
	view, problems, err := a.serviceView(ctx, a.store.Snapshot(), map[string]PodNet{})
	if err != nil {
		return ServiceList{}, err
	}
	out := ServiceList{Services: []ServiceInfo{}}
	for _, p := range problems {
		out.Problems = append(out.Problems, p.Error())
	}
	for _, s := range view {
		if namespace != "" && s.Namespace != namespace {
			continue
		}
		info := ServiceInfo{Namespace: s.Namespace, Name: s.Name, Type: string(s.Type), Affinity: s.SessionAffinity,
			Ports: []ServicePortInfo{}, Endpoints: []EndpointInfo{}}
		if info.Type == "" {
			info.Type = string(svcproxy.TypeClusterIP)
		}
		if s.ClusterIP.IsValid() {
			info.ClusterIP = s.ClusterIP.String()
		}
		for _, p := range s.Ports {
			target := p.TargetPort.Name
			if target == "" {
				n := p.TargetPort.Number
				if n == 0 {
					n = p.Port
				}
				target = strconv.Itoa(int(n))
			}
			info.Ports = append(info.Ports, ServicePortInfo{Name: p.Name, Protocol: string(p.Protocol), Port: p.Port,
				TargetPort: target, NodePort: p.NodePort})
		}
		for _, e := range s.Endpoints {
			info.Endpoints = append(info.Endpoints, EndpointInfo{IP: e.PodIP.String(), Node: e.NodeName, Ready: e.Ready})
		}
		sort.Slice(info.Endpoints, func(i, j int) bool { return info.Endpoints[i].IP < info.Endpoints[j].IP })
		out.Services = append(out.Services, info)
	}
	sort.Slice(out.Services, func(i, j int) bool {
		a, b := out.Services[i], out.Services[j]
		if a.Namespace != b.Namespace {
			return a.Namespace < b.Namespace
		}
		return a.Name < b.Name
	})
	return out, nil
}

func (a *Agent) servicesHandler(w http.ResponseWriter, r *http.Request) {
	list, err := a.services(r.Context(), r.URL.Query().Get("namespace"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusServiceUnavailable)
		return
	}
	writeJSON(w, list)
}

// Services returns the Services of one namespace, or of all with "".
func (c *Client) Services(ctx context.Context, namespace string) (ServiceList, error) {
	var out ServiceList
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	return out, c.get(ctx, "/v1/services", q, &out)
}

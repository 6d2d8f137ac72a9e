package svcproxy

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// Protocol is a Service port's transport protocol. Only TCP and UDP are
// proxied.
type Protocol string

const (
	TCP Protocol = "TCP"
	UDP Protocol = "UDP"
)

// ServiceType says how a Service is exposed. Headless Services (no
// ClusterIP) get no rules at all: they exist for DNS only.
type ServiceType string

const (
	TypeClusterIP ServiceType = "ClusterIP"
	TypeNodePort  ServiceType = "NodePort"
)

// SessionAffinity is "None" (or empty) or "ClientIP".
type SessionAffinity string

const (
	AffinityNone     SessionAffinity = "None"
	AffinityClientIP SessionAffinity = "ClientIP"
)

// TrafficPolicy is a Service's externalTrafficPolicy.
type TrafficPolicy string

const (
	PolicyCluster TrafficPolicy = "Cluster"
	PolicyLocal   TrafficPolicy = "Local"
)

// DefaultAffinityTimeout is Kubernetes' default
// sessionAffinityConfig.clientIP.timeoutSeconds.
const DefaultAffinityTimeout = 10800 * time.Second

// TargetPort is a Service port's targetPort: a number, or the name of a
// container port that each endpoint resolves for itself. Zero value means
// "same as Port".
type TargetPort struct {
	Number int32
	Name   string
}

// ServicePort is one port of a Service.
type ServicePort struct {
	Name       string
	Protocol   Protocol
	Port       int32
	TargetPort TargetPort
	// NodePort is used only when the Service's Type is NodePort; 0 means none.
	NodePort int32
}

// Endpoint is one pod backing a Service.
type Endpoint struct {
	PodIP    netip.Addr
	NodeName string
	Ready    bool
	// Ports maps the pod's named container ports to their numbers, for
	// Services whose targetPort is a name.
	Ports map[string]int32
	// Hostname is the pod's spec.hostname when its spec.subdomain is this
	// Service (StatefulSet pods): cluster DNS answers
	// hostname.service.namespace.svc.<domain> for it. Not used by the rules.
	Hostname string
}

// Service is svcproxy's view of one Service and its endpoints: what the
// agent extracts from the state store. svcproxy never reads the store.
type Service struct {
	Namespace string
	Name      string
	// ClusterIP is the zero Addr for a headless Service.
	ClusterIP                netip.Addr
	Type                     ServiceType
	Ports                    []ServicePort
	SessionAffinity          SessionAffinity
	AffinityTimeout          time.Duration // 0 means DefaultAffinityTimeout
	ExternalTrafficPolicy    TrafficPolicy // "" means Cluster
	PublishNotReadyAddresses bool
	Endpoints                []Endpoint
}

// Key is "namespace/name".
func (s *Service) Key() string { return s.Namespace + "/" + s.Name }

func (s *Service) affinityTimeout() time.Duration {
	if s.AffinityTimeout <= 0 {
		return DefaultAffinityTimeout
	}
	return s.AffinityTimeout
}

// Validate checks what the renderer relies on. An invalid Service is left
// out of the ruleset (and reported), never allowed to break the others.
func (s *Service) Validate() error {
	var errs []error
	if s.Namespace == "" || s.Name == "" {
		errs = append(errs, errors.New("namespace and name are required"))
	}
	if s.ClusterIP.IsValid() && !s.ClusterIP.Is4() {
		errs = append(errs, fmt.Errorf("clusterIP %s: only IPv4 is supported", s.ClusterIP))
	}
	switch s.Type {
	case TypeClusterIP, TypeNodePort, "":
	default:
		errs = append(errs, fmt.Errorf("type %q is not supported (ClusterIP or NodePort)", s.Type))
	}
	switch s.SessionAffinity {
	case AffinityNone, AffinityClientIP, "":
	default:
		errs = append(errs, fmt.Errorf("sessionAffinity %q is not supported (None or ClientIP)", s.SessionAffinity))
	}
	switch s.ExternalTrafficPolicy {
	case PolicyCluster, PolicyLocal, "":
	default:
		errs = append(errs, fmt.Errorf("externalTrafficPolicy %q is not supported (Cluster or Local)", s.ExternalTrafficPolicy))
	}
	for i, p := range s.Ports {
		if p.Protocol != TCP && p.Protocol != UDP {
			errs = append(errs, fmt.Errorf("ports[%d]: protocol %q is not supported (TCP or UDP)", i, p.Protocol))
		}
		if p.Port < 1 || p.Port > 65535 {
			errs = append(errs, fmt.Errorf("ports[%d]: port %d out of range", i, p.Port))
		}
		if p.TargetPort.Number < 0 || p.TargetPort.Number > 65535 {
			errs = append(errs, fmt.Errorf("ports[%d]: targetPort %d out of range", i, p.TargetPort.Number))
		}
		if p.NodePort < 0 || p.NodePort > 65535 {
			errs = append(errs, fmt.Errorf("ports[%d]: nodePort %d out of range", i, p.NodePort))
		}
		for _, q := range s.Ports[:i] {
			if q.Protocol == p.Protocol && q.Port == p.Port {
				errs = append(errs, fmt.Errorf("ports[%d]: %s port %d appears twice", i, p.Protocol, p.Port))
			}
		}
	}
	for i, e := range s.Endpoints {
		if !e.PodIP.Is4() {
			errs = append(errs, fmt.Errorf("endpoints[%d]: pod IP %s is not an IPv4 address", i, e.PodIP))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("service %s: %w", s.Key(), errors.Join(errs...))
}

// Config is this node's view: what differs from node to node.
type Config struct {
	// NodeName selects the local endpoints (externalTrafficPolicy Local,
	// hairpin masquerade).
	NodeName string
	// ClusterCIDR is the whole pod network (e.g. 10.244.0.0/16). Traffic to a
	// ClusterIP from outside it is masqueraded so replies come back through
	// this node. The zero Prefix disables that rule.
	ClusterCIDR netip.Prefix
	// ServiceCIDR is the ClusterIP range (e.g. 10.96.0.0/12). Optional: with
	// it, masquerading outside clients takes one rule instead of one per
	// Service port. ClusterIPs outside it still work.
	ServiceCIDR netip.Prefix
	// MasqueradeMark is the packet mark bit that asks SHOAL-POSTROUTING to
	// masquerade; 0 means DefaultMasqueradeMark.
	MasqueradeMark uint32
	// MasqueradeEgress masquerades traffic from the pod network
	// (ClusterCIDR) to anywhere outside it, so pods reach other machines
	// and the internet as the node; traffic between pods, on any node, keeps
	// its addresses. Needs ClusterCIDR.
	MasqueradeEgress bool
}

// DefaultMasqueradeMark is bit 13 (kube-proxy uses bit 14, 0x4000, so the
// two never confuse each other's traffic on a machine running both).
const DefaultMasqueradeMark = 0x2000

func (c Config) mark() uint32 {
	if c.MasqueradeMark == 0 {
		return DefaultMasqueradeMark
	}
	return c.MasqueradeMark
}

// Validate checks the node configuration.
func (c Config) Validate() error {
	var errs []error
	if c.NodeName == "" {
		errs = append(errs, errors.New("NodeName is required"))
	}
	if c.ClusterCIDR.IsValid() && !c.ClusterCIDR.Addr().Is4() {
		errs = append(errs, fmt.Errorf("ClusterCIDR %s: only IPv4 is supported", c.ClusterCIDR))
	}
	if c.ServiceCIDR.IsValid() && !c.ServiceCIDR.Addr().Is4() {
		errs = append(errs, fmt.Errorf("ServiceCIDR %s: only IPv4 is supported", c.ServiceCIDR))
	}
	if m := c.mark(); m&(m-1) != 0 {
		errs = append(errs, fmt.Errorf("MasqueradeMark %#x must be a single bit", m))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("svcproxy config: %w", err)
	}
	return nil
}

package runtime

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// ProbeKind names one of a container's three probes.
type ProbeKind string

const (
	ProbeStartup   ProbeKind = "startup"
	ProbeLiveness  ProbeKind = "liveness"
	ProbeReadiness ProbeKind = "readiness"
)

// Probe is a container probe in shoal's terms: exactly one of Exec,
// HTTPGet and TCPSocket, and the timing, defaulted as Kubernetes does.
type Probe struct {
	Exec      *ExecProbe
	HTTPGet   *HTTPGetProbe
	TCPSocket *TCPSocketProbe

	// InitialDelay counts from the container's start; the first probe
	// runs then (startup gating may delay liveness and readiness further).
	InitialDelay time.Duration
	// Period separates the starts of two probes (default 10s).
	Period time.Duration
	// Timeout bounds one probe (default 1s); a probe that times out fails.
	Timeout time.Duration
	// SuccessThreshold consecutive successes make a failing probe pass
	// (default 1; must be 1 for liveness and startup).
	SuccessThreshold int32
	// FailureThreshold consecutive failures make a passing probe fail
	// (default 3).
	FailureThreshold int32
	// TerminationGracePeriod, when set, replaces the pod's grace period
	// when a liveness or startup failure stops the container.
	TerminationGracePeriod *time.Duration
}

// ExecProbe runs Command in the container (containerd exec); exit code 0
// is success.
type ExecProbe struct{ Command []string }

// HTTPGetProbe sends GET Scheme://Host:Port/Path; a status of 200-399 is
// success. Host defaults to the pod IP. HTTPS does not verify the
// certificate, as the kubelet does not.
type HTTPGetProbe struct {
	Scheme  string // "HTTP" or "HTTPS"
	Host    string
	Port    int32
	Path    string
	Headers []HTTPHeader
}

// HTTPHeader is one request header of an HTTP probe.
type HTTPHeader struct{ Name, Value string }

// TCPSocketProbe succeeds when a TCP connection to Host:Port opens. Host
// defaults to the pod IP.
type TCPSocketProbe struct {
	Host string
	Port int32
}

// ProbeResult is the outcome of running one probe.
type ProbeResult struct {
	Success bool
	// Message says why a probe failed (or, for exec, its output).
	Message string
}

// probe returns the container's probe of a kind, or nil.
func (c ContainerSpec) probe(kind ProbeKind) *Probe {
	switch kind {
	case ProbeStartup:
		return c.StartupProbe
	case ProbeLiveness:
		return c.LivenessProbe
	case ProbeReadiness:
		return c.ReadinessProbe
	}
	return nil
}

// probeFrom converts a Kubernetes probe; unsupported parts are reported
// through no, malformed ones as an error. path is the probe's field path.
func probeFrom(p *corev1.Probe, path string, kind ProbeKind, c corev1.Container, no func(string)) (*Probe, error) {
	if p == nil {
		return nil, nil
	}
	out := &Probe{
		InitialDelay:     time.Duration(p.InitialDelaySeconds) * time.Second,
		Period:           time.Duration(p.PeriodSeconds) * time.Second,
		Timeout:          time.Duration(p.TimeoutSeconds) * time.Second,
		SuccessThreshold: p.SuccessThreshold,
		FailureThreshold: p.FailureThreshold,
	}
	if out.Period <= 0 {
		out.Period = 10 * time.Second
	}
	if out.Timeout <= 0 {
		out.Timeout = time.Second
	}
	if out.SuccessThreshold <= 0 {
		out.SuccessThreshold = 1
	}
	if out.FailureThreshold <= 0 {
		out.FailureThreshold = 3
	}
	if p.InitialDelaySeconds < 0 {
		return nil, fmt.Errorf("%s.initialDelaySeconds must not be negative", path)
	}
	if kind != ProbeReadiness && out.SuccessThreshold != 1 {
		return nil, fmt.Errorf("%s.successThreshold must be 1 for a %s probe", path, kind)
	}
	if p.TerminationGracePeriodSeconds != nil {
		if kind == ProbeReadiness {
			return nil, fmt.Errorf("%s.terminationGracePeriodSeconds is not allowed on a readiness probe", path)
		}
		g := time.Duration(*p.TerminationGracePeriodSeconds) * time.Second
		out.TerminationGracePeriod = &g
	}
	handlers := 0
	if p.Exec != nil {
		handlers++
		if len(p.Exec.Command) == 0 {
			return nil, fmt.Errorf("%s.exec.command is empty", path)
		}
		out.Exec = &ExecProbe{Command: append([]string(nil), p.Exec.Command...)}
	}
	if p.HTTPGet != nil {
		handlers++
		port, err := probePort(p.HTTPGet.Port, c, path+".httpGet.port")
		if err != nil {
			return nil, err
		}
		h := &HTTPGetProbe{Scheme: string(p.HTTPGet.Scheme), Host: p.HTTPGet.Host, Port: port, Path: p.HTTPGet.Path}
		switch h.Scheme {
		case "":
			h.Scheme = string(corev1.URISchemeHTTP)
		case string(corev1.URISchemeHTTP), string(corev1.URISchemeHTTPS):
		default:
			return nil, fmt.Errorf("%s.httpGet.scheme %q must be HTTP or HTTPS", path, h.Scheme)
		}
		if h.Path == "" {
			h.Path = "/"
		}
		for _, hd := range p.HTTPGet.HTTPHeaders {
			h.Headers = append(h.Headers, HTTPHeader{Name: hd.Name, Value: hd.Value})
		}
		out.HTTPGet = h
	}
	if p.TCPSocket != nil {
		handlers++
		port, err := probePort(p.TCPSocket.Port, c, path+".tcpSocket.port")
		if err != nil {
			return nil, err
		}
		out.TCPSocket = &TCPSocketProbe{Host: p.TCPSocket.Host, Port: port}
	}
	if p.GRPC != nil {
		handlers++
		no(path + ".grpc")
	}
	if handlers != 1 {
		return nil, fmt.Errorf("%s must have exactly one of exec, httpGet, tcpSocket (has %d)", path, handlers)
	}
	return out, nil
}

// probePort resolves a probe's port, by number or by the name of one of
// the container's ports.
func probePort(p intstr.IntOrString, c corev1.Container, path string) (int32, error) {
	if p.Type == intstr.String {
		for _, cp := range c.Ports {
			if cp.Name != "" && cp.Name == p.StrVal {
				return cp.ContainerPort, nil
			}
		}
		return 0, fmt.Errorf("%s %q names no port of the container", path, p.StrVal)
	}
	if p.IntVal < 1 || p.IntVal > 65535 {
		return 0, fmt.Errorf("%s %d is not a port number", path, p.IntVal)
	}
	return p.IntVal, nil
}

package manifest

import (
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// container checks one container or init container of the pod spec in pc.
func (v *validator) container(pc *podContext, path string, c *corev1.Container, init bool) {
	o := pc.o
	switch {
	case c.Name == "":
		v.errorf(o, path+".name", "is required: every container needs a name")
	case len(dnsLabelErrs(c.Name)) > 0:
		v.errorf(o, path+".name", "invalid container name %q: Kubernetes requires a DNS-1123 label (%s)", c.Name, joinMsgs(dnsLabelErrs(c.Name)))
	default:
		if first, dup := pc.names[c.Name]; dup {
			v.errorf(o, path+".name", "duplicate container name %q (also %s): names must be unique across containers and initContainers", c.Name, first)
		} else {
			pc.names[c.Name] = path
		}
	}

	if strings.TrimSpace(c.Image) == "" {
		v.errorf(o, path+".image", "is required: name the image to run, e.g. registry.example.com/app:1.2")
	} else if c.Image != strings.TrimSpace(c.Image) {
		v.errorf(o, path+".image", "image %q has leading or trailing whitespace (Kubernetes rule): remove it", c.Image)
	}
	switch c.ImagePullPolicy {
	case "", corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullNever:
	default:
		v.errorf(o, path+".imagePullPolicy", "invalid imagePullPolicy %q: use Always, IfNotPresent or Never", c.ImagePullPolicy)
	}

	v.containerPorts(pc, path, c, init)
	v.resources(o, path+".resources", &c.Resources)

	sidecar := init && c.RestartPolicy != nil && *c.RestartPolicy == corev1.ContainerRestartPolicyAlways
	probes := []struct {
		name string
		p    *corev1.Probe
	}{{"livenessProbe", c.LivenessProbe}, {"readinessProbe", c.ReadinessProbe}, {"startupProbe", c.StartupProbe}}
	for _, pr := range probes {
		if pr.p == nil {
			continue
		}
		if init && !sidecar {
			v.errorf(o, path+"."+pr.name, "an init container may not have a %s (Kubernetes rule): it runs to completion before the pod is ready; remove the probe", pr.name)
			continue
		}
		v.probe(o, path+"."+pr.name, pr.p, pr.name != "readinessProbe", c.Ports)
	}

	if lc := c.Lifecycle; lc != nil {
		if init && !sidecar {
			v.errorf(o, path+".lifecycle", "an init container may not have lifecycle hooks (Kubernetes rule): remove them")
		} else {
			if lc.PreStop != nil {
				v.preStop(pc, path+".lifecycle.preStop", lc.PreStop, c.Ports)
			}
		}
	}
	switch c.TerminationMessagePolicy {
	case "", corev1.TerminationMessageReadFile, corev1.TerminationMessageFallbackToLogsOnError:
	default:
		v.errorf(o, path+".terminationMessagePolicy", "invalid terminationMessagePolicy %q: use File or FallbackToLogsOnError", c.TerminationMessagePolicy)
	}
	if sc := c.SecurityContext; sc != nil {
		v.unixID(o, path+".securityContext.runAsUser", sc.RunAsUser)
		v.unixID(o, path+".securityContext.runAsGroup", sc.RunAsGroup)
		if sc.Privileged != nil && *sc.Privileged && sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation {
			v.errorf(o, path+".securityContext.allowPrivilegeEscalation", "cannot be false when privileged is true (Kubernetes rule): a privileged container can always escalate")
		}
	}

	v.env(pc, path, c)
	v.volumeMounts(pc, path, c)
}

// preStop checks a preStop hook: exactly one of exec, httpGet and sleep, and a sleep that
// fits in the pod's termination grace period.
func (v *validator) preStop(pc *podContext, path string, h *corev1.LifecycleHandler, ports []corev1.ContainerPort) {
	o := pc.o
	var handlers []string
	if h.Exec != nil {
		handlers = append(handlers, "exec")
		if len(h.Exec.Command) == 0 {
			v.errorf(o, path+".exec.command", "is required: give the command to run")
		}
	}
	if g := h.HTTPGet; g != nil {
		handlers = append(handlers, "httpGet")
		v.probePort(o, path+".httpGet.port", g.Port, ports)
		v.httpHeaders(o, path+".httpGet.httpHeaders", g.HTTPHeaders)
	}
	if sl := h.Sleep; sl != nil {
		handlers = append(handlers, "sleep")
		switch {
		case sl.Seconds < 0:
			v.errorf(o, path+".sleep.seconds", "must be at least 0 (Kubernetes rule), got %d", sl.Seconds)
		case pc.grace != nil && sl.Seconds > *pc.grace:
			v.errorf(o, path+".sleep.seconds", "%d is longer than the pod's terminationGracePeriodSeconds (%d) (Kubernetes rule): the container would be killed mid-sleep; shorten it or raise the grace period",
				sl.Seconds, *pc.grace)
		}
	}
	switch {
	case len(handlers) == 0:
		v.errorf(o, path, "must specify exactly one handler: add exec, httpGet or sleep")
	case len(handlers) > 1:
		v.errorf(o, path, "must specify exactly one handler, found %s: keep one", strings.Join(handlers, " and "))
	}
}

// httpHeaders checks the header names of an httpGet probe or hook.
func (v *validator) httpHeaders(o *Object, path string, hs []corev1.HTTPHeader) {
	for i, h := range hs {
		if msgs := validation.IsHTTPHeaderName(h.Name); len(msgs) > 0 {
			v.errorf(o, indexPath(path, i)+".name", "invalid HTTP header name %q: %s", h.Name, joinMsgs(msgs))
		}
	}
}

// fieldRefVersion checks a downward API fieldRef's apiVersion: only v1 exists.
func (v *validator) fieldRefVersion(o *Object, path, apiVersion string) {
	if apiVersion != "" && apiVersion != "v1" {
		v.errorf(o, path, "unsupported apiVersion %q: downward API field paths are v1; remove it or write v1", apiVersion)
	}
}

// containerPorts checks a container's ports and records pod-wide port names and host ports.
func (v *validator) containerPorts(pc *podContext, path string, c *corev1.Container, init bool) {
	o := pc.o
	for i := range c.Ports {
		port := &c.Ports[i]
		p := indexPath(path+".ports", i)
		if msgs := validation.IsValidPortNum(int(port.ContainerPort)); len(msgs) > 0 {
			v.errorf(o, p+".containerPort", "invalid port %d: %s", port.ContainerPort, joinMsgs(msgs))
		}
		v.protocol(o, p+".protocol", port.Protocol)
		if port.Name != "" {
			if msgs := portNameErrs(port.Name); len(msgs) > 0 {
				v.errorf(o, p+".name", "invalid port name %q: Kubernetes requires an IANA service name (%s)", port.Name, joinMsgs(msgs))
			} else if first, dup := pc.portNames[port.Name]; dup {
				v.errorf(o, p+".name", "duplicate port name %q (also %s): port names must be unique within a pod so Services and probes can refer to them", port.Name, first)
			} else {
				if pc.portNames == nil {
					pc.portNames = make(map[string]string)
				}
				pc.portNames[port.Name] = p
			}
		}
		if port.HostPort != 0 {
			if msgs := validation.IsValidPortNum(int(port.HostPort)); len(msgs) > 0 {
				v.errorf(o, p+".hostPort", "invalid host port %d: %s", port.HostPort, joinMsgs(msgs))
			} else if !init {
				// Kubernetes checks host port conflicts among regular containers: init containers
				// have exited before those start.
				proto := port.Protocol
				if proto == "" {
					proto = corev1.ProtocolTCP
				}
				k := hostPortKey{port.HostPort, proto}
				if first, dup := pc.hostPorts[k]; dup {
					v.errorf(o, p+".hostPort", "host port %d/%s is already used by %s: a node port can be bound once per pod; pick another", port.HostPort, proto, first)
				} else {
					if pc.hostPorts == nil {
						pc.hostPorts = make(map[hostPortKey]string)
					}
					pc.hostPorts[k] = p
				}
			}
		}
	}
}

// protocol checks a container or Service port protocol: shoal's proxy and CNI carry TCP and UDP.
func (v *validator) protocol(o *Object, path string, proto corev1.Protocol) {
	switch proto {
	case "", corev1.ProtocolTCP, corev1.ProtocolUDP:
	case corev1.ProtocolSCTP:
		v.errorf(o, path, "protocol SCTP is not supported by shoal: use TCP or UDP")
	default:
		v.errorf(o, path, "invalid protocol %q: use TCP or UDP", proto)
	}
}

// resources checks requests and limits: cpu and memory only, positive, requests ≤ limits.
func (v *validator) resources(o *Object, path string, r *corev1.ResourceRequirements) {
	v.resourceList(o, path, "requests", r.Requests)
	v.resourceList(o, path, "limits", r.Limits)
	for name, req := range r.Requests {
		lim, ok := r.Limits[name]
		if !ok || (name != corev1.ResourceCPU && name != corev1.ResourceMemory) {
			continue
		}
		if req.Cmp(lim) > 0 {
			v.errorf(o, keyPath(path+".requests", string(name)), "request %s is more than limit %s (Kubernetes rule: requests must not exceed limits); lower the request or raise the limit",
				req.String(), lim.String())
		}
	}
}

func (v *validator) resourceList(o *Object, path, kind string, list corev1.ResourceList) {
	for name, q := range list {
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
			v.errorf(o, keyPath(path+"."+kind, string(name)), "resource %q is not supported by shoal: only cpu and memory can be requested or limited; remove it", name)
			continue
		}
		if q.Sign() <= 0 {
			v.errorf(o, keyPath(path+"."+kind, string(name)), "must be greater than 0, got %s: remove the entry to leave %s %s unset", q.String(), name, kind)
		}
	}
}

// probe checks a probe's handler and timings. strictSuccess is set for liveness and startup
// probes, whose successThreshold Kubernetes pins to 1. ports are the container's ports.
func (v *validator) probe(o *Object, path string, p *corev1.Probe, strictSuccess bool, ports []corev1.ContainerPort) {
	var handlers []string
	if p.Exec != nil {
		handlers = append(handlers, "exec")
		if len(p.Exec.Command) == 0 {
			v.errorf(o, path+".exec.command", "is required: give the command to run, e.g. [\"cat\", \"/tmp/healthy\"]")
		}
	}
	if h := p.HTTPGet; h != nil {
		handlers = append(handlers, "httpGet")
		v.probePort(o, path+".httpGet.port", h.Port, ports)
		v.httpHeaders(o, path+".httpGet.httpHeaders", h.HTTPHeaders)
		switch h.Scheme {
		case "", corev1.URISchemeHTTP, corev1.URISchemeHTTPS:
		default:
			v.errorf(o, path+".httpGet.scheme", "invalid scheme %q: use HTTP or HTTPS", h.Scheme)
		}
	}
	if t := p.TCPSocket; t != nil {
		handlers = append(handlers, "tcpSocket")
		v.probePort(o, path+".tcpSocket.port", t.Port, ports)
	}
	if p.GRPC != nil {
		v.errorf(o, path+".grpc", "grpc probes are not supported by shoal: use exec, httpGet or tcpSocket")
		handlers = append(handlers, "grpc")
	}
	switch {
	case len(handlers) == 0:
		v.errorf(o, path, "must specify exactly one handler: add exec, httpGet or tcpSocket")
	case len(handlers) > 1:
		v.errorf(o, path, "must specify exactly one handler, found %s: keep one", strings.Join(handlers, " and "))
	}

	if p.InitialDelaySeconds < 0 {
		v.errorf(o, path+".initialDelaySeconds", "must be at least 0 (Kubernetes rule), got %d", p.InitialDelaySeconds)
	}
	if p.TimeoutSeconds < 1 {
		v.errorf(o, path+".timeoutSeconds", "must be at least 1 (Kubernetes rule), got %d", p.TimeoutSeconds)
	}
	if p.PeriodSeconds < 1 {
		v.errorf(o, path+".periodSeconds", "must be at least 1 (Kubernetes rule), got %d", p.PeriodSeconds)
	}
	if p.FailureThreshold < 1 {
		v.errorf(o, path+".failureThreshold", "must be at least 1 (Kubernetes rule), got %d", p.FailureThreshold)
	}
	if g := p.TerminationGracePeriodSeconds; g != nil {
		if !strictSuccess {
			v.errorf(o, path+".terminationGracePeriodSeconds", "must not be set on a readiness probe (Kubernetes rule): a failing readiness probe does not stop the container")
		} else if *g < 1 {
			v.errorf(o, path+".terminationGracePeriodSeconds", "must be at least 1 (Kubernetes rule), got %d; remove it to use the pod's grace period", *g)
		}
	}
	switch {
	case p.SuccessThreshold < 1:
		v.errorf(o, path+".successThreshold", "must be at least 1 (Kubernetes rule), got %d", p.SuccessThreshold)
	case strictSuccess && p.SuccessThreshold != 1:
		v.errorf(o, path+".successThreshold", "must be 1 for liveness and startup probes (Kubernetes rule), got %d: remove it", p.SuccessThreshold)
	}
}

// probePort checks a probe's port: a valid number, or the name of one of this container's ports.
func (v *validator) probePort(o *Object, path string, port intstr.IntOrString, ports []corev1.ContainerPort) {
	if port.Type == intstr.Int {
		if msgs := validation.IsValidPortNum(int(port.IntVal)); len(msgs) > 0 {
			v.errorf(o, path, "invalid port %d: %s", port.IntVal, joinMsgs(msgs))
		}
		return
	}
	name := port.StrVal
	if msgs := portNameErrs(name); len(msgs) > 0 {
		v.errorf(o, path, "invalid port name %q: Kubernetes requires a port number or an IANA service name (%s)", name, joinMsgs(msgs))
		return
	}
	for _, p := range ports {
		if p.Name == name {
			return
		}
	}
	v.errorf(o, path, "port %q is not defined by this container: add a ports entry with name: %s, or use the port number", name, name)
}

// supportedFieldPaths are the downward API fields shoal fills for env fieldRef (Kubernetes
// also has spec.serviceAccountName, status.podIPs and status.hostIPs, which shoal does not).
// metadata.labels and metadata.annotations are valid only with a key; see validFieldPath.
var supportedFieldPaths = map[string]bool{
	"metadata.name":      true,
	"metadata.namespace": true,
	"metadata.uid":       true,
	"spec.nodeName":      true,
	"status.hostIP":      true,
	"status.podIP":       true,
}

// supportedResourceFields are what resourceFieldRef may expose: cpu and memory only in shoal.
var supportedResourceFields = map[string]bool{
	"limits.cpu":      true,
	"limits.memory":   true,
	"requests.cpu":    true,
	"requests.memory": true,
}

// env checks a container's env and envFrom entries, including what they reference.
func (v *validator) env(pc *podContext, path string, c *corev1.Container) {
	o := pc.o
	for i := range c.Env {
		e := &c.Env[i]
		p := indexPath(path+".env", i)
		if e.Name == "" {
			v.errorf(o, p+".name", "is required: name the environment variable")
		} else if msgs := envVarNameErrs(e.Name); len(msgs) > 0 {
			v.errorf(o, p+".name", "invalid environment variable name %q: %s", e.Name, joinMsgs(msgs))
		}
		vf := e.ValueFrom
		if vf == nil {
			continue
		}
		if e.Value != "" {
			v.errorf(o, p+".valueFrom", "may not be set together with value (Kubernetes rule): keep one")
		}
		var srcs []string
		if f := vf.FieldRef; f != nil {
			srcs = append(srcs, "fieldRef")
			v.fieldRefVersion(o, p+".valueFrom.fieldRef.apiVersion", f.APIVersion)
			if !validFieldPath(f.FieldPath) {
				v.errorf(o, p+".valueFrom.fieldRef.fieldPath", "unsupported fieldPath %q: use metadata.name, metadata.namespace, metadata.uid, metadata.labels['KEY'], metadata.annotations['KEY'], spec.nodeName, status.hostIP or status.podIP", f.FieldPath)
			}
		}
		if r := vf.ResourceFieldRef; r != nil {
			srcs = append(srcs, "resourceFieldRef")
			if !supportedResourceFields[r.Resource] {
				v.errorf(o, p+".valueFrom.resourceFieldRef.resource", "unsupported resource %q: shoal exposes limits.cpu, limits.memory, requests.cpu and requests.memory", r.Resource)
			}
		}
		if r := vf.ConfigMapKeyRef; r != nil {
			srcs = append(srcs, "configMapKeyRef")
			v.configMapKeyRef(pc, p+".valueFrom.configMapKeyRef", r)
		}
		if r := vf.SecretKeyRef; r != nil {
			srcs = append(srcs, "secretKeyRef")
			v.secretKeyRef(pc, p+".valueFrom.secretKeyRef", r)
		}
		if vf.FileKeyRef != nil {
			srcs = append(srcs, "fileKeyRef")
		}
		switch {
		case len(srcs) == 0:
			v.errorf(o, p+".valueFrom", "must specify exactly one source: configMapKeyRef, secretKeyRef, fieldRef or resourceFieldRef")
		case len(srcs) > 1:
			v.errorf(o, p+".valueFrom", "must specify exactly one source, found %s: keep one", strings.Join(srcs, " and "))
		}
	}
	for i := range c.EnvFrom {
		ef := &c.EnvFrom[i]
		p := indexPath(path+".envFrom", i)
		switch {
		case ef.ConfigMapRef != nil && ef.SecretRef != nil:
			v.errorf(o, p, "must specify exactly one of configMapRef and secretRef: split it into two entries")
		case ef.ConfigMapRef != nil:
			v.objectRef(pc, p+".configMapRef.name", vkConfigMap, ef.ConfigMapRef.Name, ef.ConfigMapRef.Optional)
		case ef.SecretRef != nil:
			v.objectRef(pc, p+".secretRef.name", vkSecret, ef.SecretRef.Name, ef.SecretRef.Optional)
		default:
			v.errorf(o, p, "must specify exactly one of configMapRef and secretRef")
		}
		if ef.Prefix != "" {
			if msgs := envVarNameErrs(ef.Prefix); len(msgs) > 0 {
				v.errorf(o, p+".prefix", "invalid prefix %q: it must start a valid environment variable name (%s)", ef.Prefix, joinMsgs(msgs))
			}
		}
	}
}

// validFieldPath accepts the downward API field paths, including one label or annotation by key.
func validFieldPath(fp string) bool {
	if supportedFieldPaths[fp] {
		return true
	}
	for _, prefix := range []string{"metadata.labels['", "metadata.annotations['"} {
		if strings.HasPrefix(fp, prefix) && strings.HasSuffix(fp, "']") && len(fp) > len(prefix)+2 {
			return true
		}
	}
	return false
}

// volumeMounts checks that each mount names a volume of the pod (or a StatefulSet claim
// template), at a distinct absolute path, with a subPath that stays inside the volume.
func (v *validator) volumeMounts(pc *podContext, path string, c *corev1.Container) {
	o := pc.o
	paths := make(map[string]string, len(c.VolumeMounts))
	for i := range c.VolumeMounts {
		m := &c.VolumeMounts[i]
		p := indexPath(path+".volumeMounts", i)
		if m.Name == "" {
			v.errorf(o, p+".name", "is required: name the volume to mount")
		} else if pc.volumes[m.Name] == nil && !pc.claimTemplates[m.Name] {
			where := pc.path + ".volumes"
			if pc.claimTemplates != nil {
				where += " or spec.volumeClaimTemplates"
			}
			v.errorf(o, p+".name", "no volume named %q: add it to %s, or fix the name", m.Name, where)
		}
		switch {
		case m.MountPath == "":
			v.errorf(o, p+".mountPath", "is required: give the absolute path to mount at")
		case !strings.HasPrefix(m.MountPath, "/"):
			v.errorf(o, p+".mountPath", "must be an absolute path, got %q: start it with '/'", m.MountPath)
		default:
			if first, dup := paths[m.MountPath]; dup {
				v.errorf(o, p+".mountPath", "duplicate mountPath %q (also %s): each mount needs its own path", m.MountPath, first)
			} else {
				paths[m.MountPath] = p
			}
		}
		if m.SubPath != "" {
			v.relativePath(o, p+".subPath", m.SubPath)
		}
	}
}

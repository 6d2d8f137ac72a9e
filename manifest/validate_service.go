package manifest

import (
	"net/netip"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

const (
	// nodePortMin and nodePortMax bound Kubernetes' default --service-node-port-range, which
	// shoal uses as its fixed range.
	nodePortMin = 30000
	nodePortMax = 32767
	// maxClientIPAffinity is Kubernetes' MaxClientIPServiceAffinitySeconds (one day).
	maxClientIPAffinity = 86400
)

type nodePortKey struct {
	port  int32
	proto corev1.Protocol
}

type servicePortKey struct {
	port  int32
	proto corev1.Protocol
}

func (v *validator) service(o *Object, svc *corev1.Service) {
	spec := &svc.Spec
	switch spec.Type {
	case "", corev1.ServiceTypeClusterIP, corev1.ServiceTypeNodePort:
	case corev1.ServiceTypeLoadBalancer, corev1.ServiceTypeExternalName:
		v.errorf(o, "spec.type", "type %s is not supported by shoal: use ClusterIP, or NodePort to reach the Service on every node's IP", spec.Type)
	default:
		v.errorf(o, "spec.type", "invalid type %q: use ClusterIP or NodePort", spec.Type)
	}
	nodePort := spec.Type == corev1.ServiceTypeNodePort
	headless := spec.ClusterIP == corev1.ClusterIPNone

	v.clusterIP(o, spec, nodePort)
	v.labels(o, "spec.selector", spec.Selector)

	if len(spec.Ports) == 0 && !headless {
		v.errorf(o, "spec.ports", "at least one port is required (Kubernetes rule) unless the Service is headless (clusterIP: None)")
	}
	var selected []*podTemplateEntry
	var resolved bool
	names := make(map[string]string, len(spec.Ports))
	ports := make(map[servicePortKey]string, len(spec.Ports))
	for i := range spec.Ports {
		sp := &spec.Ports[i]
		p := indexPath("spec.ports", i)
		switch {
		case sp.Name == "":
			if len(spec.Ports) > 1 {
				v.errorf(o, p+".name", "is required when a Service has more than one port (Kubernetes rule): name each port, e.g. http")
			}
		case len(dnsLabelErrs(sp.Name)) > 0:
			v.errorf(o, p+".name", "invalid port name %q: Kubernetes requires a DNS-1123 label (%s)", sp.Name, joinMsgs(dnsLabelErrs(sp.Name)))
		default:
			if first, dup := names[sp.Name]; dup {
				v.errorf(o, p+".name", "duplicate port name %q (also %s): port names must be unique within a Service", sp.Name, first)
			} else {
				names[sp.Name] = p
			}
		}
		if msgs := validation.IsValidPortNum(int(sp.Port)); len(msgs) > 0 {
			v.errorf(o, p+".port", "invalid port %d: %s", sp.Port, joinMsgs(msgs))
		}
		v.protocol(o, p+".protocol", sp.Protocol)
		proto := sp.Protocol
		if proto == "" {
			proto = corev1.ProtocolTCP
		}
		if first, dup := ports[servicePortKey{sp.Port, proto}]; dup {
			v.errorf(o, p+".port", "duplicate port %d/%s (also %s): each port and protocol may appear once in a Service", sp.Port, proto, first)
		} else {
			ports[servicePortKey{sp.Port, proto}] = p
		}

		tp := sp.TargetPort
		switch {
		case tp.Type == intstr.Int && tp.IntVal == 0:
			// Unset: Kubernetes defaults targetPort to port.
		case tp.Type == intstr.Int:
			if msgs := validation.IsValidPortNum(int(tp.IntVal)); len(msgs) > 0 {
				v.errorf(o, p+".targetPort", "invalid target port %d: %s", tp.IntVal, joinMsgs(msgs))
			}
		default:
			if msgs := portNameErrs(tp.StrVal); len(msgs) > 0 {
				v.errorf(o, p+".targetPort", "invalid target port name %q: use a port number or an IANA service name (%s)", tp.StrVal, joinMsgs(msgs))
				break
			}
			if !resolved {
				selected = v.selectedTemplates(o.Key.Namespace, spec.Selector)
				resolved = true
			}
			v.namedTargetPort(o, p+".targetPort", tp.StrVal, selected)
		}
		v.nodePort(o, p+".nodePort", sp.NodePort, proto, nodePort)
	}

	v.sessionAffinity(o, spec)
	switch etp := spec.ExternalTrafficPolicy; {
	case etp == "":
	case spec.Type == corev1.ServiceTypeLoadBalancer:
		// Kubernetes defaults the policy for LoadBalancer too; the type is already reported.
	case !nodePort:
		v.errorf(o, "spec.externalTrafficPolicy", "may only be set for type NodePort (Kubernetes rule: it governs traffic from outside the cluster): remove it")
	case etp != corev1.ServiceExternalTrafficPolicyCluster && etp != corev1.ServiceExternalTrafficPolicyLocal:
		v.errorf(o, "spec.externalTrafficPolicy", "invalid externalTrafficPolicy %q: use Cluster or Local", etp)
	}
	if itp := spec.InternalTrafficPolicy; itp != nil && *itp != corev1.ServiceInternalTrafficPolicyCluster && *itp != corev1.ServiceInternalTrafficPolicyLocal {
		v.errorf(o, "spec.internalTrafficPolicy", "invalid internalTrafficPolicy %q: use Cluster or Local", *itp)
	}
}

// clusterIP checks spec.clusterIP and spec.clusterIPs: "None" (headless) or a valid IP in
// canonical form, never claimed by two Services. Range checks happen at allocation time.
func (v *validator) clusterIP(o *Object, spec *corev1.ServiceSpec, nodePort bool) {
	ip := spec.ClusterIP
	switch {
	case ip == "":
	case ip == corev1.ClusterIPNone:
		if nodePort {
			v.errorf(o, "spec.clusterIP", "may not be None for a NodePort Service (Kubernetes rule): a headless Service has no virtual IP to forward node ports to; remove clusterIP or use type ClusterIP")
		}
	case v.validIP(o, "spec.clusterIP", ip):
		v.ipClaims = append(v.ipClaims, ipClaim{o: o, ip: ip})
	}
	for i, cip := range spec.ClusterIPs {
		p := indexPath("spec.clusterIPs", i)
		if cip == corev1.ClusterIPNone {
			if i > 0 || (ip != "" && ip != corev1.ClusterIPNone) {
				v.errorf(o, p, "None may only be the single entry, matching spec.clusterIP")
			}
			continue
		}
		if !v.validIP(o, p, cip) {
			continue
		}
		if i == 0 && ip != "" && cip != ip {
			v.errorf(o, p, "must equal spec.clusterIP (%s) (Kubernetes rule): the first entry is the primary cluster IP; make them the same or remove clusterIPs", ip)
		}
	}
}

// validIP reports, and returns false for, an address that is not a plain IP in canonical form.
func (v *validator) validIP(o *Object, path, ip string) bool {
	addr, err := netip.ParseAddr(ip)
	switch {
	case err != nil || addr.Zone() != "":
		v.errorf(o, path, "invalid IP address %q: give an address such as 10.96.0.10, or None for a headless Service", ip)
		return false
	case addr.String() != ip:
		v.errorf(o, path, "IP address %q is not in canonical form (Kubernetes rule): write %s", ip, addr.String())
		return false
	}
	return true
}

// nodePort checks a port's nodePort: only for NodePort Services, within the node port range,
// and not claimed twice, since every node listens on it.
func (v *validator) nodePort(o *Object, path string, port int32, proto corev1.Protocol, nodePortType bool) {
	if port == 0 {
		return
	}
	if !nodePortType {
		v.errorf(o, path, "may only be set when spec.type is NodePort (Kubernetes rule): remove it or set type: NodePort")
		return
	}
	if port < nodePortMin || port > nodePortMax {
		v.errorf(o, path, "node port %d is outside the range %d-%d: pick a port in range, or remove it to have one allocated", port, nodePortMin, nodePortMax)
		return
	}
	v.portClaims = append(v.portClaims, portClaim{o: o, path: path, key: nodePortKey{port, proto}})
}

type ipClaim struct {
	o  *Object
	ip string
}

type portClaim struct {
	o    *Object
	path string
	key  nodePortKey
}

// settleClaims reports every ClusterIP and node port claimed a second time, naming the first
// claim in key order. Every node serves every Service, so two claims can never both be met.
func (v *validator) settleClaims() {
	ips := make(map[string]*Object, len(v.ipClaims))
	for _, c := range v.ipClaims {
		if first, dup := ips[c.ip]; dup {
			v.errorf(c.o, "spec.clusterIP", "clusterIP %s is already used by %s (%s): each Service needs its own; change one, or remove clusterIP to have one allocated",
				c.ip, first.Key, first.At("spec.clusterIP"))
		} else {
			ips[c.ip] = c.o
		}
	}
	ports := make(map[nodePortKey]portClaim, len(v.portClaims))
	for _, c := range v.portClaims {
		first, dup := ports[c.key]
		switch {
		case !dup:
			ports[c.key] = c
		case first.o == c.o:
			v.errorf(c.o, c.path, "node port %d/%s is used twice in this Service (also %s): give each port its own", c.key.port, c.key.proto, first.path)
		default:
			v.errorf(c.o, c.path, "node port %d/%s is already used by %s (%s): each node port belongs to one Service; change one",
				c.key.port, c.key.proto, first.o.Key, first.o.At(first.path))
		}
	}
	v.settleClaimPrefixes()
}

// sessionAffinity checks spec.sessionAffinity and its ClientIP timeout.
func (v *validator) sessionAffinity(o *Object, spec *corev1.ServiceSpec) {
	switch spec.SessionAffinity {
	case "", corev1.ServiceAffinityNone:
		if spec.SessionAffinityConfig != nil {
			v.errorf(o, "spec.sessionAffinityConfig", "may only be set when sessionAffinity is ClientIP (Kubernetes rule): remove it or set sessionAffinity: ClientIP")
		}
	case corev1.ServiceAffinityClientIP:
		if c := spec.SessionAffinityConfig; c != nil && c.ClientIP != nil && c.ClientIP.TimeoutSeconds != nil {
			if t := *c.ClientIP.TimeoutSeconds; t < 1 || t > maxClientIPAffinity {
				v.errorf(o, "spec.sessionAffinityConfig.clientIP.timeoutSeconds", "must be between 1 and %d seconds (Kubernetes rule), got %d", maxClientIPAffinity, t)
			}
		}
	default:
		v.errorf(o, "spec.sessionAffinity", "invalid sessionAffinity %q: use None or ClientIP", spec.SessionAffinity)
	}
}

// namedTargetPort checks that a named targetPort is defined by at least one pod template the
// Service selects. A selector that matches no workload is not reported: the pods may not
// exist yet in a repository being built up, and the Service then simply has no endpoints.
func (v *validator) namedTargetPort(o *Object, path, name string, selected []*podTemplateEntry) {
	if len(selected) == 0 {
		return
	}
	for _, e := range selected {
		if specDefinesPort(e.spec, name) {
			return
		}
	}
	var sel []string
	for i, e := range selected {
		if i == 3 {
			sel = append(sel, "…")
			break
		}
		sel = append(sel, e.o.Key.String())
	}
	v.errorf(o, path, "no pod selected by this Service defines a port named %q (selected: %s): add a ports entry with name: %s to a container, or use the port number",
		name, strings.Join(sel, ", "), name)
}

func specDefinesPort(spec *corev1.PodSpec, name string) bool {
	for _, cs := range [][]corev1.Container{spec.Containers, spec.InitContainers} {
		for i := range cs {
			for _, p := range cs[i].Ports {
				if p.Name == name {
					return true
				}
			}
		}
	}
	return false
}

// podTemplateEntry is one object that creates pods: its pod labels and spec.
type podTemplateEntry struct {
	o      *Object
	labels map[string]string
	spec   *corev1.PodSpec
}

type svcLabelPair struct{ ns, key, value string }

// workloadIndex finds the pod templates a Service selects without scanning every workload for
// every Service: templates are indexed by namespace and each label, and a selector walks only
// the shortest matching list.
type workloadIndex struct {
	byLabel map[svcLabelPair][]*podTemplateEntry
}

func (v *validator) selectedTemplates(ns string, selector map[string]string) []*podTemplateEntry {
	if len(selector) == 0 {
		return nil
	}
	sh := v.shared
	sh.workloadsOnce.Do(func() { sh.workloads = buildWorkloadIndex(sh.set) })
	var shortest []*podTemplateEntry
	first := true
	for k, val := range selector {
		l := sh.workloads.byLabel[svcLabelPair{ns, k, val}]
		if first || len(l) < len(shortest) {
			shortest, first = l, false
		}
		if len(l) == 0 {
			return nil
		}
	}
	var out []*podTemplateEntry
	for _, e := range shortest {
		if equalitySelectorMatches(selector, e.labels) {
			out = append(out, e)
		}
	}
	return out
}

func buildWorkloadIndex(s *Set) *workloadIndex {
	w := &workloadIndex{byLabel: make(map[svcLabelPair][]*podTemplateEntry)}
	for _, o := range s.Objects() {
		lbls, spec := templateOfObject(o)
		if spec == nil {
			continue
		}
		e := &podTemplateEntry{o: o, labels: lbls, spec: spec}
		for k, val := range lbls {
			lp := svcLabelPair{o.Key.Namespace, k, val}
			w.byLabel[lp] = append(w.byLabel[lp], e)
		}
	}
	return w
}

// templateOfObject returns the labels and spec of the pods an object creates, or a nil spec.
func templateOfObject(o *Object) (map[string]string, *corev1.PodSpec) {
	switch obj := o.Obj.(type) {
	case *corev1.Pod:
		return obj.Labels, &obj.Spec
	case *appsv1.Deployment:
		return obj.Spec.Template.Labels, &obj.Spec.Template.Spec
	case *appsv1.StatefulSet:
		return obj.Spec.Template.Labels, &obj.Spec.Template.Spec
	case *appsv1.DaemonSet:
		return obj.Spec.Template.Labels, &obj.Spec.Template.Spec
	case *batchv1.Job:
		return obj.Spec.Template.Labels, &obj.Spec.Template.Spec
	case *batchv1.CronJob:
		return obj.Spec.JobTemplate.Spec.Template.Labels, &obj.Spec.JobTemplate.Spec.Template.Spec
	}
	return nil, nil
}

package manifest

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidateService(t *testing.T) {
	web := fxDeployment("web")
	svc := func(f func(*corev1.ServiceSpec)) *Object {
		return fxService("web", "web", fxWith(func(s *corev1.Service) { f(&s.Spec) }))
	}
	nodePort := func(f func(*corev1.ServiceSpec)) *Object {
		return svc(func(s *corev1.ServiceSpec) {
			s.Type = corev1.ServiceTypeNodePort
			s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
			f(s)
		})
	}
	port := func(name string, p int32) corev1.ServicePort {
		return corev1.ServicePort{Name: name, Port: p, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromInt32(p)}
	}
	withIP := func(name, ip string) *Object {
		return fxService(name, "web", fxWith(func(s *corev1.Service) { s.Spec.ClusterIP = ip }))
	}

	fxRunCases(t, []fxCase{
		{name: "LoadBalancer", field: "spec.type", msg: "not supported by shoal",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Type = corev1.ServiceTypeLoadBalancer })}},
		{name: "ExternalName", field: "spec.type", msg: "not supported by shoal",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Type = corev1.ServiceTypeExternalName })}},
		{name: "ports required", field: "spec.ports", msg: "at least one port",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports = nil })}},
		{name: "port names required with several ports", field: "spec.ports[1].name", msg: "more than one port",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports = append(s.Ports, port("", 443)) })}},
		{name: "port names unique", field: "spec.ports[1].name", msg: "duplicate port name",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports = append(s.Ports, port("http", 443)) })}},
		{name: "port name syntax", field: "spec.ports[0].name", msg: "DNS-1123 label",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports[0].Name = "HTTP" })}},
		{name: "port and protocol unique", field: "spec.ports[1].port", msg: "duplicate port 80/TCP",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports = append(s.Ports, port("alt", 80)) })}},
		{name: "port range", field: "spec.ports[0].port", msg: "between 1 and 65535",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports[0].Port = 0 })}},
		{name: "SCTP", field: "spec.ports[0].protocol", msg: "not supported by shoal",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports[0].Protocol = corev1.ProtocolSCTP })}},
		{name: "target port number", field: "spec.ports[0].targetPort", msg: "between 1 and 65535",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports[0].TargetPort = intstr.FromInt32(65536) })}},
		{name: "named target port must be defined by a selected pod", field: "spec.ports[0].targetPort", msg: `no pod selected by this Service defines a port named "metrics" (selected: Deployment default/web)`,
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports[0].TargetPort = intstr.FromString("metrics") })}},
		{name: "target port name syntax", field: "spec.ports[0].targetPort", msg: "IANA service name",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports[0].TargetPort = intstr.FromString("a_b") })}},
		{name: "nodePort only for NodePort", field: "spec.ports[0].nodePort", msg: "only be set when spec.type is NodePort",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Ports[0].NodePort = 30080 })}},
		{name: "nodePort range", field: "spec.ports[0].nodePort", msg: "30000-32767",
			objs: []*Object{web, nodePort(func(s *corev1.ServiceSpec) { s.Ports[0].NodePort = 8080 })}},
		{name: "nodePort unique across services", field: "spec.ports[0].nodePort", msg: "already used by Service default/a",
			objs: []*Object{web,
				fxService("a", "web", fxWith(func(s *corev1.Service) { s.Spec.Type, s.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 30080 })),
				fxService("b", "web", fxWith(func(s *corev1.Service) { s.Spec.Type, s.Spec.Ports[0].NodePort = corev1.ServiceTypeNodePort, 30080 }))}},
		{name: "clusterIP syntax", field: "spec.clusterIP", msg: "invalid IP address",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.ClusterIP = "10.96.0.300" })}},
		{name: "clusterIP canonical", field: "spec.clusterIP", msg: "canonical",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.ClusterIP = "fd00:0::1" })}},
		{name: "headless NodePort", field: "spec.clusterIP", msg: "may not be None for a NodePort",
			objs: []*Object{web, nodePort(func(s *corev1.ServiceSpec) { s.ClusterIP = corev1.ClusterIPNone })}},
		{name: "clusterIPs agree", field: "spec.clusterIPs[0]", msg: "must equal spec.clusterIP",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.ClusterIP, s.ClusterIPs = "10.96.0.10", []string{"10.96.0.11"} })}},
		{name: "duplicate clusterIP names both", field: "spec.clusterIP", msg: "already used by Service default/a",
			objs: []*Object{web, withIP("a", "10.96.0.10"), withIP("b", "10.96.0.10")}},
		{name: "session affinity", field: "spec.sessionAffinity", msg: "None or ClientIP",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.SessionAffinity = "Cookie" })}},
		{name: "session affinity timeout", field: "spec.sessionAffinityConfig.clientIP.timeoutSeconds", msg: "between 1 and 86400",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) {
				s.SessionAffinity = corev1.ServiceAffinityClientIP
				s.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: fxPtr(int32(86401))}}
			})}},
		{name: "session affinity config without ClientIP", field: "spec.sessionAffinityConfig", msg: "only be set when sessionAffinity is ClientIP",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) {
				s.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: fxPtr(int32(60))}}
			})}},
		{name: "externalTrafficPolicy only for NodePort", field: "spec.externalTrafficPolicy", msg: "only be set for type NodePort",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal })}},
		{name: "externalTrafficPolicy value", field: "spec.externalTrafficPolicy", msg: "Cluster or Local",
			objs: []*Object{web, nodePort(func(s *corev1.ServiceSpec) { s.ExternalTrafficPolicy = "Nearest" })}},
		{name: "selector labels", field: "spec.selector[app]", msg: "invalid value",
			objs: []*Object{web, svc(func(s *corev1.ServiceSpec) { s.Selector["app"] = "web!" })}},
	})
}

func TestValidateServiceAccepts(t *testing.T) {
	objs := []*Object{
		fxDeployment("web"),
		// The named port is defined by one of the two selected workloads.
		fxDeployment("web-canary", fxWith(func(d *appsv1.Deployment) {
			d.Spec.Template.Labels["app"] = "web"
			d.Spec.Template.Labels["track"] = "canary"
			d.Spec.Selector.MatchLabels = map[string]string{"app": "web", "track": "canary"}
			d.Spec.Template.Spec.Containers[0].Ports[0].Name = "admin"
			d.Spec.Template.Spec.Containers[0].ReadinessProbe.HTTPGet.Port = intstr.FromString("admin")
		})),
		fxService("web", "web", fxWith(func(s *corev1.Service) {
			s.Spec.Type = corev1.ServiceTypeNodePort
			s.Spec.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyLocal
			s.Spec.ClusterIP = "10.96.0.10"
			s.Spec.ClusterIPs = []string{"10.96.0.10"}
			s.Spec.Ports = append(s.Spec.Ports,
				corev1.ServicePort{Name: "admin", Port: 81, TargetPort: intstr.FromString("admin"), NodePort: 30081},
				corev1.ServicePort{Name: "dns-udp", Port: 53, Protocol: corev1.ProtocolUDP, NodePort: 30053},
				corev1.ServicePort{Name: "dns-tcp", Port: 53, Protocol: corev1.ProtocolTCP, NodePort: 30053})
			s.Spec.SessionAffinity = corev1.ServiceAffinityClientIP
			s.Spec.SessionAffinityConfig = &corev1.SessionAffinityConfig{ClientIP: &corev1.ClientIPConfig{TimeoutSeconds: fxPtr(int32(10800))}}
		})),
		// A named targetPort of a Service that selects no workload is not an error: the pods
		// may come in a later commit.
		fxService("future", "not-yet", fxWith(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("grpc") })),
		fxService("numeric", "web", fxWith(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromInt32(8080) })),
		fxHeadlessService("db", fxWith(func(s *corev1.Service) { s.Spec.Ports = nil })),
		fxService("v6", "web", fxWith(func(s *corev1.Service) { s.Spec.ClusterIP = "fd00::10" })),
	}
	if errs := fxValidate(t, objs...); len(errs) > 0 {
		t.Fatalf("want no errors, got:\n%v", errs)
	}
}

// TestValidateServiceTargetPortIndex checks the label index against a plain scan: a Service
// must see exactly the workloads of its namespace whose template carries every selector label.
func TestValidateServiceTargetPortIndex(t *testing.T) {
	var objs []*Object
	objs = append(objs, fxNamespace("shop"))
	for i, lbls := range []map[string]string{
		{"app": "web", "tier": "front"},
		{"app": "web"},
		{"app": "api", "tier": "front"},
		{"app": "web", "tier": "back"},
	} {
		name := "w" + string(rune('a'+i))
		objs = append(objs, fxDeployment(name, fxWith(func(d *appsv1.Deployment) {
			d.Spec.Template.Labels = lbls
			d.Spec.Selector.MatchLabels = lbls
		})))
	}
	objs = append(objs, fxDeployment("other-ns", fxInNS("shop")))
	s, errs := NewSet(objs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	v := &validator{set: s, shared: &validateShared{set: s}}
	for _, sel := range []map[string]string{
		{"app": "web"}, {"tier": "front"}, {"app": "web", "tier": "front"}, {"app": "nope"}, {"app": "other-ns"},
	} {
		var want []string
		for _, o := range s.Objects() {
			lbls, spec := templateOfObject(o)
			if spec != nil && o.Key.Namespace == nsDefault && equalitySelectorMatches(sel, lbls) {
				want = append(want, o.Key.String())
			}
		}
		var got []string
		for _, e := range v.selectedTemplates(nsDefault, sel) {
			got = append(got, e.o.Key.String())
		}
		if len(got) != len(want) {
			t.Errorf("selector %v: got %v, want %v", sel, got, want)
			continue
		}
		for i := range got {
			if got[i] != want[i] {
				t.Errorf("selector %v: got %v, want %v", sel, got, want)
				break
			}
		}
	}
}

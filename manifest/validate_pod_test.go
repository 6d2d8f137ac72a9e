package manifest

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidatePodSpec(t *testing.T) {
	c0 := "spec.containers[0]"
	second := func(f func(*corev1.Container)) fxMod {
		return fxSpec(func(s *corev1.PodSpec) {
			c := corev1.Container{Name: "side", Image: "registry.example.com/side:1"}
			f(&c)
			s.Containers = append(s.Containers, c)
		})
	}
	liveness := func(f func(*corev1.Probe)) fxMod {
		return fxCtr(func(c *corev1.Container) {
			c.LivenessProbe = fxProbe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}})
			f(c.LivenessProbe)
		})
	}
	volumes := func(vs ...corev1.Volume) fxMod {
		return fxSpec(func(s *corev1.PodSpec) { s.Volumes = append(s.Volumes, vs...) })
	}
	mounts := func(ms ...corev1.VolumeMount) fxMod {
		return fxCtr(func(c *corev1.Container) { c.VolumeMounts = append(c.VolumeMounts, ms...) })
	}
	emptyDir := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}
	}
	env := func(e corev1.EnvVar) fxMod {
		return fxCtr(func(c *corev1.Container) { c.Env = append(c.Env, e) })
	}
	toleration := func(tol corev1.Toleration) fxMod {
		return fxSpec(func(s *corev1.PodSpec) { s.Tolerations = append(s.Tolerations, tol) })
	}

	fxRunCases(t, []fxCase{
		// containers
		{name: "no containers", field: "spec.containers", msg: "at least one container",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.Containers = nil }))}},
		{name: "container name", field: c0 + ".name", msg: "DNS-1123 label",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Name = "App" }))}},
		{name: "container names unique across init containers", field: c0 + ".name", msg: "spec.initContainers[0]",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) {
				s.InitContainers = []corev1.Container{{Name: "app", Image: "busybox:1"}}
			}))}},
		{name: "image required", field: c0 + ".image", msg: "is required",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Image = " " }))}},
		{name: "image pull policy", field: c0 + ".imagePullPolicy", msg: "Always, IfNotPresent or Never",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.ImagePullPolicy = "Sometimes" }))}},

		// ports
		{name: "container port zero", field: c0 + ".ports[0].containerPort", msg: "between 1 and 65535",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Ports[0].ContainerPort = 0 }))}},
		{name: "container port too big", field: c0 + ".ports[0].containerPort", msg: "between 1 and 65535",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Ports[0].ContainerPort = 70000 }))}},
		{name: "SCTP", field: c0 + ".ports[0].protocol", msg: "not supported by shoal",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Ports[0].Protocol = corev1.ProtocolSCTP }))}},
		{name: "port name", field: c0 + ".ports[0].name", msg: "IANA service name",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Ports[0].Name = "http--alt" }), fxCtr(func(c *corev1.Container) { c.ReadinessProbe = nil }))}},
		{name: "port names unique per pod", field: "spec.containers[1].ports[0].name", msg: "duplicate port name",
			objs: []*Object{fxPod("p", second(func(c *corev1.Container) {
				c.Ports = []corev1.ContainerPort{{Name: "http", ContainerPort: 9090}}
			}))}},
		{name: "host port range", field: c0 + ".ports[0].hostPort", msg: "between 1 and 65535",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Ports[0].HostPort = 65536 }))}},
		{name: "host port unique per protocol", field: "spec.containers[1].ports[0].hostPort", msg: "already used by spec.containers[0].ports[0]",
			objs: []*Object{fxPod("p",
				fxCtr(func(c *corev1.Container) { c.Ports[0].HostPort = 80 }),
				second(func(c *corev1.Container) {
					c.Ports = []corev1.ContainerPort{{ContainerPort: 9090, HostPort: 80, Protocol: corev1.ProtocolTCP}}
				}))}},

		// resources
		{name: "resource not supported", field: c0 + ".resources.limits[nvidia.com/gpu]", msg: "not supported by shoal",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Resources.Limits["nvidia.com/gpu"] = resource.MustParse("1") }))}},
		{name: "quantity positive", field: c0 + ".resources.requests[cpu]", msg: "greater than 0",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Resources.Requests[corev1.ResourceCPU] = resource.MustParse("0") }))}},
		{name: "request above limit", field: c0 + ".resources.requests[memory]", msg: "more than limit 128Mi",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.Resources.Requests[corev1.ResourceMemory] = resource.MustParse("1Gi") }))}},

		// probes
		{name: "probe without handler", field: c0 + ".livenessProbe", msg: "exactly one handler",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.TCPSocket = nil }))}},
		{name: "probe with two handlers", field: c0 + ".livenessProbe", msg: "found exec and tcpSocket",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.Exec = &corev1.ExecAction{Command: []string{"true"}} }))}},
		{name: "grpc probe", field: c0 + ".livenessProbe.grpc", msg: "not supported by shoal",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.TCPSocket, p.GRPC = nil, &corev1.GRPCAction{Port: 9000} }))}},
		{name: "probe named port must exist in the container", field: c0 + ".readinessProbe.httpGet.port", msg: `port "metrics" is not defined`,
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.ReadinessProbe.HTTPGet.Port = intstr.FromString("metrics") }))}},
		{name: "probe port number", field: c0 + ".livenessProbe.tcpSocket.port", msg: "between 1 and 65535",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.TCPSocket.Port = intstr.FromInt32(0) }))}},
		{name: "probe period", field: c0 + ".livenessProbe.periodSeconds", msg: "at least 1",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.PeriodSeconds = 0 }))}},
		{name: "probe timeout", field: c0 + ".livenessProbe.timeoutSeconds", msg: "at least 1",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.TimeoutSeconds = -1 }))}},
		{name: "liveness success threshold", field: c0 + ".livenessProbe.successThreshold", msg: "must be 1 for liveness and startup",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.SuccessThreshold = 2 }))}},
		{name: "startup success threshold", field: c0 + ".startupProbe.successThreshold", msg: "must be 1 for liveness and startup",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) {
				c.StartupProbe = fxProbe(corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}})
				c.StartupProbe.SuccessThreshold = 3
			}))}},
		{name: "failure threshold", field: c0 + ".livenessProbe.failureThreshold", msg: "at least 1",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.FailureThreshold = -2 }))}},
		{name: "initial delay", field: c0 + ".livenessProbe.initialDelaySeconds", msg: "at least 0",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.InitialDelaySeconds = -1 }))}},
		{name: "exec command required", field: c0 + ".livenessProbe.exec.command", msg: "is required",
			objs: []*Object{fxPod("p", liveness(func(p *corev1.Probe) { p.TCPSocket, p.Exec = nil, &corev1.ExecAction{} }))}},
		{name: "init container probe", field: "spec.initContainers[0].readinessProbe", msg: "init container may not",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) {
				s.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1",
					ReadinessProbe: fxProbe(corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"true"}}})}}
			}))}},

		// volumes and mounts
		{name: "volume name", field: "spec.volumes[0].name", msg: "DNS-1123 label",
			objs: []*Object{fxPod("p", volumes(emptyDir("Data")))}},
		{name: "volume names unique", field: "spec.volumes[1].name", msg: "duplicate volume name",
			objs: []*Object{fxPod("p", volumes(emptyDir("data"), emptyDir("data")))}},
		{name: "volume without source", field: "spec.volumes[0]", msg: "exactly one volume source",
			objs: []*Object{fxPod("p", volumes(corev1.Volume{Name: "data"}))}},
		{name: "volume with two sources", field: "spec.volumes[0]", msg: "found 2 (hostPath, emptyDir)",
			objs: []*Object{fxPod("p", volumes(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				EmptyDir: &corev1.EmptyDirVolumeSource{}, HostPath: &corev1.HostPathVolumeSource{Path: "/srv"},
			}}))}},
		{name: "mount of an undefined volume", field: c0 + ".volumeMounts[0].name", msg: `no volume named "cache"`,
			objs: []*Object{fxPod("p", mounts(corev1.VolumeMount{Name: "cache", MountPath: "/cache"}))}},
		{name: "mount path absolute", field: c0 + ".volumeMounts[0].mountPath", msg: "absolute",
			objs: []*Object{fxPod("p", volumes(emptyDir("data")), mounts(corev1.VolumeMount{Name: "data", MountPath: "data"}))}},
		{name: "mount paths unique", field: c0 + ".volumeMounts[1].mountPath", msg: "duplicate mountPath",
			objs: []*Object{fxPod("p", volumes(emptyDir("a"), emptyDir("b")),
				mounts(corev1.VolumeMount{Name: "a", MountPath: "/data"}, corev1.VolumeMount{Name: "b", MountPath: "/data"}))}},
		{name: "subPath relative", field: c0 + ".volumeMounts[0].subPath", msg: "relative",
			objs: []*Object{fxPod("p", volumes(emptyDir("data")), mounts(corev1.VolumeMount{Name: "data", MountPath: "/d", SubPath: "/etc"}))}},
		{name: "subPath without ..", field: c0 + ".volumeMounts[0].subPath", msg: "'..'",
			objs: []*Object{fxPod("p", volumes(emptyDir("data")), mounts(corev1.VolumeMount{Name: "data", MountPath: "/d", SubPath: "a/../../b"}))}},
		{name: "pvc in a pod", field: "spec.volumes[0].persistentVolumeClaim", msg: "only through StatefulSet volumeClaimTemplates",
			objs: []*Object{fxPod("p", volumes(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}))}},
		{name: "pvc in a deployment", field: "spec.template.spec.volumes[0].persistentVolumeClaim", msg: "run this as a StatefulSet",
			objs: []*Object{fxDeployment("web", volumes(corev1.Volume{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}))}},
		{name: "pvc in a statefulset must name a claim template", field: "spec.template.spec.volumes[0].persistentVolumeClaim.claimName", msg: `claim "cache" is not one of this StatefulSet's volumeClaimTemplates`,
			objs: []*Object{fxHeadlessService("db"), fxStatefulSet("db", volumes(corev1.Volume{Name: "cache", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "cache"}}}))}},
		{name: "item path stays in the volume", field: "spec.volumes[0].configMap.items[0].path", msg: "'..'",
			objs: []*Object{fxConfigMap("cfg", map[string]string{"a": "1"}), fxPod("p", volumes(corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"},
					Items: []corev1.KeyToPath{{Key: "a", Path: "../a"}}}}}))}},
		{name: "default mode", field: "spec.volumes[0].configMap.defaultMode", msg: "0777",
			objs: []*Object{fxConfigMap("cfg", nil), fxPod("p", volumes(corev1.Volume{Name: "cfg", VolumeSource: corev1.VolumeSource{
				ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, DefaultMode: fxPtr(int32(0o1777))}}}))}},

		// pod-level fields
		{name: "restart policy", field: "spec.restartPolicy", msg: "Always, OnFailure or Never",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.RestartPolicy = "Sometimes" }))}},
		{name: "dns policy not supported", field: "spec.dnsPolicy", msg: "not supported by shoal",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.DNSPolicy = corev1.DNSNone }))}},
		{name: "dns policy invalid", field: "spec.dnsPolicy", msg: "invalid dnsPolicy",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.DNSPolicy = "Cluster" }))}},
		{name: "grace period", field: "spec.terminationGracePeriodSeconds", msg: "at least 0",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.TerminationGracePeriodSeconds = fxPtr(int64(-1)) }))}},
		{name: "node selector key", field: "spec.nodeSelector[disk type]", msg: "invalid node label key",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{"disk type": "ssd"} }))}},
		{name: "node selector value", field: "spec.nodeSelector[disk]", msg: "invalid node label value",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.NodeSelector = map[string]string{"disk": "fast ssd"} }))}},

		// env
		{name: "env name", field: c0 + ".env[0].name", msg: "invalid environment variable name",
			objs: []*Object{fxPod("p", env(corev1.EnvVar{Name: "1ST", Value: "x"}))}},
		{name: "env value and valueFrom", field: c0 + ".env[0].valueFrom", msg: "together with value",
			objs: []*Object{fxPod("p", env(corev1.EnvVar{Name: "POD", Value: "x", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}}))}},
		{name: "env valueFrom without source", field: c0 + ".env[0].valueFrom", msg: "exactly one source",
			objs: []*Object{fxPod("p", env(corev1.EnvVar{Name: "POD", ValueFrom: &corev1.EnvVarSource{}}))}},
		{name: "env valueFrom with two sources", field: c0 + ".env[0].valueFrom", msg: "found fieldRef and resourceFieldRef",
			objs: []*Object{fxPod("p", env(corev1.EnvVar{Name: "POD", ValueFrom: &corev1.EnvVarSource{
				FieldRef:         &corev1.ObjectFieldSelector{FieldPath: "metadata.name"},
				ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}}))}},
		{name: "env fieldPath", field: c0 + ".env[0].valueFrom.fieldRef.fieldPath", msg: "unsupported fieldPath",
			objs: []*Object{fxPod("p", env(corev1.EnvVar{Name: "POD", ValueFrom: &corev1.EnvVarSource{
				FieldRef: &corev1.ObjectFieldSelector{FieldPath: "spec.hostname"}}}))}},
		{name: "env resource", field: c0 + ".env[0].valueFrom.resourceFieldRef.resource", msg: "unsupported resource",
			objs: []*Object{fxPod("p", env(corev1.EnvVar{Name: "DISK", ValueFrom: &corev1.EnvVarSource{
				ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.ephemeral-storage"}}}))}},

		// tolerations
		{name: "toleration operator", field: "spec.tolerations[0].operator", msg: "Equal or Exists",
			objs: []*Object{fxPod("p", toleration(corev1.Toleration{Key: "k", Operator: "In"}))}},
		{name: "toleration Exists with value", field: "spec.tolerations[0].value", msg: "must be empty",
			objs: []*Object{fxPod("p", toleration(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Value: "v"}))}},
		{name: "toleration empty key needs Exists", field: "spec.tolerations[0].operator", msg: "must be Exists",
			objs: []*Object{fxPod("p", toleration(corev1.Toleration{Operator: corev1.TolerationOpEqual}))}},
		{name: "toleration effect", field: "spec.tolerations[0].effect", msg: "NoSchedule, PreferNoSchedule or NoExecute",
			objs: []*Object{fxPod("p", toleration(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists, Effect: "NoRun"}))}},
		{name: "tolerationSeconds needs NoExecute", field: "spec.tolerations[0].tolerationSeconds", msg: "NoExecute",
			objs: []*Object{fxPod("p", toleration(corev1.Toleration{Key: "k", Operator: corev1.TolerationOpExists,
				Effect: corev1.TaintEffectNoSchedule, TolerationSeconds: fxPtr(int64(5))}))}},
	})
}

// TestValidatePodSpecAccepts is the other side of the rules: what Kubernetes allows passes.
func TestValidatePodSpecAccepts(t *testing.T) {
	p := fxPod("p", fxSpec(func(s *corev1.PodSpec) {
		s.RestartPolicy = corev1.RestartPolicyOnFailure
		s.DNSPolicy = corev1.DNSDefault
		s.Volumes = []corev1.Volume{
			{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
			{Name: "scratch", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		}
		s.Tolerations = []corev1.Toleration{
			{Operator: corev1.TolerationOpExists},
			{Key: "dedicated", Value: "db", Effect: corev1.TaintEffectNoExecute, TolerationSeconds: fxPtr(int64(30))},
		}
		s.NodeSelector = map[string]string{"kubernetes.io/hostname": "n1"}
		s.InitContainers = []corev1.Container{{Name: "init", Image: "busybox:1",
			Ports: []corev1.ContainerPort{{ContainerPort: 80, HostPort: 80}}}} // init containers end before host ports bind
		c := &s.Containers[0]
		c.Ports = append(c.Ports,
			corev1.ContainerPort{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolUDP},
			corev1.ContainerPort{ContainerPort: 53, HostPort: 53, Protocol: corev1.ProtocolTCP},
			corev1.ContainerPort{ContainerPort: 80, HostPort: 80, Protocol: corev1.ProtocolTCP})
		c.ReadinessProbe.SuccessThreshold = 3 // only liveness and startup are pinned to 1
		c.LivenessProbe = fxProbe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(8080)}})
		c.VolumeMounts = []corev1.VolumeMount{
			{Name: "data", MountPath: "/data", SubPath: "a/b"},
			{Name: "scratch", MountPath: "/tmp"},
		}
		c.Env = []corev1.EnvVar{
			{Name: "POD_NAME", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.name"}}},
			{Name: "APP", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels['app']"}}},
			{Name: "MEM", ValueFrom: &corev1.EnvVarSource{ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}},
			{Name: "PLAIN", Value: "x"},
		}
		c.Resources.Limits[corev1.ResourceCPU] = resource.MustParse("100m") // equal to the request
	}))
	d := fxDeployment("web")
	if errs := fxValidate(t, p, d); len(errs) > 0 {
		t.Fatalf("want no errors, got:\n%v", errs)
	}
}

// TestValidateRestartPolicyByOwner checks that each owner allows only the restart policies its
// controller can run.
func TestValidateRestartPolicyByOwner(t *testing.T) {
	fxRunCases(t, []fxCase{
		{name: "deployment OnFailure", field: "spec.template.spec.restartPolicy", msg: "only allows Always",
			objs: []*Object{fxDeployment("web", fxSpec(func(s *corev1.PodSpec) { s.RestartPolicy = corev1.RestartPolicyOnFailure }))}},
		{name: "daemonset Never", field: "spec.template.spec.restartPolicy", msg: "only allows Always",
			objs: []*Object{fxDaemonSet("agent", fxSpec(func(s *corev1.PodSpec) { s.RestartPolicy = corev1.RestartPolicyNever }))}},
		{name: "statefulset Never", field: "spec.template.spec.restartPolicy", msg: "only allows Always",
			objs: []*Object{fxHeadlessService("db"), fxStatefulSet("db", fxWith(func(s *appsv1.StatefulSet) { s.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever }))}},
	})
}

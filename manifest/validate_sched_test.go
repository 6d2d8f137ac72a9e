package manifest

import (
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestValidateRestrictedFields covers the fields whose values the supported-fields table
// restricts (fields.go: "restricted values are checked by validation").
func TestValidateRestrictedFields(t *testing.T) {
	aff := func(a corev1.Affinity) *Object {
		return fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.Affinity = &a }))
	}
	nodeReq := func(r corev1.NodeSelectorRequirement) corev1.Affinity {
		return corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{r}}}}}}
	}
	nodePath := "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms[0]"
	spread := func(c corev1.TopologySpreadConstraint) *Object {
		return fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{c} }))
	}
	volume := func(src corev1.VolumeSource) *Object {
		return fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.Volumes = []corev1.Volume{{Name: "v", VolumeSource: src}} }))
	}
	preStop := func(h corev1.LifecycleHandler) *Object {
		return fxPod("p", fxCtr(func(c *corev1.Container) { c.Lifecycle = &corev1.Lifecycle{PreStop: &h} }))
	}
	behavior := func(r autoscalingv2.HPAScalingRules) []*Object {
		return []*Object{fxDeployment("web"), fxHPA("web", "web", fxWith(func(h *autoscalingv2.HorizontalPodAutoscaler) {
			h.Spec.Behavior = &autoscalingv2.HorizontalPodAutoscalerBehavior{ScaleUp: &r}
		}))}
	}
	c0 := "spec.containers[0]"

	fxRunCases(t, []fxCase{
		{name: "node affinity operator", field: nodePath + ".matchExpressions[0].operator", msg: "In, NotIn, Exists, DoesNotExist, Gt or Lt",
			objs: []*Object{aff(nodeReq(corev1.NodeSelectorRequirement{Key: "disk", Operator: "Has"}))}},
		{name: "node affinity Gt needs an integer", field: nodePath + ".matchExpressions[0].values[0]", msg: "integer",
			objs: []*Object{aff(nodeReq(corev1.NodeSelectorRequirement{Key: "cores", Operator: corev1.NodeSelectorOpGt, Values: []string{"many"}}))}},
		{name: "node affinity In needs values", field: nodePath + ".matchExpressions[0].values", msg: "non-empty",
			objs: []*Object{aff(nodeReq(corev1.NodeSelectorRequirement{Key: "disk", Operator: corev1.NodeSelectorOpIn}))}},
		{name: "node affinity needs a term", field: "spec.affinity.nodeAffinity.requiredDuringSchedulingIgnoredDuringExecution.nodeSelectorTerms", msg: "at least one term",
			objs: []*Object{aff(corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{}}})}},
		{name: "matchFields only metadata.name", field: nodePath + ".matchFields[0].key", msg: "metadata.name",
			objs: []*Object{aff(corev1.Affinity{NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchFields: []corev1.NodeSelectorRequirement{{Key: "spec.unschedulable", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}}}}}})}},
		{name: "preferred weight", field: "spec.affinity.podAntiAffinity.preferredDuringSchedulingIgnoredDuringExecution[0].weight", msg: "between 1 and 100",
			objs: []*Object{aff(corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 0, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname"}}}}})}},
		{name: "pod affinity topology key", field: "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].topologyKey", msg: "is required",
			objs: []*Object{aff(corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "db"}}}}}})}},
		{name: "pod affinity selector", field: "spec.affinity.podAffinity.requiredDuringSchedulingIgnoredDuringExecution[0].labelSelector.matchExpressions[0].operator", msg: "unsupported operator",
			objs: []*Object{aff(corev1.Affinity{PodAffinity: &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey:   "kubernetes.io/hostname",
				LabelSelector: &metav1.LabelSelector{MatchExpressions: []metav1.LabelSelectorRequirement{{Key: "app", Operator: "Like"}}}}}}})}},
		{name: "spread maxSkew", field: "spec.topologySpreadConstraints[0].maxSkew", msg: "at least 1",
			objs: []*Object{spread(corev1.TopologySpreadConstraint{MaxSkew: 0, TopologyKey: "zone", WhenUnsatisfiable: corev1.DoNotSchedule})}},
		{name: "spread whenUnsatisfiable", field: "spec.topologySpreadConstraints[0].whenUnsatisfiable", msg: "DoNotSchedule or ScheduleAnyway",
			objs: []*Object{spread(corev1.TopologySpreadConstraint{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: "Never"})}},
		{name: "hostname", field: "spec.hostname", msg: "DNS-1123 label",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.Hostname = "web.01" }))}},
		{name: "subdomain", field: "spec.subdomain", msg: "headless Service",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.Subdomain = "Web" }))}},
		{name: "runAsUser", field: "spec.securityContext.runAsUser", msg: "between 0 and 2147483647",
			objs: []*Object{fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.SecurityContext = &corev1.PodSecurityContext{RunAsUser: fxPtr(int64(-1))} }))}},
		{name: "privileged without escalation", field: c0 + ".securityContext.allowPrivilegeEscalation", msg: "privileged",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) {
				c.SecurityContext = &corev1.SecurityContext{Privileged: fxPtr(true), AllowPrivilegeEscalation: fxPtr(false)}
			}))}},
		{name: "emptyDir medium", field: "spec.volumes[0].emptyDir.medium", msg: "not supported by shoal",
			objs: []*Object{volume(corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumHugePages}})}},
		{name: "hostPath absolute", field: "spec.volumes[0].hostPath.path", msg: "absolute",
			objs: []*Object{volume(corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "var/log"}})}},
		{name: "hostPath type", field: "spec.volumes[0].hostPath.type", msg: "not supported by shoal",
			objs: []*Object{volume(corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/dev/sda", Type: fxPtr(corev1.HostPathBlockDev)}})}},
		{name: "downwardAPI path", field: "spec.volumes[0].downwardAPI.items[0].path", msg: "'..'",
			objs: []*Object{volume(corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
				Path: "../labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}}}}})}},
		{name: "downwardAPI metadata only", field: "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath", msg: "unsupported fieldPath",
			objs: []*Object{volume(corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
				Path: "ip", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}})}},
		{name: "downwardAPI resource needs container", field: "spec.volumes[0].downwardAPI.items[0].resourceFieldRef.containerName", msg: "is required",
			objs: []*Object{volume(corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{{
				Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{Resource: "limits.memory"}}}}})}},
		{name: "preStop handler", field: c0 + ".lifecycle.preStop", msg: "exactly one handler",
			objs: []*Object{preStop(corev1.LifecycleHandler{})}},
		{name: "preStop sleep longer than grace", field: c0 + ".lifecycle.preStop.sleep.seconds", msg: "terminationGracePeriodSeconds (30)",
			objs: []*Object{preStop(corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 60}})}},
		{name: "preStop named port", field: c0 + ".lifecycle.preStop.httpGet.port", msg: "not defined by this container",
			objs: []*Object{preStop(corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/drain", Port: intstr.FromString("admin")}})}},
		{name: "termination message policy", field: c0 + ".terminationMessagePolicy", msg: "File or FallbackToLogsOnError",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.TerminationMessagePolicy = "Logs" }))}},
		{name: "http header name", field: c0 + ".readinessProbe.httpGet.httpHeaders[0].name", msg: "invalid HTTP header name",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.ReadinessProbe.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{{Name: "X Bad"}} }))}},
		{name: "fieldRef apiVersion", field: c0 + ".env[0].valueFrom.fieldRef.apiVersion", msg: "v1",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) {
				c.Env = []corev1.EnvVar{{Name: "N", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{APIVersion: "v2", FieldPath: "metadata.name"}}}}
			}))}},
		{name: "readiness probe grace period", field: c0 + ".readinessProbe.terminationGracePeriodSeconds", msg: "readiness",
			objs: []*Object{fxPod("p", fxCtr(func(c *corev1.Container) { c.ReadinessProbe.TerminationGracePeriodSeconds = fxPtr(int64(5)) }))}},
		{name: "claim access mode", field: "spec.volumeClaimTemplates[0].spec.accessModes[0]", msg: "not supported by shoal",
			objs: []*Object{fxHeadlessService("db"), fxStatefulSet("db", fxWith(func(s *appsv1.StatefulSet) {
				s.Spec.VolumeClaimTemplates[0].Spec.AccessModes = []corev1.PersistentVolumeAccessMode{corev1.ReadWriteMany}
			}))}},
		{name: "claim retention policy", field: "spec.persistentVolumeClaimRetentionPolicy.whenScaled", msg: "Retain or Delete",
			objs: []*Object{fxHeadlessService("db"), fxStatefulSet("db", fxWith(func(s *appsv1.StatefulSet) {
				s.Spec.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{WhenDeleted: "Retain", WhenScaled: "Keep"}
			}))}},
		{name: "hpa select policy", field: "spec.behavior.scaleUp.selectPolicy", msg: "Max, Min or Disabled",
			objs: behavior(autoscalingv2.HPAScalingRules{SelectPolicy: fxPtr(autoscalingv2.ScalingPolicySelect("Avg"))})},
		{name: "hpa policy period", field: "spec.behavior.scaleUp.policies[0].periodSeconds", msg: "between 1 and 1800",
			objs: behavior(autoscalingv2.HPAScalingRules{Policies: []autoscalingv2.HPAScalingPolicy{{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 3600}}})},
		{name: "hpa stabilization window", field: "spec.behavior.scaleUp.stabilizationWindowSeconds", msg: "between 0 and 3600",
			objs: behavior(autoscalingv2.HPAScalingRules{StabilizationWindowSeconds: fxPtr(int32(-1))})},
	})
}

func TestValidateRestrictedFieldsAccept(t *testing.T) {
	p := fxPod("p", fxSpec(func(s *corev1.PodSpec) {
		s.Hostname, s.Subdomain = "web-0", "web"
		s.Affinity = &corev1.Affinity{
			NodeAffinity: &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
				NodeSelectorTerms: []corev1.NodeSelectorTerm{
					{MatchExpressions: []corev1.NodeSelectorRequirement{{Key: "cores", Operator: corev1.NodeSelectorOpGt, Values: []string{"4"}}}},
					{MatchFields: []corev1.NodeSelectorRequirement{{Key: "metadata.name", Operator: corev1.NodeSelectorOpIn, Values: []string{"n1"}}}},
				}}},
			PodAntiAffinity: &corev1.PodAntiAffinity{PreferredDuringSchedulingIgnoredDuringExecution: []corev1.WeightedPodAffinityTerm{{
				Weight: 100, PodAffinityTerm: corev1.PodAffinityTerm{TopologyKey: "kubernetes.io/hostname",
					LabelSelector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "p"}}}}}},
		}
		s.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{MaxSkew: 1, TopologyKey: "zone", WhenUnsatisfiable: corev1.ScheduleAnyway}}
		s.Volumes = []corev1.Volume{
			{Name: "shm", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}},
			{Name: "logs", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/var/log", Type: fxPtr(corev1.HostPathDirectoryOrCreate)}}},
			{Name: "info", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
				{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
				{Path: "mem", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "app", Resource: "limits.memory"}},
			}}}},
		}
		c := &s.Containers[0]
		c.Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}
		c.TerminationMessagePolicy = corev1.TerminationMessageFallbackToLogsOnError
		c.ReadinessProbe.HTTPGet.HTTPHeaders = []corev1.HTTPHeader{{Name: "X-Probe", Value: "1"}}
		c.LivenessProbe = fxProbe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/live", Port: intstr.FromString("http")}})
		c.LivenessProbe.TerminationGracePeriodSeconds = fxPtr(int64(10))
	}))
	if errs := fxValidate(t, p); len(errs) > 0 {
		t.Fatalf("want no errors, got:\n%v", errs)
	}
}

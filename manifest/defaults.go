package manifest

import (
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Defaults are Kubernetes' own, written out by hand because k8s.io/kubernetes cannot be
// imported. They mirror SetDefaults_* in kubernetes pkg/apis/core/v1/defaults.go,
// pkg/apis/apps/v1/defaults.go, pkg/apis/batch/v1/defaults.go and
// pkg/apis/autoscaling/v2/defaults.go, restricted to the fields shoal supports (fields.go), with
// three deliberate differences, each documented in docs/manifests.md:
//   - a Job's (and a CronJob's) pod template gets no restartPolicy, so validation can say it
//     must be set, where Kubernetes would default it to Always and then reject it;
//   - requests copied from limits, which Kubernetes does when it creates a pod, are applied to
//     every pod template, because shoal makes pods from templates without another pass;
//   - a CronJob's jobTemplate.spec gets the Job defaults it would get when its Job is created.
// Object.Written tells the user's fields apart from defaults.

// applyDefaults fills in every default of a freshly decoded object.
func applyDefaults(obj runtime.Object) {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		defaultNamespace(&o.ObjectMeta)
		defaultDeployment(&o.Spec)
	case *appsv1.StatefulSet:
		defaultNamespace(&o.ObjectMeta)
		defaultStatefulSet(&o.Spec)
	case *appsv1.DaemonSet:
		defaultNamespace(&o.ObjectMeta)
		defaultDaemonSet(&o.Spec)
	case *batchv1.Job:
		defaultNamespace(&o.ObjectMeta)
		defaultJobSpec(&o.Spec)
	case *batchv1.CronJob:
		defaultNamespace(&o.ObjectMeta)
		defaultCronJob(&o.Spec)
	case *corev1.Pod:
		defaultNamespace(&o.ObjectMeta)
		defaultPodSpec(&o.Spec, true)
	case *corev1.Service:
		defaultNamespace(&o.ObjectMeta)
		defaultService(&o.Spec)
	case *corev1.ConfigMap:
		defaultNamespace(&o.ObjectMeta)
	case *corev1.Secret:
		defaultNamespace(&o.ObjectMeta)
		if o.Type == "" {
			o.Type = corev1.SecretTypeOpaque
		}
	case *autoscalingv2.HorizontalPodAutoscaler:
		defaultNamespace(&o.ObjectMeta)
		defaultHPA(&o.Spec)
	case *corev1.Namespace:
		// Cluster-scoped, nothing to default.
	}
}

func ptrOf[T any](v T) *T { return &v }

func defaultNamespace(m *metav1.ObjectMeta) {
	if m.Namespace == "" {
		m.Namespace = metav1.NamespaceDefault
	}
}

func defaultDeployment(s *appsv1.DeploymentSpec) {
	if s.Replicas == nil {
		s.Replicas = ptrOf[int32](1)
	}
	if s.Strategy.Type == "" {
		s.Strategy.Type = appsv1.RollingUpdateDeploymentStrategyType
	}
	if s.Strategy.Type == appsv1.RollingUpdateDeploymentStrategyType {
		if s.Strategy.RollingUpdate == nil {
			s.Strategy.RollingUpdate = &appsv1.RollingUpdateDeployment{}
		}
		if s.Strategy.RollingUpdate.MaxUnavailable == nil {
			s.Strategy.RollingUpdate.MaxUnavailable = ptrOf(intstr.FromString("25%"))
		}
		if s.Strategy.RollingUpdate.MaxSurge == nil {
			s.Strategy.RollingUpdate.MaxSurge = ptrOf(intstr.FromString("25%"))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptrOf[int32](10)
	}
	if s.ProgressDeadlineSeconds == nil {
		s.ProgressDeadlineSeconds = ptrOf[int32](600)
	}
	defaultPodSpec(&s.Template.Spec, true)
}

func defaultStatefulSet(s *appsv1.StatefulSetSpec) {
	if s.Replicas == nil {
		s.Replicas = ptrOf[int32](1)
	}
	if s.PodManagementPolicy == "" {
		s.PodManagementPolicy = appsv1.OrderedReadyPodManagement
	}
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateStatefulSetStrategyType
	}
	if s.UpdateStrategy.Type == appsv1.RollingUpdateStatefulSetStrategyType {
		// Kubernetes leaves rollingUpdate nil here; a partition of 0 means the same and spares
		// every reader a nil check.
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateStatefulSetStrategy{}
		}
		if s.UpdateStrategy.RollingUpdate.Partition == nil {
			s.UpdateStrategy.RollingUpdate.Partition = ptrOf[int32](0)
		}
	}
	if s.PersistentVolumeClaimRetentionPolicy == nil {
		s.PersistentVolumeClaimRetentionPolicy = &appsv1.StatefulSetPersistentVolumeClaimRetentionPolicy{}
	}
	if s.PersistentVolumeClaimRetentionPolicy.WhenDeleted == "" {
		s.PersistentVolumeClaimRetentionPolicy.WhenDeleted = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if s.PersistentVolumeClaimRetentionPolicy.WhenScaled == "" {
		s.PersistentVolumeClaimRetentionPolicy.WhenScaled = appsv1.RetainPersistentVolumeClaimRetentionPolicyType
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptrOf[int32](10)
	}
	defaultPodSpec(&s.Template.Spec, true)
}

func defaultDaemonSet(s *appsv1.DaemonSetSpec) {
	if s.UpdateStrategy.Type == "" {
		s.UpdateStrategy.Type = appsv1.RollingUpdateDaemonSetStrategyType
	}
	if s.UpdateStrategy.Type == appsv1.RollingUpdateDaemonSetStrategyType {
		if s.UpdateStrategy.RollingUpdate == nil {
			s.UpdateStrategy.RollingUpdate = &appsv1.RollingUpdateDaemonSet{}
		}
		if s.UpdateStrategy.RollingUpdate.MaxUnavailable == nil {
			s.UpdateStrategy.RollingUpdate.MaxUnavailable = ptrOf(intstr.FromInt32(1))
		}
		if s.UpdateStrategy.RollingUpdate.MaxSurge == nil {
			s.UpdateStrategy.RollingUpdate.MaxSurge = ptrOf(intstr.FromInt32(0))
		}
	}
	if s.RevisionHistoryLimit == nil {
		s.RevisionHistoryLimit = ptrOf[int32](10)
	}
	defaultPodSpec(&s.Template.Spec, true)
}

func defaultJobSpec(s *batchv1.JobSpec) {
	if s.Completions == nil && s.Parallelism == nil {
		s.Completions = ptrOf[int32](1)
	}
	if s.Parallelism == nil {
		s.Parallelism = ptrOf[int32](1)
	}
	if s.BackoffLimit == nil {
		s.BackoffLimit = ptrOf[int32](6)
	}
	if s.CompletionMode == nil {
		s.CompletionMode = ptrOf(batchv1.NonIndexedCompletion)
	}
	defaultPodSpec(&s.Template.Spec, false)
}

func defaultCronJob(s *batchv1.CronJobSpec) {
	if s.ConcurrencyPolicy == "" {
		s.ConcurrencyPolicy = batchv1.AllowConcurrent
	}
	if s.Suspend == nil {
		s.Suspend = ptrOf(false)
	}
	if s.SuccessfulJobsHistoryLimit == nil {
		s.SuccessfulJobsHistoryLimit = ptrOf[int32](3)
	}
	if s.FailedJobsHistoryLimit == nil {
		s.FailedJobsHistoryLimit = ptrOf[int32](1)
	}
	defaultJobSpec(&s.JobTemplate.Spec)
}

// defaultPodSpec applies the PodSpec defaults; restartPolicy only when restart is set (every
// template but a Job's).
func defaultPodSpec(s *corev1.PodSpec, restart bool) {
	if restart && s.RestartPolicy == "" {
		s.RestartPolicy = corev1.RestartPolicyAlways
	}
	if s.TerminationGracePeriodSeconds == nil {
		s.TerminationGracePeriodSeconds = ptrOf[int64](corev1.DefaultTerminationGracePeriodSeconds)
	}
	if s.DNSPolicy == "" {
		s.DNSPolicy = corev1.DNSClusterFirst
	}
	for i := range s.InitContainers {
		defaultContainer(&s.InitContainers[i])
	}
	for i := range s.Containers {
		defaultContainer(&s.Containers[i])
	}
	for i := range s.Volumes {
		defaultVolume(&s.Volumes[i])
	}
}

func defaultContainer(c *corev1.Container) {
	if c.ImagePullPolicy == "" {
		if imageTag(c.Image) == "latest" {
			c.ImagePullPolicy = corev1.PullAlways
		} else {
			c.ImagePullPolicy = corev1.PullIfNotPresent
		}
	}
	if c.TerminationMessagePath == "" {
		c.TerminationMessagePath = corev1.TerminationMessagePathDefault
	}
	if c.TerminationMessagePolicy == "" {
		c.TerminationMessagePolicy = corev1.TerminationMessageReadFile
	}
	for i := range c.Ports {
		if c.Ports[i].Protocol == "" {
			c.Ports[i].Protocol = corev1.ProtocolTCP
		}
	}
	for i := range c.Env {
		if vf := c.Env[i].ValueFrom; vf != nil && vf.FieldRef != nil && vf.FieldRef.APIVersion == "" {
			vf.FieldRef.APIVersion = "v1"
		}
	}
	// Kubernetes does this in SetDefaults_Pod, when a pod is created.
	if len(c.Resources.Limits) > 0 {
		if c.Resources.Requests == nil {
			c.Resources.Requests = make(corev1.ResourceList, len(c.Resources.Limits))
		}
		for name, limit := range c.Resources.Limits {
			if _, ok := c.Resources.Requests[name]; !ok {
				c.Resources.Requests[name] = limit.DeepCopy()
			}
		}
	}
	defaultProbe(c.LivenessProbe)
	defaultProbe(c.ReadinessProbe)
	defaultProbe(c.StartupProbe)
	if c.Lifecycle != nil && c.Lifecycle.PreStop != nil {
		defaultHTTPGet(c.Lifecycle.PreStop.HTTPGet)
	}
}

// imageTag returns an image reference's tag as Kubernetes' parsers.ParseImageName does: "latest"
// when there is neither tag nor digest, "" when there is only a digest.
func imageTag(image string) string {
	if strings.Contains(image, "@") {
		name, _, _ := strings.Cut(image, "@")
		if i := strings.LastIndexByte(name, ':'); i > strings.LastIndexByte(name, '/') {
			return name[i+1:]
		}
		return ""
	}
	if i := strings.LastIndexByte(image, ':'); i > strings.LastIndexByte(image, '/') {
		return image[i+1:]
	}
	return "latest"
}

func defaultProbe(p *corev1.Probe) {
	if p == nil {
		return
	}
	if p.TimeoutSeconds == 0 {
		p.TimeoutSeconds = 1
	}
	if p.PeriodSeconds == 0 {
		p.PeriodSeconds = 10
	}
	if p.SuccessThreshold == 0 {
		p.SuccessThreshold = 1
	}
	if p.FailureThreshold == 0 {
		p.FailureThreshold = 3
	}
	defaultHTTPGet(p.HTTPGet)
}

func defaultHTTPGet(h *corev1.HTTPGetAction) {
	if h == nil {
		return
	}
	if h.Path == "" {
		h.Path = "/"
	}
	if h.Scheme == "" {
		h.Scheme = corev1.URISchemeHTTP
	}
}

func defaultVolume(v *corev1.Volume) {
	src := &v.VolumeSource
	if *src == (corev1.VolumeSource{}) {
		src.EmptyDir = &corev1.EmptyDirVolumeSource{}
	}
	if src.ConfigMap != nil && src.ConfigMap.DefaultMode == nil {
		src.ConfigMap.DefaultMode = ptrOf(corev1.ConfigMapVolumeSourceDefaultMode)
	}
	if src.Secret != nil && src.Secret.DefaultMode == nil {
		src.Secret.DefaultMode = ptrOf(corev1.SecretVolumeSourceDefaultMode)
	}
	if src.DownwardAPI != nil {
		if src.DownwardAPI.DefaultMode == nil {
			src.DownwardAPI.DefaultMode = ptrOf(corev1.DownwardAPIVolumeSourceDefaultMode)
		}
		for i := range src.DownwardAPI.Items {
			if fr := src.DownwardAPI.Items[i].FieldRef; fr != nil && fr.APIVersion == "" {
				fr.APIVersion = "v1"
			}
		}
	}
}

func defaultService(s *corev1.ServiceSpec) {
	if s.Type == "" {
		s.Type = corev1.ServiceTypeClusterIP
	}
	if s.SessionAffinity == "" {
		s.SessionAffinity = corev1.ServiceAffinityNone
	}
	if s.SessionAffinity == corev1.ServiceAffinityClientIP {
		if s.SessionAffinityConfig == nil {
			s.SessionAffinityConfig = &corev1.SessionAffinityConfig{}
		}
		if s.SessionAffinityConfig.ClientIP == nil {
			s.SessionAffinityConfig.ClientIP = &corev1.ClientIPConfig{}
		}
		if s.SessionAffinityConfig.ClientIP.TimeoutSeconds == nil {
			s.SessionAffinityConfig.ClientIP.TimeoutSeconds = ptrOf(corev1.DefaultClientIPServiceAffinitySeconds)
		}
	}
	for i := range s.Ports {
		p := &s.Ports[i]
		if p.Protocol == "" {
			p.Protocol = corev1.ProtocolTCP
		}
		if p.TargetPort == intstr.FromInt32(0) || p.TargetPort == intstr.FromString("") {
			p.TargetPort = intstr.FromInt32(p.Port)
		}
	}
	if (s.Type == corev1.ServiceTypeNodePort || s.Type == corev1.ServiceTypeLoadBalancer) && s.ExternalTrafficPolicy == "" {
		s.ExternalTrafficPolicy = corev1.ServiceExternalTrafficPolicyCluster
	}
}

func defaultHPA(s *autoscalingv2.HorizontalPodAutoscalerSpec) {
	if s.MinReplicas == nil {
		s.MinReplicas = ptrOf[int32](1)
	}
	if len(s.Metrics) == 0 {
		s.Metrics = []autoscalingv2.MetricSpec{{
			Type: autoscalingv2.ResourceMetricSourceType,
			Resource: &autoscalingv2.ResourceMetricSource{
				Name: corev1.ResourceCPU,
				Target: autoscalingv2.MetricTarget{
					Type:               autoscalingv2.UtilizationMetricType,
					AverageUtilization: ptrOf[int32](80),
				},
			},
		}}
	}
	if b := s.Behavior; b != nil {
		b.ScaleUp = defaultScalingRules(b.ScaleUp, 0, []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15},
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		})
		b.ScaleDown = defaultScalingRules(b.ScaleDown, 300, []autoscalingv2.HPAScalingPolicy{
			{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15},
		})
	}
}

// defaultScalingRules mirrors GenerateHPAScaleUpRules/GenerateHPAScaleDownRules.
func defaultScalingRules(r *autoscalingv2.HPAScalingRules, window int32, policies []autoscalingv2.HPAScalingPolicy) *autoscalingv2.HPAScalingRules {
	if r == nil {
		r = &autoscalingv2.HPAScalingRules{}
	}
	if r.StabilizationWindowSeconds == nil {
		r.StabilizationWindowSeconds = ptrOf(window)
	}
	if r.SelectPolicy == nil {
		r.SelectPolicy = ptrOf(autoscalingv2.MaxChangePolicySelect)
	}
	if len(r.Policies) == 0 {
		r.Policies = policies
	}
	return r
}

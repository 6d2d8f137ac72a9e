package manifest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// decodeOne decodes a single-document manifest that must have no errors.
func decodeOne(t *testing.T, doc string) *Object {
	t.Helper()
	objs, errs := Decode("t.yaml", []byte(doc))
	if len(errs) > 0 {
		t.Fatalf("errors: %v", errs)
	}
	if len(objs) != 1 {
		t.Fatalf("%d objects", len(objs))
	}
	return objs[0]
}

// check reports a default that differs from Kubernetes'.
func checkDefault[T comparable](t *testing.T, what string, got, want T) {
	t.Helper()
	if got != want {
		t.Errorf("%s = %v, want %v", what, got, want)
	}
}

const defaultsPodTemplate = `
  selector:
    matchLabels: {app: a}
  template:
    metadata:
      labels: {app: a}
    spec:
      containers:
        - name: c
          image: nginx
          ports:
            - containerPort: 80
          resources:
            limits: {cpu: 500m, memory: 64Mi}
            requests: {memory: 32Mi}
          livenessProbe:
            httpGet: {port: 80}
          readinessProbe:
            exec: {command: ["true"]}
            periodSeconds: 3
          lifecycle:
            preStop:
              httpGet: {port: 80, path: /stop}
          env:
            - name: POD
              valueFrom:
                fieldRef: {fieldPath: metadata.name}
      initContainers:
        - name: init
          image: busybox:1.36
      volumes:
        - name: scratch
        - name: cfg
          configMap: {name: c}
        - name: sec
          secret: {secretName: s, defaultMode: 0400}
        - name: info
          downwardAPI:
            items: [{path: labels, fieldRef: {fieldPath: metadata.labels}}]
`

// checkPodSpec checks the PodSpec defaults shared by every workload; restart is the expected
// restartPolicy.
func checkPodSpec(t *testing.T, s *corev1.PodSpec, restart corev1.RestartPolicy) {
	t.Helper()
	checkDefault(t, "restartPolicy", s.RestartPolicy, restart)
	checkDefault(t, "terminationGracePeriodSeconds", *s.TerminationGracePeriodSeconds, 30)
	checkDefault(t, "dnsPolicy", s.DNSPolicy, corev1.DNSClusterFirst)
	c := s.Containers[0]
	checkDefault(t, "imagePullPolicy (untagged)", c.ImagePullPolicy, corev1.PullAlways)
	checkDefault(t, "initContainers imagePullPolicy (tagged)", s.InitContainers[0].ImagePullPolicy, corev1.PullIfNotPresent)
	checkDefault(t, "terminationMessagePath", c.TerminationMessagePath, "/dev/termination-log")
	checkDefault(t, "terminationMessagePolicy", c.TerminationMessagePolicy, corev1.TerminationMessageReadFile)
	checkDefault(t, "port protocol", c.Ports[0].Protocol, corev1.ProtocolTCP)
	checkDefault(t, "requests.cpu from limits", c.Resources.Requests.Cpu().String(), "500m")
	checkDefault(t, "requests.memory kept", c.Resources.Requests.Memory().String(), "32Mi")
	lp := c.LivenessProbe
	checkDefault(t, "probe timeoutSeconds", lp.TimeoutSeconds, 1)
	checkDefault(t, "probe periodSeconds", lp.PeriodSeconds, 10)
	checkDefault(t, "probe successThreshold", lp.SuccessThreshold, 1)
	checkDefault(t, "probe failureThreshold", lp.FailureThreshold, 3)
	checkDefault(t, "httpGet path", lp.HTTPGet.Path, "/")
	checkDefault(t, "httpGet scheme", lp.HTTPGet.Scheme, corev1.URISchemeHTTP)
	checkDefault(t, "written periodSeconds kept", c.ReadinessProbe.PeriodSeconds, 3)
	checkDefault(t, "preStop httpGet scheme", c.Lifecycle.PreStop.HTTPGet.Scheme, corev1.URISchemeHTTP)
	checkDefault(t, "preStop httpGet path kept", c.Lifecycle.PreStop.HTTPGet.Path, "/stop")
	checkDefault(t, "env fieldRef apiVersion", c.Env[0].ValueFrom.FieldRef.APIVersion, "v1")
	checkDefault(t, "volume without source is emptyDir", s.Volumes[0].EmptyDir != nil, true)
	checkDefault(t, "emptyDir medium", s.Volumes[0].EmptyDir.Medium, corev1.StorageMediumDefault)
	checkDefault(t, "configMap defaultMode", *s.Volumes[1].ConfigMap.DefaultMode, 0o644)
	checkDefault(t, "secret defaultMode kept", *s.Volumes[2].Secret.DefaultMode, 0o400)
	checkDefault(t, "downwardAPI defaultMode", *s.Volumes[3].DownwardAPI.DefaultMode, 0o644)
	checkDefault(t, "downwardAPI fieldRef apiVersion", s.Volumes[3].DownwardAPI.Items[0].FieldRef.APIVersion, "v1")
}

func TestDefaultsDeployment(t *testing.T) {
	o := decodeOne(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\nspec:"+defaultsPodTemplate)
	d := o.Obj.(*appsv1.Deployment)
	checkDefault(t, "namespace", d.Namespace, "default")
	checkDefault(t, "key namespace", o.Key.Namespace, "default")
	checkDefault(t, "replicas", *d.Spec.Replicas, 1)
	checkDefault(t, "strategy", d.Spec.Strategy.Type, appsv1.RollingUpdateDeploymentStrategyType)
	checkDefault(t, "maxSurge", *d.Spec.Strategy.RollingUpdate.MaxSurge, intstr.FromString("25%"))
	checkDefault(t, "maxUnavailable", *d.Spec.Strategy.RollingUpdate.MaxUnavailable, intstr.FromString("25%"))
	checkDefault(t, "revisionHistoryLimit", *d.Spec.RevisionHistoryLimit, 10)
	checkDefault(t, "progressDeadlineSeconds", *d.Spec.ProgressDeadlineSeconds, 600)
	checkPodSpec(t, &d.Spec.Template.Spec, corev1.RestartPolicyAlways)

	// Recreate gets no rollingUpdate; written values are kept.
	o = decodeOne(t, "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n  namespace: x\nspec:\n  replicas: 0\n  strategy: {type: Recreate}"+defaultsPodTemplate)
	d = o.Obj.(*appsv1.Deployment)
	checkDefault(t, "namespace kept", d.Namespace, "x")
	checkDefault(t, "replicas 0 kept", *d.Spec.Replicas, 0)
	checkDefault(t, "Recreate rollingUpdate", d.Spec.Strategy.RollingUpdate == nil, true)
}

func TestDefaultsStatefulSet(t *testing.T) {
	o := decodeOne(t, "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: s\nspec:\n  serviceName: s"+defaultsPodTemplate)
	s := o.Obj.(*appsv1.StatefulSet).Spec
	checkDefault(t, "replicas", *s.Replicas, 1)
	checkDefault(t, "podManagementPolicy", s.PodManagementPolicy, appsv1.OrderedReadyPodManagement)
	checkDefault(t, "updateStrategy", s.UpdateStrategy.Type, appsv1.RollingUpdateStatefulSetStrategyType)
	checkDefault(t, "partition", *s.UpdateStrategy.RollingUpdate.Partition, 0)
	checkDefault(t, "revisionHistoryLimit", *s.RevisionHistoryLimit, 10)
	checkDefault(t, "whenDeleted", s.PersistentVolumeClaimRetentionPolicy.WhenDeleted, appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
	checkDefault(t, "whenScaled", s.PersistentVolumeClaimRetentionPolicy.WhenScaled, appsv1.RetainPersistentVolumeClaimRetentionPolicyType)
	checkPodSpec(t, &s.Template.Spec, corev1.RestartPolicyAlways)
}

func TestDefaultsDaemonSet(t *testing.T) {
	o := decodeOne(t, "apiVersion: apps/v1\nkind: DaemonSet\nmetadata:\n  name: d\nspec:"+defaultsPodTemplate)
	s := o.Obj.(*appsv1.DaemonSet).Spec
	checkDefault(t, "updateStrategy", s.UpdateStrategy.Type, appsv1.RollingUpdateDaemonSetStrategyType)
	checkDefault(t, "maxUnavailable", *s.UpdateStrategy.RollingUpdate.MaxUnavailable, intstr.FromInt32(1))
	checkDefault(t, "maxSurge", *s.UpdateStrategy.RollingUpdate.MaxSurge, intstr.FromInt32(0))
	checkDefault(t, "revisionHistoryLimit", *s.RevisionHistoryLimit, 10)
	checkPodSpec(t, &s.Template.Spec, corev1.RestartPolicyAlways)
}

func TestDefaultsJob(t *testing.T) {
	o := decodeOne(t, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:"+jobPodTemplate())
	s := o.Obj.(*batchv1.Job).Spec
	checkDefault(t, "parallelism", *s.Parallelism, 1)
	checkDefault(t, "completions", *s.Completions, 1)
	checkDefault(t, "backoffLimit", *s.BackoffLimit, 6)
	checkDefault(t, "completionMode", *s.CompletionMode, batchv1.NonIndexedCompletion)
	// Left for validation to require.
	checkPodSpec(t, &s.Template.Spec, "")

	// With parallelism set, completions stays unset (a work queue).
	o = decodeOne(t, "apiVersion: batch/v1\nkind: Job\nmetadata:\n  name: j\nspec:\n  parallelism: 4"+jobPodTemplate())
	s = o.Obj.(*batchv1.Job).Spec
	checkDefault(t, "parallelism kept", *s.Parallelism, 4)
	checkDefault(t, "completions with parallelism", s.Completions == nil, true)
}

func TestDefaultsCronJob(t *testing.T) {
	tmpl := "\n  schedule: '@hourly'\n  jobTemplate:\n    spec:" + indentLines(jobPodTemplate(), "    ")
	o := decodeOne(t, "apiVersion: batch/v1\nkind: CronJob\nmetadata:\n  name: c\nspec:"+tmpl)
	s := o.Obj.(*batchv1.CronJob).Spec
	checkDefault(t, "concurrencyPolicy", s.ConcurrencyPolicy, batchv1.AllowConcurrent)
	checkDefault(t, "suspend", *s.Suspend, false)
	checkDefault(t, "successfulJobsHistoryLimit", *s.SuccessfulJobsHistoryLimit, 3)
	checkDefault(t, "failedJobsHistoryLimit", *s.FailedJobsHistoryLimit, 1)
	checkDefault(t, "jobTemplate backoffLimit", *s.JobTemplate.Spec.BackoffLimit, 6)
	checkPodSpec(t, &s.JobTemplate.Spec.Template.Spec, "")
}

func TestDefaultsPod(t *testing.T) {
	o := decodeOne(t, "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n    - name: c\n      image: app:latest\n    - name: d\n      image: reg.example:5000/app\n    - name: e\n      image: reg.example:5000/app:2@sha256:abc\n    - name: f\n      image: app@sha256:abc\n")
	p := o.Obj.(*corev1.Pod)
	checkDefault(t, "namespace", p.Namespace, "default")
	checkDefault(t, "restartPolicy", p.Spec.RestartPolicy, corev1.RestartPolicyAlways)
	for i, want := range []corev1.PullPolicy{corev1.PullAlways, corev1.PullAlways, corev1.PullIfNotPresent, corev1.PullIfNotPresent} {
		checkDefault(t, "imagePullPolicy of "+p.Spec.Containers[i].Image, p.Spec.Containers[i].ImagePullPolicy, want)
	}
}

func TestDefaultsService(t *testing.T) {
	o := decodeOne(t, "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  ports:\n    - port: 80\n    - port: 53\n      protocol: UDP\n      targetPort: dns\n")
	s := o.Obj.(*corev1.Service).Spec
	checkDefault(t, "type", s.Type, corev1.ServiceTypeClusterIP)
	checkDefault(t, "sessionAffinity", s.SessionAffinity, corev1.ServiceAffinityNone)
	checkDefault(t, "protocol", s.Ports[0].Protocol, corev1.ProtocolTCP)
	checkDefault(t, "targetPort = port", s.Ports[0].TargetPort, intstr.FromInt32(80))
	checkDefault(t, "protocol kept", s.Ports[1].Protocol, corev1.ProtocolUDP)
	checkDefault(t, "targetPort kept", s.Ports[1].TargetPort, intstr.FromString("dns"))
	checkDefault(t, "externalTrafficPolicy for ClusterIP", s.ExternalTrafficPolicy, "")
	checkDefault(t, "no affinity config", s.SessionAffinityConfig == nil, true)

	o = decodeOne(t, "apiVersion: v1\nkind: Service\nmetadata:\n  name: s\nspec:\n  type: NodePort\n  sessionAffinity: ClientIP\n  ports:\n    - port: 80\n")
	s = o.Obj.(*corev1.Service).Spec
	checkDefault(t, "externalTrafficPolicy for NodePort", s.ExternalTrafficPolicy, corev1.ServiceExternalTrafficPolicyCluster)
	checkDefault(t, "ClientIP timeout", *s.SessionAffinityConfig.ClientIP.TimeoutSeconds, 10800)
}

func TestDefaultsSecretAndConfigMap(t *testing.T) {
	o := decodeOne(t, "apiVersion: v1\nkind: Secret\nmetadata:\n  name: s\n")
	checkDefault(t, "secret type", o.Obj.(*corev1.Secret).Type, corev1.SecretTypeOpaque)
	checkDefault(t, "secret namespace", o.Obj.(*corev1.Secret).Namespace, "default")
	o = decodeOne(t, "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n")
	checkDefault(t, "configmap namespace", o.Obj.(*corev1.ConfigMap).Namespace, "default")
	o = decodeOne(t, "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: n\n")
	checkDefault(t, "namespace has no namespace", o.Obj.(*corev1.Namespace).Namespace, "")
	checkDefault(t, "namespace key", o.Key, Key{Kind: "Namespace", Name: "n"})
}

func TestDefaultsHPA(t *testing.T) {
	const head = "apiVersion: autoscaling/v2\nkind: HorizontalPodAutoscaler\nmetadata:\n  name: h\nspec:\n  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: d}\n  maxReplicas: 4\n"
	o := decodeOne(t, head)
	s := o.Obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec
	checkDefault(t, "minReplicas", *s.MinReplicas, 1)
	checkDefault(t, "default metric", s.Metrics[0].Resource.Name, corev1.ResourceCPU)
	checkDefault(t, "default utilization", *s.Metrics[0].Resource.Target.AverageUtilization, 80)
	checkDefault(t, "no behavior", s.Behavior == nil, true)

	o = decodeOne(t, head+"  metrics:\n    - type: Resource\n      resource: {name: memory, target: {type: AverageValue, averageValue: 1Gi}}\n  behavior:\n    scaleDown:\n      selectPolicy: Min\n")
	s = o.Obj.(*autoscalingv2.HorizontalPodAutoscaler).Spec
	checkDefault(t, "metric kept", s.Metrics[0].Resource.Name, corev1.ResourceMemory)
	checkDefault(t, "averageValue", s.Metrics[0].Resource.Target.AverageValue.Cmp(resource.MustParse("1Gi")), 0)
	up, down := s.Behavior.ScaleUp, s.Behavior.ScaleDown
	checkDefault(t, "scaleUp window", *up.StabilizationWindowSeconds, 0)
	checkDefault(t, "scaleUp policies", len(up.Policies), 2)
	checkDefault(t, "scaleUp pods policy", up.Policies[0], autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PodsScalingPolicy, Value: 4, PeriodSeconds: 15})
	checkDefault(t, "scaleUp selectPolicy", *up.SelectPolicy, autoscalingv2.MaxChangePolicySelect)
	checkDefault(t, "scaleDown window", *down.StabilizationWindowSeconds, 300)
	checkDefault(t, "scaleDown selectPolicy kept", *down.SelectPolicy, autoscalingv2.MinChangePolicySelect)
	checkDefault(t, "scaleDown policy", down.Policies[0], autoscalingv2.HPAScalingPolicy{Type: autoscalingv2.PercentScalingPolicy, Value: 100, PeriodSeconds: 15})
}

// jobPodTemplate is defaultsPodTemplate without the selector, which Jobs do not support.
func jobPodTemplate() string {
	return strings.Replace(defaultsPodTemplate, "\n  selector:\n    matchLabels: {app: a}", "", 1)
}

func indentLines(s, by string) string {
	out := []byte{}
	for i := 0; i < len(s); i++ {
		out = append(out, s[i])
		if s[i] == '\n' && i+1 < len(s) {
			out = append(out, by...)
		}
	}
	return string(out)
}

package manifest

import (
	"strings"
	"testing"
	"testing/fstest"
	_ "time/tzdata" // time zone checks must not depend on the test machine's zoneinfo

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestValidateWorkloads(t *testing.T) {
	deploy := func(f func(*appsv1.DeploymentSpec)) *Object {
		return fxDeployment("web", fxWith(func(d *appsv1.Deployment) { f(&d.Spec) }))
	}
	sts := func(f func(*appsv1.StatefulSetSpec)) []*Object {
		return []*Object{fxHeadlessService("db"), fxStatefulSet("db", fxWith(func(s *appsv1.StatefulSet) { f(&s.Spec) }))}
	}
	ds := func(f func(*appsv1.DaemonSetSpec)) *Object {
		return fxDaemonSet("agent", fxWith(func(d *appsv1.DaemonSet) { f(&d.Spec) }))
	}
	jb := func(f func(*batchv1.JobSpec)) *Object {
		return fxJob("migrate", fxWith(func(j *batchv1.Job) { f(&j.Spec) }))
	}
	cj := func(f func(*batchv1.CronJobSpec)) *Object {
		return fxCronJob("settle", fxWith(func(c *batchv1.CronJob) { f(&c.Spec) }))
	}
	pct := func(s string) *intstr.IntOrString { return fxPtr(intstr.FromString(s)) }
	num := func(n int32) *intstr.IntOrString { return fxPtr(intstr.FromInt32(n)) }

	fxRunCases(t, []fxCase{
		// selectors
		{name: "selector required", field: "spec.selector", msg: "is required",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Selector = nil })}},
		{name: "selector not empty", field: "spec.selector", msg: "must not be empty",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Selector = &metav1.LabelSelector{} })}},
		{name: "selector matches template", field: "spec.template.metadata.labels", msg: "do not match spec.selector (app=api)",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Selector.MatchLabels["app"] = "api" })}},
		{name: "selector expression operator", field: "spec.selector.matchExpressions[0].operator", msg: "unsupported operator",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) {
				s.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: "Is"}}
			})}},
		{name: "selector expression values", field: "spec.selector.matchExpressions[0].values", msg: "non-empty when operator is In",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) {
				s.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpIn}}
			})}},
		{name: "daemonset selector", field: "spec.template.metadata.labels", msg: "do not match",
			objs: []*Object{ds(func(s *appsv1.DaemonSetSpec) { s.Template.Labels = map[string]string{"app": "other"} })}},
		{name: "statefulset selector", field: "spec.selector", msg: "is required",
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.Selector = nil })},

		// deployment
		{name: "replicas", field: "spec.replicas", msg: "at least 0",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Replicas = fxPtr(int32(-1)) })}},
		{name: "strategy type", field: "spec.strategy.type", msg: "RollingUpdate or Recreate",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Strategy.Type = "BlueGreen" })}},
		{name: "recreate with rollingUpdate", field: "spec.strategy.rollingUpdate", msg: "Recreate",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Strategy.Type = appsv1.RecreateDeploymentStrategyType })}},
		{name: "maxSurge syntax", field: "spec.strategy.rollingUpdate.maxSurge", msg: "percentage",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Strategy.RollingUpdate.MaxSurge = pct("many") })}},
		{name: "maxUnavailable negative", field: "spec.strategy.rollingUpdate.maxUnavailable", msg: "at least 0",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Strategy.RollingUpdate.MaxUnavailable = num(-1) })}},
		{name: "maxUnavailable over 100%", field: "spec.strategy.rollingUpdate.maxUnavailable", msg: "100%",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.Strategy.RollingUpdate.MaxUnavailable = pct("150%") })}},
		{name: "surge and unavailable both zero", field: "spec.strategy.rollingUpdate.maxUnavailable", msg: "may not be 0 when maxSurge is 0",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) {
				s.Strategy.RollingUpdate.MaxSurge, s.Strategy.RollingUpdate.MaxUnavailable = pct("0%"), num(0)
			})}},
		{name: "minReadySeconds", field: "spec.minReadySeconds", msg: "at least 0",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.MinReadySeconds = -5 })}},
		{name: "progress deadline above minReady", field: "spec.progressDeadlineSeconds", msg: "greater than spec.minReadySeconds (600)",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.MinReadySeconds = 600 })}},
		{name: "revision history", field: "spec.revisionHistoryLimit", msg: "at least 0",
			objs: []*Object{deploy(func(s *appsv1.DeploymentSpec) { s.RevisionHistoryLimit = fxPtr(int32(-1)) })}},

		// statefulset
		{name: "serviceName required", field: "spec.serviceName", msg: "is required",
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.ServiceName = "" })},
		{name: "serviceName must exist", field: "spec.serviceName", msg: `Service "db-headless" not found`,
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.ServiceName = "db-headless" })},
		{name: "serviceName must be headless", field: "spec.serviceName", msg: "not headless",
			objs: []*Object{fxService("db", "db"), fxStatefulSet("db")}},
		{name: "podManagementPolicy", field: "spec.podManagementPolicy", msg: "OrderedReady or Parallel",
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.PodManagementPolicy = "Random" })},
		{name: "partition", field: "spec.updateStrategy.rollingUpdate.partition", msg: "at least 0",
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.UpdateStrategy.RollingUpdate.Partition = fxPtr(int32(-1)) })},
		{name: "statefulset update strategy", field: "spec.updateStrategy.type", msg: "RollingUpdate or OnDelete",
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.UpdateStrategy.Type = "Recreate" })},
		{name: "OnDelete with rollingUpdate", field: "spec.updateStrategy.rollingUpdate", msg: "OnDelete",
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.UpdateStrategy.Type = appsv1.OnDeleteStatefulSetStrategyType })},
		{name: "claim names unique", field: "spec.volumeClaimTemplates[1].metadata.name", msg: "duplicate claim name",
			objs: sts(func(s *appsv1.StatefulSetSpec) {
				s.VolumeClaimTemplates = append(s.VolumeClaimTemplates, fxClaimTemplate("data", "2Gi"))
			})},
		{name: "claim needs storage", field: "spec.volumeClaimTemplates[0].spec.resources.requests", msg: "storage request is required",
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.VolumeClaimTemplates[0] = fxClaimTemplate("data", "") })},
		{name: "claim storage class", field: "spec.volumeClaimTemplates[0].spec.storageClassName", msg: `storage class "fast-ssd" is not supported`,
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.VolumeClaimTemplates[0].Spec.StorageClassName = fxPtr("fast-ssd") })},
		{name: "claim storage positive", field: "spec.volumeClaimTemplates[0].spec.resources.requests.storage", msg: "greater than 0",
			objs: sts(func(s *appsv1.StatefulSetSpec) { s.VolumeClaimTemplates[0] = fxClaimTemplate("data", "0") })},
		{name: "mount of a claim template is fine, of anything else not", field: "spec.template.spec.containers[0].volumeMounts[1].name", msg: "or spec.volumeClaimTemplates",
			objs: sts(func(s *appsv1.StatefulSetSpec) {
				s.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}, {Name: "logs", MountPath: "/logs"}}
			})},

		// daemonset
		{name: "daemonset update strategy", field: "spec.updateStrategy.type", msg: "RollingUpdate or OnDelete",
			objs: []*Object{ds(func(s *appsv1.DaemonSetSpec) { s.UpdateStrategy.Type = "Recreate" })}},
		{name: "daemonset unavailable zero with default surge", field: "spec.updateStrategy.rollingUpdate.maxUnavailable", msg: "may not be 0",
			objs: []*Object{ds(func(s *appsv1.DaemonSetSpec) {
				s.UpdateStrategy.RollingUpdate.MaxUnavailable, s.UpdateStrategy.RollingUpdate.MaxSurge = num(0), nil
			})}},

		// job
		{name: "job restartPolicy required", field: "spec.template.spec.restartPolicy", msg: "is required for a Job's pods",
			objs: []*Object{jb(func(s *batchv1.JobSpec) { s.Template.Spec.RestartPolicy = corev1.RestartPolicyAlways })}},
		{name: "job restartPolicy Always written", field: "spec.template.spec.restartPolicy", msg: "Kubernetes rejects restartPolicy Always",
			objs: []*Object{fxJob("migrate",
				fxSpec(func(s *corev1.PodSpec) { s.RestartPolicy = corev1.RestartPolicyAlways }),
				fxAt("jobs.yaml", 1, map[string]int{"spec.template.spec.restartPolicy": 9}))}},
		{name: "job completions", field: "spec.completions", msg: "at least 0",
			objs: []*Object{jb(func(s *batchv1.JobSpec) { s.Completions = fxPtr(int32(-1)) })}},
		{name: "job parallelism", field: "spec.parallelism", msg: "at least 0",
			objs: []*Object{jb(func(s *batchv1.JobSpec) { s.Parallelism = fxPtr(int32(-1)) })}},
		{name: "job backoffLimit", field: "spec.backoffLimit", msg: "at least 0",
			objs: []*Object{jb(func(s *batchv1.JobSpec) { s.BackoffLimit = fxPtr(int32(-1)) })}},
		{name: "indexed needs completions", field: "spec.completions", msg: "completionMode is Indexed",
			objs: []*Object{jb(func(s *batchv1.JobSpec) { s.CompletionMode, s.Completions = fxPtr(batchv1.IndexedCompletion), nil })}},
		{name: "completion mode", field: "spec.completionMode", msg: "NonIndexed or Indexed",
			objs: []*Object{jb(func(s *batchv1.JobSpec) { s.CompletionMode = fxPtr(batchv1.CompletionMode("Ordered")) })}},

		// cronjob
		{name: "cron restartPolicy", field: "spec.jobTemplate.spec.template.spec.restartPolicy", msg: "is required for a Job's pods",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.JobTemplate.Spec.Template.Spec.RestartPolicy = "" })}},
		{name: "cron job spec", field: "spec.jobTemplate.spec.backoffLimit", msg: "at least 0",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.JobTemplate.Spec.BackoffLimit = fxPtr(int32(-1)) })}},
		{name: "schedule required", field: "spec.schedule", msg: "is required",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.Schedule = "" })}},
		{name: "schedule fields", field: "spec.schedule", msg: "invalid schedule",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.Schedule = "* * * *" })}},
		{name: "schedule seconds field", field: "spec.schedule", msg: "five fields",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.Schedule = "0 30 2 * * *" })}},
		{name: "schedule out of range", field: "spec.schedule", msg: "invalid schedule",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.Schedule = "61 * * * *" })}},
		{name: "schedule descriptor", field: "spec.schedule", msg: "invalid schedule",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.Schedule = "@fortnightly" })}},
		{name: "schedule TZ", field: "spec.schedule", msg: "set spec.timeZone: Europe/Berlin",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.Schedule = "TZ=Europe/Berlin 0 3 * * *" })}},
		{name: "schedule CRON_TZ", field: "spec.schedule", msg: "spec.timeZone: UTC",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.Schedule = "CRON_TZ=UTC @daily" })}},
		{name: "time zone unknown", field: "spec.timeZone", msg: `unknown time zone "Mars/Olympus"`,
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.TimeZone = fxPtr("Mars/Olympus") })}},
		{name: "time zone Local", field: "spec.timeZone", msg: "Local",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.TimeZone = fxPtr("Local") })}},
		{name: "time zone empty", field: "spec.timeZone", msg: "must not be empty",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.TimeZone = fxPtr("") })}},
		{name: "concurrency policy", field: "spec.concurrencyPolicy", msg: "Allow, Forbid or Replace",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.ConcurrencyPolicy = "Queue" })}},
		{name: "starting deadline", field: "spec.startingDeadlineSeconds", msg: "at least 0",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) { s.StartingDeadlineSeconds = fxPtr(int64(-10)) })}},
		{name: "job template labels", field: "spec.jobTemplate.spec.template.metadata.labels[app]", msg: "invalid value",
			objs: []*Object{cj(func(s *batchv1.CronJobSpec) {
				s.JobTemplate.Spec.Template.Labels = map[string]string{"app": "bad value"}
			})}},
	})
}

func TestValidateHPA(t *testing.T) {
	target := fxDeployment("web")
	h := func(f func(*autoscalingv2.HorizontalPodAutoscalerSpec)) []*Object {
		return []*Object{target, fxHPA("web", "web", fxWith(func(a *autoscalingv2.HorizontalPodAutoscaler) { f(&a.Spec) }))}
	}
	fxRunCases(t, []fxCase{
		{name: "target must exist", field: "spec.scaleTargetRef.name", msg: `Deployment "api" not found in namespace "default"`,
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) { s.ScaleTargetRef.Name = "api" })},
		{name: "target in same namespace", field: "spec.scaleTargetRef.name", msg: `not found in namespace "shop"`,
			objs: []*Object{target, fxNamespace("shop"), fxHPA("web", "web", fxInNS("shop"))}},
		{name: "target kind", field: "spec.scaleTargetRef.kind", msg: "not supported by shoal",
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) { s.ScaleTargetRef.Kind = "ReplicaSet" })},
		{name: "target kind must match", field: "spec.scaleTargetRef.name", msg: `StatefulSet "web" not found`,
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) { s.ScaleTargetRef.Kind = "StatefulSet" })},
		{name: "minReplicas", field: "spec.minReplicas", msg: "at least 1",
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) { s.MinReplicas = fxPtr(int32(0)) })},
		{name: "maxReplicas below min", field: "spec.maxReplicas", msg: "at least minReplicas (6)",
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) { s.MinReplicas = fxPtr(int32(6)) })},
		{name: "metric type", field: "spec.metrics[0].type", msg: "not supported by shoal",
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) {
				s.Metrics[0] = autoscalingv2.MetricSpec{Type: autoscalingv2.ExternalMetricSourceType}
			})},
		{name: "metric resource", field: "spec.metrics[0].resource.name", msg: "not supported by shoal",
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) {
				s.Metrics[0].Resource.Name = corev1.ResourceEphemeralStorage
			})},
		{name: "utilization required", field: "spec.metrics[0].resource.target.averageUtilization", msg: "is required",
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) {
				s.Metrics[0].Resource.Target.AverageUtilization = nil
			})},
		{name: "average value positive", field: "spec.metrics[0].resource.target.averageValue", msg: "greater than 0",
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) {
				s.Metrics[0].Resource.Target = autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: fxPtr(resource.MustParse("0"))}
			})},
		{name: "value target", field: "spec.metrics[0].resource.target.type", msg: "Utilization or AverageValue",
			objs: h(func(s *autoscalingv2.HorizontalPodAutoscalerSpec) {
				s.Metrics[0].Resource.Target.Type = autoscalingv2.ValueMetricType
			})},
	})
}

func TestValidateWorkloadsAccept(t *testing.T) {
	objs := []*Object{
		fxDeployment("web", fxWith(func(d *appsv1.Deployment) {
			d.Spec.Strategy.RollingUpdate.MaxSurge = fxPtr(intstr.FromInt32(0)) // surge 0 with unavailable 25%
			d.Spec.Selector.MatchExpressions = []metav1.LabelSelectorRequirement{{Key: "tier", Operator: metav1.LabelSelectorOpDoesNotExist}}
		})),
		fxDeployment("recreate", fxWith(func(d *appsv1.Deployment) {
			d.Spec.Strategy = appsv1.DeploymentStrategy{Type: appsv1.RecreateDeploymentStrategyType}
			d.Spec.Replicas = fxPtr(int32(0))
		})),
		fxHeadlessService("db"),
		fxStatefulSet("db", fxWith(func(s *appsv1.StatefulSet) {
			s.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
			s.Spec.PodManagementPolicy = appsv1.ParallelPodManagement
		})),
		fxHeadlessService("kv"),
		fxStatefulSet("kv", fxWith(func(s *appsv1.StatefulSet) {
			// A persistentVolumeClaim volume naming a claim template is the same volume.
			s.Spec.Template.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{
				PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data"}}}}
			s.Spec.Template.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
		})),
		fxDaemonSet("agent"),
		fxJob("migrate", fxWith(func(j *batchv1.Job) {
			j.Spec.Template.Spec.RestartPolicy = corev1.RestartPolicyNever
			j.Spec.CompletionMode = fxPtr(batchv1.IndexedCompletion)
			j.Spec.Completions = fxPtr(int32(5))
		})),
		fxCronJob("hourly", fxWith(func(c *batchv1.CronJob) { c.Spec.Schedule = "@hourly" })),
		fxCronJob("settle", fxWith(func(c *batchv1.CronJob) {
			c.Spec.Schedule = "*/15 9-17 * * MON-FRI"
			c.Spec.TimeZone = fxPtr("Europe/Amsterdam")
			c.Spec.ConcurrencyPolicy = batchv1.ForbidConcurrent
		})),
		fxHPA("web", "web"),
		fxHPA("db", "db", fxWith(func(a *autoscalingv2.HorizontalPodAutoscaler) {
			a.Spec.ScaleTargetRef.Kind = "StatefulSet"
			a.Spec.MinReplicas = nil
			a.Spec.MaxReplicas = 1
			a.Spec.Metrics[0].Resource = &autoscalingv2.ResourceMetricSource{Name: corev1.ResourceMemory,
				Target: autoscalingv2.MetricTarget{Type: autoscalingv2.AverageValueMetricType, AverageValue: fxPtr(resource.MustParse("256Mi"))}}
		})),
	}
	if errs := fxValidate(t, objs...); len(errs) > 0 {
		t.Fatalf("want no errors, got:\n%v", errs)
	}
}

// TestStatefulSetRetentionDelete: Delete is accepted for both fields (the reconciler applies
// it); any other value than Retain or Delete is still refused, naming the field.
func TestStatefulSetRetentionDelete(t *testing.T) {
	sts := func(policy string) string {
		return `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  persistentVolumeClaimRetentionPolicy: ` + policy + `
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: db:1}]
---
apiVersion: v1
kind: Service
metadata: {name: db}
spec: {clusterIP: None, selector: {app: db}, ports: [{port: 1}]}
`
	}
	if _, errs := Load(fstest.MapFS{"db.yaml": {Data: []byte(sts("{whenDeleted: Delete, whenScaled: Delete}"))}}, "."); len(errs) != 0 {
		t.Errorf("Delete refused: %v", errs)
	}
	_, errs := Load(fstest.MapFS{"db.yaml": {Data: []byte(sts("{whenScaled: Remove}"))}}, ".")
	if len(errs) != 1 || errs[0].Field != "spec.persistentVolumeClaimRetentionPolicy.whenScaled" || !strings.Contains(errs[0].Message, "use Retain or Delete") {
		t.Errorf("whenScaled: Remove: %v", errs)
	}
}

// TestStatefulSetClaimCollision: two StatefulSets whose claim templates make the same claim
// names in one namespace are refused, on the later one in key order, naming the other; in two
// namespaces they are fine.
func TestStatefulSetClaimCollision(t *testing.T) {
	sts := func(ns, name, template string) string {
		return `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec:
  serviceName: ` + name + `
  selector: {matchLabels: {app: ` + name + `}}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      containers: [{name: db, image: db:1, volumeMounts: [{name: ` + template + `, mountPath: /data}]}]
  volumeClaimTemplates:
  - metadata: {name: ` + template + `}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: {name: ` + name + `, namespace: ` + ns + `}
spec: {clusterIP: None, selector: {app: ` + name + `}, ports: [{port: 1}]}
---
`
	}
	ns := "apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n---\napiVersion: v1\nkind: Namespace\nmetadata: {name: shop2}\n---\n"
	_, errs := Load(fstest.MapFS{"db.yaml": {Data: []byte(ns + sts("shop", "x-web", "data") + sts("shop", "web", "data-x"))}}, ".")
	if len(errs) != 1 {
		t.Fatalf("colliding claims: %v", errs)
	}
	e := errs[0]
	if e.Object != (Key{Kind: "StatefulSet", Namespace: "shop", Name: "x-web"}) || e.Field != "spec.volumeClaimTemplates[0].metadata.name" ||
		!strings.Contains(e.Message, `template "data-x" of StatefulSet shop/web (db.yaml:`) || !strings.Contains(e.Message, "data-x-web-0") {
		t.Errorf("colliding claims: %v", e)
	}
	if _, errs := Load(fstest.MapFS{"db.yaml": {Data: []byte(ns + sts("shop", "x-web", "data") + sts("shop2", "web", "data-x"))}}, "."); len(errs) != 0 {
		t.Errorf("claims in two namespaces refused: %v", errs)
	}
}

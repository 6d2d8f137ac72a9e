package manifest

import (
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// Fixture builders for validation tests. Each builds a valid object in namespace "default",
// shaped as Decode leaves it (Kubernetes' defaults applied), which a test then breaks with mods.

// mod changes a fixture object.
type fxMod func(o *Object)

// with adapts a function on the typed object to a mod: fxWith(func(d *appsv1.Deployment) {...}).
func fxWith[T runtime.Object](f func(T)) fxMod {
	return func(o *Object) { f(o.Obj.(T)) }
}

// spec changes the pod spec of a Pod or any workload's template.
func fxSpec(f func(*corev1.PodSpec)) fxMod {
	return func(o *Object) {
		_, s := templateOfObject(o)
		f(s)
	}
}

// ctr changes the first container of the pod spec.
func fxCtr(f func(*corev1.Container)) fxMod {
	return fxSpec(func(s *corev1.PodSpec) { f(&s.Containers[0]) })
}

// inNS moves an object to namespace ns.
func fxInNS(ns string) fxMod {
	return func(o *Object) {
		o.Key.Namespace = ns
		o.Obj.(metav1.Object).SetNamespace(ns)
	}
}

// at sets where the object was written and where its fields were, for position assertions.
func fxAt(file string, line int, lines map[string]int) fxMod {
	return func(o *Object) {
		o.Source = Source{File: file, Line: line}
		o.lines = lines
	}
}

func fxPtr[T any](v T) *T { return &v }

func fxNewObject(kind string, obj runtime.Object, mods []fxMod) *Object {
	m := obj.(metav1.Object)
	ns := m.GetNamespace()
	if kind == vkNamespace {
		ns = ""
	}
	o := &Object{
		Key:    Key{Kind: kind, Namespace: ns, Name: m.GetName()},
		Source: Source{File: strings.ToLower(kind) + "s.yaml", Line: 1},
		Obj:    obj,
	}
	for _, f := range mods {
		f(o)
	}
	return o
}

func fxObjMeta(name string, lbls map[string]string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Name: name, Namespace: nsDefault, Labels: lbls}
}

func fxProbe(h corev1.ProbeHandler) *corev1.Probe {
	return &corev1.Probe{ProbeHandler: h, TimeoutSeconds: 1, PeriodSeconds: 10, SuccessThreshold: 1, FailureThreshold: 3}
}

// fixturePodSpec is a valid pod spec: one container "app" with a port named http.
func fxPodSpec(rp corev1.RestartPolicy) corev1.PodSpec {
	return corev1.PodSpec{
		RestartPolicy:                 rp,
		DNSPolicy:                     corev1.DNSClusterFirst,
		TerminationGracePeriodSeconds: fxPtr(int64(30)),
		Containers: []corev1.Container{{
			Name:            "app",
			Image:           "registry.example.com/app:1.0",
			ImagePullPolicy: corev1.PullIfNotPresent,
			Ports:           []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
			Resources: corev1.ResourceRequirements{
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Limits:   corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("128Mi")},
			},
			ReadinessProbe: fxProbe(corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: "/ready", Port: intstr.FromString("http"), Scheme: corev1.URISchemeHTTP}}),
		}},
	}
}

func fxTemplate(app string, rp corev1.RestartPolicy) corev1.PodTemplateSpec {
	return corev1.PodTemplateSpec{
		ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": app}},
		Spec:       fxPodSpec(rp),
	}
}

func fxSelectorFor(app string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
}

func fxNamespace(name string, mods ...fxMod) *Object {
	return fxNewObject(vkNamespace, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: name}}, mods)
}

func fxPod(name string, mods ...fxMod) *Object {
	return fxNewObject("Pod", &corev1.Pod{
		ObjectMeta: fxObjMeta(name, map[string]string{"app": name}),
		Spec:       fxPodSpec(corev1.RestartPolicyAlways),
	}, mods)
}

func fxDeployment(name string, mods ...fxMod) *Object {
	return fxNewObject(vkDeployment, &appsv1.Deployment{
		ObjectMeta: fxObjMeta(name, nil),
		Spec: appsv1.DeploymentSpec{
			Replicas: fxPtr(int32(2)),
			Selector: fxSelectorFor(name),
			Template: fxTemplate(name, corev1.RestartPolicyAlways),
			Strategy: appsv1.DeploymentStrategy{
				Type: appsv1.RollingUpdateDeploymentStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDeployment{
					MaxSurge: fxPtr(intstr.FromString("25%")), MaxUnavailable: fxPtr(intstr.FromString("25%")),
				},
			},
			RevisionHistoryLimit:    fxPtr(int32(10)),
			ProgressDeadlineSeconds: fxPtr(int32(600)),
		},
	}, mods)
}

// statefulSet is governed by fxHeadlessService(name); add both to a Set.
func fxStatefulSet(name string, mods ...fxMod) *Object {
	return fxNewObject(vkStatefulSet, &appsv1.StatefulSet{
		ObjectMeta: fxObjMeta(name, nil),
		Spec: appsv1.StatefulSetSpec{
			Replicas:            fxPtr(int32(1)),
			Selector:            fxSelectorFor(name),
			Template:            fxTemplate(name, corev1.RestartPolicyAlways),
			ServiceName:         name,
			PodManagementPolicy: appsv1.OrderedReadyPodManagement,
			UpdateStrategy: appsv1.StatefulSetUpdateStrategy{
				Type:          appsv1.RollingUpdateStatefulSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateStatefulSetStrategy{Partition: fxPtr(int32(0))},
			},
			RevisionHistoryLimit: fxPtr(int32(10)),
			VolumeClaimTemplates: []corev1.PersistentVolumeClaim{fxClaimTemplate("data", "1Gi")},
		},
	}, mods)
}

func fxClaimTemplate(name, size string) corev1.PersistentVolumeClaim {
	c := corev1.PersistentVolumeClaim{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Spec: corev1.PersistentVolumeClaimSpec{
			AccessModes: []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
		},
	}
	if size != "" {
		c.Spec.Resources.Requests = corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(size)}
	}
	return c
}

func fxDaemonSet(name string, mods ...fxMod) *Object {
	return fxNewObject("DaemonSet", &appsv1.DaemonSet{
		ObjectMeta: fxObjMeta(name, nil),
		Spec: appsv1.DaemonSetSpec{
			Selector: fxSelectorFor(name),
			Template: fxTemplate(name, corev1.RestartPolicyAlways),
			UpdateStrategy: appsv1.DaemonSetUpdateStrategy{
				Type: appsv1.RollingUpdateDaemonSetStrategyType,
				RollingUpdate: &appsv1.RollingUpdateDaemonSet{
					MaxUnavailable: fxPtr(intstr.FromInt32(1)), MaxSurge: fxPtr(intstr.FromInt32(0)),
				},
			},
			RevisionHistoryLimit: fxPtr(int32(10)),
		},
	}, mods)
}

func fxJobSpec() batchv1.JobSpec {
	t := fxTemplate("", corev1.RestartPolicyOnFailure)
	t.Labels = nil
	return batchv1.JobSpec{
		Parallelism:    fxPtr(int32(1)),
		Completions:    fxPtr(int32(1)),
		BackoffLimit:   fxPtr(int32(6)),
		CompletionMode: fxPtr(batchv1.NonIndexedCompletion),
		Template:       t,
	}
}

func fxJob(name string, mods ...fxMod) *Object {
	return fxNewObject("Job", &batchv1.Job{ObjectMeta: fxObjMeta(name, nil), Spec: fxJobSpec()}, mods)
}

func fxCronJob(name string, mods ...fxMod) *Object {
	return fxNewObject("CronJob", &batchv1.CronJob{
		ObjectMeta: fxObjMeta(name, nil),
		Spec: batchv1.CronJobSpec{
			Schedule:                   "30 2 * * *",
			ConcurrencyPolicy:          batchv1.AllowConcurrent,
			SuccessfulJobsHistoryLimit: fxPtr(int32(3)),
			FailedJobsHistoryLimit:     fxPtr(int32(1)),
			JobTemplate:                batchv1.JobTemplateSpec{Spec: fxJobSpec()},
		},
	}, mods)
}

// service selects app=<selector> on port 80 → http.
func fxService(name, selector string, mods ...fxMod) *Object {
	return fxNewObject(vkService, &corev1.Service{
		ObjectMeta: fxObjMeta(name, nil),
		Spec: corev1.ServiceSpec{
			Type:            corev1.ServiceTypeClusterIP,
			Selector:        map[string]string{"app": selector},
			SessionAffinity: corev1.ServiceAffinityNone,
			Ports: []corev1.ServicePort{{
				Name: "http", Port: 80, Protocol: corev1.ProtocolTCP, TargetPort: intstr.FromString("http"),
			}},
		},
	}, mods)
}

func fxHeadlessService(name string, mods ...fxMod) *Object {
	return fxService(name, name, append([]fxMod{fxWith(func(s *corev1.Service) { s.Spec.ClusterIP = corev1.ClusterIPNone })}, mods...)...)
}

func fxConfigMap(name string, data map[string]string, mods ...fxMod) *Object {
	return fxNewObject(vkConfigMap, &corev1.ConfigMap{ObjectMeta: fxObjMeta(name, nil), Data: data}, mods)
}

// secret builds an encrypted Secret as Decode leaves it: keys known through SecretInfo only.
func fxSecret(name string, typ corev1.SecretType, keys ...string) *Object {
	o := fxNewObject(vkSecret, &corev1.Secret{ObjectMeta: fxObjMeta(name, nil), Type: typ}, nil)
	o.Secret = &SecretInfo{Keys: append([]string(nil), keys...), Digests: map[string]string{}}
	sort.Strings(o.Secret.Keys)
	return o
}

func fxHPA(name, target string, mods ...fxMod) *Object {
	return fxNewObject("HorizontalPodAutoscaler", &autoscalingv2.HorizontalPodAutoscaler{
		ObjectMeta: fxObjMeta(name, nil),
		Spec: autoscalingv2.HorizontalPodAutoscalerSpec{
			ScaleTargetRef: autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: vkDeployment, Name: target},
			MinReplicas:    fxPtr(int32(1)),
			MaxReplicas:    5,
			Metrics: []autoscalingv2.MetricSpec{{
				Type: autoscalingv2.ResourceMetricSourceType,
				Resource: &autoscalingv2.ResourceMetricSource{
					Name:   corev1.ResourceCPU,
					Target: autoscalingv2.MetricTarget{Type: autoscalingv2.UtilizationMetricType, AverageUtilization: fxPtr(int32(80))},
				},
			}},
		},
	}, mods)
}

// fxValidate builds a Set and validates it, failing on a duplicate key (a broken test).
func fxValidate(t *testing.T, objs ...*Object) ErrorList {
	t.Helper()
	s, errs := NewSet(objs)
	if len(errs) > 0 {
		t.Fatalf("NewSet: %v", errs)
	}
	return Validate(s)
}

// fxCase is one validation rule: objects that break it once, and the error expected.
type fxCase struct {
	name  string
	objs  []*Object
	field string // the expected Error.Field
	msg   string // a fragment of the expected Error.Message
	// extra allows other errors besides the expected one (a rule that implies another).
	extra bool
}

func fxRunCases(t *testing.T, cases []fxCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			errs := fxValidate(t, c.objs...)
			found := false
			var others []string
			for _, e := range errs {
				if e.Field == c.field && strings.Contains(e.Message, c.msg) {
					found = true
					continue
				}
				others = append(others, e.Error())
			}
			if !found {
				t.Errorf("want an error at %s containing %q; got:\n%s", c.field, c.msg, errs.Error())
			}
			if len(others) > 0 && !c.extra {
				t.Errorf("unexpected other errors:\n%s", strings.Join(others, "\n"))
			}
		})
	}
}

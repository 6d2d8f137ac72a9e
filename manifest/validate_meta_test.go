package manifest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func TestValidateMeta(t *testing.T) {
	setLabels := func(l map[string]string) fxMod {
		return func(o *Object) { o.Obj.(metav1.Object).SetLabels(l) }
	}
	fxRunCases(t, []fxCase{
		{name: "name required", field: "metadata.name", msg: "is required",
			objs: []*Object{fxConfigMap("", nil)}},
		{name: "subdomain name", field: "metadata.name", msg: "DNS-1123 subdomain",
			objs: []*Object{fxConfigMap("Web_Config", nil)}},
		{name: "service name is a label", field: "metadata.name", msg: "DNS-1123 label",
			objs: []*Object{fxService("web.v1", "web")}},
		{name: "namespace name is a label", field: "metadata.name", msg: "DNS-1123 label",
			objs: []*Object{fxNamespace("shop.eu")}},
		{name: "statefulset name is a label", field: "metadata.name", msg: "hostname",
			objs: []*Object{fxStatefulSet("db.main", fxWith(func(s *appsv1.StatefulSet) { s.Spec.ServiceName = "db" })), fxHeadlessService("db")}},
		{name: "statefulset highest ordinal must fit", field: "metadata.name", msg: "highest ordinal",
			objs: []*Object{
				fxStatefulSet(strings.Repeat("d", 61), fxWith(func(s *appsv1.StatefulSet) {
					s.Spec.ServiceName = "db"
					s.Spec.Replicas = fxPtr(int32(11)) // "ddd…-10" is 64 characters
				})),
				fxHeadlessService("db"),
			}},
		{name: "cronjob name at most 52", field: "metadata.name", msg: "52",
			objs: []*Object{fxCronJob(strings.Repeat("c", 53))}},
		{name: "namespace must be a label", field: "metadata.namespace", msg: "DNS-1123 label",
			objs: []*Object{fxConfigMap("c", nil, fxInNS("Shop"))}},
		{name: "namespace must be defined", field: "metadata.namespace", msg: `add a Namespace object named "shop"`,
			objs: []*Object{fxConfigMap("c", nil, fxInNS("shop"))}},
		{name: "object in reserved namespace", field: "metadata.namespace", msg: "reserved",
			objs: []*Object{fxConfigMap("c", nil, fxInNS("kube-system"))}},
		{name: "reserved Namespace object", field: "metadata.name", msg: "reserved",
			objs: []*Object{fxNamespace("kube-public")}},
		{name: "label key", field: "metadata.labels[-bad]", msg: "invalid label key",
			objs: []*Object{fxConfigMap("c", nil, setLabels(map[string]string{"-bad": "x"}))}},
		{name: "label key prefix", field: "metadata.labels[Example.com/x]", msg: "prefix part",
			objs: []*Object{fxConfigMap("c", nil, setLabels(map[string]string{"Example.com/x": "x"}))}},
		{name: "label value", field: "metadata.labels[app]", msg: "invalid value",
			objs: []*Object{fxConfigMap("c", nil, setLabels(map[string]string{"app": "a b"}))}},
		{name: "template label value", field: "spec.template.metadata.labels[tier]", msg: "invalid value",
			objs: []*Object{fxDeployment("web", fxWith(func(d *appsv1.Deployment) { d.Spec.Template.Labels["tier"] = "-x" }))}},
		{name: "annotation key", field: "metadata.annotations[a b]", msg: "invalid annotation key",
			objs: []*Object{fxConfigMap("c", nil, func(o *Object) { o.Obj.(metav1.Object).SetAnnotations(map[string]string{"a b": "x"}) })}},
		{name: "annotations size", field: "metadata.annotations", msg: "256 KiB",
			objs: []*Object{fxConfigMap("c", nil, func(o *Object) {
				o.Obj.(metav1.Object).SetAnnotations(map[string]string{"big": strings.Repeat("x", 256*1024)})
			})}},
	})
}

func TestValidateMetaAccepts(t *testing.T) {
	objs := []*Object{
		fxConfigMap("web.config", nil),                             // dots are fine in a subdomain
		fxConfigMap("c", nil, fxInNS("default")),                   // default needs no Namespace object
		fxNamespace("shop"), fxConfigMap("c", nil, fxInNS("shop")), // a defined namespace
		fxStatefulSet(strings.Repeat("d", 61), fxWith(func(s *appsv1.StatefulSet) { // d…d-9: 63 characters
			s.Spec.ServiceName = "db"
			s.Spec.Replicas = fxPtr(int32(10))
		})),
		fxHeadlessService("db"),
		fxCronJob(strings.Repeat("c", 52)),
		fxService("web", "web", func(o *Object) {
			o.Obj.(metav1.Object).SetLabels(map[string]string{"app.kubernetes.io/name": "web", "empty": ""})
			o.Obj.(metav1.Object).SetAnnotations(map[string]string{"Example.com/Note": "any value at all"})
		}),
		fxDeployment("web"),
		fxPod("p"),
	}
	if errs := fxValidate(t, objs...); len(errs) > 0 {
		t.Fatalf("want no errors, got:\n%v", errs)
	}
}

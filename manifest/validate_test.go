package manifest

import (
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// TestValidateReportsEveryProblem breaks several objects in different ways at once: every
// problem comes back in one pass, sorted by file and line.
func TestValidateReportsEveryProblem(t *testing.T) {
	objs := []*Object{
		fxDeployment("web", fxInNS("shop"), fxWith(func(d *appsv1.Deployment) {
			d.Spec.Replicas = fxPtr(int32(-1))
			d.Spec.Template.Spec.Containers[0].Image = ""
			d.Spec.Template.Spec.Containers[0].Ports[0].ContainerPort = 0
		}), fxAt("web.yaml", 1, map[string]int{
			"metadata.namespace":               4,
			"spec.replicas":                    6,
			"spec.template.spec.containers[0]": 14,
			"spec.template.spec.containers[0].ports[0].containerPort": 18,
		})),
		fxService("web", "web", fxInNS("shop"), fxWith(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeLoadBalancer }),
			fxAt("web.yaml", 30, map[string]int{"spec.type": 35})),
		fxConfigMap("cfg", map[string]string{"bad key": "x"}, fxAt("cfg.yaml", 1, nil)),
		fxCronJob("nightly", fxWith(func(c *batchv1.CronJob) { c.Spec.Schedule = "every night" }), fxAt("cron.yaml", 1, nil)),
	}
	errs := fxValidate(t, objs...)
	want := []string{
		"cfg.yaml:1: ConfigMap default/cfg: data[bad key]: invalid key",
		"cron.yaml:1: CronJob default/nightly: spec.schedule: invalid schedule",
		"web.yaml:4: Deployment shop/web: metadata.namespace: namespace \"shop\" is not defined",
		"web.yaml:6: Deployment shop/web: spec.replicas: must be at least 0",
		"web.yaml:14: Deployment shop/web: spec.template.spec.containers[0].image: is required",
		"web.yaml:18: Deployment shop/web: spec.template.spec.containers[0].ports[0].containerPort: invalid port 0",
		"web.yaml:30: Service shop/web: metadata.namespace: namespace \"shop\" is not defined",
		"web.yaml:35: Service shop/web: spec.type: type LoadBalancer is not supported by shoal",
	}
	if len(errs) != len(want) {
		t.Fatalf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i, w := range want {
		if got := errs[i].Error(); !strings.HasPrefix(got, w) {
			t.Errorf("error %d:\n got %s\nwant %s…", i, got, w)
		}
	}
}

// TestValidatePositions checks that an error points at the line of its field, or of the
// nearest written parent when the field itself was defaulted.
func TestValidatePositions(t *testing.T) {
	lines := map[string]int{
		"spec":                                  5,
		"spec.template.spec.containers[0]":      20,
		"spec.template.spec.containers[0].name": 21,
	}
	d := fxDeployment("web", fxAt("apps/web.yaml", 1, lines), fxCtr(func(c *corev1.Container) {
		c.Name = "Web"                                           // written: its own line
		c.ImagePullPolicy = "Sometimes"                          // not written: the container's line
		c.ReadinessProbe.HTTPGet.Port = intstr.FromString("web") // would name a port: not written either
	}))
	errs := fxValidate(t, d)
	got := map[string]Source{}
	for _, e := range errs {
		got[e.Field] = e.Source
	}
	for field, want := range map[string]int{
		"spec.template.spec.containers[0].name":                        21,
		"spec.template.spec.containers[0].imagePullPolicy":             20,
		"spec.template.spec.containers[0].readinessProbe.httpGet.port": 20,
	} {
		src, ok := got[field]
		if !ok {
			t.Errorf("no error at %s; got %v", field, errs)
			continue
		}
		if src.File != "apps/web.yaml" || src.Line != want {
			t.Errorf("%s: at %s, want apps/web.yaml:%d", field, src, want)
		}
	}
}

// TestValidateNeverQuotesSecretValues breaks Secrets and their uses in every way validation
// knows, with values that would be recognisable in any message, and checks no message has one.
func TestValidateNeverQuotesSecretValues(t *testing.T) {
	values := []string{"hunter2-password-value", "BEGIN-PRIVATE-KEY-value", "eyJhdXRocyI6e30-value", "ENC[AES256_GCM,data:c2VjcmV0]"}
	// A Secret as Decode leaves it (keys through SecretInfo) and one built by hand with values
	// in the typed object, which validation must not read out either.
	encrypted := fxSecret("enc", corev1.SecretTypeTLS, "tls.crt", "bad key")
	encrypted.Obj.(*corev1.Secret).StringData = map[string]string{"tls.crt": values[3], "bad key": values[3]}
	plain := fxSecret("plain", "kubernetes.io/service-account-token")
	plain.Secret = nil
	plain.Obj.(*corev1.Secret).Data = map[string][]byte{"password": []byte(values[0]), "bad/key": []byte(values[1])}
	plain.Obj.(*corev1.Secret).StringData = map[string]string{"token": values[2]}
	docker := fxSecret("docker", corev1.SecretTypeDockerConfigJson)
	docker.Secret = nil
	docker.Obj.(*corev1.Secret).Data = map[string][]byte{"config.json": []byte(values[2])}
	user := fxPod("p", fxSpec(func(s *corev1.PodSpec) {
		s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "plain"}, {Name: "enc"}}
		s.Volumes = []corev1.Volume{{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{
			SecretName: "enc", Items: []corev1.KeyToPath{{Key: "tls.key", Path: "tls.key"}}}}}}
		s.Containers[0].Env = []corev1.EnvVar{
			{Name: "A", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "plain"}, Key: "passwd"}}},
			{Name: "B", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "docker"}, Key: ".dockerconfigjson"}}},
		}
	}))
	errs := fxValidate(t, encrypted, plain, docker, user)
	if len(errs) < 8 {
		t.Fatalf("expected the broken Secrets and references to be reported, got %d:\n%v", len(errs), errs)
	}
	for _, e := range errs {
		for _, val := range values {
			if strings.Contains(e.Error(), val) {
				t.Errorf("message quotes a secret value: %s", e)
			}
		}
	}
}

// TestValidateExampleShop validates a set shaped like examples/shop: it must be clean.
func TestValidateExampleShop(t *testing.T) {
	shop := fxInNS("shop")
	objs := []*Object{
		fxNamespace("shop"),
		secretIn(fxSecret("db-credentials", corev1.SecretTypeOpaque, "password"), "shop"),
		fxConfigMap("web-config", map[string]string{"DB_ADDR": "db-0.db.shop.svc.cluster.local:6379"}, shop),
		fxHeadlessService("db", shop, fxWith(func(s *corev1.Service) { s.Spec.Ports[0].TargetPort = intstr.FromString("kv") })),
		fxStatefulSet("db", shop, fxCtr(func(c *corev1.Container) {
			c.Ports[0].Name = "kv"
			c.ReadinessProbe = fxProbe(corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("kv")}})
			c.VolumeMounts = []corev1.VolumeMount{{Name: "data", MountPath: "/data"}}
			c.Env = []corev1.EnvVar{{Name: "KV_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
				LocalObjectReference: corev1.LocalObjectReference{Name: "db-credentials"}, Key: "password"}}}}
		})),
		fxDeployment("web", shop, fxCtr(func(c *corev1.Container) {
			c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}}
		})),
		fxService("web", "web", shop, fxWith(func(s *corev1.Service) { s.Spec.Type = corev1.ServiceTypeNodePort })),
		fxCronJob("settle", shop),
	}
	if errs := fxValidate(t, objs...); len(errs) > 0 {
		t.Fatalf("want no errors, got:\n%v", errs)
	}
}

// TestValidateWorkersAgree checks that splitting a pass across goroutines changes nothing: a
// large set with problems everywhere, including ClusterIP and node port claims that straddle
// the workers' shares, gives the same list on one worker and on four.
func TestValidateWorkersAgree(t *testing.T) {
	var objs []*Object
	for i := range 3000 {
		name := fmt.Sprintf("app-%04d", i)
		switch i % 3 {
		case 0:
			objs = append(objs, fxDeployment(name, fxWith(func(d *appsv1.Deployment) {
				if i%7 == 0 {
					d.Spec.Replicas = fxPtr(int32(-1))
				}
			})))
		case 1:
			objs = append(objs, fxService(name, fmt.Sprintf("app-%04d", i-1), fxWith(func(s *corev1.Service) {
				s.Spec.ClusterIP = fmt.Sprintf("10.96.%d.%d", i%5, i%11) // many repeats, far apart
				s.Spec.Type = corev1.ServiceTypeNodePort
				s.Spec.Ports[0].NodePort = int32(30000 + i%13)
				if i%10 == 0 {
					s.Spec.Ports[0].TargetPort = intstr.FromString("nope")
				}
			})))
		default:
			objs = append(objs, fxConfigMap(name, map[string]string{"k": "v"}, fxInNS(fmt.Sprintf("ns-%d", i%4))))
		}
	}
	s, errs := NewSet(objs)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	one, four := validate(s, 1), validate(s, 4)
	if len(one) == 0 {
		t.Fatal("expected problems in the set")
	}
	if one.Error() != four.Error() {
		t.Fatalf("1 worker and 4 workers disagree:\n%d errors vs %d", len(one), len(four))
	}
}

func TestValidateEmptySet(t *testing.T) {
	if errs := Validate(nil); len(errs) != 0 {
		t.Fatalf("nil set: %v", errs)
	}
	s, _ := NewSet(nil)
	if errs := Validate(s); len(errs) != 0 {
		t.Fatalf("empty set: %v", errs)
	}
}

// benchSet builds n objects shaped like a real repository: per namespace a Namespace, and per
// app a Deployment, Service (named targetPort), ConfigMap and Secret referenced by the pods.
func benchSet(b *testing.B, n int) *Set {
	var objs []*Object
	for i := 0; len(objs) < n; i++ {
		ns := fmt.Sprintf("team-%d", i/50)
		if i%50 == 0 {
			objs = append(objs, fxNamespace(ns))
		}
		app := fmt.Sprintf("app-%d", i)
		in := fxInNS(ns)
		objs = append(objs,
			fxConfigMap(app, map[string]string{"LOG_LEVEL": "info", "MODE": "prod"}, in),
			secretIn(fxSecret(app, corev1.SecretTypeOpaque, "password"), ns),
			fxDeployment(app, in, fxCtr(func(c *corev1.Container) {
				c.EnvFrom = []corev1.EnvFromSource{{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: app}}}}
				c.Env = []corev1.EnvVar{{Name: "PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
					LocalObjectReference: corev1.LocalObjectReference{Name: app}, Key: "password"}}}}
			})),
			fxService(app, app, in),
		)
	}
	s, errs := NewSet(objs)
	if len(errs) > 0 {
		b.Fatal(errs)
	}
	if errs := Validate(s); len(errs) > 0 {
		b.Fatalf("benchmark set is not valid:\n%v", errs[:min(len(errs), 5)])
	}
	return s
}

func secretIn(o *Object, ns string) *Object {
	fxInNS(ns)(o)
	return o
}

// BenchmarkValidate10k measures Validate alone on 10,000 objects; the goal for decode plus
// validate is one second on two cores, so this should take a small part of that.
func BenchmarkValidate10k(b *testing.B) {
	s := benchSet(b, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		Validate(s)
	}
}

func BenchmarkValidate10kOneWorker(b *testing.B) {
	s := benchSet(b, 10000)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		validate(s, 1)
	}
}

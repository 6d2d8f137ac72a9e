package reconciler

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
)

func decodeDeployment(t *testing.T, doc string) *appsv1.Deployment {
	t.Helper()
	objs, errs := manifest.Decode("d.yaml", []byte(doc))
	if err := errs.Err(); err != nil {
		t.Fatal(err)
	}
	return objs[0].Obj.(*appsv1.Deployment)
}

const hashBase = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      containers:
      - name: web
        image: web:v1
        env: [{name: A, value: "1"}]
        resources: {requests: {cpu: 100m}}
        volumeMounts: [{name: conf, mountPath: /etc/web}]
      volumes: [{name: conf, configMap: {name: web-conf}}]
`

func TestTemplateHash(t *testing.T) {
	base := decodeDeployment(t, hashBase)
	h := TemplateHash("shop", &base.Spec.Template, nil)

	same := map[string]string{
		// Labels in another order, defaults written out, a quantity spelled differently,
		// and Deployment fields outside the template (replicas, strategy) changed.
		"map order, defaults, quantities, outside the template": `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop, labels: {x: y}}
spec:
  replicas: 7
  strategy: {type: Recreate}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {tier: front, app: web}}
    spec:
      restartPolicy: Always
      dnsPolicy: ClusterFirst
      terminationGracePeriodSeconds: 30
      containers:
      - image: web:v1
        name: web
        imagePullPolicy: IfNotPresent
        terminationMessagePath: /dev/termination-log
        env: [{value: "1", name: A}]
        resources: {requests: {cpu: "0.1"}}
        volumeMounts: [{mountPath: /etc/web, name: conf}]
      volumes: [{name: conf, configMap: {name: web-conf, defaultMode: 420}}]
`,
	}
	for name, doc := range same {
		if got := TemplateHash("shop", &decodeDeployment(t, doc).Spec.Template, nil); got != h {
			t.Errorf("%s: hash %s, want the base's %s", name, got, h)
		}
	}

	differ := map[string]string{
		"image":      `image: web:v1`,
		"env value":  `env: [{name: A, value: "1"}]`,
		"label":      `tier: front`,
		"config ref": `configMap: {name: web-conf}`,
	}
	repl := map[string]string{
		"image":      `image: web:v2`,
		"env value":  `env: [{name: A, value: "2"}]`,
		"label":      `tier: back`,
		"config ref": `configMap: {name: other-conf}`,
	}
	seen := map[string]string{h: "base"}
	for name, from := range differ {
		doc := replaceOnce(t, hashBase, from, repl[name])
		got := TemplateHash("shop", &decodeDeployment(t, doc).Spec.Template, nil)
		if prev, dup := seen[got]; dup {
			t.Errorf("%s: hash %s equals %s's", name, got, prev)
		}
		seen[got] = name
	}

	// A pinned value: changing how templates hash rolls every workload of every cluster on
	// upgrade, so it must be a deliberate change of this line.
	if h != "mvjc6xnrsp" {
		t.Errorf("hash of the base template is %s; it changed", h)
	}
}

func TestTemplateHashConfig(t *testing.T) {
	d := decodeDeployment(t, hashBase)
	tmpl := &d.Spec.Template
	plain := TemplateHash("shop", tmpl, nil)
	conf := manifest.Key{Kind: "ConfigMap", Namespace: "shop", Name: "web-conf"}
	other := manifest.Key{Kind: "ConfigMap", Namespace: "shop", Name: "unrelated"}
	elsewhere := manifest.Key{Kind: "ConfigMap", Namespace: "other", Name: "web-conf"}

	if got := TemplateHash("shop", tmpl, map[manifest.Key]string{other: "a", elsewhere: "b"}); got != plain {
		t.Errorf("unreferenced config changed the hash: %s, want %s", got, plain)
	}
	a := TemplateHash("shop", tmpl, map[manifest.Key]string{conf: "content-1"})
	b := TemplateHash("shop", tmpl, map[manifest.Key]string{conf: "content-2"})
	again := TemplateHash("shop", tmpl, map[manifest.Key]string{conf: "content-1", other: "x"})
	if a == plain || a == b || a != again {
		t.Errorf("config folding: plain %s, content-1 %s, content-2 %s, content-1 again %s", plain, a, b, again)
	}
	if ConfigHash("shop", &tmpl.Spec, nil) != "" || ConfigHash("shop", &tmpl.Spec, map[manifest.Key]string{conf: "c"}) == "" {
		t.Error("ConfigHash: want empty without config, set with a referenced one")
	}
}

func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	i := strings.Index(s, old)
	if i < 0 {
		t.Fatalf("%q not in document", old)
	}
	return s[:i] + new + s[i+len(old):]
}

// TestCache: hashes through the cache are TemplateHash's, and a reconcile drops the entries
// of templates it did not see.
func TestCache(t *testing.T) {
	w := newWorld(t)
	w.commitYAML(hashBase)
	cache := &Cache{}
	in := w.input(w.store.Snapshot())
	in.Cache = cache
	in.ConfigHashes = map[manifest.Key]string{{Kind: "ConfigMap", Namespace: "shop", Name: "web-conf"}: "v1"}
	p1, err := Reconcile(in)
	if err != nil {
		t.Fatal(err)
	}
	d := w.objs.Objects()[0].Obj.(*appsv1.Deployment)
	if want := TemplateHash("shop", &d.Spec.Template, in.ConfigHashes); p1.Status[0].Revision != want || len(cache.json) != 1 {
		t.Fatalf("cached hash %s, want %s; %d entries", p1.Status[0].Revision, want, len(cache.json))
	}
	in.ConfigHashes = map[manifest.Key]string{{Kind: "ConfigMap", Namespace: "shop", Name: "web-conf"}: "v2"}
	p2, _ := Reconcile(in)
	if want := TemplateHash("shop", &d.Spec.Template, in.ConfigHashes); p2.Status[0].Revision != want || want == p1.Status[0].Revision {
		t.Fatalf("config change through the cache: %s, want %s", p2.Status[0].Revision, want)
	}
	w.commitYAML("apiVersion: v1\nkind: Namespace\nmetadata: {name: shop}\n")
	in.Objects = w.objs
	if _, err := Reconcile(in); err != nil || len(cache.json) != 0 {
		t.Fatalf("%v; %d entries left for a set without templates", err, len(cache.json))
	}
}

// TestConfigRolloutOptOut: a workload annotated shoal.dev/rollout-on-config-change: "false"
// (the annotation plan reads too) leaves its ConfigMaps' content out of its revision, so a
// config change does not roll it; without the annotation it does.
func TestConfigRolloutOptOut(t *testing.T) {
	conf := manifest.Key{Kind: "ConfigMap", Namespace: "shop", Name: "web-conf"}
	optedOut := replaceOnce(t, hashBase, "metadata: {name: web, namespace: shop}",
		"metadata: {name: web, namespace: shop, annotations: {"+manifest.AnnotationRolloutOnConfigChange+": \"false\"}}")
	for _, tc := range []struct {
		doc   string
		rolls bool
	}{{hashBase, true}, {optedOut, false}} {
		objs, errs := manifest.Decode("d.yaml", []byte(tc.doc))
		if err := errs.Err(); err != nil {
			t.Fatal(err)
		}
		o := objs[0]
		tmpl := &o.Obj.(*appsv1.Deployment).Spec.Template
		hash := func(content string) string {
			r := &run{in: Input{ConfigHashes: map[manifest.Key]string{conf: content}}}
			return r.newRevision(o, tmpl, "pod-template-hash").hash
		}
		if rolled := hash("content-1") != hash("content-2"); rolled != tc.rolls {
			t.Errorf("annotations %v: a config change rolls = %v, want %v", o.Meta().GetAnnotations(), rolled, tc.rolls)
		}
	}
}

// TestTemplateHashWithConfigHash: given the config hash a pod records, it
// is the template hash the controllers compute from the config contents.
func TestTemplateHashWithConfigHash(t *testing.T) {
	tpl := &corev1.PodTemplateSpec{Spec: corev1.PodSpec{
		Containers: []corev1.Container{{Name: "web", Image: "web:1", EnvFrom: []corev1.EnvFromSource{
			{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "web-config"}}}}}},
	}}
	config := map[manifest.Key]string{{Kind: "ConfigMap", Namespace: "shop", Name: "web-config"}: "h1"}
	for _, cfg := range []map[manifest.Key]string{nil, config} {
		want := TemplateHash("shop", tpl, cfg)
		if got := TemplateHashWithConfigHash(tpl, ConfigHash("shop", &tpl.Spec, cfg)); got != want {
			t.Errorf("config %v: %s, TemplateHash says %s", cfg, got, want)
		}
	}
}

package manifest_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/shoal-dev/shoal/manifest"
)

// diffObject wraps a typed object the way Decode would, keyed by its kind and metadata.
func diffObject(kind, file string, obj runtime.Object) *manifest.Object {
	m := obj.(metav1.Object)
	return &manifest.Object{
		Key:    manifest.Key{Kind: kind, Namespace: m.GetNamespace(), Name: m.GetName()},
		Source: manifest.Source{File: file, Line: 1},
		Obj:    obj,
	}
}

func diffSet(t *testing.T, objs ...*manifest.Object) *manifest.Set {
	t.Helper()
	s, errs := manifest.NewSet(objs)
	if len(errs) > 0 {
		t.Fatalf("NewSet: %v", errs)
	}
	return s
}

func diffDeployment(mut ...func(*appsv1.Deployment)) *manifest.Object {
	replicas := int32(3)
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web", Labels: map[string]string{"tier": "front"}},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"app": "web"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"app": "web"}},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:  "web",
						Image: "shop/web:1",
						Env:   []corev1.EnvVar{{Name: "A", Value: "1"}, {Name: "B", Value: "2"}},
						Ports: []corev1.ContainerPort{{Name: "http", ContainerPort: 8080, Protocol: corev1.ProtocolTCP}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "data", MountPath: "/data"},
							{Name: "data", MountPath: "/cache", SubPath: "cache"},
						},
						Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{
							corev1.ResourceCPU: resource.MustParse("1"),
						}},
					}},
					Volumes: []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}},
				},
			},
		},
	}
	for _, m := range mut {
		m(d)
	}
	return diffObject("Deployment", "apps/web.yaml", d)
}

func fieldPaths(fs []manifest.FieldChange) []string {
	out := make([]string, len(fs))
	for i, f := range fs {
		out[i] = f.Path
	}
	return out
}

func TestDiffEmptyAndNilSets(t *testing.T) {
	if got := manifest.Diff(nil, nil); len(got) != 0 {
		t.Fatalf("Diff(nil, nil) = %v, want none", got)
	}
	cm := diffObject("ConfigMap", "cm.yaml", &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cfg"}})
	ns := diffObject("Namespace", "ns.yaml", &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}})
	web := diffDeployment()

	added := manifest.Diff(nil, diffSet(t, web, ns, cm))
	var got []string
	for _, c := range added {
		if c.Op != manifest.Added || c.Base != nil || c.Head == nil || len(c.Fields) != 0 {
			t.Errorf("%s: got op %v base %v head %v fields %v, want a bare Added", c.Key, c.Op, c.Base, c.Head, c.Fields)
		}
		got = append(got, c.Key.String())
	}
	want := []string{"ConfigMap shop/cfg", "Deployment shop/web", "Namespace shop"}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Errorf("order = %v, want %v", got, want)
	}

	removed := manifest.Diff(diffSet(t, web), &manifest.Set{})
	if len(removed) != 1 || removed[0].Op != manifest.Removed || removed[0].Base != web || removed[0].Head != nil {
		t.Errorf("Diff(base, empty) = %+v, want one Removed", removed)
	}
}

func TestDiffIgnoresWhatDoesNotCount(t *testing.T) {
	base := diffDeployment()
	head := diffDeployment(func(d *appsv1.Deployment) {
		// Metadata other than labels and annotations, status and type meta are not the user's
		// intent; the file an object lives in is not either.
		d.ResourceVersion = "42"
		d.UID = "u-1"
		d.Generation = 7
		d.CreationTimestamp = metav1.Unix(1000, 0)
		d.Finalizers = []string{"x"}
		d.TypeMeta = metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}
		d.Status.Replicas = 3
		// Absent, empty list and empty object are the same.
		d.Spec.Template.Spec.Containers[0].Args = []string{}
		d.Spec.Template.Spec.NodeSelector = map[string]string{}
		d.Spec.Template.Spec.Tolerations = []corev1.Toleration{}
		d.Spec.Template.Spec.SecurityContext = &corev1.PodSecurityContext{}
		// A quantity written another way is the same quantity.
		d.Spec.Template.Spec.Containers[0].Resources.Limits[corev1.ResourceCPU] = resource.MustParse("1000m")
	})
	head.Source.File = "moved/web.yaml"
	if got := manifest.Diff(diffSet(t, base), diffSet(t, head)); len(got) != 0 {
		t.Fatalf("Diff = %+v, want no change", got)
	}
}

func TestDiffNamedLists(t *testing.T) {
	base := diffDeployment()
	head := diffDeployment(func(d *appsv1.Deployment) {
		c := &d.Spec.Template.Spec.Containers[0]
		c.Image = "shop/web:2"
		// Reordered env with one value changed: matched by name, the reorder reported once.
		c.Env = []corev1.EnvVar{{Name: "B", Value: "3"}, {Name: "A", Value: "1"}}
		// The two mounts share a volume name; they are told apart by mountPath.
		c.VolumeMounts[1].ReadOnly = true
		c.Args = []string{"--verbose"}
		// A sidecar inserted in front must not shift "web" to index 1.
		d.Spec.Template.Spec.Containers = append([]corev1.Container{{Name: "log", Image: "busybox"}}, *c)
		d.Labels["app.kubernetes.io/name"] = "web"
	})
	changes := manifest.Diff(diffSet(t, base), diffSet(t, head))
	if len(changes) != 1 || changes[0].Op != manifest.Changed {
		t.Fatalf("Diff = %+v, want one Changed", changes)
	}
	// Matched by name: inserting "log" in front does not shift "web", so there is no index
	// noise and no reorder of containers; the env reorder is reported once on the list.
	want := []manifest.FieldChange{
		{Path: "metadata.labels[app.kubernetes.io/name]", New: "web"},
		{Path: "spec.template.spec.containers[log]", New: `{"image":"busybox","name":"log"}`},
		{Path: "spec.template.spec.containers[web].args", New: `["--verbose"]`},
		{Path: "spec.template.spec.containers[web].env", Old: `["A","B"]`, New: `["B","A"]`},
		{Path: "spec.template.spec.containers[web].env[B].value", Old: "2", New: "3"},
		{Path: "spec.template.spec.containers[web].image", Old: "shop/web:1", New: "shop/web:2"},
		{Path: "spec.template.spec.containers[web].volumeMounts[/cache].readOnly", New: "true"},
	}
	if dumpFields(changes[0].Fields) != dumpFields(want) {
		t.Errorf("fields =\n%s\nwant\n%s", dumpFields(changes[0].Fields), dumpFields(want))
	}
}

func TestDiffIndexedListsSortNumerically(t *testing.T) {
	tol := func(n int) []corev1.Toleration {
		var out []corev1.Toleration
		for i := range n {
			out = append(out, corev1.Toleration{Key: fmt.Sprintf("k%d", i), Operator: corev1.TolerationOpExists})
		}
		return out
	}
	base := diffDeployment(func(d *appsv1.Deployment) { d.Spec.Template.Spec.Tolerations = tol(11) })
	head := diffDeployment(func(d *appsv1.Deployment) {
		d.Spec.Template.Spec.Tolerations = tol(12)
		d.Spec.Template.Spec.Tolerations[2].Key = "two"
		d.Spec.Template.Spec.Tolerations[10].Key = "ten"
	})
	changes := manifest.Diff(diffSet(t, base), diffSet(t, head))
	if len(changes) != 1 {
		t.Fatalf("Diff = %+v, want one change", changes)
	}
	got := strings.Join(fieldPaths(changes[0].Fields), " ")
	want := "spec.template.spec.tolerations[2].key spec.template.spec.tolerations[10].key spec.template.spec.tolerations[11]"
	if got != want {
		t.Errorf("paths = %s\nwant    %s", got, want)
	}
}

func TestDiffConfigMapDataKeys(t *testing.T) {
	cm := func(data map[string]string) *manifest.Object {
		return diffObject("ConfigMap", "cm.yaml", &corev1.ConfigMap{
			ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "cfg"},
			Data:       data,
		})
	}
	changes := manifest.Diff(
		diffSet(t, cm(map[string]string{"nginx.conf": "a", "mode": "x", "gone": "g"})),
		diffSet(t, cm(map[string]string{"nginx.conf": "b", "mode": "", "new": "n"})),
	)
	if len(changes) != 1 {
		t.Fatalf("Diff = %+v, want one change", changes)
	}
	want := []manifest.FieldChange{
		{Path: "data[gone]", Old: "g"},
		{Path: "data[mode]", Old: "x", New: `""`},
		{Path: "data[new]", New: "n"},
		{Path: "data[nginx.conf]", Old: "a", New: "b"},
	}
	if dumpFields(changes[0].Fields) != dumpFields(want) {
		t.Errorf("fields =\n%s\nwant\n%s", dumpFields(changes[0].Fields), dumpFields(want))
	}
}

// secretValues are the bytes that must never appear in a diff.
var secretValues = []string{"hunter2-plaintext", "ENC[AES256_GCM,data:c2VjcmV0Y2lwaGVy", "tls-private-key-bytes", "STRINGDATA-VALUE"}

func diffSecret(info *manifest.SecretInfo, data map[string][]byte, labels map[string]string) *manifest.Object {
	o := diffObject("Secret", "secret.yaml", &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "db", Labels: labels},
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
		StringData: map[string]string{"extra": secretValues[3]},
	})
	o.Secret = info
	return o
}

func TestDiffSecretsNeverLeakValues(t *testing.T) {
	base := diffSecret(&manifest.SecretInfo{
		Keys:    []string{"gone", "password", "same", "tls.key"},
		Digests: map[string]string{"gone": "d0", "password": "d1", "same": "d2", "tls.key": "d3"},
	}, map[string][]byte{"password": []byte(secretValues[0]), "tls.key": []byte(secretValues[2])}, nil)
	head := diffSecret(&manifest.SecretInfo{
		Keys:    []string{"new", "password", "same", "tls.key"},
		Digests: map[string]string{"new": "d4", "password": "d1-changed", "same": "d2", "tls.key": "d3-changed"},
	}, map[string][]byte{"password": []byte(secretValues[1]), "tls.key": []byte(secretValues[2] + "2")},
		map[string]string{"team": "db"})

	changes := manifest.Diff(diffSet(t, base), diffSet(t, head))
	if len(changes) != 1 {
		t.Fatalf("Diff = %+v, want one change", changes)
	}
	want := []manifest.FieldChange{
		{Path: "data[gone]", Old: manifest.SecretPlaceholder},
		{Path: "data[new]", New: manifest.SecretPlaceholder},
		{Path: "data[password]", Old: manifest.SecretPlaceholder, New: manifest.ChangedSecretPlaceholder},
		{Path: "data[tls.key]", Old: manifest.SecretPlaceholder, New: manifest.ChangedSecretPlaceholder},
		{Path: "metadata.labels.team", New: "db"},
	}
	if dumpFields(changes[0].Fields) != dumpFields(want) {
		t.Errorf("fields =\n%s\nwant\n%s", dumpFields(changes[0].Fields), dumpFields(want))
	}
	assertNoSecretBytes(t, changes[0].Fields)

	// Same digests but different bytes in Obj.Data: SecretInfo is the truth, and nothing from
	// Data is compared or shown.
	same := diffSecret(base.Secret, map[string][]byte{"password": []byte("other")}, nil)
	if got := manifest.Diff(diffSet(t, base), diffSet(t, same)); len(got) != 0 {
		t.Errorf("Diff with equal digests = %+v, want none", got)
	}
}

func TestDiffSecretWithoutInfoStillHidesValues(t *testing.T) {
	base := diffSecret(nil, map[string][]byte{"password": []byte(secretValues[0])}, nil)
	head := diffSecret(nil, map[string][]byte{"password": []byte(secretValues[1]), "tls.key": []byte(secretValues[2])}, nil)
	changes := manifest.Diff(diffSet(t, base), diffSet(t, head))
	if len(changes) != 1 {
		t.Fatalf("Diff = %+v, want one change", changes)
	}
	want := []manifest.FieldChange{
		{Path: "data[password]", Old: manifest.SecretPlaceholder, New: manifest.ChangedSecretPlaceholder},
		{Path: "data[tls.key]", New: manifest.SecretPlaceholder},
	}
	if dumpFields(changes[0].Fields) != dumpFields(want) {
		t.Errorf("fields =\n%s\nwant\n%s", dumpFields(changes[0].Fields), dumpFields(want))
	}
	assertNoSecretBytes(t, changes[0].Fields)
}

func assertNoSecretBytes(t *testing.T, fields []manifest.FieldChange) {
	t.Helper()
	js, err := json.Marshal(fields)
	if err != nil {
		t.Fatal(err)
	}
	dump := string(js) + fmt.Sprintf("%+v %#v", fields, fields)
	for _, v := range secretValues {
		for _, needle := range []string{v, strings.ToLower(v)} {
			if strings.Contains(dump, needle) {
				t.Errorf("secret value %q appears in the diff: %s", v, dump)
			}
		}
	}
	// base64 of a value is as good as the value.
	if strings.Contains(dump, "aHVudGVyMi1wbGFpbnRleHQ") {
		t.Errorf("base64 of a secret value appears in the diff: %s", dump)
	}
}

func TestOpText(t *testing.T) {
	for op, want := range map[manifest.Op]string{manifest.Added: "added", manifest.Removed: "removed", manifest.Changed: "changed"} {
		b, err := json.Marshal(op)
		if err != nil || string(b) != `"`+want+`"` {
			t.Errorf("json(%d) = %s, %v; want %q", op, b, err, want)
		}
	}
}

func dumpFields(fs []manifest.FieldChange) string {
	var b strings.Builder
	for _, f := range fs {
		fmt.Fprintf(&b, "  %s: %q → %q\n", f.Path, f.Old, f.New)
	}
	return b.String()
}

func TestDiffDefaultsWrittenOutAreNoChange(t *testing.T) {
	implicit := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1
          ports: [{containerPort: 8080}]
          resources: {limits: {cpu: "1"}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{port: 80}]
`
	explicit := `
apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: shop}
spec:
  replicas: 1
  revisionHistoryLimit: 10
  progressDeadlineSeconds: 600
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 25%, maxUnavailable: 25%}}
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      restartPolicy: Always
      terminationGracePeriodSeconds: 30
      containers:
        - name: web
          image: shop/web:1
          imagePullPolicy: IfNotPresent
          ports: [{containerPort: 8080, protocol: TCP}]
          resources: {limits: {cpu: 1000m}, requests: {cpu: "1"}}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  type: ClusterIP
  selector: {app: web}
  ports: [{port: 80, targetPort: 80, protocol: TCP}]
`
	decode := func(doc string) *manifest.Set {
		objs, errs := manifest.Decode("web.yaml", []byte(strings.TrimLeft(doc, "\n")))
		if len(errs) > 0 {
			t.Fatalf("Decode: %v", errs)
		}
		return diffSet(t, objs...)
	}
	if got := manifest.Diff(decode(implicit), decode(explicit)); len(got) != 0 {
		t.Errorf("writing defaults out is reported as a change: %+v", got)
	}
	// And a real change beside them is still seen.
	changed := strings.Replace(explicit, "replicas: 1", "replicas: 2", 1)
	got := manifest.Diff(decode(implicit), decode(changed))
	if len(got) != 1 || dumpFields(got[0].Fields) != dumpFields([]manifest.FieldChange{{Path: "spec.replicas", Old: "1", New: "2"}}) {
		t.Errorf("Diff = %+v, want only spec.replicas 1 → 2", got)
	}
}

package agent

import (
	"context"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/secrets"
)

// configDeploymentYAML is a Deployment whose pods use ConfigMap cm (envFrom) and Secret secret
// (a volume), either "" for none.
func configDeploymentYAML(name, cm, secret, extraAnnotations string) string {
	s := `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: default
  annotations: {` + extraAnnotations + `}
spec:
  replicas: 2
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
      containers:
        - name: app
          image: example.com/` + name + `:1
          resources:
            requests: {cpu: 100m, memory: 64Mi}
`
	if cm != "" {
		s += "          envFrom:\n            - configMapRef: {name: " + cm + "}\n"
	}
	if secret != "" {
		s += "          volumeMounts:\n            - {name: creds, mountPath: /creds}\n      volumes:\n        - name: creds\n          secret: {secretName: " + secret + "}\n"
	}
	return s
}

func TestConfigHashes(t *testing.T) {
	keyFile, recipient := ageKey(t)
	values := map[string]string{"password": testPassword, "user": testUser}
	changed := map[string]string{"password": testPassword + "-2", "user": testUser}
	web := configDeploymentYAML("web", "app", "db", "")
	base := map[string]string{
		"web.yaml":    web,
		"app.yaml":    configMapYAML("app", map[string]string{"mode": "blue"}),
		"unused.yaml": configMapYAML("unused", map[string]string{"x": "1"}),
		"db.yaml":     encryptedSecret(t, "db.yaml", "db", values, recipient),
	}
	with := func(name, content string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		out[name] = content
		return out
	}
	tree := mapTree(t, map[string]map[string]string{
		"c1": base,
		// The same values encrypted again: a new data key, new nonces, every digest new.
		"reencrypted":    with("db.yaml", encryptedSecret(t, "db.yaml", "db", values, recipient)),
		"secret-changed": with("db.yaml", encryptedSecret(t, "db.yaml", "db", changed, recipient)),
		"cm-changed":     with("app.yaml", configMapYAML("app", map[string]string{"mode": "green"})),
		"unused-changed": with("unused.yaml", configMapYAML("unused", map[string]string{"x": "2"})),
	})
	hashesAt := func(n *nodeValues, commit string) map[manifest.Key]string {
		t.Helper()
		_, set, err := n.tree(context.Background(), commit)
		if err != nil {
			t.Fatal(err)
		}
		h, skipped, err := n.configHashes(context.Background(), commit, set)
		if err != nil || len(skipped) > 0 {
			t.Fatalf("config hashes at %s: %v, skipped %v", commit, err, skipped)
		}
		return h
	}
	cmKey := manifest.Key{Kind: "ConfigMap", Namespace: "default", Name: "app"}
	secretKey := manifest.Key{Kind: "Secret", Namespace: "default", Name: "db"}

	leader := newTestValues(t, tree, keyFile)
	h1 := hashesAt(leader, "c1")
	if len(h1) != 2 || h1[cmKey] == "" || h1[secretKey] == "" {
		t.Fatalf("hashes %v: want the referenced ConfigMap and Secret only", h1)
	}
	for k, h := range h1 {
		if !strings.HasPrefix(h, "hmac-sha256:") {
			t.Errorf("%s: hash %q", k, h)
		}
		noLeak(t, "a hash", h)
	}
	if h1[cmKey] == leader.hasher.Sum("default", "app", secrets.Values{"mode": []byte("blue")}) {
		t.Error("a ConfigMap hashes like a Secret of the same name and contents")
	}

	// Another node, same cluster key: the same hashes, so a change of leader rolls nothing.
	other := newTestValues(t, tree, keyFile)
	if h := hashesAt(other, "c1"); h[cmKey] != h1[cmKey] || h[secretKey] != h1[secretKey] {
		t.Errorf("another node computes %v, the leader %v", h, h1)
	}
	// Another cluster key: other hashes.
	foreign, err := newNodeValues(tree, keyFile, []byte("another cluster key, 32 bytes..."))
	if err != nil {
		t.Fatal(err)
	}
	if h := hashesAt(foreign, "c1"); h[secretKey] == h1[secretKey] {
		t.Error("the hash does not depend on the cluster key")
	}

	if h := hashesAt(leader, "reencrypted"); h[secretKey] != h1[secretKey] {
		t.Error("re-encrypting unchanged values changed the Secret's hash")
	}
	if h := hashesAt(leader, "secret-changed"); h[secretKey] == h1[secretKey] || h[cmKey] != h1[cmKey] {
		t.Errorf("a changed Secret value: hashes %v, were %v", h, h1)
	}
	if h := hashesAt(leader, "cm-changed"); h[cmKey] == h1[cmKey] || h[secretKey] != h1[secretKey] {
		t.Errorf("a changed ConfigMap: hashes %v, were %v", h, h1)
	}
	if h := hashesAt(leader, "unused-changed"); h[cmKey] != h1[cmKey] || h[secretKey] != h1[secretKey] {
		t.Errorf("an unreferenced ConfigMap changed the hashes: %v, were %v", h, h1)
	}
	// Hashing keeps no plaintext.
	if c := leader.cachedCount(); c != 0 {
		t.Errorf("%d Secrets held decrypted after hashing", c)
	}

	// A node without the age key leaves the Secret out and says why; the ConfigMap is hashed.
	nokey := newTestValues(t, tree, "")
	_, set, _ := nokey.tree(context.Background(), "c1")
	h, skipped, err := nokey.configHashes(context.Background(), "c1", set)
	if err != nil || h[cmKey] != h1[cmKey] || h[secretKey] != "" || len(skipped) != 1 {
		t.Fatalf("without an age key: %v, skipped %v, %v", h, skipped, err)
	}
	if !strings.Contains(skipped[0].Error(), "no age key is configured") {
		t.Errorf("skipped: %v", skipped[0])
	}
}

// TestConfigRefsCoverReconciler checks that every ConfigMap and Secret the reconciler folds into
// a template hash is one configHashes computes: a reference missed here would never roll.
func TestConfigRefsCoverReconciler(t *testing.T) {
	_, recipient := ageKey(t)
	files := map[string]string{
		"web.yaml": configDeploymentYAML("web", "app", "db", ""),
		"all.yaml": workloadsYAML,
		"env.yaml": `apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      initContainers:
        - name: init
          image: example.com/init:1
          env:
            - name: A
              valueFrom: {configMapKeyRef: {name: init-cm, key: a}}
            - name: B
              valueFrom: {secretKeyRef: {name: init-secret, key: b}}
      containers:
        - name: main
          image: example.com/main:1
          envFrom:
            - secretRef: {name: env-secret}
`,
	}
	for _, cm := range []string{"app", "init-cm", "stray"} {
		files[cm+"-cm.yaml"] = configMapYAML(cm, map[string]string{"a": "1"})
	}
	for _, s := range []string{"db", "init-secret", "env-secret", "stray"} {
		files[s+"-secret.yaml"] = encryptedSecret(t, s+"-secret.yaml", s, map[string]string{"b": "2"}, recipient)
	}
	set := loadSet(t, files)
	refs := map[manifest.Key]bool{}
	for _, k := range workloadConfigRefs(set) {
		refs[k] = true
	}
	everything, ours := map[manifest.Key]string{}, map[manifest.Key]string{}
	for _, o := range set.Objects() {
		if o.Key.Kind == "ConfigMap" || o.Key.Kind == "Secret" {
			everything[o.Key] = o.Key.String()
			if refs[o.Key] {
				ours[o.Key] = o.Key.String()
			}
		}
	}
	for _, k := range []manifest.Key{
		{Kind: "ConfigMap", Namespace: "default", Name: "app"}, {Kind: "Secret", Namespace: "default", Name: "db"},
		{Kind: "ConfigMap", Namespace: "default", Name: "init-cm"}, {Kind: "Secret", Namespace: "default", Name: "init-secret"},
		{Kind: "Secret", Namespace: "default", Name: "env-secret"},
	} {
		if !refs[k] {
			t.Errorf("%s is referenced but not hashed", k)
		}
	}
	for k := range refs {
		if k.Name == "stray" {
			t.Errorf("%s is hashed but no template references it", k)
		}
	}
	for _, o := range set.Objects() {
		if !ownerKinds[o.Key.Kind] {
			continue
		}
		tmpl, err := podTemplate(o)
		if err != nil {
			t.Fatal(err)
		}
		if a, b := reconciler.ConfigHash(o.Key.Namespace, &tmpl.Spec, everything), reconciler.ConfigHash(o.Key.Namespace, &tmpl.Spec, ours); a != b {
			t.Errorf("%s: the reconciler reads a ConfigMap or Secret configHashes does not hash", o.Key)
		}
	}
}

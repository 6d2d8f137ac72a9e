package manifest

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
)

// wantDecodeErr is one expected error: where, which object, which field, and part of the message.
type wantDecodeErr struct {
	line  int
	key   string // Key.String(), "" for none
	field string
	msg   string
}

func (w wantDecodeErr) matches(e *Error) bool {
	key := ""
	if !e.Object.IsZero() {
		key = e.Object.String()
	}
	return e.Source.Line == w.line && key == w.key && e.Field == w.field && strings.Contains(e.Message, w.msg)
}

// TestDecodeBadFiles decodes each file of testdata/bad and expects exactly the errors listed,
// each with its line, object and field path, and the objects that still decode.
func TestDecodeBadFiles(t *testing.T) {
	tests := []struct {
		file string
		errs []wantDecodeErr
		objs []string
	}{
		{
			file: "syntax.yaml",
			errs: []wantDecodeErr{{11, "", "", "invalid YAML: did not find expected ',' or ']'"}},
			objs: []string{"ConfigMap default/before", "ConfigMap default/after"},
		},
		{
			file: "identity.yaml",
			errs: []wantDecodeErr{
				{2, "", "kind", `unknown kind "Ingres": shoal supports ConfigMap, CronJob, DaemonSet, Deployment`},
				{6, "Deployment shop/old", "apiVersion", `Deployment is apps/v1, not "extensions/v1beta1"`},
				{12, "", "kind", "missing kind"},
				{16, "ConfigMap default/versionless", "apiVersion", "missing apiVersion (ConfigMap is v1)"},
				{22, "", "metadata.name", "missing name: a ConfigMap needs metadata.name"},
				{26, "", "", "a document must be a mapping with apiVersion, kind and metadata, not a list"},
				{30, "", "kind", `unknown kind "service" (did you mean "Service"?)`},
			},
		},
		{
			file: "types.yaml",
			errs: []wantDecodeErr{
				{7, "Deployment shop/typed", "spec.replicas", "must be an integer, not a string"},
				{8, "Deployment shop/typed", "spec.paused", "must be true or false, not a string"},
				{16, "Deployment shop/typed", "spec.template.spec.containers[0].env[0].value", "must be a string (quote the value), not an integer"},
				{18, "Deployment shop/typed", "spec.template.spec.containers[0].ports[0].containerPort", "integer out of range"},
				{21, "Deployment shop/typed", "spec.template.spec.containers[0].resources.limits[cpu]", "must be a quantity"},
				{24, "Deployment shop/typed", "spec.template.spec.containers[0].readinessProbe.httpGet.port", "must be an integer or a string, not a number with a fraction"},
			},
			objs: []string{"Deployment shop/typed"},
		},
		{
			file: "unsupported.yaml",
			errs: []wantDecodeErr{
				{6, "Deployment shop/web", "metadata.generateName", "is not supported by shoal"},
				{8, "Deployment shop/web", "spec.replica", `unknown field (did you mean "replicas"?)`},
				{11, "Deployment shop/web", "spec.template.spec.hostNetwork", "is not supported by shoal"},
				{15, "Deployment shop/web", "spec.template.spec.containers[0].imagePullPolcy", `unknown field (did you mean "imagePullPolicy"?)`},
				{16, "Deployment shop/web", "spec.template.spec.containers[0].stdin", "is not supported by shoal"},
				{17, "Deployment shop/web", "status", "is not supported by shoal"},
			},
			objs: []string{"Deployment shop/web"},
		},
		{
			file: "dup.yaml",
			errs: []wantDecodeErr{
				{8, "ConfigMap shop/dup", "metadata.labels[app]", `duplicate key "app": already set at line 7`},
				{11, "ConfigMap shop/dup", "data", `duplicate key "data": already set at line 9`},
			},
			objs: []string{"ConfigMap shop/dup"},
		},
		{
			file: "plaintext-secret.yaml",
			errs: []wantDecodeErr{
				{7, "Secret shop/db", "data", "Secret shop/db holds plaintext values: encrypt it with sops using age recipients (data and stringData values must be ENC[...])"},
				{9, "Secret shop/db", "stringData", "Secret shop/db holds plaintext values"},
			},
			objs: []string{"Secret shop/db"},
		},
		{
			file: "half-encrypted-secret.yaml",
			errs: []wantDecodeErr{
				{8, "Secret shop/api", "stringData[leaked]", `the value of key "leaked" is not encrypted`},
			},
			objs: []string{"Secret shop/api"},
		},
		{
			file: "bad.json",
			errs: []wantDecodeErr{
				{6, "Service shop/api", "spec.ports[0].targetPortt", `unknown field (did you mean "targetPort"?)`},
				{10, "", "", "invalid JSON: unexpected EOF"},
			},
			objs: []string{"Service shop/api", "ConfigMap shop/ok"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			data, err := os.ReadFile(filepath.Join("testdata", "bad", tt.file))
			if err != nil {
				t.Fatal(err)
			}
			objs, errs := Decode(tt.file, data)
			checkDecodeErrors(t, tt.file, errs, tt.errs)
			var keys []string
			for _, o := range objs {
				keys = append(keys, o.Key.String())
			}
			if !slices.Equal(keys, tt.objs) {
				t.Errorf("objects = %q, want %q", keys, tt.objs)
			}
		})
	}
}

func checkDecodeErrors(t *testing.T, file string, got ErrorList, want []wantDecodeErr) {
	t.Helper()
	used := make([]bool, len(got))
	for _, w := range want {
		found := false
		for i, e := range got {
			if !used[i] && e.Source.File == file && w.matches(e) {
				used[i], found = true, true
				break
			}
		}
		if !found {
			t.Errorf("missing error %s:%d: %s: %s: %s", file, w.line, w.key, w.field, w.msg)
		}
	}
	for i, e := range got {
		if !used[i] {
			t.Errorf("unexpected error: %v (field %q)", e, e.Field)
		}
	}
}

// TestDecodeNeverEchoesSecretValues: no error about a Secret may contain one of its values,
// plaintext or ciphertext.
func TestDecodeNeverEchoesSecretValues(t *testing.T) {
	secrets := []string{"aHVudGVyMg==", "hunter2", "s3cr3t-t0ken", "AAAA", "hunter2-plaintext"}
	for _, file := range []string{"plaintext-secret.yaml", "half-encrypted-secret.yaml"} {
		data, err := os.ReadFile(filepath.Join("testdata", "bad", file))
		if err != nil {
			t.Fatal(err)
		}
		objs, errs := Decode(file, data)
		if len(errs) == 0 {
			t.Fatalf("%s: no errors", file)
		}
		text := errs.Error()
		for _, o := range objs {
			s := o.Obj.(*corev1.Secret)
			text += fmt.Sprintf("%v %v %+v", s.Data, s.StringData, o.Secret)
		}
		for _, v := range secrets {
			if strings.Contains(text, v) {
				t.Errorf("%s: a value leaked: %s", file, text)
			}
		}
	}
	// Type errors inside a Secret name the type, not the value.
	_, errs := Decode("s.yaml", []byte("apiVersion: v1\nkind: Secret\nmetadata:\n  name: x\nimmutable: topsecretvalue\ndata:\n  k: [topsecretvalue]\n"))
	if len(errs) == 0 || strings.Contains(errs.Error(), "topsecretvalue") {
		t.Errorf("errors = %v", errs)
	}
}

func TestDecodeSOPSSecret(t *testing.T) {
	data, err := os.ReadFile("testdata/good/shop/db-secret.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, errs := Decode("shop/db-secret.yaml", data)
	if len(errs) > 0 || len(objs) != 1 {
		t.Fatalf("objs %d, errs %v", len(objs), errs)
	}
	o := objs[0]
	info := o.Secret
	if info == nil {
		t.Fatal("no SecretInfo")
	}
	if want := []string{"password", "username"}; !slices.Equal(info.Keys, want) {
		t.Errorf("Keys = %q, want %q", info.Keys, want)
	}
	username := "ENC[AES256_GCM,data:hd8vQQ==,iv:Pb0i9l1bpzTEnSwFKNN0GvEJTH1ww9m8YflZ1TgsGZ4=,tag:RAvGRJ6mzNVfbtxJLxI6pw==,type:str]"
	sum := sha256.Sum256([]byte(username))
	if got := info.Digests["username"]; got != hex.EncodeToString(sum[:]) {
		t.Errorf("digest of username = %s", got)
	}
	if len(info.Digests) != 2 {
		t.Errorf("Digests = %v", info.Digests)
	}
	if info.SOPS["version"] != "3.9.0" || info.SOPS["encrypted_regex"] != "^(data|stringData)$" {
		t.Errorf("SOPS = %v", info.SOPS)
	}
	s := o.Obj.(*corev1.Secret)
	if v, ok := s.Data["username"]; !ok || v != nil {
		t.Errorf("Data = %v, want the key with no value", s.Data)
	}
	if v, ok := s.StringData["password"]; !ok || v != "" {
		t.Errorf("StringData = %v, want the key with no value", s.StringData)
	}
	if s.Type != corev1.SecretTypeOpaque {
		t.Errorf("type = %q", s.Type)
	}
	if o.Line("data[username]") != 8 || o.Line("stringData[password]") != 10 {
		t.Errorf("lines: %d %d", o.Line("data[username]"), o.Line("stringData[password]"))
	}
}

func TestDecodeLinesAndPaths(t *testing.T) {
	data, err := os.ReadFile("testdata/good/shop/web.yaml")
	if err != nil {
		t.Fatal(err)
	}
	objs, errs := Decode("shop/web.yaml", data)
	if len(errs) > 0 || len(objs) != 2 {
		t.Fatalf("objs %d, errs %v", len(objs), errs)
	}
	dep, svc := objs[0], objs[1]
	if dep.Source != (Source{File: "shop/web.yaml", Line: 1}) || svc.Source != (Source{File: "shop/web.yaml", Line: 48}) {
		t.Errorf("sources %v %v", dep.Source, svc.Source)
	}
	for path, line := range map[string]int{
		"metadata.labels[app.kubernetes.io/name]": 7,
		"spec.replicas":                                                          9,
		"spec.template.spec.containers":                                          18,
		"spec.template.spec.containers[0]":                                       19,
		"spec.template.spec.containers[0].image":                                 20,
		"spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.key":     29,
		"spec.template.spec.containers[0].resources.limits[memory]":              36,
		"spec.template.spec.containers[0].readinessProbe.httpGet.port":           39,
		"spec.template.spec.containers[0].readinessProbe.httpGet.path":           38, // defaulted: its parent's line
		"spec.template.spec.volumes[0].configMap.name":                           46,
		"spec.template.spec.containers[0].resources.requests[cpu]":               33, // defaulted from limits
		"spec.template.spec.containers[0].terminationMessagePath":                19,
		"spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.missing": 27,
	} {
		if got := dep.Line(path); got != line {
			t.Errorf("Line(%s) = %d, want %d", path, got, line)
		}
	}
	if !dep.Written("spec.replicas") || dep.Written("spec.strategy") || dep.Written("spec.template.spec.containers[0].imagePullPolicy") {
		t.Error("Written does not tell user fields from defaults")
	}
	if svc.Line("spec.ports[0].targetPort") != 59 {
		t.Errorf("service targetPort line %d", svc.Line("spec.ports[0].targetPort"))
	}
	d := dep.Obj.(*appsv1.Deployment)
	if *d.Spec.Replicas != 2 || d.Spec.Template.Spec.Containers[0].Image != "registry.example.com/shop/web:1.2.3" {
		t.Errorf("decoded %+v", d.Spec)
	}
}

// TestDecodeDocuments covers multi-document streams, comment-only and empty documents, JSON
// streams, anchors and merge keys.
func TestDecodeDocuments(t *testing.T) {
	tests := []struct {
		name, file, data string
		keys             []string
		lines            []int
	}{
		{"empty file", "a.yaml", "", nil, nil},
		{"comments only", "a.yaml", "# nothing\n---\n# still nothing\n---\n", nil, nil},
		{"null document", "a.yaml", "---\n~\n---\n", nil, nil},
		{"leading separator and end markers", "a.yaml", "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n...\n---\n# b\napiVersion: v1\nkind: Namespace\nmetadata: {name: b}\n",
			[]string{"Namespace a", "Namespace b"}, []int{2, 9}},
		{"document marker with content", "a.yaml", "--- {apiVersion: v1, kind: Namespace, metadata: {name: a}}\n--- {apiVersion: v1, kind: Namespace, metadata: {name: b}}\n",
			[]string{"Namespace a", "Namespace b"}, []int{1, 2}},
		{"json stream", "a.json", `{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"a"}}` + "\n\n" + `{"apiVersion":"v1","kind":"Namespace",` + "\n" + `"metadata":{"name":"b"}}`,
			[]string{"Namespace a", "Namespace b"}, []int{1, 3}},
		{"windows line endings", "a.yml", "apiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: a\r\n---\r\napiVersion: v1\r\nkind: ConfigMap\r\nmetadata:\r\n  name: b\r\n",
			[]string{"ConfigMap default/a", "ConfigMap default/b"}, []int{1, 6}},
		{"byte order mark", "a.yaml", "\xef\xbb\xbfapiVersion: v1\nkind: Namespace\nmetadata:\n  name: a\n", []string{"Namespace a"}, []int{1}},
		{"anchors and merge keys", "a.yaml", "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: &l {x: \"1\"}\n  annotations:\n    <<: *l\n    y: \"2\"\n",
			[]string{"ConfigMap default/a"}, []int{1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, errs := Decode(tt.file, []byte(tt.data))
			if len(errs) > 0 {
				t.Fatal(errs)
			}
			var keys []string
			var lines []int
			for _, o := range objs {
				keys = append(keys, o.Key.String())
				lines = append(lines, o.Source.Line)
			}
			if !slices.Equal(keys, tt.keys) || !slices.Equal(lines, tt.lines) {
				t.Errorf("got %q at %v, want %q at %v", keys, lines, tt.keys, tt.lines)
			}
		})
	}
	objs, _ := Decode("a.yaml", []byte(tests[len(tests)-1].data))
	cm := objs[0].Obj.(*corev1.ConfigMap)
	if cm.Annotations["x"] != "1" || cm.Annotations["y"] != "2" {
		t.Errorf("merge key not expanded: %v", cm.Annotations)
	}
}

// TestDecodeValues covers how scalars are read: YAML integer spellings, quantities, booleans.
func TestDecodeValues(t *testing.T) {
	doc := `apiVersion: v1
kind: Pod
metadata:
  name: p
spec:
  terminationGracePeriodSeconds: 0x10
  containers:
    - name: c
      image: x:1
      securityContext:
        privileged: yes
        runAsUser: 1_000
      resources:
        limits:
          cpu: 1
          memory: 1.5Gi
  volumes:
    - name: v
      configMap:
        name: c
        defaultMode: 0644
    - name: w
      secret:
        secretName: s
        defaultMode: 0o400
`
	objs, errs := Decode("p.yaml", []byte(doc))
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	p := objs[0].Obj.(*corev1.Pod)
	c := p.Spec.Containers[0]
	switch {
	case *p.Spec.TerminationGracePeriodSeconds != 16:
		t.Errorf("hex: %d", *p.Spec.TerminationGracePeriodSeconds)
	case *p.Spec.Volumes[0].ConfigMap.DefaultMode != 0o644 || *p.Spec.Volumes[1].Secret.DefaultMode != 0o400:
		t.Errorf("octal modes: %o %o", *p.Spec.Volumes[0].ConfigMap.DefaultMode, *p.Spec.Volumes[1].Secret.DefaultMode)
	case !*c.SecurityContext.Privileged || *c.SecurityContext.RunAsUser != 1000:
		t.Errorf("security context %+v", c.SecurityContext)
	case c.Resources.Limits.Cpu().MilliValue() != 1000 || c.Resources.Limits.Memory().Value() != 1536*1024*1024:
		t.Errorf("quantities %v", c.Resources.Limits)
	}
	// A quoted "yes" is a string, not a boolean.
	_, errs = Decode("p.yaml", []byte("apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: c\n    securityContext:\n      privileged: \"yes\"\n"))
	checkDecodeErrors(t, "p.yaml", errs, []wantDecodeErr{{9, "Pod default/p", "spec.containers[0].securityContext.privileged", "must be true or false, not a string"}})
}

// TestDecodeHostileInput: alias bombs and deep nesting end in an error, quickly.
func TestDecodeHostileInput(t *testing.T) {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: bomb\nspec:\n  nested:\n    a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n")
	for i := 1; i < 9; i++ {
		fmt.Fprintf(&b, "    a%d: &a%d [*a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d, *a%d]\n", i, i, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1, i-1)
	}
	start := time.Now()
	_, errs := Decode("bomb.yaml", []byte(b.String()))
	if time.Since(start) > 10*time.Second {
		t.Errorf("alias bomb took %v", time.Since(start))
	}
	if len(errs) == 0 {
		t.Fatal("no error for an alias bomb")
	}
	if !strings.Contains(errs.Error(), "too large") {
		t.Errorf("errors = %v", errs)
	}

	// yaml.v3 lets an alias refer to its own anchor, making the node tree a cycle.
	for _, doc := range []string{
		"apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\nspec: &s\n  x: *s\n",
		"apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: a\nspec:\n  template: &t\n    metadata:\n      labels: *t\n",
	} {
		if _, errs := Decode("cycle.yaml", []byte(doc)); len(errs) == 0 {
			t.Errorf("no error for %q", doc)
		}
	}
	// A mapping that merges itself adds nothing, and terminates.
	objs, errs := Decode("cycle.yaml", []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: &m\n  name: a\n  <<: *m\n"))
	if len(errs) > 0 || len(objs) != 1 {
		t.Errorf("self-merge: %v", errs)
	}
}

// FuzzDecode: Decode never panics; it returns objects or errors unless the input holds no
// document at all; every error names the file; every object has an identity.
func FuzzDecode(f *testing.F) {
	for _, dir := range []string{"testdata/good", "testdata/bad"} {
		_ = filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
			if err == nil && !d.IsDir() && isManifest(p) {
				if data, err := os.ReadFile(p); err == nil {
					f.Add(filepath.Base(p), data)
				}
			}
			return nil
		})
	}
	f.Fuzz(func(t *testing.T, name string, data []byte) {
		if !strings.HasSuffix(name, ".json") {
			name = "f.yaml"
		}
		objs, errs := Decode(name, data)
		if len(objs) == 0 && len(errs) == 0 && !noDocuments(name, data) {
			t.Fatalf("neither objects nor errors for %q", data)
		}
		for _, e := range errs {
			if e.Source.File != name || e.Message == "" {
				t.Fatalf("bad error %#v", e)
			}
		}
		for _, o := range objs {
			if o == nil || o.Obj == nil || o.Key.Kind == "" || o.Key.Name == "" {
				t.Fatalf("bad object %#v", o)
			}
		}
	})
}

// noDocuments reports whether data holds only empty (or null) documents, judged by the plain
// parsers rather than by Decode.
func noDocuments(name string, data []byte) bool {
	if strings.HasSuffix(name, ".json") {
		dec := json.NewDecoder(bytes.NewReader(data))
		var v any
		err := dec.Decode(&v)
		return err == io.EOF || (err == nil && v == nil && dec.Decode(&v) == io.EOF)
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var n yaml.Node
		err := dec.Decode(&n)
		if err == io.EOF {
			return true
		}
		if err != nil {
			return false
		}
		if len(n.Content) > 0 && !(n.Content[0].Kind == yaml.ScalarNode && n.Content[0].Tag == "!!null") {
			return false
		}
	}
}

// TestDecodeOneErrorPerUnsupportedSubtree: what is inside an unsupported or misspelt field is
// not reported again, and a sops block outside a Secret is an unknown field.
func TestDecodeOneErrorPerUnsupportedSubtree(t *testing.T) {
	doc := "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  ownerReferences:\n    - {bogus: 1, kind: x}\nstatus:\n  bogus: {deeper: 1}\nsops:\n  version: 3.9.0\ndata:\n  k: v\n"
	_, errs := Decode("c.yaml", []byte(doc))
	checkDecodeErrors(t, "c.yaml", errs, []wantDecodeErr{
		{5, "ConfigMap default/c", "metadata.ownerReferences", "is not supported by shoal"},
		{7, "ConfigMap default/c", "status", "unknown field"},
		{9, "ConfigMap default/c", "sops", "unknown field"},
	})
}

package manifest

import (
	"strings"
	"testing"
	"testing/fstest"
)

const plainSecret = `apiVersion: v1
kind: Secret
metadata:
  name: dev-db
data:
  password: c2hvYWwtZGV2LXBhc3N3b3Jk
stringData:
  user: dev-user-value
`

// A repository may allow plaintext Secrets under chosen paths; everywhere else they are refused,
// and in neither case does a value reach the object or a message.
func TestPlaintextSecretsOptIn(t *testing.T) {
	values := []string{"c2hvYWwtZGV2LXBhc3N3b3Jk", "shoal-dev-password", "dev-user-value"}
	fsys := fstest.MapFS{
		ConfigFile:            {Data: []byte("plaintextSecrets:\n  - dev/**\n")},
		"dev/secret.yaml":     {Data: []byte(plainSecret)},
		"prod/secret.yaml":    {Data: []byte(strings.Replace(plainSecret, "dev-db", "prod-db", 1))},
		"dev/bad-base64.yaml": {Data: []byte(strings.NewReplacer("dev-db", "bad", "c2hvYWwtZGV2LXBhc3N3b3Jk", "not*base64!").Replace(plainSecret))},
	}
	set, errs := Load(fsys, ".")
	for _, e := range errs {
		for _, v := range append(values, "not*base64!") {
			if strings.Contains(e.Error(), v) {
				t.Errorf("an error quotes a value: %v", e)
			}
		}
	}
	var files []string
	for _, e := range errs {
		files = append(files, e.Source.File)
	}
	if strings.Join(files, " ") != "dev/bad-base64.yaml prod/secret.yaml prod/secret.yaml" {
		t.Fatalf("want one error in dev/bad-base64.yaml and two (data, stringData) in prod/secret.yaml, got:\n%v", errs)
	}
	if !strings.Contains(errs[0].Message, `key "password" is not base64`) {
		t.Errorf("bad base64: %v", errs[0])
	}
	if !strings.Contains(errs[1].Message, "holds plaintext values") || !strings.Contains(errs[1].Message, ConfigFile) {
		t.Errorf("refusal should say how to encrypt or opt in: %v", errs[1])
	}
	dev := set.Get(Key{Kind: "Secret", Namespace: "default", Name: "dev-db"})
	if dev == nil || dev.Secret == nil {
		t.Fatal("the allowed plaintext Secret was not loaded")
	}
	if got := strings.Join(dev.Secret.Keys, ","); got != "password,user" || len(dev.Secret.Digests) != 2 {
		t.Errorf("keys %q digests %v", got, dev.Secret.Digests)
	}
	if s := dev.Obj.(interface{ String() string }).String(); containsAny(s, values) {
		t.Errorf("a value reached the typed object: %s", s)
	}
}

func TestRepoConfigIsStrict(t *testing.T) {
	for name, content := range map[string]string{
		"unknown field":    "plaintextSecret:\n  - dev/**\n",
		"negated pattern":  "plaintextSecrets:\n  - '!dev/**'\n",
		"not yaml mapping": "- dev/**\n",
	} {
		_, errs := Load(fstest.MapFS{ConfigFile: {Data: []byte(content)}}, ".")
		if len(errs) != 1 || errs[0].Source.File != ConfigFile {
			t.Errorf("%s: want one error in %s, got %v", name, ConfigFile, errs)
		}
	}
}

func containsAny(s string, subs []string) bool {
	for _, v := range subs {
		if strings.Contains(s, v) {
			return true
		}
	}
	return false
}

func TestRepoConfigGoneNodes(t *testing.T) {
	set, errs := Load(fstest.MapFS{ConfigFile: {Data: []byte("goneNodes: [node7, node3]\n")}}, ".")
	if len(errs) != 0 || strings.Join(set.GoneNodes(), ",") != "node3,node7" {
		t.Errorf("goneNodes: %v %v", set.GoneNodes(), errs)
	}
	if set, errs := Load(fstest.MapFS{}, "."); len(errs) != 0 || set.GoneNodes() != nil {
		t.Errorf("no config: %v %v", set.GoneNodes(), errs)
	}
	for name, content := range map[string]string{
		"not a name":   "goneNodes: [Node_1]\n",
		"listed twice": "goneNodes: [n1, n1]\n",
		"not a list":   "goneNodes: n1\n",
	} {
		_, errs := Load(fstest.MapFS{ConfigFile: {Data: []byte(content)}}, ".")
		if len(errs) != 1 || errs[0].Source.File != ConfigFile {
			t.Errorf("%s: want one error in %s, got %v", name, ConfigFile, errs)
		}
	}
}

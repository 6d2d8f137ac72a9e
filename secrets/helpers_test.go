package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The test keys: A and B are the recipients of the vectors, wrong is a recipient of none. They
// are test-only keys (see testdata/README.md).
const (
	keyA     = "testdata/keys/test-a.agekey"
	keyB     = "testdata/keys/test-b.agekey"
	keyWrong = "testdata/keys/test-wrong.agekey"
)

func keyring(t *testing.T, paths ...string) *Keyring {
	t.Helper()
	kr, err := LoadKeyring(paths...)
	if err != nil {
		t.Fatal(err)
	}
	return kr
}

func publicKey(t *testing.T, path string) string {
	t.Helper()
	return keyring(t, path).Recipients()[0]
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// documents decodes a YAML stream into plain values, numbers rendered as text so that sops'
// float 1000 (printed "1000") and shoal's !!float 1000 compare equal.
func documents(t *testing.T, b []byte) []any {
	t.Helper()
	dec := yaml.NewDecoder(bytes.NewReader(b))
	var out []any
	for {
		var v any
		if err := dec.Decode(&v); err != nil {
			if err.Error() != "EOF" {
				t.Fatalf("decode: %v\n%s", err, b)
			}
			return out
		}
		out = append(out, normalize(v))
	}
}

func normalize(v any) any {
	switch v := v.(type) {
	case map[string]any:
		for k, x := range v {
			v[k] = normalize(x)
		}
		return v
	case []any:
		for i, x := range v {
			v[i] = normalize(x)
		}
		return v
	case int, float64:
		return fmt.Sprint(v)
	}
	return v
}

func sameDocuments(t *testing.T, got, want []byte) bool {
	t.Helper()
	return reflect.DeepEqual(documents(t, got), documents(t, want))
}

// plaintextValues are every value of the plaintext test files (and the example's), for the scans
// that fail a test when one appears in an error, a message or an encrypted file.
var plaintextValues = []string{
	"s3cr3t-token", "line one", "binary-password", "YmluYXJ5LXBhc3N3b3Jk", "sk-test-12345",
	"c2stdGVzdC0xMjM0NQ==", "from-string-data", "postgres://db:5432/shop", "mac-only-token",
	"suffix-password", "first-value", "second-value", "json-token", "shoal-demo-password", "token-beside-an-empty-one", "pw-short1",
}

// noPlaintext fails the test if s holds any plaintext value.
func noPlaintext(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range plaintextValues {
		if strings.Contains(s, v) {
			t.Errorf("%s contains the plaintext value %q:\n%s", what, v, s)
		}
	}
}

// mustFail checks that err is of the kind and names the file and every fragment, and that it
// holds no plaintext.
func mustFail(t *testing.T, err error, kind error, file string, fragments ...string) {
	t.Helper()
	if err == nil {
		t.Fatalf("no error, want %v", kind)
	}
	if !errors.Is(err, kind) {
		t.Errorf("error %q is not %v", err, kind)
	}
	msg := err.Error()
	if file != "" && !strings.Contains(msg, file) {
		t.Errorf("error %q does not name the file %s", msg, file)
	}
	for _, f := range fragments {
		if !strings.Contains(msg, f) {
			t.Errorf("error %q does not say %q", msg, f)
		}
	}
	noPlaintext(t, "error", msg)
}

func writeTemp(t *testing.T, name string, data []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name)
	if err := os.WriteFile(p, data, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

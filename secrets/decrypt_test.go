package secrets

import (
	"bytes"
	"strings"
	"testing"
)

// The vectors were made by the real sops (testdata/make-vectors.sh); decrypted/ holds what sops
// itself decrypted each to. shoal must verify every MAC and agree on every value.
var sopsVectors = []string{
	"sops-types.yaml",    // default rules, str/int/float/bool, nesting, a list, empty and null
	"sops-secret.yaml",   // encrypted_regex, data and stringData, two recipients
	"sops-mac-only.yaml", // mac_only_encrypted
	"sops-suffix.yaml",   // encrypted_suffix
	"sops-multi.yaml",    // two documents, one sops block
	"sops-empty.yaml",    // an empty value, left "" by sops
	"sops-secret.json",   // JSON
}

func TestDecryptSopsVectors(t *testing.T) {
	kr := keyring(t, keyA)
	for _, name := range sopsVectors {
		t.Run(name, func(t *testing.T) {
			p, err := Decrypt(name, readFile(t, "testdata/"+name), kr)
			if err != nil {
				t.Fatal(err)
			}
			got, err := p.YAML()
			if err != nil {
				t.Fatal(err)
			}
			want := readFile(t, "testdata/decrypted/"+name)
			if !sameDocuments(t, got, want) {
				t.Errorf("shoal decrypts to\n%s\nsops decrypted to\n%s", got, want)
			}
		})
	}
}

func TestDecryptExample(t *testing.T) {
	p, err := Decrypt("db-credentials.yaml", readFile(t, "../examples/shop/secrets/db-credentials.yaml"), keyring(t, "../examples/keys/demo.agekey"))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Secret("shop", "db-credentials")
	if err != nil {
		t.Fatal(err)
	}
	if len(v) != 1 || string(v["password"]) != "shoal-demo-password" {
		t.Errorf("values: keys %v, password %q", v.Keys(), v["password"])
	}
}

func TestSecretValuesMergeStringDataOverData(t *testing.T) {
	p, err := Decrypt("sops-secret.yaml", readFile(t, "testdata/sops-secret.yaml"), keyring(t, keyA))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Secret("shop", "app")
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"password":    "binary-password",  // data, base64-decoded
		"api-key":     "from-string-data", // stringData wins over data
		"username":    "admin",
		"config.json": "{\"url\": \"postgres://db:5432/shop\", \"pool\": 5}\n",
	}
	if len(v) != len(want) {
		t.Errorf("keys %v, want %d", v.Keys(), len(want))
	}
	for k, w := range want {
		if string(v[k]) != w {
			t.Errorf("%s = %q, want %q", k, v[k], w)
		}
	}
	if s := (v.String() + " " + p.String()); strings.Contains(s, "admin") || strings.Contains(s, "binary-password") {
		t.Errorf("String() shows values: %s", s)
	}
	_, err = p.Secret("shop", "other")
	mustFail(t, err, ErrInvalid, "sops-secret.yaml", "no Secret shop/other")
}

func TestSecretInSecondDocumentAndDefaultNamespace(t *testing.T) {
	p, err := Decrypt("sops-multi.yaml", readFile(t, "testdata/sops-multi.yaml"), keyring(t, keyA))
	if err != nil {
		t.Fatal(err)
	}
	v, err := p.Secret("", "second")
	if err != nil {
		t.Fatal(err)
	}
	if string(v["two"]) != "second-value" || len(v) != 1 {
		t.Errorf("second: %v", v.Keys())
	}
}

func TestDecryptWithEitherRecipientAndSeveralIdentities(t *testing.T) {
	data := readFile(t, "testdata/sops-secret.yaml")
	for _, keys := range [][]string{{keyB}, {keyWrong, keyB}, {keyWrong, keyA}} {
		if _, err := Decrypt("f", data, keyring(t, keys...)); err != nil {
			t.Errorf("keys %v: %v", keys, err)
		}
	}
	// One file holding several identities, as a node mid-rotation has.
	both := append(append(readFile(t, keyWrong), '\n'), readFile(t, keyB)...)
	kr := keyring(t, writeTemp(t, "both.agekey", both))
	if kr.Len() != 2 {
		t.Fatalf("keyring holds %d identities, want 2", kr.Len())
	}
	if _, err := Decrypt("f", data, kr); err != nil {
		t.Error(err)
	}
}

func TestDecryptWrongKey(t *testing.T) {
	_, err := Decrypt("secrets/app.yaml", readFile(t, "testdata/sops-secret.yaml"), keyring(t, keyWrong))
	mustFail(t, err, ErrNoIdentity, "secrets/app.yaml",
		"no age identity of this node can decrypt", publicKey(t, keyA), publicKey(t, keyB), publicKey(t, keyWrong))
	_, err = Decrypt("secrets/app.yaml", readFile(t, "testdata/sops-secret.yaml"), &Keyring{})
	mustFail(t, err, ErrNoIdentity, "secrets/app.yaml", "--age-key-file")
}

func TestDecryptRefusesWhatIsNotSops(t *testing.T) {
	_, err := Decrypt("plain.yaml", readFile(t, "testdata/plain/secret.yaml"), keyring(t, keyA))
	mustFail(t, err, ErrNotSOPS, "plain.yaml", "no top-level sops entry")
	_, err = Decrypt("bad.yaml", []byte("a: [b\n"), keyring(t, keyA))
	mustFail(t, err, ErrNotSOPS, "bad.yaml", "not valid YAML")
	_, err = Decrypt("list.yaml", []byte("- a\n- b\n"), keyring(t, keyA))
	mustFail(t, err, ErrNotSOPS, "list.yaml", "not a mapping")
}

func TestDecryptUnsupportedKeyTypes(t *testing.T) {
	data := string(readFile(t, "testdata/sops-mac-only.yaml"))
	i, j := strings.Index(data, "    age:\n"), strings.Index(data, "    encrypted_regex:")
	pgp := data[:i] + "    pgp:\n        - created_at: \"2026-01-01T00:00:00Z\"\n          enc: x\n          fp: ABCD\n    kms:\n        - arn: arn:aws:kms:x\n          enc: y\n" + data[j:]
	_, err := Decrypt("pgp.yaml", []byte(pgp), keyring(t, keyA))
	mustFail(t, err, ErrUnsupported, "pgp.yaml", "encrypted only to pgp, kms", "age recipients only")

	groups := data[:i] + "    key_groups:\n        - age: []\n        - age: []\n    shamir_threshold: 2\n" + data[j:]
	_, err = Decrypt("groups.yaml", []byte(groups), keyring(t, keyA))
	mustFail(t, err, ErrUnsupported, "groups.yaml", "Shamir")

	// A metadata field of the wrong type is refused without quoting what it holds.
	typed := strings.Replace(data, "mac_only_encrypted: true", "mac_only_encrypted: pw-short1", 1)
	_, err = Decrypt("typed.yaml", []byte(typed), keyring(t, keyA))
	mustFail(t, err, ErrNotSOPS, "typed.yaml", "cannot read the sops metadata")

	comments := strings.Replace(data, "encrypted_regex:", "encrypted_comment_regex:", 1)
	_, err = Decrypt("comments.yaml", []byte(comments), keyring(t, keyA))
	mustFail(t, err, ErrUnsupported, "comments.yaml", "encrypted_comment_regex")
}

// tamper returns the sops-made Secret with one edit, checking the edit applies.
func tamper(t *testing.T, edit func(string) string) []byte {
	t.Helper()
	orig := string(readFile(t, "testdata/sops-secret.yaml"))
	out := edit(orig)
	if out == orig {
		t.Fatal("the edit changed nothing")
	}
	return []byte(out)
}

// lineOf returns the whole line of s that contains sub.
func lineOf(t *testing.T, s, sub string) string {
	t.Helper()
	i := strings.Index(s, sub)
	if i < 0 {
		t.Fatalf("%q not in the file", sub)
	}
	start := strings.LastIndex(s[:i], "\n") + 1
	end := i + strings.Index(s[i:], "\n") + 1
	return s[start:end]
}

func TestDecryptRefusesTamperedFiles(t *testing.T) {
	kr := keyring(t, keyA)
	cases := []struct {
		name  string
		edit  func(string) string
		wants []string
	}{
		{"a ciphertext byte flipped", func(s string) string {
			l := lineOf(t, s, "username:")
			i := strings.Index(l, "data:") + len("data:")
			flipped := l[:i] + string(rune(l[i]^1)) + l[i+1:]
			return strings.Replace(s, l, flipped, 1)
		}, []string{"stringData.username", "authentication failed"}},
		{"two values swapped", func(s string) string {
			u, a := lineOf(t, s, "username:"), lineOf(t, s, "    api-key: ENC")
			uv, av := u[strings.Index(u, "ENC["):], a[strings.Index(a, "ENC["):]
			s = strings.Replace(s, u, strings.Replace(u, uv, av, 1), 1)
			return strings.Replace(s, a, strings.Replace(a, av, uv, 1), 1)
		}, []string{"authentication failed"}},
		{"two keys reordered", func(s string) string {
			p, k := lineOf(t, s, "password: ENC"), lineOf(t, s, "api-key: ENC")
			return strings.Replace(s, p+k, k+p, 1)
		}, []string{"MAC does not match"}},
		{"a key removed", func(s string) string {
			return strings.Replace(s, lineOf(t, s, "username:"), "", 1)
		}, []string{"MAC does not match"}},
		{"an unencrypted value changed", func(s string) string {
			return strings.Replace(s, "app: web", "app: evil", 1)
		}, []string{"MAC does not match"}},
		{"a plaintext value added", func(s string) string {
			return strings.Replace(s, "stringData:\n", "stringData:\n    extra: sk-test-12345\n", 1)
		}, []string{"stringData.extra is not encrypted"}},
		{"the mac altered", func(s string) string {
			l := lineOf(t, s, "mac: ENC")
			i := strings.Index(l, "data:") + len("data:")
			return strings.Replace(s, l, l[:i]+string(rune(l[i]^1))+l[i+1:], 1)
		}, []string{"MAC cannot be decrypted"}},
		{"lastmodified altered", func(s string) string {
			l := lineOf(t, s, "lastmodified:")
			return strings.Replace(s, l, "    lastmodified: \"2020-01-01T00:00:00Z\"\n", 1)
		}, []string{"MAC cannot be decrypted"}},
		{"the mac removed", func(s string) string {
			return strings.Replace(s, lineOf(t, s, "mac: ENC"), "", 1)
		}, []string{"sops.mac is missing"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Decrypt("secrets/app.yaml", tamper(t, c.edit), kr)
			kind := ErrTampered
			if strings.Contains(c.wants[0], "missing") {
				kind = ErrNotSOPS
			}
			mustFail(t, err, kind, "secrets/app.yaml", c.wants...)
		})
	}
}

// mac_only_encrypted is honoured, not ignored: an unencrypted value is outside the MAC, an
// encrypted one is inside.
func TestMACOnlyEncrypted(t *testing.T) {
	kr := keyring(t, keyA)
	data := readFile(t, "testdata/sops-mac-only.yaml")
	edited := bytes.Replace(data, []byte("name: mac-only"), []byte("name: renamed"), 1)
	if _, err := Decrypt("f", edited, kr); err != nil {
		t.Errorf("an unencrypted value is outside a mac_only_encrypted MAC, yet: %v", err)
	}
	without := bytes.Replace(data, []byte("    mac_only_encrypted: true\n"), nil, 1)
	if bytes.Equal(without, data) {
		t.Fatal("vector lacks mac_only_encrypted")
	}
	_, err := Decrypt("f", without, kr)
	mustFail(t, err, ErrTampered, "f", "MAC does not match")
}

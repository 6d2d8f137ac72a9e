package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

const (
	secretTestdata = "../../secrets/testdata/"
	testKeyA       = secretTestdata + "keys/test-a.agekey"
	testKeyB       = secretTestdata + "keys/test-b.agekey"
	testKeyWrong   = secretTestdata + "keys/test-wrong.agekey"
)

// secretPlaintexts are values of secrets/testdata/plain/secret.yaml; no stderr may hold one.
var secretPlaintexts = []string{"binary-password", "YmluYXJ5LXBhc3N3b3Jk", "from-string-data", "postgres://db:5432/shop", "sk-test-12345"}

func noSecretIn(t *testing.T, what, s string) {
	t.Helper()
	for _, v := range secretPlaintexts {
		if strings.Contains(s, v) {
			t.Errorf("%s holds the plaintext %q:\n%s", what, v, s)
		}
	}
}

func publicKeyOf(t *testing.T, keyFile string) string {
	t.Helper()
	for _, l := range strings.Split(string(readTestFile(t, keyFile)), "\n") {
		if k, ok := strings.CutPrefix(l, "# public key: "); ok {
			return k
		}
	}
	t.Fatalf("%s has no public key line", keyFile)
	return ""
}

func readTestFile(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// copyPlainSecret puts the plaintext test Secret in a fresh directory and returns its path.
func copyPlainSecret(t *testing.T, dir string) string {
	t.Helper()
	p := filepath.Join(dir, "secrets", "app.yaml")
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(p, readTestFile(t, secretTestdata+"plain/secret.yaml"), 0o640); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestSecretKeygen(t *testing.T) {
	dir := t.TempDir()
	keyFile := filepath.Join(dir, "node.agekey")
	code, out, errOut := shoal(t, "secret", "keygen", "-o", keyFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	pub := strings.TrimSpace(out)
	if !strings.HasPrefix(pub, "age1") || strings.Contains(out, "AGE-SECRET-KEY") {
		t.Errorf("stdout %q: want the public key only", out)
	}
	fi, err := os.Stat(keyFile)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("key file: %v, %v", fi, err)
	}
	if code, _, errOut := shoal(t, "secret", "keygen", "-o", keyFile); code != 1 || !strings.Contains(errOut, "exists") {
		t.Errorf("overwriting a key file: exit %d, %s", code, errOut)
	}

	// The new key works: encrypt to its public key, decrypt with its file.
	file := copyPlainSecret(t, dir)
	if code, _, errOut := shoal(t, "secret", "encrypt", "--age", pub, "--in-place", file); code != 0 {
		t.Fatalf("encrypt: %s", errOut)
	}
	code, out, errOut = shoal(t, "secret", "decrypt", "--age-key-file", keyFile, file)
	if code != 0 || !strings.Contains(out, "from-string-data") {
		t.Errorf("decrypt with the new key: exit %d\n%s%s", code, out, errOut)
	}

	code, out, errOut = shoal(t, "secret", "keygen")
	if code != 0 || !strings.Contains(out, "AGE-SECRET-KEY-1") || !strings.Contains(errOut, "Public key: age1") {
		t.Errorf("keygen to stdout: exit %d\n%s%s", code, out, errOut)
	}
}

func TestSecretEncryptWithSopsConfig(t *testing.T) {
	dir := t.TempDir()
	a := publicKeyOf(t, testKeyA)
	conf := "creation_rules:\n  - path_regex: secrets/.*\\.yaml$\n    encrypted_regex: ^(data|stringData)$\n    age: " + a + "\n"
	if err := os.WriteFile(filepath.Join(dir, ".sops.yaml"), []byte(conf), 0o644); err != nil {
		t.Fatal(err)
	}
	file := copyPlainSecret(t, dir)

	// To stdout: the file is left as it was.
	code, out, errOut := shoal(t, "secret", "encrypt", file)
	if code != 0 || !strings.Contains(out, "recipient: "+a) || !strings.Contains(out, "ENC[AES256_GCM") {
		t.Fatalf("encrypt: exit %d\n%s%s", code, out, errOut)
	}
	noSecretIn(t, "encrypted output", out)
	if !strings.Contains(string(readTestFile(t, file)), "from-string-data") {
		t.Error("encrypt without --in-place changed the file")
	}

	// In place: the file is replaced, its mode kept, and it decrypts to the same values.
	if code, _, errOut := shoal(t, "secret", "encrypt", "-i", file); code != 0 {
		t.Fatalf("encrypt -i: %s", errOut)
	}
	enc := readTestFile(t, file)
	noSecretIn(t, "encrypted file", string(enc))
	if fi, _ := os.Stat(file); fi.Mode().Perm() != 0o640 {
		t.Errorf("mode %v after --in-place, want 0640", fi.Mode().Perm())
	}
	code, out, errOut = shoal(t, "secret", "decrypt", "--age-key-file", testKeyA, file)
	if code != 0 || !strings.Contains(out, "api-key: from-string-data") || errOut != "" {
		t.Errorf("decrypt: exit %d\n%s%s", code, out, errOut)
	}
	// Encrypting it again is refused.
	code, _, errOut = shoal(t, "secret", "encrypt", file)
	if code != 1 || !strings.Contains(errOut, "already sops-encrypted") {
		t.Errorf("re-encrypt: exit %d, %s", code, errOut)
	}

	// A rule that encrypts other values is refused rather than half-followed.
	other := strings.Replace(conf, "^(data|stringData)$", "^password$", 1)
	os.WriteFile(filepath.Join(dir, ".sops.yaml"), []byte(other), 0o644)
	file = copyPlainSecret(t, dir)
	if code, _, errOut := shoal(t, "secret", "encrypt", file); code != 1 || !strings.Contains(errOut, "encrypts data and stringData only") {
		t.Errorf("other rule: exit %d, %s", code, errOut)
	}
}

func TestSecretEncryptNeedsRecipients(t *testing.T) {
	file := copyPlainSecret(t, t.TempDir())
	code, _, errOut := shoal(t, "secret", "encrypt", file)
	if code != 1 || !strings.Contains(errOut, "no .sops.yaml found") || !strings.Contains(errOut, "--age") {
		t.Errorf("exit %d, %s", code, errOut)
	}
	noSecretIn(t, "stderr", errOut)
}

func TestSecretDecryptErrorsHoldNoPlaintext(t *testing.T) {
	vector := secretTestdata + "sops-secret.yaml"
	code, out, errOut := shoal(t, "secret", "decrypt", "--age-key-file", testKeyWrong, vector)
	if code != 1 || out != "" || !strings.Contains(errOut, "sops-secret.yaml") || !strings.Contains(errOut, "no age identity of this node can decrypt") || !strings.Contains(errOut, publicKeyOf(t, testKeyA)) {
		t.Errorf("wrong key: exit %d\n%s%s", code, out, errOut)
	}
	noSecretIn(t, "stderr", errOut)

	tampered := filepath.Join(t.TempDir(), "app.yaml")
	data := strings.Replace(string(readTestFile(t, vector)), "app: web", "app: evil", 1)
	os.WriteFile(tampered, []byte(data), 0o600)
	code, out, errOut = shoal(t, "secret", "decrypt", "--age-key-file", testKeyA, tampered)
	if code != 1 || out != "" || !strings.Contains(errOut, "MAC does not match") || !strings.Contains(errOut, tampered) {
		t.Errorf("tampered: exit %d\n%s%s", code, out, errOut)
	}
	noSecretIn(t, "stderr", errOut)

	t.Setenv("SOPS_AGE_KEY_FILE", "")
	if code, _, errOut := shoal(t, "secret", "decrypt", vector); code != 1 || !strings.Contains(errOut, "--age-key-file") {
		t.Errorf("no key: exit %d, %s", code, errOut)
	}
	t.Setenv("SOPS_AGE_KEY_FILE", testKeyB)
	if code, out, errOut := shoal(t, "secret", "decrypt", vector); code != 0 || !strings.Contains(out, "from-string-data") {
		t.Errorf("key from $SOPS_AGE_KEY_FILE: exit %d, %s", code, errOut)
	}
}

func TestSecretRotate(t *testing.T) {
	file := filepath.Join(t.TempDir(), "app.yaml")
	os.WriteFile(file, readTestFile(t, secretTestdata+"sops-secret.yaml"), 0o600)
	b := publicKeyOf(t, testKeyB)
	if code, _, errOut := shoal(t, "secret", "rotate", file, "--age", b); code != 1 || !strings.Contains(errOut, "--age-key-file") {
		t.Errorf("rotate without a key: exit %d, %s", code, errOut)
	}
	if code, _, errOut := shoal(t, "secret", "rotate", file, "--age-key-file", testKeyA); code != 1 || !strings.Contains(errOut, "--age") {
		t.Errorf("rotate without recipients: exit %d, %s", code, errOut)
	}
	code, _, errOut := shoal(t, "secret", "rotate", file, "--age", b, "--age-key-file", testKeyA, "--in-place")
	if code != 0 {
		t.Fatalf("rotate: %s", errOut)
	}
	if code, _, errOut := shoal(t, "secret", "decrypt", "--age-key-file", testKeyA, file); code != 1 || !strings.Contains(errOut, "no age identity") {
		t.Errorf("the removed recipient still decrypts: exit %d, %s", code, errOut)
	}
	code, out, errOut := shoal(t, "secret", "decrypt", "--age-key-file", testKeyB, file)
	if code != 0 || !strings.Contains(out, "username: admin") {
		t.Errorf("the new recipient: exit %d\n%s%s", code, out, errOut)
	}
}

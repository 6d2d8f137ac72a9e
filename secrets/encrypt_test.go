package secrets

import (
	"bytes"
	"strings"
	"testing"
	"time"
)

func TestEncryptRoundTrip(t *testing.T) {
	plain := readFile(t, "testdata/plain/secret.yaml")
	out, err := Encrypt("secret.yaml", plain, EncryptOptions{Recipients: []string{publicKey(t, keyA), publicKey(t, keyB)}})
	if err != nil {
		t.Fatal(err)
	}
	// Nothing of the plaintext values survives, not even the comment that quoted one.
	noPlaintext(t, "encrypted file", string(out))
	for _, want := range []string{"name: app", "namespace: shop", "encrypted_regex: ^(data|stringData)$", "version: " + formatVersion} {
		if !bytes.Contains(out, []byte(want)) {
			t.Errorf("encrypted file lacks %q:\n%s", want, out)
		}
	}
	for _, k := range []string{keyA, keyB} {
		p, err := Decrypt("secret.yaml", out, keyring(t, k))
		if err != nil {
			t.Fatalf("%s: %v", k, err)
		}
		got, _ := p.Secret("shop", "app")
		want, _ := mustReadPlain(t, plain).Secret("shop", "app")
		if got.String() != want.String() {
			t.Fatalf("keys %v, want %v", got.Keys(), want.Keys())
		}
		for key := range want {
			if !bytes.Equal(got[key], want[key]) {
				t.Errorf("%s differs after the round trip", key)
			}
		}
	}
}

func mustReadPlain(t *testing.T, data []byte) *Plaintext {
	t.Helper()
	p, err := ReadPlain("plain.yaml", data)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// Every value type survives encryption by shoal and decryption by shoal, and MACs agree.
func TestEncryptTypesRoundTrip(t *testing.T) {
	plain := readFile(t, "testdata/plain/types.yaml")
	for _, opts := range []EncryptOptions{
		{EncryptedRegex: "^(name|port|ratio|big|enabled|disabled|empty|multiline|nested|hex|quoted_number)$"},
		{EncryptedRegex: "^nested$", MACOnlyEncrypted: true},
	} {
		opts.Recipients = []string{publicKey(t, keyA)}
		out, err := Encrypt("types.yaml", plain, opts)
		if err != nil {
			t.Fatal(err)
		}
		if bytes.Contains(out, []byte("s3cr3t-token")) {
			t.Fatalf("nested value left in plaintext:\n%s", out)
		}
		p, err := Decrypt("types.yaml", out, keyring(t, keyA))
		if err != nil {
			t.Fatalf("%+v: %v\n%s", opts, err, out)
		}
		got, _ := p.YAML()
		want, _ := mustReadPlain(t, plain).YAML()
		if !sameDocuments(t, got, want) {
			t.Errorf("%+v: round trip gives\n%s\nwant\n%s", opts, got, want)
		}
	}
}

func TestEncryptRefuses(t *testing.T) {
	a := []string{publicKey(t, keyA)}
	_, err := Encrypt("f.yaml", readFile(t, "testdata/sops-secret.yaml"), EncryptOptions{Recipients: a})
	mustFail(t, err, ErrInvalid, "f.yaml", "already sops-encrypted")
	_, err = Encrypt("f.yaml", readFile(t, "testdata/plain/secret.yaml"), EncryptOptions{})
	mustFail(t, err, ErrInvalid, "f.yaml", "no age recipient")
	_, err = Encrypt("f.yaml", readFile(t, "testdata/plain/secret.yaml"), EncryptOptions{Recipients: []string{"ssh-ed25519 AAAA"}})
	mustFail(t, err, ErrInvalid, "f.yaml", "not an age recipient")
	// A private key given by mistake is refused without being echoed.
	private := strings.TrimSpace(strings.Split(string(readFile(t, keyWrong)), "\n")[2])
	_, err = Encrypt("f.yaml", readFile(t, "testdata/plain/secret.yaml"), EncryptOptions{Recipients: []string{private}})
	mustFail(t, err, ErrInvalid, "f.yaml", "a private key")
	if strings.Contains(err.Error(), private[15:]) {
		t.Errorf("the private key is echoed: %v", err)
	}
	_, err = Encrypt("f.json", readFile(t, "testdata/plain/secret.json"), EncryptOptions{Recipients: a})
	mustFail(t, err, ErrInvalid, "f.json", "use sops for JSON")
	_, err = Rotate("f.json", readFile(t, "testdata/sops-secret.json"), keyring(t, keyA), a, time.Time{})
	mustFail(t, err, ErrInvalid, "f.json", "JSON")
	_, err = Encrypt("f.yaml", []byte("kind: Secret\nx: &a 1\ndata:\n  k: *a\n"), EncryptOptions{Recipients: a})
	mustFail(t, err, ErrInvalid, "f.yaml", "anchors or aliases")
}

func TestRotate(t *testing.T) {
	a, b := publicKey(t, keyA), publicKey(t, keyB)
	orig := readFile(t, "testdata/sops-secret.yaml") // made by sops, to A and B
	later := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	rotated, err := Rotate("sops-secret.yaml", orig, keyring(t, keyA), []string{b}, later)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(rotated, []byte(a)) || !bytes.Contains(rotated, []byte(b)) {
		t.Errorf("recipients not replaced:\n%s", rotated)
	}
	if !bytes.Contains(rotated, []byte(`lastmodified: "2030-01-02T03:04:05Z"`)) {
		t.Errorf("lastmodified not renewed:\n%s", rotated)
	}
	noPlaintext(t, "rotated file", string(rotated))
	// A is no longer a recipient: the new data key is not encrypted to it.
	_, err = Decrypt("sops-secret.yaml", rotated, keyring(t, keyA))
	mustFail(t, err, ErrNoIdentity, "sops-secret.yaml", b)
	p, err := Decrypt("sops-secret.yaml", rotated, keyring(t, keyB))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := p.YAML()
	want := readFile(t, "testdata/decrypted/sops-secret.yaml")
	if !sameDocuments(t, got, want) {
		t.Errorf("values changed by rotation:\n%s\nwant\n%s", got, want)
	}
	// A new data key: no ciphertext of the old file survives.
	for _, line := range strings.Split(string(orig), "\n") {
		if i := strings.Index(line, "ENC["); i >= 0 && bytes.Contains(rotated, []byte(line[i:])) {
			t.Errorf("ciphertext kept across rotation: %s", line)
		}
	}
	// Rotation needs a key that opens the file.
	_, err = Rotate("sops-secret.yaml", orig, keyring(t, keyWrong), []string{b}, later)
	mustFail(t, err, ErrNoIdentity, "sops-secret.yaml")
}

// The file shoal's encryptor made (testdata/shoal-secret.yaml) was decrypted by the real sops
// into testdata/decrypted/shoal-secret.yaml (see the README): sops verified its MAC and agreed
// on every value. shoal must agree with sops on it too.
func TestShoalMadeVectorMatchesSops(t *testing.T) {
	for _, name := range []string{"shoal-secret.yaml", "shoal-rotated.yaml", "shoal-types.yaml"} {
		p, err := Decrypt(name, readFile(t, "testdata/"+name), keyring(t, keyB))
		if err != nil {
			t.Fatal(err)
		}
		got, _ := p.YAML()
		if want := readFile(t, "testdata/decrypted/"+name); !sameDocuments(t, got, want) {
			t.Errorf("%s: shoal decrypts to\n%s\nsops decrypted to\n%s", name, got, want)
		}
	}
}

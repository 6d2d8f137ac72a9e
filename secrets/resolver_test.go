package secrets

import (
	"bytes"
	"fmt"
	"os"
	"strings"
	"testing"
	"testing/fstest"

	"github.com/shoal-dev/shoal/manifest"
)

func hasher(t *testing.T, seed string) *ContentHasher {
	t.Helper()
	h, err := NewContentHasher(DeriveHashKey([]byte(seed)))
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestResolveExample(t *testing.T) {
	fsys := os.DirFS("../examples/shop")
	set, errs := manifest.Load(fsys, ".")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	r := &Resolver{Keyring: keyring(t, "../examples/keys/demo.agekey"), Hasher: hasher(t, "cluster key")}
	got, err := r.Resolve(fsys, set, "shop", "db-credentials")
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Values["password"]) != "shoal-demo-password" || got.File != "secrets/db-credentials.yaml" {
		t.Errorf("resolved %v from %s", got.Values, got.File)
	}
	if !strings.HasPrefix(got.Hash, "hmac-sha256:") || strings.Contains(got.Hash, "shoal-demo-password") {
		t.Errorf("hash %q", got.Hash)
	}

	// A Resolved printed by mistake, in any form, shows key names only.
	noPlaintext(t, "a printed Resolved", fmt.Sprintf("%v %+v %#v %s", got, got, got, got.Values))

	// Same contents, same cluster key: same hash on every node. Another cluster key: another hash.
	again, _ := r.Resolve(fsys, set, "shop", "db-credentials")
	if again.Hash != got.Hash {
		t.Error("the hash is not stable")
	}
	other := &Resolver{Keyring: r.Keyring, Hasher: hasher(t, "another cluster")}
	if o, _ := other.Resolve(fsys, set, "shop", "db-credentials"); o.Hash == got.Hash {
		t.Error("the hash does not depend on its key")
	}

	_, err = r.Resolve(fsys, set, "shop", "missing")
	mustFail(t, err, ErrInvalid, "", "Secret shop/missing is not in the repository")
	wrong := &Resolver{Keyring: keyring(t, keyA), Hasher: r.Hasher}
	_, err = wrong.Resolve(fsys, set, "shop", "db-credentials")
	mustFail(t, err, ErrNoIdentity, "secrets/db-credentials.yaml", "age1p663tau083de2wwc5jwl0arfrwur93hpu99vc69y2jdjrzkea46qu974ng")
	if err := (&Resolver{}).Validate(); err == nil {
		t.Error("an unwired resolver validates")
	}
}

// A Secret whose file was tampered with after the commit was loaded is refused by the resolver.
func TestResolveRefusesTamperedFile(t *testing.T) {
	secret := readFile(t, "../examples/shop/secrets/db-credentials.yaml")
	fsys := fstest.MapFS{
		"ns.yaml":     {Data: []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: shop\n")},
		"secret.yaml": {Data: secret},
	}
	set, errs := manifest.Load(fsys, ".")
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	fsys["secret.yaml"] = &fstest.MapFile{Data: bytes.Replace(secret, []byte("type: Opaque"), []byte("type: Other"), 1)}
	r := &Resolver{Keyring: keyring(t, "../examples/keys/demo.agekey"), Hasher: hasher(t, "k")}
	_, err := r.Resolve(fsys, set, "shop", "db-credentials")
	mustFail(t, err, ErrTampered, "secret.yaml", "MAC does not match")
}

func TestContentHash(t *testing.T) {
	h := hasher(t, "k")
	a := h.Sum("shop", "db", Values{"a": []byte("1"), "b": []byte("2")})
	for name, other := range map[string]string{
		"value changed":          h.Sum("shop", "db", Values{"a": []byte("1"), "b": []byte("3")}),
		"key renamed":            h.Sum("shop", "db", Values{"a": []byte("1"), "c": []byte("2")}),
		"boundary moved":         h.Sum("shop", "db", Values{"a": []byte("12"), "b": []byte("")}),
		"other Secret, same kvs": h.Sum("shop", "db2", Values{"a": []byte("1"), "b": []byte("2")}),
	} {
		if other == a {
			t.Errorf("%s: same hash", name)
		}
	}
	if h.Sum("shop", "db", Values{"b": []byte("2"), "a": []byte("1")}) != a {
		t.Error("the hash depends on map order")
	}
	if _, err := NewContentHasher([]byte("short")); err == nil {
		t.Error("a short hash key was accepted")
	}
}

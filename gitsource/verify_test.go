package gitsource

import (
	"context"
	"errors"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

// sshSigner produces a signature block in the shape `git -c gpg.format=ssh`
// writes; its content does not matter because it is refused by type.
type sshSigner struct{}

func (sshSigner) Sign(io.Reader) ([]byte, error) {
	return []byte("-----BEGIN SSH SIGNATURE-----\nU1NIU0lHAAAAAQ==\n-----END SSH SIGNATURE-----\n"), nil
}

func TestSignatureVerification(t *testing.T) {
	alice, keyring := newKey(t, "Alice")
	mallory, _ := newKey(t, "Mallory")
	u := newUpstream(t)
	good := u.signedCommit(map[string]string{"a": "1"}, "signed by alice", alice, nil)

	dir := filepath.Join(t.TempDir(), "clone")
	cfg := Config{URL: u.bare, Dir: dir, Verify: VerifyConfig{Mode: VerifyHead, KeyringFile: keyring}}
	r := open(t, cfg)
	rev := mustFetch(t, r)
	if rev.Commit != good || !rev.Signed || !strings.Contains(rev.SignedBy, "Alice") {
		t.Fatalf("rev = %+v, want signed by Alice", rev)
	}

	for _, tc := range []struct {
		name   string
		reason string
	}{
		{"unsigned", "not signed"},
		{"wrong key", "signature not made by a trusted key in " + keyring},
		{"ssh signature", "SSH signatures are not supported"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var bad plumbing.Hash
			switch tc.name {
			case "unsigned":
				bad = u.commit(map[string]string{"a": "unsigned"}, "unsigned")
			case "wrong key":
				bad = u.signedCommit(map[string]string{"a": "mallory"}, "signed by mallory", mallory, nil)
			case "ssh signature":
				bad = u.signedCommit(map[string]string{"a": "ssh"}, "ssh signed", nil, sshSigner{})
			}
			last, err := r.Fetch(context.Background())
			var refused *RefusedError
			if !errors.As(err, &refused) || refused.Commit != bad || !strings.Contains(refused.Reason, tc.reason) {
				t.Fatalf("err = %v, want refusal of %s containing %q", err, bad, tc.reason)
			}
			if !strings.Contains(err.Error(), bad.String()) {
				t.Fatalf("error does not name the commit: %v", err)
			}
			if last.Commit != good {
				t.Fatalf("returned %s, want last good %s", last.Commit, good)
			}
			if l, _ := r.Last(); l.Commit != good {
				t.Fatalf("Last = %s, want %s", l.Commit, good)
			}
			// Asking again while the remote has not moved repeats the refusal.
			if _, err2 := r.Fetch(context.Background()); !errors.As(err2, &refused) {
				t.Fatalf("second fetch: %v", err2)
			}
			// A restart does not promote the refused commit.
			r2 := open(t, Config{URL: u.bare, Dir: filepath.Join(t.TempDir(), "x"), Verify: cfg.Verify})
			if _, err := r2.Fetch(context.Background()); !errors.As(err, &refused) {
				t.Fatalf("fresh clone accepted %s: %v", bad, err)
			}
		})
	}

	r.Close()
	r = open(t, cfg)
	if l, ok := r.Last(); !ok || l.Commit != good {
		t.Fatalf("after restart Last = %s, want %s", l.Commit, good)
	}
	fixed := u.signedCommit(map[string]string{"a": "2"}, "fixed", alice, nil)
	if rev := mustFetch(t, r); rev.Commit != fixed || !rev.Signed {
		t.Fatalf("rev = %+v, want %s", rev, fixed)
	}

	// A keyring that no longer trusts the good commit drops it on Open.
	_, otherRing := newKey(t, "Other")
	r.Close()
	r = open(t, Config{URL: u.bare, Dir: dir, Verify: VerifyConfig{Mode: VerifyHead, KeyringFile: otherRing}})
	if _, ok := r.Last(); ok {
		t.Fatal("commit signed by a key no longer trusted kept as last good")
	}
}

func TestKeyringFiles(t *testing.T) {
	dir := t.TempDir()
	write := func(name, content string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, file, want string
	}{
		{"ssh allowed_signers", write("allowed", "alice@example.com ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIAAAA\n"), "SSH commit signatures are not supported"},
		{"not armored", write("junk", "hello"), "not an ASCII-armored OpenPGP keyring"},
		{"missing", filepath.Join(dir, "nope"), "no such file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(Config{URL: "/x", Dir: filepath.Join(t.TempDir(), "c"), Verify: VerifyConfig{Mode: VerifyHead, KeyringFile: tc.file}})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

package gitsource

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

func TestValidate(t *testing.T) {
	ok := Config{URL: "https://example.com/r.git", Dir: "/var/lib/shoal/git"}
	if err := ok.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	hash := strings.Repeat("a", 40)
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no URL", func(c *Config) { c.URL = "" }, "URL is required"},
		{"no Dir", func(c *Config) { c.Dir = "" }, "Dir"},
		{"branch and tag", func(c *Config) { c.Branch, c.Tag = "main", "v1" }, "not both"},
		{"bad branch", func(c *Config) { c.Branch = "a..b" }, "not a valid branch"},
		{"bad tag", func(c *Config) { c.Tag = "v1:x" }, "not a valid tag"},
		{"short commit", func(c *Config) { c.Commit = "abc123" }, "full 40-character"},
		{"commit and tag", func(c *Config) { c.Commit, c.Tag = hash, "v1" }, "Tag or Commit"},
		{"commit and shallow", func(c *Config) { c.Commit, c.Shallow = hash, true }, "Shallow cannot"},
		{"absolute path", func(c *Config) { c.Path = "/etc" }, "relative"},
		{"escaping path", func(c *Config) { c.Path = "a/../../b" }, "leaves the repository"},
		{"negative interval", func(c *Config) { c.PollInterval = -time.Second }, "PollInterval"},
		{"token and password", func(c *Config) { c.Auth = Auth{Username: "u", Password: "p", Token: "t"} }, "not both"},
		{"password without user", func(c *Config) { c.Auth = Auth{Password: "p"} }, "needs Auth.Username"},
		{"ssh key on https", func(c *Config) { c.Auth = Auth{SSHKeyFile: "/k"} }, "ssh settings"},
		{"ssh without key", func(c *Config) { c.URL = "git@example.com:o/r.git"; c.Auth = Auth{KnownHostsFile: "/kh"} }, "needs Auth.SSHKeyFile"},
		{"ssh without known_hosts", func(c *Config) { c.URL = "ssh://git@example.com/o/r.git"; c.Auth = Auth{SSHKeyFile: "/k"} }, "KnownHostsFile"},
		{"token on ssh", func(c *Config) {
			c.URL = "git@example.com:o/r.git"
			c.Auth = Auth{SSHKeyFile: "/k", KnownHostsFile: "/kh", Token: "t"}
		}, "token/password"},
		{"auth on local path", func(c *Config) { c.URL = "/srv/repo"; c.Auth = Auth{Token: "t"} }, "takes no credentials"},
		{"verify without keyring", func(c *Config) { c.Verify.Mode = VerifyHead }, "KeyringFile"},
		{"unknown verify mode", func(c *Config) { c.Verify.Mode = "all" }, "not one of"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := ok
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("Validate() = %v, want %q", err, tc.want)
			}
		})
	}
	// Every problem is reported at once.
	err := Config{Path: "/x"}.Validate()
	if n := strings.Count(err.Error(), "\n") + 1; n != 3 {
		t.Fatalf("want 3 problems, got %d: %v", n, err)
	}
}

func TestRedact(t *testing.T) {
	if got := redactURL("https://bob:hunter22@example.com/r.git"); strings.Contains(got, "hunter22") || !strings.Contains(got, "bob") {
		t.Fatalf("redactURL = %s", got)
	}
	r := &Repo{cfg: Config{URL: "https://example.com/r.git", Auth: Auth{Token: "tok-123456"}}}
	err := r.classify("fetch", errors.New("server said tok-123456 is bad"))
	if strings.Contains(err.Error(), "tok-123456") || !strings.Contains(err.Error(), "fetch https://example.com/r.git") {
		t.Fatalf("classify = %v", err)
	}
}

func TestHTTPAuthConstruction(t *testing.T) {
	a, err := authMethod("https://example.com/r.git", Auth{Token: "t0k"})
	if ba, ok := a.(*githttp.BasicAuth); err != nil || !ok || ba.Username != "git" || ba.Password != "t0k" {
		t.Fatalf("token auth = %#v, %v", a, err)
	}
	a, _ = authMethod("https://example.com/r.git", Auth{Username: "u", Password: "p"})
	if ba, ok := a.(*githttp.BasicAuth); !ok || ba.Username != "u" || ba.Password != "p" {
		t.Fatalf("basic auth = %#v", a)
	}
	if a, _ := authMethod("https://example.com/r.git", Auth{}); a != nil {
		t.Fatalf("no credentials gave %#v", a)
	}
}

// TestSSHAuthConstruction checks key loading (with and without a
// passphrase) and host key checking against a known_hosts file. No ssh
// server is run: the transport itself is go-git's.
func TestSSHAuthConstruction(t *testing.T) {
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	writeKey := func(name, pass string) string {
		var blk *pem.Block
		if pass == "" {
			blk, err = ssh.MarshalPrivateKey(priv, "")
		} else {
			blk, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(pass))
		}
		if err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	plain, locked := writeKey("id_plain", ""), writeKey("id_locked", "open sesame")

	hostPub, _, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, _ := ssh.NewPublicKey(hostPub)
	otherPub, _, _ := ed25519.GenerateKey(rand.Reader)
	otherKey, _ := ssh.NewPublicKey(otherPub)
	knownHosts := filepath.Join(dir, "known_hosts")
	line := "git.example.com " + string(ssh.MarshalAuthorizedKey(hostKey))
	if err := os.WriteFile(knownHosts, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	const url = "ssh://deploy@git.example.com/o/r.git"
	addr := &net.TCPAddr{IP: net.IPv4(192, 0, 2, 1), Port: 22}

	a, err := authMethod(url, Auth{SSHKeyFile: plain, KnownHostsFile: knownHosts})
	if err != nil {
		t.Fatal(err)
	}
	keys := a.(*gitssh.PublicKeys)
	if keys.User != "deploy" {
		t.Fatalf("user = %q, want the URL's", keys.User)
	}
	if err := keys.HostKeyCallback("git.example.com:22", addr, hostKey); err != nil {
		t.Fatalf("known host key rejected: %v", err)
	}
	if err := keys.HostKeyCallback("git.example.com:22", addr, otherKey); err == nil {
		t.Fatal("wrong host key accepted")
	}
	if err := keys.HostKeyCallback("evil.example.com:22", addr, hostKey); err == nil {
		t.Fatal("unknown host accepted")
	}

	if a, err := authMethod("git@git.example.com:o/r.git", Auth{SSHKeyFile: locked, SSHKeyPassphrase: "open sesame", KnownHostsFile: knownHosts}); err != nil || a.(*gitssh.PublicKeys).User != "git" {
		t.Fatalf("passphrase key: %v", err)
	}
	_, err = authMethod(url, Auth{SSHKeyFile: locked, KnownHostsFile: knownHosts})
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "SSHKeyPassphrase") {
		t.Fatalf("missing passphrase: %v", err)
	}
	_, err = authMethod(url, Auth{SSHKeyFile: locked, SSHKeyPassphrase: "wrong guess", KnownHostsFile: knownHosts})
	if !errors.Is(err, ErrAuth) || strings.Contains(err.Error(), "wrong guess") {
		t.Fatalf("wrong passphrase: %v", err)
	}
	a, err = authMethod(url, Auth{SSHKeyFile: plain, InsecureIgnoreHostKey: true})
	if err != nil || a.(*gitssh.PublicKeys).HostKeyCallback("evil.example.com:22", addr, otherKey) != nil {
		t.Fatalf("insecure ignore: %v", err)
	}
	if _, err := authMethod(url, Auth{SSHKeyFile: filepath.Join(dir, "missing"), KnownHostsFile: knownHosts}); err == nil {
		t.Fatal("missing key file accepted")
	}
}

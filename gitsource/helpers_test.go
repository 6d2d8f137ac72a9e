package gitsource

import (
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"net/http/cgi"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// guard bounds every wait on a channel; it only turns a hang into a failure.
const guard = 30 * time.Second

// testLogger writes the package's logs to t.Log.
func testLogger(t testing.TB) *slog.Logger {
	return slog.New(slog.NewTextHandler(tLogWriter{t}, &slog.HandlerOptions{Level: slog.LevelDebug}))
}

type tLogWriter struct{ t testing.TB }

func (w tLogWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

var gitEnv = []string{
	"GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=/nonexistent",
	"GIT_AUTHOR_NAME=Test Author", "GIT_AUTHOR_EMAIL=author@example.com",
	"GIT_COMMITTER_NAME=Test Committer", "GIT_COMMITTER_EMAIL=committer@example.com",
	"GIT_TERMINAL_PROMPT=0",
}

// gitRun runs the git CLI in dir and returns its trimmed stdout.
func gitRun(t testing.TB, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false", "-c", "protocol.file.allow=always"}, args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), gitEnv...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// upstream is a bare "server" repository plus a working clone that pushes
// to it.
type upstream struct {
	t     testing.TB
	root  string // holds the bare repositories; GIT_PROJECT_ROOT for HTTP
	bare  string // root/repo.git
	work  string
	count int
}

func newUpstream(t testing.TB) *upstream {
	t.Helper()
	base := t.TempDir()
	u := &upstream{t: t, root: filepath.Join(base, "srv"), work: filepath.Join(base, "work")}
	u.bare = filepath.Join(u.root, "repo.git")
	if err := os.MkdirAll(u.root, 0o755); err != nil {
		t.Fatal(err)
	}
	gitRun(t, base, "init", "-q", "--bare", u.bare)
	gitRun(t, base, "init", "-q", u.work)
	gitRun(t, u.work, "remote", "add", "origin", u.bare)
	return u
}

// commit writes files (empty content deletes), commits and pushes the
// current branch to the same branch upstream, forced. It returns the hash.
func (u *upstream) commit(files map[string]string, msg string) plumbing.Hash {
	u.t.Helper()
	u.write(files)
	gitRun(u.t, u.work, "add", "-A")
	gitRun(u.t, u.work, "commit", "-q", "--allow-empty", "-m", msg)
	return u.push()
}

func (u *upstream) write(files map[string]string) {
	u.t.Helper()
	for name, content := range files {
		p := filepath.Join(u.work, filepath.FromSlash(name))
		if content == "" {
			if err := os.Remove(p); err != nil {
				u.t.Fatal(err)
			}
			continue
		}
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			u.t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			u.t.Fatal(err)
		}
	}
}

func (u *upstream) push() plumbing.Hash {
	u.t.Helper()
	branch := gitRun(u.t, u.work, "rev-parse", "--abbrev-ref", "HEAD")
	gitRun(u.t, u.work, "push", "-q", "-f", "origin", "HEAD:refs/heads/"+branch)
	return u.head()
}

func (u *upstream) head() plumbing.Hash {
	return plumbing.NewHash(gitRun(u.t, u.work, "rev-parse", "HEAD"))
}

// signedCommit commits with go-git, signed by key (or with signer).
func (u *upstream) signedCommit(files map[string]string, msg string, key *openpgp.Entity, signer git.Signer) plumbing.Hash {
	u.t.Helper()
	u.write(files)
	repo, err := git.PlainOpen(u.work)
	if err != nil {
		u.t.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		u.t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		u.t.Fatal(err)
	}
	sig := &object.Signature{Name: "Signer", Email: "signer@example.com", When: time.Now()}
	if _, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, SignKey: key, Signer: signer, AllowEmptyCommits: true}); err != nil {
		u.t.Fatal(err)
	}
	return u.push()
}

// serveHTTP serves every repository under root with the real
// git-http-backend on 127.0.0.1. With user set, basic auth is required.
// It returns the server's base URL and a function stopping it.
func serveHTTP(t testing.TB, root, user, pass string) (string, func()) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return startHTTP(t, ln, root, user, pass)
}

func startHTTP(t testing.TB, ln net.Listener, root, user, pass string) (string, func()) {
	backend := "/usr/lib/git-core/git-http-backend"
	if _, err := os.Stat(backend); err != nil {
		t.Skipf("git-http-backend not installed at %s: %v", backend, err)
	}
	cgiH := &cgi.Handler{
		Path: backend,
		Root: "/",
		Env:  append([]string{"GIT_PROJECT_ROOT=" + root, "GIT_HTTP_EXPORT_ALL=1"}, gitEnv...),
	}
	h := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if user != "" {
			u, p, ok := r.BasicAuth()
			if !ok || u != user || p != pass {
				w.Header().Set("WWW-Authenticate", `Basic realm="git"`)
				http.Error(w, "unauthorized", http.StatusUnauthorized)
				return
			}
		}
		cgiH.ServeHTTP(w, r)
	})
	srv := &http.Server{Handler: h, ReadHeaderTimeout: guard}
	done := make(chan struct{})
	go func() { defer close(done); _ = srv.Serve(ln) }()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		ctx, cancel := context.WithTimeout(context.Background(), guard)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
			srv.Close()
		}
		<-done
	}
	t.Cleanup(stop)
	return "http://" + ln.Addr().String(), stop
}

// newKey makes an OpenPGP signing key and writes its public part, armored,
// to a keyring file.
func newKey(t testing.TB, name string) (*openpgp.Entity, string) {
	t.Helper()
	e, err := openpgp.NewEntity(name, "", strings.ToLower(name)+"@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	file := filepath.Join(t.TempDir(), name+".asc")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return e, file
}

// open is Open with a fresh Dir and the test logger, failing the test on error.
func open(t testing.TB, cfg Config) *Repo {
	t.Helper()
	if cfg.Dir == "" {
		cfg.Dir = filepath.Join(t.TempDir(), "clone")
	}
	if cfg.Logger == nil {
		cfg.Logger = testLogger(t)
	}
	r, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

func mustFetch(t testing.TB, r *Repo) Revision {
	t.Helper()
	rev, err := r.Fetch(context.Background())
	if err != nil {
		t.Fatalf("Fetch: %v", err)
	}
	return rev
}

func readFile(t testing.TB, r *Repo, commit plumbing.Hash, name string) string {
	t.Helper()
	fsys, err := r.FS(commit)
	if err != nil {
		t.Fatal(err)
	}
	b, err := fs.ReadFile(fsys, name)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func discardLogger() *slog.Logger { return slog.New(slog.DiscardHandler) }

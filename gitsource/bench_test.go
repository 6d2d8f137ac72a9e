package gitsource

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// Repository shape for the fetch benchmarks: about the size of a real
// cluster repository.
const (
	benchFiles   = 3000
	benchDirs    = 100
	benchCommits = 300
)

// benchUpstream builds a bare repository with benchFiles files in benchDirs
// directories and benchCommits commits (each touching ten files) using git
// fast-import, serves it over HTTP on 127.0.0.1, and returns the upstream
// and the repository URL.
func benchUpstream(b *testing.B) (*upstream, string) {
	b.Helper()
	u := newUpstream(b)
	cmd := exec.Command("git", "fast-import", "--quiet")
	cmd.Dir = u.bare
	cmd.Env = append(os.Environ(), gitEnv...)
	in, err := cmd.StdinPipe()
	if err != nil {
		b.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		b.Fatal(err)
	}
	w := bufio.NewWriter(in)
	when := int64(1_700_000_000)
	for c := range benchCommits {
		fmt.Fprintf(w, "commit refs/heads/main\ncommitter Bench <bench@example.com> %d +0000\ndata <<EOM\ncommit %d\nEOM\n", when+int64(c), c)
		if c == 0 {
			for f := range benchFiles {
				writeBlob(w, f, 0)
			}
		} else {
			for k := range 10 {
				writeBlob(w, (c*37+k*101)%benchFiles, c)
			}
		}
		fmt.Fprintln(w)
	}
	if err := w.Flush(); err != nil {
		b.Fatal(err)
	}
	in.Close()
	if err := cmd.Wait(); err != nil {
		b.Fatalf("fast-import: %v", err)
	}
	gitRun(b, u.work, "fetch", "-q", "origin", "main")
	gitRun(b, u.work, "checkout", "-q", "-b", "main", "origin/main")
	base, _ := serveHTTP(b, u.root, "", "")
	return u, base + "/repo.git"
}

// writeBlob writes an inline file modification for file f at version v: a
// small Deployment-like YAML document.
func writeBlob(w *bufio.Writer, f, v int) {
	body := fmt.Sprintf("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: app-%d\n  labels: {team: t%d}\nspec:\n  replicas: %d\n  template:\n    spec:\n      containers:\n      - name: app\n        image: registry.example.com/app-%d:v%d\n        args: [--listen=:8080, --verbose]\n", f, f%17, 1+v%5, f, v)
	fmt.Fprintf(w, "M 100644 inline apps/d%03d/app-%d.yaml\ndata %d\n%s", f%benchDirs, f, len(body), body)
}

// changeOneFile commits a change to one existing file and pushes it.
func changeOneFile(b *testing.B, u *upstream, i int) {
	b.Helper()
	p := filepath.Join(u.work, "apps", "d007", "app-7.yaml")
	if err := os.WriteFile(p, fmt.Appendf(nil, "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: app-7}\ndata: {n: \"%d\"}\n", i), 0o644); err != nil {
		b.Fatal(err)
	}
	gitRun(b, u.work, "commit", "-q", "-am", fmt.Sprintf("change %d", i))
	gitRun(b, u.work, "push", "-q", "origin", "main")
}

// BenchmarkPollNoChange is one poll when nothing changed: a ref
// advertisement over HTTP and a comparison.
func BenchmarkPollNoChange(b *testing.B) {
	u := newUpstream(b)
	u.commit(map[string]string{"a.yaml": "a"}, "one")
	base, _ := serveHTTP(b, u.root, "", "")
	r := open(b, Config{URL: base + "/repo.git", Logger: discardLogger()})
	want := mustFetch(b, r)
	ctx := context.Background()
	b.ResetTimer()
	for b.Loop() {
		rev, err := r.Fetch(ctx)
		if err != nil || rev.Commit != want.Commit {
			b.Fatal(rev, err)
		}
	}
}

// BenchmarkFetchOneFileChange fetches a one-file change of a realistic
// repository with this package; compare with BenchmarkGitFetchCLI.
func BenchmarkFetchOneFileChange(b *testing.B) {
	u, url := benchUpstream(b)
	r := open(b, Config{URL: url, Logger: discardLogger()})
	mustFetch(b, r)
	ctx := context.Background()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		changeOneFile(b, u, i)
		want := u.head()
		b.StartTimer()
		rev, err := r.Fetch(ctx)
		if err != nil || rev.Commit != want {
			b.Fatalf("fetched %s, %v; want %s", rev.Commit, err, want)
		}
	}
}

// BenchmarkGitFetchCLI fetches the same kind of change with `git fetch`
// of the one branch into a bare clone, over the same HTTP server.
func BenchmarkGitFetchCLI(b *testing.B) {
	u, url := benchUpstream(b)
	clone := filepath.Join(b.TempDir(), "clone.git")
	gitRun(b, filepath.Dir(clone), "clone", "-q", "--bare", "--single-branch", "--branch", "main", url, clone)
	fetch := []string{"fetch", "-q", "--no-tags", "origin", "+refs/heads/main:refs/heads/main"}
	gitRun(b, clone, fetch...)
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		b.StopTimer()
		changeOneFile(b, u, i)
		want := u.head().String()
		b.StartTimer()
		gitRun(b, clone, fetch...)
		b.StopTimer()
		if got := gitRun(b, clone, "rev-parse", "refs/heads/main"); got != want {
			b.Fatalf("git fetched %s, want %s", got, want)
		}
		b.StartTimer()
	}
}

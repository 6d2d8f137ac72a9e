package gitsource

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestTreeFS(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{
		"a.b":                  "dot",
		"a/x.yaml":             "x",
		"a/deep/y.yaml":        "y",
		"b/z.yaml":             "z",
		"top.yaml":             "top",
		"apps/web/deploy.yaml": "kind: Deployment\n",
	}, "tree")
	r := open(t, Config{URL: u.bare})
	mustFetch(t, r)
	fsys, err := r.FS(c1)
	if err != nil {
		t.Fatal(err)
	}
	// fstest checks Open, ReadDir, ReadFile, Stat and Glob against each other.
	if err := fstest.TestFS(fsys, "a.b", "a/x.yaml", "a/deep/y.yaml", "b/z.yaml", "top.yaml", "apps/web/deploy.yaml"); err != nil {
		t.Fatal(err)
	}
	entries, err := fs.ReadDir(fsys, ".")
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	// Plain name order ("a" before "a.b"), not git's tree order.
	if want := []string{"a", "a.b", "apps", "b", "top.yaml"}; !slices.Equal(names, want) {
		t.Fatalf("root = %v, want %v", names, want)
	}
	if !entries[0].IsDir() || entries[1].IsDir() {
		t.Fatal("wrong entry types")
	}
	b, err := fs.ReadFile(fsys, "apps/web/deploy.yaml")
	if err != nil || string(b) != "kind: Deployment\n" {
		t.Fatalf("ReadFile = %q, %v", b, err)
	}
	fi, err := fs.Stat(fsys, "apps/web/deploy.yaml")
	if err != nil || fi.Size() != int64(len(b)) || fi.IsDir() || !fi.ModTime().Equal(mustCommitTime(t, r, c1)) {
		t.Fatalf("Stat = %+v, %v", fi, err)
	}
	for _, bad := range []string{"nope", "a/nope", "top.yaml/x", "../etc/passwd", "/abs"} {
		if _, err := fs.ReadFile(fsys, bad); err == nil {
			t.Fatalf("ReadFile(%q) succeeded", bad)
		}
	}
	if _, err := fs.ReadFile(fsys, "nope"); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("missing file error %v is not ErrNotExist", err)
	}
	if _, err := fs.ReadDir(fsys, "top.yaml"); err == nil {
		t.Fatal("ReadDir of a file succeeded")
	}

	// Executable bit, symlinks and submodules.
	gitRun(t, u.work, "update-index", "--chmod=+x", "top.yaml")
	if err := os.Symlink("top.yaml", filepath.Join(u.work, "link")); err != nil {
		t.Fatal(err)
	}
	gitRun(t, u.work, "add", "link")
	gitRun(t, u.work, "update-index", "--add", "--cacheinfo", "160000,"+c1.String()+",sub")
	gitRun(t, u.work, "commit", "-q", "-m", "special entries")
	c2 := u.push()
	mustFetch(t, r)
	fsys, err = r.FS(c2)
	if err != nil {
		t.Fatal(err)
	}
	modes := map[string]fs.FileMode{}
	entries, _ = fs.ReadDir(fsys, ".")
	for _, e := range entries {
		info, err := e.Info()
		if err != nil {
			t.Fatal(err)
		}
		modes[e.Name()] = info.Mode()
	}
	if modes["top.yaml"] != 0o755 || modes["a.b"] != 0o644 || modes["link"]&fs.ModeSymlink == 0 || modes["sub"] != fs.ModeIrregular {
		t.Fatalf("modes = %v", modes)
	}
	if _, err := fsys.Open("link"); err == nil {
		t.Fatal("symlink was followed")
	}
	if _, err := fsys.Open("sub"); err == nil {
		t.Fatal("submodule opened")
	}
}

func mustCommitTime(t *testing.T, r *Repo, h plumbing.Hash) time.Time {
	t.Helper()
	c, err := r.repo.CommitObject(h)
	if err != nil {
		t.Fatal(err)
	}
	return c.Committer.When
}

// TestFSConcurrentWithFetch reads one commit's tree from several goroutines
// (manifest.Load decodes files in parallel) while fetches write to the same
// store; run with -race.
func TestFSConcurrentWithFetch(t *testing.T) {
	u := newUpstream(t)
	files := map[string]string{}
	for i := range 40 {
		files[fmt.Sprintf("d%d/f%d.yaml", i%5, i)] = fmt.Sprint(i)
	}
	c1 := u.commit(files, "many files")
	r := open(t, Config{URL: u.bare, Logger: discardLogger()})
	mustFetch(t, r)
	fsys, err := r.FS(c1)
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, 4)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 5 {
				err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
					if err != nil || d.IsDir() {
						return err
					}
					b, err := fs.ReadFile(fsys, p)
					if err == nil && string(b) != files[p] {
						err = fmt.Errorf("%s = %q, want %q", p, b, files[p])
					}
					return err
				})
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	for i := range 5 {
		u.commit(map[string]string{"extra.yaml": fmt.Sprint(i)}, "more")
		mustFetch(t, r)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

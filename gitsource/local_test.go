package gitsource

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestOpenLocalResolve(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"deploy/a.yaml": "1"}, "one")
	gitRun(t, u.work, "tag", "-a", "-m", "annotated", "v1")
	c2 := u.commit(map[string]string{"deploy/a.yaml": "2"}, "two")
	gitRun(t, u.work, "tag", "light")
	c3 := u.commit(map[string]string{"deploy/a.yaml": "3"}, "three")
	gitRun(t, u.work, "branch", "feature", c1.String())

	// From a subdirectory of a working tree, as `shoal plan` is run.
	r, err := OpenLocal(filepath.Join(u.work, "deploy"))
	if err != nil {
		t.Fatal(err)
	}
	for rev, want := range map[string]plumbing.Hash{
		"HEAD":               c3,
		"main":               c3,
		"HEAD~1":             c2,
		"main^":              c2,
		"HEAD~2":             c1,
		"feature":            c1,
		"v1":                 c1, // annotated tag peeled to its commit
		"light":              c2,
		c2.String():          c2,
		c2.String()[:7]:      c2,
		"refs/heads/feature": c1,
	} {
		got, err := r.Resolve(rev)
		if err != nil || got != want {
			t.Errorf("Resolve(%q) = %s, %v; want %s", rev, got, err, want)
		}
	}
	for _, bad := range []string{"nope", "HEAD~10", "0000000"} {
		if _, err := r.Resolve(bad); err == nil || !strings.Contains(err.Error(), bad) {
			t.Errorf("Resolve(%q) = %v, want an error naming it", bad, err)
		}
	}
	if got := readFile(t, r, c1, "deploy/a.yaml"); got != "1" {
		t.Fatalf("deploy/a.yaml at c1 = %q", got)
	}
	if _, err := r.Fetch(context.Background()); err == nil {
		t.Fatal("Fetch on a local repository succeeded")
	}

	// A bare repository works the same.
	bare, err := OpenLocal(u.bare)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := bare.Resolve("main~2"); err != nil || got != c1 {
		t.Fatalf("bare Resolve(main~2) = %s, %v", got, err)
	}

	if _, err := OpenLocal(t.TempDir()); err == nil {
		t.Fatal("OpenLocal of a non-repository succeeded")
	}
}

package gitsource

import (
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/go-git/go-git/v5/plumbing"
)

func TestFollowBranchFromLocalPath(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"app.yaml": "v1"}, "first\n\nbody")
	r := open(t, Config{URL: u.bare, Branch: "main"})
	if _, ok := r.Last(); ok {
		t.Fatal("Last before any fetch should be empty")
	}
	rev := mustFetch(t, r)
	if rev.Commit != c1 || rev.Ref != "refs/heads/main" || rev.Message != "first" || rev.Author != "Test Author <author@example.com>" {
		t.Fatalf("revision = %+v, want commit %s on refs/heads/main", rev, c1)
	}
	if rev.Signed {
		t.Error("Signed with verification off")
	}
	if got := readFile(t, r, c1, "app.yaml"); got != "v1" {
		t.Fatalf("app.yaml = %q", got)
	}
	if again := mustFetch(t, r); again.Commit != c1 {
		t.Fatalf("unchanged fetch = %s", again.Commit)
	}
	c2 := u.commit(map[string]string{"app.yaml": "v2"}, "second")
	if rev := mustFetch(t, r); rev.Commit != c2 {
		t.Fatalf("after push: %s, want %s", rev.Commit, c2)
	}
	if got := readFile(t, r, c2, "app.yaml"); got != "v2" {
		t.Fatalf("app.yaml = %q", got)
	}
	// The old commit stays readable: the leader may still pin it.
	if got := readFile(t, r, c1, "app.yaml"); got != "v1" {
		t.Fatalf("old app.yaml = %q", got)
	}
	head, err := r.RemoteHead(context.Background())
	if err != nil || head != c2 {
		t.Fatalf("RemoteHead = %s, %v", head, err)
	}

	// Reopening the same Dir keeps the last good commit without the network.
	r.Close()
	r2 := open(t, Config{URL: u.bare, Branch: "main", Dir: r.cfg.Dir})
	if last, ok := r2.Last(); !ok || last.Commit != c2 {
		t.Fatalf("reopened Last = %+v, %v", last, ok)
	}
}

func TestDefaultBranchAndFileURL(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	r := open(t, Config{URL: "file://" + u.bare})
	if rev := mustFetch(t, r); rev.Commit != c1 || rev.Ref != "refs/heads/main" {
		t.Fatalf("rev = %+v", rev)
	}
}

func TestMissingBranch(t *testing.T) {
	u := newUpstream(t)
	u.commit(map[string]string{"a": "1"}, "one")
	r := open(t, Config{URL: u.bare, Branch: "nope"})
	_, err := r.Fetch(context.Background())
	if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), "refs/heads/nope") {
		t.Fatalf("err = %v, want not found naming the branch", err)
	}
}

func TestFollowTag(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	gitRun(t, u.work, "tag", "-a", "-m", "release", "v1")
	gitRun(t, u.work, "tag", "light")
	gitRun(t, u.work, "push", "-q", "origin", "v1", "light")
	u.commit(map[string]string{"a": "2"}, "two")

	for _, tag := range []string{"v1", "light"} {
		t.Run(tag, func(t *testing.T) {
			r := open(t, Config{URL: u.bare, Tag: tag})
			rev := mustFetch(t, r)
			if rev.Commit != c1 || rev.Ref != "refs/tags/"+tag {
				t.Fatalf("rev = %+v, want %s", rev, c1)
			}
			if got := readFile(t, r, rev.Commit, "a"); got != "1" {
				t.Fatalf("a = %q", got)
			}
		})
	}

	// Moving a tag is followed like a force-push.
	r := open(t, Config{URL: u.bare, Tag: "v1"})
	mustFetch(t, r)
	c3 := u.commit(map[string]string{"a": "3"}, "three")
	gitRun(t, u.work, "tag", "-f", "-a", "-m", "moved", "v1")
	gitRun(t, u.work, "push", "-q", "-f", "origin", "v1")
	if rev := mustFetch(t, r); rev.Commit != c3 {
		t.Fatalf("moved tag: %s, want %s", rev.Commit, c3)
	}
}

func TestPinnedCommit(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	u.commit(map[string]string{"a": "2"}, "two")
	gitRun(t, u.work, "checkout", "-q", "-b", "other", c1.String())
	side := u.commit(map[string]string{"a": "side"}, "side")
	gitRun(t, u.work, "checkout", "-q", "main")

	for _, tc := range []struct {
		name, branch string
		commit       plumbing.Hash
		want         string
	}{
		{"old commit on main", "main", c1, "1"},
		{"any branch", "", side, "side"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t, Config{URL: u.bare, Branch: tc.branch, Commit: tc.commit.String()})
			rev := mustFetch(t, r)
			if rev.Commit != tc.commit {
				t.Fatalf("rev = %s, want %s", rev.Commit, tc.commit)
			}
			if got := readFile(t, r, tc.commit, "a"); got != tc.want {
				t.Fatalf("a = %q, want %q", got, tc.want)
			}
		})
	}

	t.Run("not on the named branch", func(t *testing.T) {
		r := open(t, Config{URL: u.bare, Branch: "main", Commit: side.String()})
		_, err := r.Fetch(context.Background())
		if !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), side.String()) {
			t.Fatalf("err = %v", err)
		}
	})
}

func TestSubdirectory(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"deploy/prod/app.yaml": "prod", "deploy/dev/app.yaml": "dev", "README": "x"}, "one")
	r := open(t, Config{URL: u.bare, Path: "./deploy/prod/"})
	mustFetch(t, r)
	if got := readFile(t, r, c1, "app.yaml"); got != "prod" {
		t.Fatalf("app.yaml = %q", got)
	}
	fsys, _ := r.FS(c1)
	if _, err := fsys.Open("README"); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("README outside Path: %v", err)
	}

	missing := open(t, Config{URL: u.bare, Path: "nope"})
	mustFetch(t, missing)
	if _, err := missing.FS(c1); !errors.Is(err, ErrNotFound) || !strings.Contains(err.Error(), `"nope"`) {
		t.Fatalf("FS of missing path: %v", err)
	}
}

func TestForcePushFollowed(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	c2 := u.commit(map[string]string{"a": "2"}, "two")
	r := open(t, Config{URL: u.bare})
	if rev := mustFetch(t, r); rev.Commit != c2 {
		t.Fatal(rev)
	}
	gitRun(t, u.work, "reset", "-q", "--hard", c1.String())
	c3 := u.commit(map[string]string{"a": "rewritten"}, "rewritten")
	if rev := mustFetch(t, r); rev.Commit != c3 {
		t.Fatalf("after force-push: %s, want %s", rev.Commit, c3)
	}
	if got := readFile(t, r, c3, "a"); got != "rewritten" {
		t.Fatalf("a = %q", got)
	}
}

func TestShallowThenFetchOverHTTP(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	u.commit(map[string]string{"a": "2"}, "two")
	c3 := u.commit(map[string]string{"a": "3", "dir/b": "b"}, "three")
	base, _ := serveHTTP(t, u.root, "", "")
	r := open(t, Config{URL: base + "/repo.git", Shallow: true})
	if rev := mustFetch(t, r); rev.Commit != c3 {
		t.Fatal(rev)
	}
	if r.HasCommit(c1) {
		t.Fatal("shallow clone has the first commit")
	}
	shallow, err := r.repo.Storer.Shallow()
	if err != nil || len(shallow) == 0 {
		t.Fatalf("clone is not shallow: %v %v", shallow, err)
	}
	c4 := u.commit(map[string]string{"a": "4"}, "four")
	if rev := mustFetch(t, r); rev.Commit != c4 {
		t.Fatalf("second shallow fetch: %s, want %s", rev.Commit, c4)
	}
	if got := readFile(t, r, c4, "a"); got != "4" {
		t.Fatalf("a = %q", got)
	}
	if got := readFile(t, r, c4, "dir/b"); got != "b" {
		t.Fatalf("dir/b = %q", got)
	}
	// A node told to run an older commit fetches it into the shallow clone.
	if err := r.FetchCommit(context.Background(), c1); err != nil {
		t.Fatalf("FetchCommit: %v", err)
	}
	if got := readFile(t, r, c1, "a"); got != "1" {
		t.Fatalf("a at c1 = %q", got)
	}
	// And the followed ref still fetches afterwards.
	c5 := u.commit(map[string]string{"a": "5"}, "five")
	if rev := mustFetch(t, r); rev.Commit != c5 {
		t.Fatalf("after FetchCommit: %s, want %s", rev.Commit, c5)
	}
}

func TestFetchCommit(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	r := open(t, Config{URL: u.bare})
	if r.HasCommit(c1) {
		t.Fatal("HasCommit before fetch")
	}
	if err := r.FetchCommit(context.Background(), c1); err != nil {
		t.Fatal(err)
	}
	if !r.HasCommit(c1) {
		t.Fatal("HasCommit after FetchCommit")
	}
	bogus := plumbing.NewHash(strings.Repeat("ab", 20))
	if err := r.FetchCommit(context.Background(), bogus); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FetchCommit(bogus) = %v", err)
	}
	if _, err := r.FS(bogus); !errors.Is(err, ErrNotFound) {
		t.Fatalf("FS(bogus) = %v", err)
	}
}

func TestHTTPAuth(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	const user, pass = "alice", "s3cret-password"
	base, _ := serveHTTP(t, u.root, user, pass)
	url := base + "/repo.git"

	r := open(t, Config{URL: url, Auth: Auth{Username: user, Password: pass}})
	if rev := mustFetch(t, r); rev.Commit != c1 {
		t.Fatal(rev)
	}
	// A token is sent as the basic-auth password.
	r = open(t, Config{URL: url, Auth: Auth{Username: user, Token: pass}})
	if rev := mustFetch(t, r); rev.Commit != c1 {
		t.Fatal(rev)
	}

	for _, tc := range []struct {
		name string
		auth Auth
		hint string
	}{
		{"wrong password", Auth{Username: user, Password: "wrong-password"}, "check the username and password"},
		{"wrong token", Auth{Token: "wrong-token-value"}, "check the token"},
		{"none", Auth{}, "the server wants credentials: set a token or a username and password"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := open(t, Config{URL: url, Auth: tc.auth})
			_, err := r.Fetch(context.Background())
			if !errors.Is(err, ErrAuth) {
				t.Fatalf("err = %v, want ErrAuth", err)
			}
			want := "authentication failed for " + url + ": " + tc.hint
			if err.Error() != want {
				t.Fatalf("err = %q\nwant  %q", err, want)
			}
			for _, secret := range []string{tc.auth.Password, tc.auth.Token} {
				if secret != "" && strings.Contains(err.Error(), secret) {
					t.Fatalf("error leaks a secret: %v", err)
				}
			}
		})
	}

	// Credentials in the URL are used by go-git but never printed.
	withUser := strings.Replace(url, "http://", "http://alice:wrong-in-url@", 1)
	r = open(t, Config{URL: withUser})
	_, err := r.Fetch(context.Background())
	if err == nil || strings.Contains(err.Error(), "wrong-in-url") {
		t.Fatalf("err = %v", err)
	}
}

func TestCorruptCloneRecloned(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1", "d/b": "b"}, "one")
	dir := filepath.Join(t.TempDir(), "clone")
	r := open(t, Config{URL: u.bare, Dir: dir})
	mustFetch(t, r)
	r.Close()

	// Deleting every object leaves refs pointing at nothing.
	if err := os.RemoveAll(filepath.Join(dir, "objects")); err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(filepath.Join(dir, "objects", "pack"), 0o755); err != nil {
		t.Fatal(err)
	}
	r = open(t, Config{URL: u.bare, Dir: dir})
	if _, ok := r.Last(); ok {
		t.Fatal("a corrupt clone must not report a last good commit")
	}
	if rev := mustFetch(t, r); rev.Commit != c1 {
		t.Fatal(rev)
	}
	if got := readFile(t, r, c1, "d/b"); got != "b" {
		t.Fatalf("d/b = %q", got)
	}

	// Damage while running: the packs vanish, then the remote moves.
	packs, _ := filepath.Glob(filepath.Join(dir, "objects", "pack", "*"))
	loose, _ := filepath.Glob(filepath.Join(dir, "objects", "??"))
	for _, p := range append(packs, loose...) {
		os.RemoveAll(p)
	}
	c2 := u.commit(map[string]string{"a": "2"}, "two")
	if rev := mustFetch(t, r); rev.Commit != c2 {
		t.Fatalf("after damage: %s, want %s", rev.Commit, c2)
	}
	if got := readFile(t, r, c2, "d/b"); got != "b" {
		t.Fatalf("d/b = %q", got)
	}

	// A broken repository layout is re-created too.
	r.Close()
	if err := os.WriteFile(filepath.Join(dir, "HEAD"), []byte("garbage"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, "config")); err != nil {
		t.Fatal(err)
	}
	r = open(t, Config{URL: u.bare, Dir: dir})
	if rev := mustFetch(t, r); rev.Commit != c2 {
		t.Fatal(rev)
	}
}

func TestDirNotOursIsRefused(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "precious"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err := Open(Config{URL: "/nonexistent", Dir: dir})
	if err == nil || !strings.Contains(err.Error(), "not created by shoal") {
		t.Fatalf("err = %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, "precious")); err != nil {
		t.Fatal("Open touched a directory it does not own")
	}
}

func TestURLChangeRecloned(t *testing.T) {
	a, b := newUpstream(t), newUpstream(t)
	ca := a.commit(map[string]string{"a": "A"}, "a")
	cb := b.commit(map[string]string{"a": "B"}, "b")
	dir := filepath.Join(t.TempDir(), "clone")
	r := open(t, Config{URL: a.bare, Dir: dir})
	if rev := mustFetch(t, r); rev.Commit != ca {
		t.Fatal(rev)
	}
	r.Close()
	r = open(t, Config{URL: b.bare, Dir: dir})
	if _, ok := r.Last(); ok {
		t.Fatal("last good commit carried over from another URL")
	}
	if rev := mustFetch(t, r); rev.Commit != cb {
		t.Fatal(rev)
	}
}

func TestPacksAreMerged(t *testing.T) {
	u := newUpstream(t)
	r := open(t, Config{URL: u.bare})
	r.maxPacks = 3
	var commits []plumbing.Hash
	for i := range 6 {
		commits = append(commits, u.commit(map[string]string{"a": strings.Repeat("x", i+1), "d/b": "b"}, "c"))
		mustFetch(t, r)
	}
	// An FS taken before the repack keeps working after it.
	early, err := r.FS(commits[0])
	if err != nil {
		t.Fatal(err)
	}
	commits = append(commits, u.commit(map[string]string{"a": strings.Repeat("x", 7)}, "c"))
	mustFetch(t, r)
	if b, err := fs.ReadFile(early, "d/b"); err != nil || string(b) != "b" {
		t.Fatalf("FS from before the repack: %q, %v", b, err)
	}
	packs, err := filepath.Glob(filepath.Join(r.cfg.Dir, "objects", "pack", "*.pack"))
	if err != nil || len(packs) > 3 {
		t.Fatalf("%d packs after 6 fetches with maxPacks 3: %v", len(packs), err)
	}
	for i, c := range commits {
		if got := readFile(t, r, c, "a"); got != strings.Repeat("x", i+1) {
			t.Fatalf("commit %d after repack: a = %q", i, got)
		}
	}
}

package agent

import (
	"context"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/go-git/go-git/v5/plumbing"

	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// pinAgent is just enough of an agent to run the pinning step against a
// real repository and a store.
func pinAgent(t *testing.T, repo *testRepo) (*Agent, *state.Store) {
	g, err := gitsource.Open(gitsource.Config{URL: repo.dir, Branch: "main", Dir: filepath.Join(t.TempDir(), "clone")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { g.Close() })
	s, _ := state.NewStore()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	return &Agent{log: log, now: func() time.Time { return t0 }, store: s, src: newSource(g, log), cmds: &fsmApplier{fsm: resultFSM{s.FSM()}}}, s
}

func TestPinStep(t *testing.T) {
	repo := newTestRepo(t)
	a, s := pinAgent(t, repo)
	ctx := context.Background()
	step := func() {
		t.Helper()
		if _, err := a.pinStep(ctx, s.Snapshot()); err != nil {
			t.Fatal(err)
		}
	}

	c1 := repo.commit("one pod", map[string]string{"a.yaml": podYAML("a", "a:1")})
	a.src.refresh(ctx)
	step()
	if err := pinned(s.Snapshot(), c1); err != nil {
		t.Fatal(err)
	}
	before := s.Snapshot().Index()
	step()
	if s.Snapshot().Index() != before {
		t.Error("pinning the pinned commit again wrote something")
	}

	// A Pod the runtime cannot run as written refuses the whole commit.
	// (shareProcessNamespace: valid for manifest, not honoured by the
	// runtime yet. Should the runtime learn it, pick another such field.)
	c2 := repo.commit("a shared process namespace", map[string]string{"a.yaml": podYAML("a", "a:1"), "v.yaml": `apiVersion: v1
kind: Pod
metadata: {name: v, namespace: default}
spec:
  shareProcessNamespace: true
  containers: [{name: app, image: v:1}]
`})
	a.src.refresh(ctx)
	step()
	v := s.Snapshot()
	if revs := v.RevisionsOf(c2); len(revs) != 1 || !revs[0].Refused || !strings.Contains(revs[0].Reason, "spec.shareProcessNamespace") {
		t.Errorf("commit with a shared process namespace: %+v", revs[0])
	}
	if err := pinned(v, c1); err != nil {
		t.Error(err)
	}
	before = v.Index()
	step()
	if s.Snapshot().Index() != before {
		t.Error("a refused commit was judged again")
	}

	c3 := repo.commit("fixed", map[string]string{"a.yaml": podYAML("a", "a:2")})
	a.src.refresh(ctx)
	step()
	if err := pinned(s.Snapshot(), c3); err != nil {
		t.Fatal(err)
	}
	// A lagging watcher offering the older c1 does not pin it back.
	a.src.set(candidate{Commit: c1, Ref: "refs/heads/main"})
	before = s.Snapshot().Index()
	step()
	if err := pinned(s.Snapshot(), c3); err != nil || s.Snapshot().Index() != before {
		t.Errorf("an older commit was pinned back: %v", err)
	}
	// Verification's refusal is recorded with its reason.
	a.src.set(candidate{Commit: strings.Repeat("ab", 20), Ref: "refs/heads/main", Refused: "commit is not signed"})
	step()
	if revs := s.Snapshot().RevisionsOf(strings.Repeat("ab", 20)); len(revs) != 1 || revs[0].Reason != "commit is not signed" {
		t.Errorf("unsigned commit: %+v", revs)
	}
}

func TestSourceFetchesACommitItLacks(t *testing.T) {
	repo := newTestRepo(t)
	c1 := repo.commit("one pod", map[string]string{"a.yaml": podYAML("a", "a:1")})
	c2 := repo.commit("two pods", map[string]string{"a.yaml": podYAML("a", "a:1"), "b.yaml": podYAML("b", "b:1")})
	a, _ := pinAgent(t, repo)
	// This clone never fetched: another node pinned c1, and this node's
	// pod loop asks for a pod at it.
	if a.src.repo.HasCommit(plumbingHash(c1)) {
		t.Fatal("the fresh clone already has the commit")
	}
	p, err := a.src.podFor(context.Background(), &state.Pod{Namespace: "default", Name: "a", Commit: c1})
	if err != nil || p.Spec.Containers[0].Image != "a:1" {
		t.Fatalf("pod a at c1: %v, %v", p, err)
	}
	if _, err := a.src.podFor(context.Background(), &state.Pod{Namespace: "default", Name: "b", Commit: c1}); err == nil {
		t.Error("pod b found at c1, where it does not exist yet")
	}
	l, err := a.src.load(context.Background(), c2)
	if err != nil || l.set.Len() != 2 {
		t.Fatalf("c2: %v, %v", l.set, err)
	}
	if _, err := a.src.load(context.Background(), strings.Repeat("ab", 20)); err == nil {
		t.Error("a commit nobody has loaded without error")
	}
}

func plumbingHash(s string) plumbing.Hash { return plumbing.NewHash(s) }

// A workload whose pod template the runtime cannot run refuses the commit
// as a bare Pod would: its pods would fail on every node, to be replaced
// without end. The manifest layer refuses the same fields today, so the
// set is judged here without its validation errors, as if it had let one
// through.
func TestJudgeWorkloadTemplates(t *testing.T) {
	web := deploymentYAML("web", "web:1", 2)
	bad := strings.Replace(web, "      containers:\n", "      hostPID: true\n      containers:\n", 1)
	if bad == web {
		t.Fatal("the template was not changed")
	}
	for _, tc := range []struct {
		name, text, want string
	}{
		{"runnable", web, ""},
		{"hostPID", bad, "Deployment default/web: pod template: pod default/web: not supported by the runtime yet: spec.hostPID"},
	} {
		fsys := fstest.MapFS{"web.yaml": &fstest.MapFile{Data: []byte(tc.text)}}
		set, _ := manifest.Load(fsys, ".")
		if set == nil || set.Len() != 1 {
			t.Fatalf("%s: set %v", tc.name, set)
		}
		got := judgeCommit(loaded{set: set})
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s: %q, want %q", tc.name, got, tc.want)
		}
	}
}

// TestPinRefusesUndecryptableSecrets: a commit holding a sops Secret the
// leader cannot decrypt (no age key, or not a recipient) is refused as a
// whole, naming the file and the Secret, and the last good commit stays;
// with the key it is pinned.
func TestPinRefusesUndecryptableSecrets(t *testing.T) {
	repo := newTestRepo(t)
	a, s := pinAgent(t, repo)
	ctx := context.Background()
	keyFile, recipient := ageKey(t)
	step := func() {
		t.Helper()
		a.src.refresh(ctx)
		if _, err := a.pinStep(ctx, s.Snapshot()); err != nil {
			t.Fatal(err)
		}
	}
	var err error
	if a.vals, err = newNodeValues(a.src.tree, "", testKey); err != nil { // a leader without an age key
		t.Fatal(err)
	}
	c1 := repo.commit("one pod", map[string]string{"a.yaml": podYAML("a", "a:1")})
	step()
	if err := pinned(s.Snapshot(), c1); err != nil {
		t.Fatal(err)
	}
	secret := encryptedSecret(t, "db.yaml", "db", map[string]string{"password": "hunter2-not-in-errors"}, recipient)
	c2 := repo.commit("a secret", map[string]string{"a.yaml": podYAML("a", "a:1"), "db.yaml": secret})
	step()
	v := s.Snapshot()
	revs := v.RevisionsOf(c2)
	if len(revs) != 1 || !revs[0].Refused || !strings.Contains(revs[0].Reason, "db.yaml") ||
		!strings.Contains(revs[0].Reason, "Secret default/db") || !strings.Contains(revs[0].Reason, "no age key") {
		t.Fatalf("commit with a Secret the leader cannot decrypt: %+v", revs)
	}
	if strings.Contains(revs[0].Reason, "hunter2") {
		t.Errorf("the refusal quotes the value: %s", revs[0].Reason)
	}
	if err := pinned(v, c1); err != nil {
		t.Error(err)
	}
	// With the key, the next commit (the same Secret) is pinned.
	if a.vals, err = newNodeValues(a.src.tree, keyFile, testKey); err != nil {
		t.Fatal(err)
	}
	c3 := repo.commit("another pod", map[string]string{"a.yaml": podYAML("a", "a:1"), "db.yaml": secret, "b.yaml": podYAML("b", "b:1")})
	step()
	if err := pinned(s.Snapshot(), c3); err != nil {
		t.Error(err)
	}
}

package agent

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// candidate is the newest commit this node's watcher saw on the followed
// ref: verified, or refused by verification with a reason.
type candidate struct {
	Commit  string
	Ref     string
	Refused string
}

// loaded is the manifest set at one commit, with its validation problems.
type loaded struct {
	set  *manifest.Set
	errs manifest.ErrorList
}

// source is this node's clone of the repository: the watcher's newest
// commit for the leader's pinning loop, and the objects at any commit for
// the leader's controllers and this node's pod loop.
type source struct {
	repo *gitsource.Repo
	log  *slog.Logger

	mu      sync.Mutex
	latest  candidate
	changed chan struct{}
	cache   map[string]loaded
	order   []string // cache keys, oldest first
}

const setCacheSize = 4

func newSource(repo *gitsource.Repo, log *slog.Logger) *source {
	s := &source{repo: repo, log: log, changed: make(chan struct{}), cache: map[string]loaded{}}
	if rev, ok := repo.Last(); ok {
		s.latest = candidate{Commit: rev.Commit.String(), Ref: rev.Ref}
	}
	return s
}

// watch runs the gitsource watcher until ctx is done.
func (s *source) watch(ctx context.Context, opts gitsource.WatchOptions) {
	events := make(chan gitsource.Event)
	w := gitsource.NewWatcher(s.repo, opts)
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = w.Run(ctx, events) // returns ctx.Err()
	}()
	for {
		select {
		case <-done:
			return
		case ev := <-events:
			var refused *gitsource.RefusedError
			switch {
			case ev.Err == nil:
				s.set(candidate{Commit: ev.Revision.Commit.String(), Ref: ev.Revision.Ref})
				s.log.Info("git: new commit", "commit", ev.Revision.Commit.String(), "message", ev.Revision.Message)
			case errors.As(ev.Err, &refused):
				s.set(candidate{Commit: refused.Commit.String(), Ref: ev.Revision.Ref, Refused: refused.Reason})
				s.log.Warn("git: commit failed verification", "commit", refused.Commit.String(), "reason", refused.Reason)
			default:
				s.log.Warn("git: poll failed", "err", ev.Err)
			}
		}
	}
}

// refresh fetches now, so that a node that just became the leader judges
// the remote's current head rather than what its watcher saw last.
func (s *source) refresh(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	rev, err := s.repo.Fetch(ctx)
	var refused *gitsource.RefusedError
	switch {
	case err == nil:
		s.set(candidate{Commit: rev.Commit.String(), Ref: rev.Ref})
	case errors.As(err, &refused):
		s.set(candidate{Commit: refused.Commit.String(), Ref: rev.Ref, Refused: refused.Reason})
	default:
		s.log.Warn("git: fetch on gaining leadership failed; judging the last commit seen", "err", err)
	}
}

func (s *source) set(c candidate) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c == s.latest {
		return
	}
	s.latest = c
	close(s.changed)
	s.changed = make(chan struct{})
}

// newest returns the newest candidate and a channel closed when it changes.
func (s *source) newest() (candidate, <-chan struct{}) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.latest, s.changed
}

// load returns the objects at commit, fetching the commit first when this
// clone lacks it.
func (s *source) load(ctx context.Context, commit string) (loaded, error) {
	s.mu.Lock()
	l, ok := s.cache[commit]
	s.mu.Unlock()
	if ok {
		return l, nil
	}
	h := plumbing.NewHash(commit)
	if h.IsZero() || h.String() != commit {
		return loaded{}, fmt.Errorf("commit %q is not a full hash", commit)
	}
	if !s.repo.HasCommit(h) {
		s.log.Info("git: fetching a commit this clone lacks", "commit", commit)
		if err := s.repo.FetchCommit(ctx, h); err != nil {
			return loaded{}, fmt.Errorf("fetch commit %s: %w", commit, err)
		}
	}
	fsys, err := s.repo.FS(h)
	if err != nil {
		return loaded{}, fmt.Errorf("read commit %s: %w", commit, err)
	}
	set, errs := manifest.Load(fsys, ".")
	l = loaded{set: set, errs: errs}
	s.mu.Lock()
	if _, ok := s.cache[commit]; !ok {
		s.cache[commit] = l
		s.order = append(s.order, commit)
		if len(s.order) > setCacheSize {
			delete(s.cache, s.order[0])
			s.order = s.order[1:]
		}
	}
	s.mu.Unlock()
	return l, nil
}

// podFor returns the Pod a record runs, read at the record's commit (see
// podManifest).
func (s *source) podFor(ctx context.Context, rec *state.Pod) (*corev1.Pod, error) {
	l, err := s.load(ctx, rec.Commit)
	if err != nil {
		return nil, err
	}
	return podManifest(l.set, rec)
}

// judgeCommit says why a commit must be refused, or "" when it can be
// pinned: any validation problem refuses the whole commit, and so does a
// bare Pod the runtime cannot run as written.
func judgeCommit(l loaded) string {
	if len(l.errs) > 0 {
		msgs := make([]string, 0, len(l.errs))
		for _, e := range l.errs {
			msgs = append(msgs, e.Error())
		}
		return fmt.Sprintf("%d problem(s): %s", len(l.errs), strings.Join(msgs, "; "))
	}
	if l.set == nil {
		return "no objects could be read"
	}
	var msgs []string
	opts := runtime.PodOptions{NodeName: "validation"}
	for _, p := range barePods(l.set) {
		if _, err := runtimeSpec(p, "validation", opts); err != nil {
			msgs = append(msgs, fmt.Sprintf("Pod %s/%s: %v", p.Namespace, p.Name, err))
		}
	}
	// A workload's template is checked the same way: its pods would fail on
	// their node, and a controller would replace them without end.
	for _, o := range l.set.Objects() {
		if !ownerKinds[o.Key.Kind] {
			continue
		}
		t, err := podTemplate(o)
		if err == nil {
			p := templatePod(t, o.Key.Namespace, o.Key.Name, "validation", t.Labels)
			if sts, ok := o.Obj.(*appsv1.StatefulSet); ok {
				claimVolumes(&p.Spec, sts, o.Key.Name+"-0") // as its pods get them
			}
			_, err = runtimeSpec(p, "validation", opts)
		}
		if err != nil {
			msgs = append(msgs, fmt.Sprintf("%s %s/%s: pod template: %v", o.Key.Kind, o.Key.Namespace, o.Key.Name, err))
		}
	}
	if len(msgs) > 0 {
		return fmt.Sprintf("%d pod(s) cannot run: %s", len(msgs), strings.Join(msgs, "; "))
	}
	return ""
}

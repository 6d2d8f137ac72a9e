package gitsource

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/go-git/go-billy/v5/osfs"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/cache"
	"github.com/go-git/go-git/v5/plumbing/object"
	"github.com/go-git/go-git/v5/plumbing/storer"
	"github.com/go-git/go-git/v5/plumbing/transport"
	"github.com/go-git/go-git/v5/storage/filesystem"
	"github.com/go-git/go-git/v5/storage/memory"
)

const (
	remoteName = "origin"
	// fetchedRef holds the followed ref as last fetched, verified or not.
	fetchedRef plumbing.ReferenceName = "refs/shoal/fetched"
	// goodRef holds the last commit that passed verification; it survives
	// restarts so a refused commit never becomes "last good" by accident.
	goodRef plumbing.ReferenceName = "refs/shoal/good"
	// markerFile marks a Dir as created by shoal, and holds the URL it
	// clones; only such a Dir is ever deleted.
	markerFile = "shoal-gitsource"
	// defaultMaxPacks is how many pack files a full clone may accumulate
	// (one per fetch) before they are merged: go-git looks an object up in
	// every pack index in turn.
	defaultMaxPacks = 256
	// unshallowDepth is what `git fetch --unshallow` asks for.
	unshallowDepth = 1<<31 - 1
)

// ErrNotFound is wrapped when the followed ref or a wanted commit does not
// exist on the remote or in the local clone.
var ErrNotFound = errors.New("not found")

// Revision describes a commit that passed verification.
type Revision struct {
	Commit plumbing.Hash
	// Ref is the followed ref ("refs/heads/main", "refs/tags/v1") or, for
	// a pinned commit, the commit hash.
	Ref string
	// Message is the first line of the commit message.
	Message string
	// Author is "Name <email>"; Time is the committer time.
	Author string
	Time   time.Time
	// Signed is true when the signature was verified against the keyring
	// (always false with verification off); SignedBy names the key.
	Signed   bool
	SignedBy string
}

// RefusedError is returned when the followed commit fails verification.
// The Repo keeps serving the last good commit.
type RefusedError struct {
	Commit plumbing.Hash
	Reason string
}

func (e *RefusedError) Error() string {
	return fmt.Sprintf("commit %s refused: %s", e.Commit, e.Reason)
}

// Repo is a local clone following one ref of one remote, or, from
// OpenLocal, an existing repository used read-only. Its methods are safe for
// concurrent use.
type Repo struct {
	cfg      Config
	path     string // cfg.Path cleaned, "." for the root
	auth     transport.AuthMethod
	keyring  string // armored OpenPGP keyring, with VerifyHead
	log      *slog.Logger
	local    bool // from OpenLocal: no remote, no fetching
	maxPacks int

	mu       sync.Mutex // guards repo and everything below
	repo     *git.Repository
	observed plumbing.Hash // raw remote hash of the last fetch (may be a tag object)
	refused  error         // why observed was refused, if it was
	last     Revision      // last good revision, zero if none yet
}

// Open prepares the local clone described by cfg: it creates Dir, reuses
// it, or deletes and re-creates it when it is corrupt or cloned from
// another URL, and loads the last verified commit from it (re-verifying it
// against the current keyring). It reads key files but never contacts the
// remote: the first Fetch clones.
func Open(cfg Config) (*Repo, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	u, err := normaliseURL(cfg.URL)
	if err != nil {
		return nil, fmt.Errorf("gitsource: URL %s: %w", redactURL(cfg.URL), err)
	}
	cfg.URL = u
	p, _ := cleanPath(cfg.Path)
	r := &Repo{cfg: cfg, path: p, log: cfg.Logger, maxPacks: defaultMaxPacks}
	if r.log == nil {
		r.log = slog.New(slog.DiscardHandler)
	}
	r.log = r.log.With("repo", redactURL(cfg.URL))
	if r.auth, err = authMethod(cfg.URL, cfg.Auth); err != nil {
		return nil, r.scrub(fmt.Errorf("gitsource: %w", err))
	}
	if cfg.Verify.Mode == VerifyHead {
		if r.keyring, err = loadKeyring(cfg.Verify.KeyringFile); err != nil {
			return nil, err
		}
	}
	if err := r.openStorage(); err != nil {
		return nil, err
	}
	return r, nil
}

// OpenLocal opens an existing repository, with a working tree or bare, in
// dir or a parent of dir, for reading only (`shoal plan`). Fetch and
// FetchCommit fail on it; FS is rooted at the repository root.
func OpenLocal(dir string) (*Repo, error) {
	repo, err := git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{DetectDotGit: true, EnableDotGitCommonDir: true})
	if errors.Is(err, git.ErrRepositoryNotExists) {
		// DetectDotGit only looks for .git directories; dir may be bare.
		repo, err = git.PlainOpenWithOptions(dir, &git.PlainOpenOptions{EnableDotGitCommonDir: true})
	}
	if err != nil {
		return nil, fmt.Errorf("gitsource: open repository %s: %w", dir, err)
	}
	return &Repo{cfg: Config{URL: dir}, path: ".", local: true, repo: repo, log: slog.New(slog.DiscardHandler)}, nil
}

// Last returns the last good revision and whether there is one.
func (r *Repo) Last() (Revision, bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.last, !r.last.Commit.IsZero()
}

// openStorage implements Open's handling of Dir.
func (r *Repo) openStorage() error {
	dir := r.cfg.Dir
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) || err == nil && len(entries) == 0 {
		return r.initStorage()
	}
	if err != nil {
		return fmt.Errorf("gitsource: %w", err)
	}
	marker, err := os.ReadFile(filepath.Join(dir, markerFile))
	if err != nil {
		return fmt.Errorf("gitsource: %s is not empty and was not created by shoal (no %s file): use an empty or new directory for Dir", dir, markerFile)
	}
	if strings.TrimSpace(string(marker)) != r.cfg.URL {
		r.log.Info("clone was made from another URL, re-cloning", "dir", dir)
		return r.reclone()
	}
	repo, err := git.Open(cloneStorage(dir), nil)
	if err == nil {
		r.repo = repo
		if _, err = repo.Remote(remoteName); err == nil {
			err = r.loadGood()
		}
	}
	if err != nil {
		r.log.Warn("local clone is corrupt, re-cloning", "dir", dir, "err", err)
		return r.reclone()
	}
	return nil
}

// cloneStorage opens the bare clone's object store. Pack files stay open
// (up to a bound) between reads: without that go-git opens and closes a
// pack for every object it reads.
func cloneStorage(dir string) *filesystem.Storage {
	return filesystem.NewStorageWithOptions(osfs.New(dir), cache.NewObjectLRUDefault(), filesystem.Options{MaxOpenDescriptors: 64})
}

func (r *Repo) initStorage() error {
	if err := os.MkdirAll(r.cfg.Dir, 0o755); err != nil {
		return fmt.Errorf("gitsource: %w", err)
	}
	repo, err := git.Init(cloneStorage(r.cfg.Dir), nil)
	if err != nil {
		return fmt.Errorf("gitsource: init %s: %w", r.cfg.Dir, err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: remoteName, URLs: []string{r.cfg.URL}}); err != nil {
		return fmt.Errorf("gitsource: init %s: %w", r.cfg.Dir, err)
	}
	if err := os.WriteFile(filepath.Join(r.cfg.Dir, markerFile), []byte(r.cfg.URL+"\n"), 0o644); err != nil {
		return fmt.Errorf("gitsource: %w", err)
	}
	r.repo = repo
	r.observed, r.refused = plumbing.ZeroHash, nil
	return nil
}

// reclone deletes Dir (known to be ours) and starts an empty clone. The
// in-memory last good revision is kept for reporting; callers fetch again.
func (r *Repo) reclone() error {
	if r.repo != nil {
		if c, ok := r.repo.Storer.(io.Closer); ok {
			c.Close()
		}
	}
	if err := os.RemoveAll(r.cfg.Dir); err != nil {
		return fmt.Errorf("gitsource: remove corrupt clone %s: %w", r.cfg.Dir, err)
	}
	return r.initStorage()
}

// loadGood reads and re-verifies goodRef. A missing ref is not an error;
// missing objects are.
func (r *Repo) loadGood() error {
	ref, err := r.repo.Reference(goodRef, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := r.repo.CommitObject(ref.Hash())
	if err != nil {
		return err
	}
	if err := r.checkObjects(c, nil); err != nil {
		return err
	}
	rev, err := r.verify(c)
	if err != nil {
		r.log.Warn("last good commit no longer passes verification", "commit", c.Hash.String(), "err", err)
		return nil
	}
	r.last = rev
	return nil
}

// RemoteHead asks the remote which commit (or annotated tag object) the
// followed ref points at, transferring only the ref advertisement. For a
// pinned Commit it returns the commit without contacting the remote.
func (r *Repo) RemoteHead(ctx context.Context) (plumbing.Hash, error) {
	if r.local {
		return plumbing.ZeroHash, errors.New("gitsource: repository opened with OpenLocal has no remote")
	}
	if r.cfg.Commit != "" {
		return plumbing.NewHash(r.cfg.Commit), nil
	}
	target := r.cfg.target()
	rem := git.NewRemote(memory.NewStorage(), &config.RemoteConfig{Name: remoteName, URLs: []string{r.cfg.URL}})
	refs, err := rem.ListContext(ctx, &git.ListOptions{Auth: r.auth, PeelingOption: git.IgnorePeeled})
	if err != nil {
		return plumbing.ZeroHash, r.classify("list refs of", err)
	}
	for _, ref := range refs {
		if ref.Name() == target && ref.Type() == plumbing.HashReference {
			return ref.Hash(), nil
		}
	}
	return plumbing.ZeroHash, fmt.Errorf("gitsource: %s: %s %w on the remote", redactURL(r.cfg.URL), target, ErrNotFound)
}

// Fetch brings the followed ref up to date and returns its commit once
// verified. It asks for the remote head first and transfers objects only
// when it moved since the last Fetch. Force-pushes are followed. On any
// error it returns the last good Revision (zero if none) with the error: a
// *RefusedError when verification failed, an error wrapping ErrAuth when
// credentials were rejected, otherwise a transport error worth retrying. A
// corrupt clone is re-created and the fetch retried once.
func (r *Repo) Fetch(ctx context.Context) (Revision, error) {
	if r.local {
		return Revision{}, errors.New("gitsource: repository opened with OpenLocal cannot fetch")
	}
	if r.cfg.Commit != "" {
		return r.fetchPinned(ctx)
	}
	head, err := r.RemoteHead(ctx)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		return r.last, err
	}
	if head == r.observed {
		if r.refused != nil {
			return r.last, r.refused
		}
		if !r.last.Commit.IsZero() {
			r.log.Debug("unchanged", "ref", string(r.cfg.target()), "commit", r.last.Commit.String())
			return r.last, nil
		}
	}
	return r.syncLocked(ctx, func() (plumbing.Hash, error) {
		depth := 0
		if r.cfg.Shallow {
			depth = 1
		}
		spec := config.RefSpec("+" + string(r.cfg.target()) + ":" + string(fetchedRef))
		if err := r.fetchLocked(ctx, []config.RefSpec{spec}, depth); err != nil {
			return plumbing.ZeroHash, err
		}
		ref, err := r.repo.Reference(fetchedRef, false)
		if err != nil {
			return plumbing.ZeroHash, err
		}
		return ref.Hash(), nil
	})
}

// fetchPinned makes sure the pinned commit is present and verified.
func (r *Repo) fetchPinned(ctx context.Context) (Revision, error) {
	h := plumbing.NewHash(r.cfg.Commit)
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.last.Commit == h {
		return r.last, nil
	}
	if r.observed == h && r.refused != nil {
		return r.last, r.refused
	}
	return r.syncLocked(ctx, func() (plumbing.Hash, error) {
		return h, r.fetchCommitLocked(ctx, h)
	})
}

// syncLocked runs fetch, which returns the raw hash the followed ref now
// has locally, then checks and verifies it. When fetching or checking
// fails and the clone turns out to be corrupt, it re-clones and tries once
// more.
func (r *Repo) syncLocked(ctx context.Context, fetch func() (plumbing.Hash, error)) (Revision, error) {
	for attempt := 0; ; attempt++ {
		raw, err := fetch()
		if err != nil {
			// A transfer error is the remote's or the network's fault
			// unless the clone itself has become unreadable.
			if attempt > 0 || errors.Is(err, ErrAuth) || ctx.Err() != nil || r.healthLocked() == nil {
				return r.last, err
			}
		} else {
			// After a successful transfer every object must be here;
			// anything missing means local damage.
			c, err2 := r.peelCommit(raw)
			if err2 == nil {
				err2 = r.checkObjects(c, r.lastTreeLocked())
			}
			if err2 == nil {
				return r.acceptLocked(raw, c)
			}
			if attempt > 0 {
				return r.last, err2
			}
			err = err2
		}
		r.log.Warn("local clone is corrupt, re-cloning", "dir", r.cfg.Dir, "err", err)
		if rerr := r.reclone(); rerr != nil {
			return r.last, rerr
		}
	}
}

// healthLocked checks that the refs and the last good commit are readable.
func (r *Repo) healthLocked() error {
	if _, err := r.repo.References(); err != nil {
		return err
	}
	if _, err := r.repo.Remote(remoteName); err != nil {
		return err
	}
	ref, err := r.repo.Reference(goodRef, true)
	if errors.Is(err, plumbing.ErrReferenceNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	c, err := r.repo.CommitObject(ref.Hash())
	if err != nil {
		return err
	}
	_, err = c.Tree()
	return err
}

// fetchLocked is the one fetch path: every transfer goes through it with
// narrow refspecs, no tag following, and forced updates.
func (r *Repo) fetchLocked(ctx context.Context, specs []config.RefSpec, depth int) error {
	start := time.Now()
	err := r.repo.FetchContext(ctx, &git.FetchOptions{
		RemoteName: remoteName,
		RemoteURL:  r.cfg.URL,
		RefSpecs:   specs,
		Depth:      depth,
		Auth:       r.auth,
		Tags:       git.NoTags,
		Force:      true,
	})
	if errors.Is(err, git.NoErrAlreadyUpToDate) {
		err = nil
	}
	if err != nil {
		return r.classify("fetch", err)
	}
	r.log.Debug("transferred", "refspecs", fmt.Sprint(specs), "depth", depth, "took", time.Since(start))
	return nil
}

// acceptLocked verifies c (the commit raw peels to) and, if it passes,
// records it as the last good revision.
func (r *Repo) acceptLocked(raw plumbing.Hash, c *object.Commit) (Revision, error) {
	r.observed = raw
	rev, err := r.verify(c)
	if err != nil {
		r.refused = err
		r.log.Warn("refused", "ref", r.refString(), "commit", c.Hash.String(), "reason", err.(*RefusedError).Reason, "keeping", r.last.Commit.String())
		return r.last, err
	}
	r.refused = nil
	if err := r.repo.Storer.SetReference(plumbing.NewHashReference(goodRef, c.Hash)); err != nil {
		return r.last, fmt.Errorf("gitsource: record good commit: %w", err)
	}
	if rev.Commit != r.last.Commit {
		r.log.Info("fetched", "ref", r.refString(), "commit", c.Hash.String(), "previous", r.last.Commit.String(), "signed_by", rev.SignedBy)
	}
	r.last = rev
	r.maybeRepackLocked()
	return rev, nil
}

// maybeRepackLocked merges packs once there are more than maxPacks. go-git
// repacks by walking history from every ref, which a shallow clone cannot
// do, so shallow clones are left alone (each fetch there is small anyway).
// Failing to repack only costs speed, so it is logged, not returned.
func (r *Repo) maybeRepackLocked() {
	if shallow, err := r.repo.Storer.Shallow(); err != nil || len(shallow) > 0 {
		return
	}
	pos, ok := r.repo.Storer.(storer.PackedObjectStorer)
	if !ok {
		return
	}
	packs, err := pos.ObjectPacks()
	if err != nil || len(packs) <= r.maxPacks {
		return
	}
	start := time.Now()
	if err := r.repo.RepackObjects(&git.RepackConfig{}); err != nil {
		r.log.Warn("repack failed", "packs", len(packs), "err", err)
		return
	}
	// go-git's storage keeps the old pack list cached: reopen.
	repo, err := git.Open(cloneStorage(r.cfg.Dir), nil)
	if err != nil {
		r.log.Warn("reopen after repack failed", "err", err)
		return
	}
	if c, ok := r.repo.Storer.(io.Closer); ok {
		c.Close()
	}
	r.repo = repo
	r.log.Info("repacked", "packs", len(packs), "took", time.Since(start))
}

func (r *Repo) refString() string {
	if t := r.cfg.target(); t != "" {
		return string(t)
	}
	return r.cfg.Commit
}

func (r *Repo) lastTreeLocked() *object.Tree {
	if r.last.Commit.IsZero() {
		return nil
	}
	c, err := r.repo.CommitObject(r.last.Commit)
	if err != nil {
		return nil
	}
	t, err := r.subtree(c)
	if err != nil {
		return nil
	}
	return t
}

// peelCommit follows annotated tags to the commit they name.
func (r *Repo) peelCommit(h plumbing.Hash) (*object.Commit, error) {
	for range 10 {
		obj, err := r.repo.Object(plumbing.AnyObject, h)
		if err != nil {
			return nil, fmt.Errorf("gitsource: read object %s: %w", h, err)
		}
		switch o := obj.(type) {
		case *object.Commit:
			return o, nil
		case *object.Tag:
			h = o.Target
		default:
			return nil, fmt.Errorf("gitsource: %s is a %s, not a commit", h, obj.Type())
		}
	}
	return nil, fmt.Errorf("gitsource: tag chain at %s is too long", h)
}

// subtree returns the tree at Path in commit c.
func (r *Repo) subtree(c *object.Commit) (*object.Tree, error) {
	t, err := c.Tree()
	if err != nil {
		return nil, err
	}
	if r.path == "." {
		return t, nil
	}
	sub, err := t.Tree(r.path)
	if err != nil {
		return nil, fmt.Errorf("gitsource: path %q at commit %s: %w", r.path, c.Hash, ErrNotFound)
	}
	return sub, nil
}

// checkObjects makes sure every tree and blob under Path at c is present,
// skipping subtrees identical to prev (already checked when it was
// accepted), so the cost follows the size of the change.
func (r *Repo) checkObjects(c *object.Commit, prev *object.Tree) error {
	t, err := r.subtree(c)
	if errors.Is(err, ErrNotFound) {
		return nil // FS reports a missing Path; the commit itself is fine
	}
	if err != nil {
		return fmt.Errorf("gitsource: commit %s: %w", c.Hash, err)
	}
	if err := r.checkTree(t, prev); err != nil {
		return fmt.Errorf("gitsource: commit %s: %w", c.Hash, err)
	}
	return nil
}

func (r *Repo) checkTree(t, prev *object.Tree) error {
	if prev != nil && prev.Hash == t.Hash {
		return nil
	}
	old := map[string]plumbing.Hash{}
	if prev != nil {
		for _, e := range prev.Entries {
			old[e.Name] = e.Hash
		}
	}
	for _, e := range t.Entries {
		if h, ok := old[e.Name]; ok && h == e.Hash {
			continue
		}
		switch {
		case e.Mode == 0o160000: // submodule: the commit lives elsewhere
		case !e.Mode.IsFile():
			sub, err := object.GetTree(r.repo.Storer, e.Hash)
			if err != nil {
				return fmt.Errorf("tree %s: %w", e.Name, err)
			}
			var prevSub *object.Tree
			if prev != nil {
				if pe, err := prev.FindEntry(e.Name); err == nil && !pe.Mode.IsFile() {
					prevSub, _ = object.GetTree(r.repo.Storer, pe.Hash)
				}
			}
			if err := r.checkTree(sub, prevSub); err != nil {
				return err
			}
		default:
			if err := r.repo.Storer.HasEncodedObject(e.Hash); err != nil {
				return fmt.Errorf("blob %s: %w", e.Name, err)
			}
		}
	}
	return nil
}

// HasCommit reports whether commit h is in the local clone.
func (r *Repo) HasCommit(h plumbing.Hash) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.hasLocked(h)
}

func (r *Repo) hasLocked(h plumbing.Hash) bool {
	_, err := r.repo.CommitObject(h)
	return err == nil
}

// FetchCommit makes sure commit h is in the local clone, fetching it if
// needed: by hash when the server allows it, otherwise by fetching the
// followed branch (or, with a pinned commit and no branch, all branches and
// tags) with full history. It does not verify h or change what Fetch
// follows; a node told to act on a commit someone else verified calls it.
func (r *Repo) FetchCommit(ctx context.Context, h plumbing.Hash) error {
	if r.local {
		return errors.New("gitsource: repository opened with OpenLocal cannot fetch")
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.hasLocked(h) {
		return nil
	}
	return r.fetchCommitLocked(ctx, h)
}

func (r *Repo) fetchCommitLocked(ctx context.Context, h plumbing.Hash) error {
	if r.hasLocked(h) {
		return nil
	}
	depth := 0
	if shallow, _ := r.repo.Storer.Shallow(); len(shallow) > 0 {
		depth = unshallowDepth
	}
	byHash := config.RefSpec("+" + h.String() + ":refs/shoal/commits/" + h.String())
	err := r.fetchLocked(ctx, []config.RefSpec{byHash}, min(depth, 1))
	if err != nil && !errors.Is(err, git.ErrExactSHA1NotSupported) {
		return err
	}
	if err != nil || !r.hasLocked(h) {
		var specs []config.RefSpec
		if t := r.cfg.target(); t != "" {
			specs = []config.RefSpec{config.RefSpec("+" + string(t) + ":refs/shoal/history")}
		} else {
			specs = []config.RefSpec{"+refs/heads/*:refs/shoal/all/heads/*", "+refs/tags/*:refs/shoal/all/tags/*"}
		}
		if err := r.fetchLocked(ctx, specs, depth); err != nil {
			return err
		}
	}
	if !r.hasLocked(h) {
		where := "any branch or tag"
		if t := r.cfg.target(); t != "" {
			where = string(t)
		}
		return fmt.Errorf("gitsource: commit %s %w on %s (not reachable from %s)", h, ErrNotFound, redactURL(r.cfg.URL), where)
	}
	return nil
}

// Resolve turns a revision string into a commit hash: a branch, a tag, a
// full or short hash, HEAD, or an expression such as "HEAD~1" or "main^".
func (r *Repo) Resolve(rev string) (plumbing.Hash, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	h, err := r.repo.ResolveRevision(plumbing.Revision(rev))
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitsource: resolve %q: %w", rev, err)
	}
	c, err := r.peelCommit(*h)
	if err != nil {
		return plumbing.ZeroHash, fmt.Errorf("gitsource: resolve %q: %w", rev, err)
	}
	return c.Hash, nil
}

// Close releases open pack files.
func (r *Repo) Close() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if c, ok := r.repo.Storer.(io.Closer); ok {
		return c.Close()
	}
	return nil
}

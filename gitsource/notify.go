package gitsource

import (
	"context"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/fsnotify/fsnotify"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// isLocalSource reports whether the remote is a repository on this machine.
func (r *Repo) isLocalSource() bool {
	ep, err := transport.NewEndpoint(r.cfg.URL)
	return err == nil && ep.Protocol == "file" && !r.local
}

// sourceGitDir finds the git directory of the local source repository: the
// .git directory of a working tree, or the repository itself when bare.
func (r *Repo) sourceGitDir() (string, error) {
	ep, err := transport.NewEndpoint(r.cfg.URL)
	if err != nil {
		return "", err
	}
	dir := ep.Path
	if fi, err := os.Stat(filepath.Join(dir, ".git")); err == nil && fi.IsDir() {
		return filepath.Join(dir, ".git"), nil
	}
	if _, err := os.Stat(filepath.Join(dir, "HEAD")); err != nil {
		return "", err
	}
	return dir, nil
}

// watchLocal triggers a poll whenever a ref of the local source changes:
// HEAD, packed-refs, or anything under refs/heads and refs/tags. Git
// updates refs by renaming a .lock file into place, so the rename's target
// is what we see; lock files themselves are ignored. The returned function
// stops the watch.
func (w *Watcher) watchLocal(ctx context.Context) (func(), error) {
	gitDir, err := w.repo.sourceGitDir()
	if err != nil {
		return nil, err
	}
	fw, err := fsnotify.NewWatcher()
	if err != nil {
		return nil, err
	}
	add := func(dir string) error {
		return filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
			if err != nil || !d.IsDir() {
				return err
			}
			return fw.Add(p)
		})
	}
	if err := fw.Add(gitDir); err != nil { // HEAD and packed-refs; not recursive
		fw.Close()
		return nil, err
	}
	for _, dir := range []string{filepath.Join(gitDir, "refs", "heads"), filepath.Join(gitDir, "refs", "tags")} {
		if err := add(dir); err != nil && !os.IsNotExist(err) {
			fw.Close()
			return nil, err
		}
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case err, ok := <-fw.Errors:
				if !ok {
					return
				}
				w.log.Warn("fsnotify", "err", err)
			case ev, ok := <-fw.Events:
				if !ok {
					return
				}
				rel, err := filepath.Rel(gitDir, ev.Name)
				if err != nil || strings.HasSuffix(rel, ".lock") {
					continue
				}
				rel = filepath.ToSlash(rel)
				if ev.Has(fsnotify.Create) {
					// A new ref namespace directory (a branch "team/x").
					if fi, err := os.Stat(ev.Name); err == nil && fi.IsDir() && strings.HasPrefix(rel, "refs/") {
						_ = add(ev.Name)
					}
				}
				if rel == "HEAD" || rel == "packed-refs" || strings.HasPrefix(rel, "refs/heads/") || strings.HasPrefix(rel, "refs/tags/") {
					w.log.Debug("local ref changed", "file", rel)
					w.Trigger()
				}
			}
		}
	}()
	return func() { fw.Close(); <-done }, nil
}

// Package gitsource owns everything shoal does with Git: cloning and
// fetching the configured repository with go-git, cheap polling of the
// remote head, the webhook and fsnotify triggers that cause an immediate
// poll, commit signature verification, and reading the tree at a commit as
// an fs.FS straight from the object store (there is never a checkout).
//
// It knows nothing about pods, nodes or manifests.
//
// The caller's order of work:
//
//  1. Build a Config and call Open. Open prepares the local clone in
//     Config.Dir (creating it, reusing it, or re-creating it when it is
//     corrupt) and loads the last verified commit from it. Open never
//     contacts the remote, so a node can start while the remote is down.
//  2. Call Fetch (or run a Watcher, which calls Fetch on an interval, on
//     Trigger, on webhooks and, for local repositories, on fsnotify events).
//     Fetch asks the remote for the followed ref first and transfers objects
//     only when it moved; it returns the followed commit only after it has
//     been verified. On any failure it returns the last good Revision with
//     the error, so the last good commit keeps running.
//  3. Read the tree at a commit with FS. A node told to act on a commit it
//     lacks calls FetchCommit first.
//
// `shoal plan` uses OpenLocal on an existing repository instead, and
// Resolve to turn revision strings such as "HEAD~1" into commits.
//
// A Repo serialises all access to its object store: go-git's storage is not
// safe for concurrent use, so FS reads wait while a fetch is writing.
package gitsource

package gitsource

import (
	"cmp"
	"context"
	"errors"
	"hash/fnv"
	"log/slog"
	"math/rand/v2"
	"time"
)

// Event is one outcome of a poll worth telling the caller about: a new
// verified revision, or an error (Revision then holds the last good one).
type Event struct {
	Revision Revision
	Err      error
}

// Backoff computes retry delays: Base doubled per consecutive failure,
// capped at Max, then jittered down by up to half so that many nodes do not
// retry in step. Jitter comes from a PCG generator seeded with Seed, so a
// run can be replayed.
type Backoff struct {
	Base, Max time.Duration
	Seed      uint64
}

// Backoff used when WatchOptions.Backoff is zero.
const (
	defaultBackoffBase = time.Second
	defaultBackoffMax  = 5 * time.Minute
)

// delays returns a function giving the delay after the n-th consecutive
// failure (n >= 1).
func (b Backoff) delays() func(n int) time.Duration {
	rng := rand.New(rand.NewPCG(b.Seed, b.Seed^0x9e3779b97f4a7c15))
	return func(n int) time.Duration {
		d := b.Base
		for i := 1; i < n && d < b.Max; i++ {
			d *= 2
		}
		d = min(d, b.Max)
		half := d / 2
		if half <= 0 {
			return d
		}
		return half + time.Duration(rng.Int64N(int64(half)+1))
	}
}

// DefaultPollTimeout is used when WatchOptions.Timeout is zero.
const DefaultPollTimeout = 5 * time.Minute

// WatchOptions tune a Watcher; the zero value is usable.
type WatchOptions struct {
	// Interval between polls; the Repo's Config.PollInterval if zero.
	Interval time.Duration
	// Backoff after failed polls; if zero, 1s doubling up to 5m, seeded
	// from a hash of the URL.
	Backoff Backoff
	// Timeout bounds one poll (ref listing plus transfer), so a server
	// that accepts connections but never answers cannot stall the loop;
	// DefaultPollTimeout if zero.
	Timeout time.Duration
	// After replaces time.After, so tests control time.
	After func(time.Duration) <-chan time.Time
	// NoLocalNotify turns off the fsnotify trigger for local repositories.
	NoLocalNotify bool
}

// Watcher runs the poll loop for one Repo: poll at once, then on every
// interval, on Trigger (webhooks, fsnotify), and after failures with
// exponential backoff. A Watcher runs once.
type Watcher struct {
	repo    *Repo
	opts    WatchOptions
	log     *slog.Logger
	trigger chan struct{}
	// lastSent is only touched by Run.
	lastSent Revision
}

// NewWatcher returns a Watcher for r; start it with Run.
func NewWatcher(r *Repo, opts WatchOptions) *Watcher {
	if opts.Interval <= 0 {
		opts.Interval = r.cfg.pollInterval()
	}
	if opts.Backoff == (Backoff{}) {
		opts.Backoff = Backoff{Base: defaultBackoffBase, Max: defaultBackoffMax}
		h := fnv.New64a()
		h.Write([]byte(r.cfg.URL))
		opts.Backoff.Seed = h.Sum64()
	}
	// A zero base would retry in a tight loop.
	opts.Backoff.Base = cmp.Or(max(opts.Backoff.Base, 0), defaultBackoffBase)
	opts.Backoff.Max = max(opts.Backoff.Max, opts.Backoff.Base)
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultPollTimeout
	}
	if opts.After == nil {
		opts.After = time.After
	}
	return &Watcher{repo: r, opts: opts, log: r.log, trigger: make(chan struct{}, 1)}
}

// Trigger asks for a poll now. It never blocks; triggers arriving while a
// poll is pending or running are merged into one more poll.
func (w *Watcher) Trigger() {
	select {
	case w.trigger <- struct{}{}:
	default:
	}
}

// Run polls until ctx is done, sending on events: every new verified
// revision (once per commit), and every failed poll. It blocks until ctx is
// done and returns ctx.Err(). For a local repository it also watches the
// source's refs with fsnotify, unless opts.NoLocalNotify; if that watch
// cannot be set up, it logs and relies on polling.
func (w *Watcher) Run(ctx context.Context, events chan<- Event) error {
	if !w.opts.NoLocalNotify && w.repo.isLocalSource() {
		stop, err := w.watchLocal(ctx)
		if err != nil {
			w.log.Warn("cannot watch local repository, polling only", "err", err)
		} else {
			defer stop()
		}
	}
	next := w.opts.Backoff.delays()
	failures := 0
	for {
		pollCtx, cancel := context.WithTimeout(ctx, w.opts.Timeout)
		rev, err := w.repo.Fetch(pollCtx)
		cancel()
		if ctx.Err() != nil {
			return ctx.Err()
		}
		wait := w.opts.Interval
		var ev *Event
		switch {
		case err != nil:
			var refused *RefusedError
			if errors.As(err, &refused) {
				failures = 0 // the remote is fine; the commit is not
			} else {
				failures++
				wait = next(failures)
				w.log.Warn("retrying", "err", err, "failures", failures, "in", wait, "keeping", rev.Commit.String())
			}
			ev = &Event{Revision: rev, Err: err}
		default:
			failures = 0
			if rev.Commit != w.lastSent.Commit {
				w.lastSent = rev
				ev = &Event{Revision: rev}
			}
		}
		if ev != nil {
			select {
			case events <- *ev:
			case <-ctx.Done():
				return ctx.Err()
			}
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-w.trigger:
		case <-w.opts.After(wait):
		}
	}
}

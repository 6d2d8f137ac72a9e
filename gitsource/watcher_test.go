package gitsource

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"
)

// fakeClock hands the watcher channels the test fires, and records the
// delays it asked for.
type fakeClock struct {
	asked chan time.Duration
	fire  chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{asked: make(chan time.Duration, 100), fire: make(chan time.Time)}
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.asked <- d
	return c.fire
}

func (c *fakeClock) nextDelay(t *testing.T) time.Duration {
	t.Helper()
	select {
	case d := <-c.asked:
		return d
	case <-time.After(guard):
		t.Fatal("watcher did not wait")
		return 0
	}
}

func (c *fakeClock) tick(t *testing.T) {
	t.Helper()
	select {
	case c.fire <- time.Time{}:
	case <-time.After(guard):
		t.Fatal("watcher not waiting for its timer")
	}
}

func nextEvent(t *testing.T, events <-chan Event) Event {
	t.Helper()
	select {
	case ev := <-events:
		return ev
	case <-time.After(guard):
		t.Fatal("no event from watcher")
		return Event{}
	}
}

func runWatcher(t *testing.T, w *Watcher) <-chan Event {
	events := make(chan Event)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- w.Run(ctx, events) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; !errors.Is(err, context.Canceled) {
			t.Errorf("Run returned %v", err)
		}
	})
	return events
}

func TestBackoffDelays(t *testing.T) {
	b := Backoff{Base: time.Second, Max: 8 * time.Second, Seed: 42}
	next := b.delays()
	var got []time.Duration
	for n := 1; n <= 8; n++ {
		d := next(n)
		want := min(time.Second<<(n-1), 8*time.Second)
		if d < want/2 || d > want {
			t.Fatalf("delay after %d failures = %v, want in [%v, %v]", n, d, want/2, want)
		}
		got = append(got, d)
	}
	// The same seed replays the same jitter; another seed does not.
	replay, other := b.delays(), Backoff{Base: time.Second, Max: 8 * time.Second, Seed: 43}.delays()
	same := true
	for n := 1; n <= 8; n++ {
		if replay(n) != got[n-1] {
			t.Fatalf("seeded delays differ at %d", n)
		}
		if other(n) != got[n-1] {
			same = false
		}
	}
	if same {
		t.Fatal("different seeds gave identical jitter")
	}
}

func TestWatcherKeepsLastGoodAndBacksOff(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	base, stop := startHTTP(t, ln, u.root, "", "")
	r := open(t, Config{URL: base + "/repo.git"})
	clock := newFakeClock()
	w := NewWatcher(r, WatchOptions{Interval: time.Minute, Backoff: Backoff{Base: time.Second, Max: 4 * time.Second, Seed: 1}, After: clock.After})
	events := runWatcher(t, w)

	if ev := nextEvent(t, events); ev.Err != nil || ev.Revision.Commit != c1 {
		t.Fatalf("first event = %+v", ev)
	}
	if d := clock.nextDelay(t); d != time.Minute {
		t.Fatalf("waits %v after success, want the interval", d)
	}

	stop() // the remote becomes unreachable
	var delays []time.Duration
	for i := range 4 {
		clock.tick(t)
		ev := nextEvent(t, events)
		if ev.Err == nil || ev.Revision.Commit != c1 {
			t.Fatalf("poll %d while down: %+v, want an error and the last good commit", i, ev)
		}
		if !strings.Contains(ev.Err.Error(), addr) {
			t.Fatalf("error does not name the remote: %v", ev.Err)
		}
		delays = append(delays, clock.nextDelay(t))
	}
	for i, d := range delays {
		want := min(time.Second<<i, 4*time.Second)
		if d < want/2 || d > want {
			t.Fatalf("backoff %d = %v, want in [%v, %v] (all: %v)", i, d, want/2, want, delays)
		}
	}
	if last, _ := r.Last(); last.Commit != c1 {
		t.Fatal("last good commit lost")
	}
	if got := readFile(t, r, c1, "a"); got != "1" {
		t.Fatalf("a = %q", got)
	}

	// The remote comes back on the same address with a new commit.
	ln2, err := net.Listen("tcp", addr)
	if err != nil {
		t.Skipf("cannot listen on %s again: %v", addr, err)
	}
	startHTTP(t, ln2, u.root, "", "")
	c2 := u.commit(map[string]string{"a": "2"}, "two")
	clock.tick(t)
	if ev := nextEvent(t, events); ev.Err != nil || ev.Revision.Commit != c2 {
		t.Fatalf("after recovery: %+v", ev)
	}
	if d := clock.nextDelay(t); d != time.Minute {
		t.Fatalf("waits %v after recovery, want the interval", d)
	}
}

func TestWatcherTriggerAndUnchanged(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	r := open(t, Config{URL: u.bare})
	clock := newFakeClock()
	w := NewWatcher(r, WatchOptions{After: clock.After, NoLocalNotify: true})
	events := runWatcher(t, w)
	if ev := nextEvent(t, events); ev.Revision.Commit != c1 {
		t.Fatal(ev)
	}
	if d := clock.nextDelay(t); d != DefaultPollInterval {
		t.Fatalf("interval %v, want default %v", d, DefaultPollInterval)
	}
	// An unchanged poll sends nothing and waits again.
	clock.tick(t)
	clock.nextDelay(t)
	select {
	case ev := <-events:
		t.Fatalf("unchanged poll sent %+v", ev)
	default:
	}
	c2 := u.commit(map[string]string{"a": "2"}, "two")
	w.Trigger()
	if ev := nextEvent(t, events); ev.Revision.Commit != c2 {
		t.Fatalf("after Trigger: %+v", ev)
	}
}

func TestLocalNotifyTriggersPoll(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	// Follow the working repository itself, as a developer would.
	r := open(t, Config{URL: u.work})
	clock := newFakeClock() // never fires: only fsnotify can cause a poll
	w := NewWatcher(r, WatchOptions{Interval: time.Hour, After: clock.After})
	events := runWatcher(t, w)
	if ev := nextEvent(t, events); ev.Revision.Commit != c1 {
		t.Fatal(ev)
	}
	c2 := u.commit(map[string]string{"a": "2"}, "two")
	for {
		ev := nextEvent(t, events)
		if ev.Err != nil {
			t.Fatal(ev.Err)
		}
		if ev.Revision.Commit == c2 {
			break
		}
	}
}

// A refused commit is not a reason to back off: the remote answered.
func TestWatcherRefusalKeepsInterval(t *testing.T) {
	alice, keyring := newKey(t, "Alice")
	u := newUpstream(t)
	good := u.signedCommit(map[string]string{"a": "1"}, "good", alice, nil)
	r := open(t, Config{URL: u.bare, Verify: VerifyConfig{Mode: VerifyHead, KeyringFile: keyring}})
	clock := newFakeClock()
	w := NewWatcher(r, WatchOptions{Interval: time.Minute, After: clock.After, NoLocalNotify: true})
	events := runWatcher(t, w)
	if ev := nextEvent(t, events); ev.Err != nil || ev.Revision.Commit != good {
		t.Fatalf("first event = %+v", ev)
	}
	clock.nextDelay(t)
	bad := u.commit(map[string]string{"a": "2"}, "unsigned")
	for range 2 {
		clock.tick(t)
		ev := nextEvent(t, events)
		var refused *RefusedError
		if !errors.As(ev.Err, &refused) || refused.Commit != bad || ev.Revision.Commit != good {
			t.Fatalf("event = %+v, want refusal of %s keeping %s", ev, bad, good)
		}
		if d := clock.nextDelay(t); d != time.Minute {
			t.Fatalf("waits %v after a refusal, want the interval", d)
		}
	}
}

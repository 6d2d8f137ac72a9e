package svcproxy

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
)

// fakeIPTables is an in-memory iptables that applies restore payloads with
// --noflush semantics and records them.
type fakeIPTables struct {
	mu       sync.Mutex
	tables   map[string]map[string][]string // table → chain → "-A" lines
	payloads []string                       // "table\npayload", in order
	failNext error
	restored chan string
}

var _ Runner = (*fakeIPTables)(nil)

func newFakeIPTables() *fakeIPTables {
	f := &fakeIPTables{tables: map[string]map[string][]string{}, restored: make(chan string, 100)}
	for t, builtins := range map[string][]string{"nat": {"PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"}, "filter": {"INPUT", "FORWARD", "OUTPUT"}} {
		f.tables[t] = map[string][]string{}
		for _, c := range builtins {
			f.tables[t][c] = nil
		}
	}
	return f
}

func (f *fakeIPTables) Restore(_ context.Context, table string, payload []byte) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	// Apply to a copy: iptables-restore is atomic per table.
	next := map[string][]string{}
	for c, r := range f.tables[table] {
		next[c] = r
	}
	sc := bufio.NewScanner(bytes.NewReader(payload))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		switch {
		case line == "*"+table, line == "COMMIT":
		case strings.HasPrefix(line, ":"):
			next[strings.Fields(line[1:])[0]] = []string{}
		case strings.HasPrefix(line, "-A "):
			c := strings.Fields(line)[1]
			if _, ok := next[c]; !ok {
				return fmt.Errorf("fake iptables-restore: chain %s does not exist", c)
			}
			next[c] = append(next[c], line)
		case strings.HasPrefix(line, "-I "):
			// Only "-I CHAIN 1 …", as ensureJumps writes it; stored the way
			// EnsureRule stores rules.
			f := strings.SplitN(line, " ", 4)
			if f[2] != "1" {
				return fmt.Errorf("fake iptables-restore: unsupported %q", line)
			}
			if _, ok := next[f[1]]; !ok {
				return fmt.Errorf("fake iptables-restore: chain %s does not exist", f[1])
			}
			next[f[1]] = append([]string{"-A " + f[1] + " " + strings.ReplaceAll(f[3], `"`, "")}, next[f[1]]...)
		case strings.HasPrefix(line, "-X "):
			c := line[3:]
			if len(next[c]) != 0 {
				return fmt.Errorf("fake iptables-restore: chain %s not empty", c)
			}
			delete(next, c)
		default:
			return fmt.Errorf("fake iptables-restore: bad line %q", line)
		}
	}
	for c, rules := range next {
		for _, r := range rules {
			if f := strings.Fields(r); slices.Contains(f, "-j") {
				tgt := f[slices.Index(f, "-j")+1]
				if _, ok := next[tgt]; strings.HasPrefix(tgt, "SHOAL-") && !ok {
					return fmt.Errorf("fake iptables-restore: %s jumps to missing %s", c, tgt)
				}
			}
		}
	}
	f.tables[table] = next
	f.payloads = append(f.payloads, table+"\n"+string(payload))
	select {
	case f.restored <- table:
	default:
	}
	return nil
}

func (f *fakeIPTables) Chains(_ context.Context, table string) ([]string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for c := range f.tables[table] {
		out = append(out, c)
	}
	slices.Sort(out)
	return out, nil
}

func (f *fakeIPTables) ChainExists(_ context.Context, table, chain string) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	_, ok := f.tables[table][chain]
	return ok, nil
}

func (f *fakeIPTables) EnsureRule(_ context.Context, table, chain string, rule ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	if _, ok := f.tables[table][chain]; !ok {
		return errors.New("fake: no chain " + chain)
	}
	if _, ok := f.tables[table][rule[len(rule)-1]]; !ok {
		return errors.New("fake: jump to missing chain " + rule[len(rule)-1])
	}
	line := "-A " + chain + " " + strings.Join(rule, " ")
	if !slices.Contains(f.tables[table][chain], line) {
		f.tables[table][chain] = append([]string{line}, f.tables[table][chain]...)
	}
	return nil
}

// takePayloads returns and forgets the payloads recorded so far.
func (f *fakeIPTables) takePayloads() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	p := f.payloads
	f.payloads = nil
	return p
}

// dump renders our chains' current content as restore payloads, for the
// tracer.
func (f *fakeIPTables) dump() [][]byte {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out [][]byte
	for _, t := range []string{"nat", "filter"} {
		var b bytes.Buffer
		fmt.Fprintf(&b, "*%s\n", t)
		var names []string
		for c := range f.tables[t] {
			if Owned(c) {
				names = append(names, c)
			}
		}
		slices.Sort(names)
		for _, c := range names {
			fmt.Fprintf(&b, ":%s - [0:0]\n", c)
		}
		for _, c := range names {
			for _, r := range f.tables[t][c] {
				b.WriteString(r + "\n")
			}
		}
		b.WriteString("COMMIT\n")
		out = append(out, b.Bytes())
	}
	return out
}

type fakeConntrack struct {
	mu    sync.Mutex
	flows []UDPFlow
}

func (c *fakeConntrack) ClearUDP(_ context.Context, flows []UDPFlow) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.flows = append(c.flows, flows...)
	return nil
}

// fakeClock moves only when told to. After reports each wait on waits.
type fakeClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []fakeWaiter
	waits   chan time.Duration
}

type fakeWaiter struct {
	at time.Time
	ch chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), waits: make(chan time.Duration, 100)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.waiters = append(c.waiters, fakeWaiter{c.now.Add(d), ch})
	c.waits <- d
	return ch
}

func (c *fakeClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	kept := c.waiters[:0]
	for _, w := range c.waiters {
		if !w.at.After(c.now) {
			w.ch <- c.now
		} else {
			kept = append(kept, w)
		}
	}
	c.waiters = kept
}

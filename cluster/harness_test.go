package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// testFSM counts how often each command id was applied. A command is one id
// or several separated by newlines (a batch); "fail:..." makes Apply return
// an error value.
type testFSM struct {
	mu       sync.Mutex
	counts   map[string]int
	total    int
	restores int
	watch    chan struct{}
}

func newTestFSM() *testFSM {
	return &testFSM{counts: map[string]int{}, watch: make(chan struct{})}
}

func (f *testFSM) Apply(l *raft.Log) any {
	if l.Type != raft.LogCommand {
		return nil
	}
	cmd := string(l.Data)
	if strings.HasPrefix(cmd, "fail:") {
		return errors.New("refused " + cmd)
	}
	if id, ok := strings.CutPrefix(cmd, "struct:"); ok {
		return &testResp{ID: id}
	}
	ids := strings.Split(cmd, "\n")
	f.mu.Lock()
	for _, id := range ids {
		f.counts[id]++
	}
	f.total += len(ids)
	close(f.watch)
	f.watch = make(chan struct{})
	f.mu.Unlock()
	return []byte("applied " + strconv.Itoa(len(ids)))
}

func (f *testFSM) Snapshot() (raft.FSMSnapshot, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	c := make(map[string]int, len(f.counts))
	for k, v := range f.counts {
		c[k] = v
	}
	return &testSnap{counts: c}, nil
}

func (f *testFSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	var c map[string]int
	if err := json.NewDecoder(rc).Decode(&c); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	f.counts = c
	f.restores++
	f.total = 0
	for _, v := range c {
		f.total += v
	}
	close(f.watch)
	f.watch = make(chan struct{})
	return nil
}

func (f *testFSM) count(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.counts[id]
}

func (f *testFSM) changed() <-chan struct{} {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.watch
}

// dups returns the ids applied more than once.
func (f *testFSM) dups() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for k, v := range f.counts {
		if v > 1 {
			out = append(out, k)
		}
	}
	return out
}

type testSnap struct{ counts map[string]int }

func (s *testSnap) Persist(sink raft.SnapshotSink) error {
	if err := json.NewEncoder(sink).Encode(s.counts); err != nil {
		sink.Cancel()
		return err
	}
	return sink.Close()
}
func (s *testSnap) Release() {}

var testKey = []byte("0123456789abcdef0123456789abcdef")

// tLogHandler writes logs to t.Log until the test ends (t.Log after the end
// panics, and memberlist may log during its own shutdown).
type tLogWriter struct {
	mu   sync.Mutex
	t    testing.TB
	done bool
}

func (w *tLogWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done {
		w.t.Log(strings.TrimSpace(string(p)))
	}
	return len(p), nil
}

func testLogger(t testing.TB) *slog.Logger {
	w := &tLogWriter{t: t}
	t.Cleanup(func() { w.mu.Lock(); w.done = true; w.mu.Unlock() })
	level := slog.LevelInfo
	if _, ok := t.(*testing.B); ok {
		level = slog.LevelWarn
	}
	if os.Getenv("SHOAL_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

type testCluster struct {
	t     testing.TB
	log   *slog.Logger
	fault *faultNet
	mod   func(*Config)
	mu    sync.Mutex
	nodes map[string]*testNode
	order []string
}

type testNode struct {
	name string
	dir  string
	fsm  *testFSM
	*Node
}

// testConfig is tuned for fast, reliable runs under the race detector on
// a shared machine: the production defaults except a shorter autopilot
// period.
func (c *testCluster) config(name, dir string) Config {
	cfg := Config{
		NodeName:          name,
		DataDir:           dir,
		BindAddr:          "127.0.0.1",
		Key:               testKey,
		BootstrapExpect:   3,
		Logger:            c.log,
		ReconcileInterval: 200 * time.Millisecond,
		fault:             c.fault,
	}
	if c.mod != nil {
		c.mod(&cfg)
	}
	return cfg
}

func newTestCluster(t testing.TB, mod func(*Config)) *testCluster {
	c := &testCluster{t: t, log: testLogger(t), fault: newFaultNet(), mod: mod, nodes: map[string]*testNode{}}
	t.Cleanup(func() {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, n := range c.nodes {
			n.Shutdown()
		}
	})
	return c
}

// startNodes starts n nodes named n1..n<n>, each joining the first.
func (c *testCluster) startNodes(count int) {
	c.t.Helper()
	for i := 1; i <= count; i++ {
		name := fmt.Sprintf("n%d", i)
		if _, err := c.start(name, c.t.TempDir(), c.cfgJoin(), nil); err != nil {
			c.t.Fatalf("start %s: %v", name, err)
		}
	}
}

func (c *testCluster) cfgJoin() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, name := range c.order {
		if n := c.nodes[name]; n != nil && n.ctx.Err() == nil {
			return []string{n.GossipAddr()}
		}
	}
	return nil
}

func (c *testCluster) start(name, dir string, join []string, mod func(*Config)) (*testNode, error) {
	cfg := c.config(name, dir)
	cfg.Join = join
	if mod != nil {
		mod(&cfg)
	}
	fsm := newTestFSM()
	n, err := Start(context.Background(), cfg, fsm)
	if err != nil {
		return nil, err
	}
	tn := &testNode{name: name, dir: dir, fsm: fsm, Node: n}
	c.mu.Lock()
	if _, ok := c.nodes[name]; !ok {
		c.order = append(c.order, name)
	}
	c.nodes[name] = tn
	c.mu.Unlock()
	return tn, nil
}

// restart starts a stopped node again on the same data dir and ports.
func (c *testCluster) restart(old *testNode) *testNode {
	c.t.Helper()
	port := func(addr string) int {
		_, p, _ := net.SplitHostPort(addr)
		v, _ := strconv.Atoi(p)
		return v
	}
	n, err := c.start(old.name, old.dir, c.cfgJoin(), func(cfg *Config) {
		cfg.GossipPort, cfg.RaftPort, cfg.RPCPort = port(old.GossipAddr()), port(old.RaftAddr()), port(old.RPCAddr())
	})
	if err != nil {
		c.t.Fatalf("restart %s: %v", old.name, err)
	}
	return n
}

func (c *testCluster) alive() []*testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*testNode
	for _, name := range c.order {
		if n := c.nodes[name]; n.ctx.Err() == nil {
			out = append(out, n)
		}
	}
	return out
}

func (c *testCluster) node(name string) *testNode {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.nodes[name]
}

// waitFor waits until cond holds, waking on any membership, leadership or
// FSM change of the running nodes and, for changes nothing signals (raft
// configuration, replication progress), on a short poll. The deadline only
// guards against a hang; it is not what the test measures.
func (c *testCluster) waitFor(what string, cond func() bool) {
	c.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			c.t.Fatalf("timed out waiting for %s", what)
		}
		nodes := c.alive()
		cases := make([]<-chan struct{}, 0, 3*len(nodes))
		for _, n := range nodes {
			cases = append(cases, n.MembersWatch(), n.leaderChanged(), n.fsm.changed())
		}
		waitAny(cases, 25*time.Millisecond)
	}
}

func waitAny(chs []<-chan struct{}, poll time.Duration) {
	done := make(chan struct{})
	defer close(done)
	woke := make(chan struct{}, 1)
	for _, ch := range chs {
		go func() {
			select {
			case <-ch:
				select {
				case woke <- struct{}{}:
				default:
				}
			case <-done:
			}
		}()
	}
	t := time.NewTimer(poll)
	defer t.Stop()
	select {
	case <-woke:
	case <-t.C:
	}
}

// leader waits until exactly one running node among nodes leads and all of
// them name it, and returns it.
func (c *testCluster) leader(nodes ...*testNode) *testNode {
	c.t.Helper()
	if len(nodes) == 0 {
		nodes = c.alive()
	}
	var l *testNode
	c.waitFor("a leader every node agrees on", func() bool {
		l = nil
		for _, n := range nodes {
			if n.IsLeader() {
				if l != nil {
					return false
				}
				l = n
			}
		}
		if l == nil {
			return false
		}
		for _, n := range nodes {
			if n.Leader() != l.name {
				return false
			}
		}
		return true
	})
	return l
}

func (c *testCluster) follower(except ...*testNode) *testNode {
	for _, n := range c.alive() {
		if n.IsLeader() {
			continue
		}
		skip := false
		for _, e := range except {
			skip = skip || e == n
		}
		if !skip {
			return n
		}
	}
	c.t.Fatal("no follower")
	return nil
}

// servers returns the leader's raft configuration: voters and non-voters.
func servers(t testing.TB, n *testNode) (voters, nonvoters []string) {
	f := n.Raft().GetConfiguration()
	if err := f.Error(); err != nil {
		return nil, nil
	}
	for _, s := range f.Configuration().Servers {
		if s.Suffrage == raft.Voter {
			voters = append(voters, string(s.ID))
		} else {
			nonvoters = append(nonvoters, string(s.ID))
		}
	}
	return voters, nonvoters
}

func apply(t testing.TB, n *testNode, cmd string) ApplyResult {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	res, err := n.Apply(ctx, []byte(cmd))
	if err != nil {
		t.Fatalf("apply %q on %s: %v", cmd, n.name, err)
	}
	return res
}

// allApplied reports whether every node applied every id exactly once so
// far (a count above one fails the test at once).
func (c *testCluster) allApplied(nodes []*testNode, ids []string) bool {
	c.t.Helper()
	for _, n := range nodes {
		if d := n.fsm.dups(); len(d) > 0 {
			c.t.Fatalf("%s applied ids more than once: %v", n.name, d)
		}
		for _, id := range ids {
			if n.fsm.count(id) != 1 {
				return false
			}
		}
	}
	return true
}

type testResp struct{ ID string }

// testCodec carries *testResp as JSON.
type testCodec struct{}

func (testCodec) Encode(v any) ([]byte, error) {
	r, ok := v.(*testResp)
	if !ok {
		return nil, fmt.Errorf("testCodec: %T", v)
	}
	return json.Marshal(r)
}

func (testCodec) Decode(b []byte) (any, error) {
	var r testResp
	err := json.Unmarshal(b, &r)
	return &r, err
}

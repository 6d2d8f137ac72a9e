package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/cluster"
	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// guard bounds every wait: it turns a hang into a failure, it never paces a
// test.
const guard = 60 * time.Second

var testKey = []byte("0123456789abcdef0123456789abcdef")

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
	if os.Getenv("SHOAL_TEST_LOG") == "debug" {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: level}))
}

// testRepo is a real Git repository in a temporary directory; agents follow
// it as a local-path remote.
type testRepo struct {
	t   testing.TB
	dir string
}

func newTestRepo(t testing.TB) *testRepo {
	r := &testRepo{t: t, dir: filepath.Join(t.TempDir(), "src")}
	if err := os.MkdirAll(r.dir, 0o755); err != nil {
		t.Fatal(err)
	}
	r.git("init", "-q")
	return r
}

func (r *testRepo) git(args ...string) string {
	r.t.Helper()
	cmd := exec.Command("git", append([]string{"-c", "init.defaultBranch=main", "-c", "commit.gpgsign=false"}, args...)...)
	cmd.Dir = r.dir
	cmd.Env = append(os.Environ(), "GIT_CONFIG_NOSYSTEM=1", "GIT_CONFIG_GLOBAL=/dev/null", "HOME=/nonexistent",
		"GIT_AUTHOR_NAME=Test", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=Test", "GIT_COMMITTER_EMAIL=t@example.com")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		r.t.Fatalf("git %s: %v\n%s", strings.Join(args, " "), err, errb.String())
	}
	return strings.TrimSpace(out.String())
}

// commit replaces the tree with files (name → content) and commits it.
func (r *testRepo) commit(msg string, files map[string]string) string {
	r.t.Helper()
	entries, err := os.ReadDir(r.dir)
	if err != nil {
		r.t.Fatal(err)
	}
	for _, e := range entries {
		if e.Name() != ".git" {
			os.RemoveAll(filepath.Join(r.dir, e.Name()))
		}
	}
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(r.dir, name), []byte(content), 0o644); err != nil {
			r.t.Fatal(err)
		}
	}
	r.git("add", "-A")
	r.git("commit", "-q", "--allow-empty", "-m", msg)
	return r.git("rev-parse", "HEAD")
}

func podYAML(name, image string) string {
	return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata:
  name: %s
  namespace: default
  labels: {app: %s}
spec:
  containers:
    - name: app
      image: %s
      resources:
        requests: {cpu: 100m, memory: 64Mi}
`, name, name, image)
}

// watchedRuntime is the fake runtime with a signal after every call, so
// tests wait on what the pod loop did instead of on time.
type watchedRuntime struct {
	*runtime.Fake
	mu      sync.Mutex
	changed chan struct{}
	runs    map[string]int      // RunPod calls per UID
	images  map[string][]string // images of the last RunPod per UID
	adopted []runtime.PodKey
	rounds  int // ListPods calls

	probeMu sync.Mutex
	probe   func(pod, container string) bool // nil: every probe succeeds

	// startDelay, when set, makes RunPod take that long before it returns
	// with the pod running, as containerd's does (image present).
	startDelay time.Duration
}

func newWatchedRuntime(cidr string, opts ...func(*runtime.FakeConfig)) *watchedRuntime {
	w := &watchedRuntime{changed: make(chan struct{}), runs: map[string]int{}, images: map[string][]string{}}
	cfg := runtime.FakeConfig{
		PodCIDR: mustPrefix(cidr),
		ProbeResults: func(key runtime.PodKey, container string, _ runtime.Probe) runtime.ProbeResult {
			w.probeMu.Lock()
			f := w.probe
			w.probeMu.Unlock()
			if f == nil || f(key.Name, container) {
				return runtime.ProbeResult{Success: true}
			}
			return runtime.ProbeResult{Message: "probe says no"}
		},
	}
	for _, o := range opts {
		o(&cfg)
	}
	w.Fake = runtime.NewFake(cfg)
	return w
}

func (w *watchedRuntime) setProbe(f func(pod, container string) bool) {
	w.probeMu.Lock()
	w.probe = f
	w.probeMu.Unlock()
}

func (w *watchedRuntime) signal(f func()) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if f != nil {
		f()
	}
	close(w.changed)
	w.changed = make(chan struct{})
}

func (w *watchedRuntime) RunPod(ctx context.Context, spec runtime.PodSpec) (runtime.PodStatus, error) {
	if w.startDelay > 0 {
		t := time.NewTimer(w.startDelay)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return runtime.PodStatus{}, ctx.Err()
		}
	}
	st, err := w.Fake.RunPod(ctx, spec)
	w.signal(func() {
		w.runs[spec.Key.UID]++
		w.images[spec.Key.UID] = nil
		for _, c := range spec.Containers {
			w.images[spec.Key.UID] = append(w.images[spec.Key.UID], c.Image)
		}
	})
	return st, err
}

func (w *watchedRuntime) StopPod(ctx context.Context, key runtime.PodKey, grace time.Duration) error {
	err := w.Fake.StopPod(ctx, key, grace)
	w.signal(nil)
	return err
}

func (w *watchedRuntime) RemovePod(ctx context.Context, key runtime.PodKey) error {
	err := w.Fake.RemovePod(ctx, key)
	w.signal(nil)
	return err
}

func (w *watchedRuntime) ListPods(ctx context.Context) ([]runtime.PodStatus, error) {
	ps, err := w.Fake.ListPods(ctx)
	w.signal(func() { w.rounds++ })
	return ps, err
}

func (w *watchedRuntime) GC(ctx context.Context, wanted map[string]bool) (runtime.GCResult, error) {
	res, err := w.Fake.GC(ctx, wanted)
	w.signal(func() { w.adopted = append(w.adopted, res.AdoptedPods...) })
	return res, err
}

func (w *watchedRuntime) runCount(uid string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.runs[uid]
}

// imagesOf returns the images the pod was last run with.
func (w *watchedRuntime) imagesOf(uid string) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.images[uid]
}

// holds returns the UIDs the runtime holds.
func (w *watchedRuntime) holds() map[string]runtime.PodStatus {
	ps, _ := w.Fake.ListPods(context.Background())
	out := map[string]runtime.PodStatus{}
	for _, p := range ps {
		out[p.Key.UID] = p
	}
	return out
}

// waitRuntime waits until cond holds on the runtime, re-checking after each
// call the pod loop makes.
func waitRuntime(t testing.TB, w *watchedRuntime, what string, cond func() error) {
	t.Helper()
	deadline := time.NewTimer(guard)
	defer deadline.Stop()
	for {
		w.mu.Lock()
		ch := w.changed
		w.mu.Unlock()
		err := cond()
		if err == nil {
			return
		}
		select {
		case <-ch:
		case <-deadline.C:
			t.Fatalf("%s: not reached within %s: %v", what, guard, err)
		}
	}
}

// waitState waits until cond holds on the replica of every agent given.
func waitState(t testing.TB, what string, agents []*testAgent, cond func(v *state.Snapshot) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for _, a := range agents {
		for {
			v := a.Store().Snapshot()
			err := cond(v)
			if err == nil {
				break
			}
			if werr := v.Wait(ctx); werr != nil {
				t.Fatalf("%s: not reached on %s within %s: %v\nstate:\n%s", what, a.name, guard, err, v.DumpString())
			}
		}
	}
}

func mustPrefix(s string) netip.Prefix { return netip.MustParsePrefix(s) }

// testAgent is one agent of a test cluster and what survives its restarts.
type testAgent struct {
	*Agent
	name    string
	dataDir string
	rt      *watchedRuntime
	ports   [3]int // gossip, raft, RPC: reused on restart
	// values is the fake runtime's resolver when the cluster has values:
	// the running agent's own.
	values *lateResolver
}

type testCluster struct {
	t      testing.TB
	repo   *testRepo
	key    string
	log    *slog.Logger
	agents map[string]*testAgent
	expect int
	// configure, when set, adjusts each agent's Config before it starts.
	configure func(*Config)
	// startDelay is each agent runtime's RunPod duration (watchedRuntime).
	startDelay time.Duration
	// values: each agent's fake runtime resolves ConfigMaps and Secrets
	// through the agent's own resolver (FakeConfig.Values), so that it
	// projects configMap and secret volumes (Fake.VolumeFiles).
	values bool
}

func newTestCluster(t testing.TB, repo *testRepo, expect int) *testCluster {
	keyFile := filepath.Join(t.TempDir(), "cluster.key")
	if err := os.WriteFile(keyFile, testKey, 0o600); err != nil {
		t.Fatal(err)
	}
	c := &testCluster{t: t, repo: repo, key: keyFile, log: testLogger(t), agents: map[string]*testAgent{}, expect: expect}
	t.Cleanup(func() {
		for _, a := range c.agents {
			if a.Agent != nil {
				a.Shutdown()
			}
		}
	})
	return c
}

func portOf(t testing.TB, addr string) int {
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatal(err)
	}
	n, _ := strconv.Atoi(p)
	return n
}

// start starts (or restarts) the named agent, joining the others.
func (c *testCluster) start(name string) *testAgent {
	c.t.Helper()
	ta := c.agents[name]
	if ta == nil {
		ta = &testAgent{name: name, dataDir: filepath.Join(c.t.TempDir(), name)}
		if c.values {
			ta.values = newLateResolver()
			ta.rt = newWatchedRuntime("10.244.0.0/24", func(fc *runtime.FakeConfig) { fc.Values = ta.values })
		} else {
			ta.rt = newWatchedRuntime("10.244.0.0/24")
		}
		ta.rt.startDelay = c.startDelay
		c.agents[name] = ta
	}
	var join []string
	for n, o := range c.agents {
		if n != name && o.Agent != nil {
			join = append(join, o.GossipAddr())
		}
	}
	cfg := Config{
		Repo:            c.repo.dir,
		DataDir:         ta.dataDir,
		NodeName:        name,
		BindAddr:        "127.0.0.1",
		ClusterKeyFile:  c.key,
		BootstrapExpect: c.expect,
		Join:            join,
		Runtime:         RuntimeFake,
		StatusAddr:      "127.0.0.1:0",
		LostGrace:       Duration(time.Second),
		Resync:          Duration(100 * time.Millisecond),
	}
	if c.configure != nil {
		c.configure(&cfg)
	}
	ports := ta.ports
	rt := PodRuntime(ta.rt)
	if cfg.Runtime != RuntimeFake {
		rt = nil // the test asked for the real one
	}
	deps := Deps{
		Runtime:  rt,
		Logger:   c.log,
		Capacity: &state.Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110},
		Cluster: func(cc *cluster.Config) {
			cc.GossipPort, cc.RaftPort, cc.RPCPort = ports[0], ports[1], ports[2]
			cc.ReconcileInterval = 200 * time.Millisecond
		},
		Watch: &gitsource.WatchOptions{Interval: 200 * time.Millisecond},
	}
	a, err := Start(context.Background(), cfg, deps)
	if err != nil {
		c.t.Fatalf("start %s: %v", name, err)
	}
	ta.Agent = a
	if ta.values != nil {
		ta.values.set(a.vals)
	}
	ta.ports = [3]int{portOf(c.t, a.Cluster().GossipAddr()), portOf(c.t, a.Cluster().RaftAddr()), portOf(c.t, a.Cluster().RPCAddr())}
	return ta
}

// kill stops an agent as a crash would.
func (c *testCluster) kill(name string) {
	c.t.Helper()
	ta := c.agents[name]
	if err := ta.Shutdown(); err != nil {
		c.t.Logf("shutdown %s: %v", name, err)
	}
	ta.Agent = nil
}

func (c *testCluster) live() []*testAgent {
	var out []*testAgent
	for _, n := range []string{"n1", "n2", "n3", "n4", "n5"} {
		if a := c.agents[n]; a != nil && a.Agent != nil {
			out = append(out, a)
		}
	}
	return out
}

func (c *testCluster) leader() *testAgent {
	for _, a := range c.live() {
		if a.IsLeader() {
			return a
		}
	}
	return nil
}

var errNotYet = errors.New("not yet")

package runtime

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/core/images"
	"github.com/containerd/containerd/v2/core/snapshots"
	"github.com/shoal-dev/shoal/internal/testimages"
)

// The integration tests share one private containerd and one in-process
// registry, started on first use and stopped by TestMain. Each test gets
// its own containerd namespace, data dir, bridge and /24 in 10.250.0.0/16,
// and removes all of them in its cleanup.

type testEnv struct {
	daemon *Daemon
	// execHelper is a static shoal binary (Config.ExecHelper).
	execHelper string
	registry   *testimages.Registry
	images     map[string]string // test image name -> pushed reference
	builder    testimages.Builder
	dir        string
}

var (
	envOnce sync.Once
	envVal  *testEnv
	envErr  error
	envSkip string
	netSeq  atomic.Int32
)

// runDirs are made on the host by containerd 1.6's runc shim whatever the
// daemon's state dir: shim sockets in /run/containerd/s and runc state in
// /run/containerd/runc/NAMESPACE. Tests remove them when they made them.
const hostRunDir = "/run/containerd"

// ipForward is the host sysctl the bridge plugin (isGateway) turns on;
// tests put back the value they found.
const ipForward = "/proc/sys/net/ipv4/ip_forward"

func TestMain(m *testing.M) {
	_, statErr := os.Stat(hostRunDir)
	hadRunDir := statErr == nil
	forward, forwardErr := os.ReadFile(ipForward)
	code := m.Run()
	if forwardErr == nil {
		if now, err := os.ReadFile(ipForward); err == nil && string(now) != string(forward) {
			if err := os.WriteFile(ipForward, forward, 0o644); err != nil {
				fmt.Fprintln(os.Stderr, "restore ip_forward:", err)
			}
		}
	}
	if !hadRunDir {
		// os.Remove only removes empty directories: anything still in
		// use stays.
		os.Remove(filepath.Join(hostRunDir, "s"))
		os.Remove(filepath.Join(hostRunDir, "runc"))
		os.Remove(hostRunDir)
	}
	if envVal != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := envVal.daemon.Stop(ctx); err != nil {
			fmt.Fprintln(os.Stderr, "stop containerd:", err)
			code = 1
		}
		cancel()
		envVal.registry.Close()
		if code != 0 {
			// Keep containerd's log for the post-mortem.
			keep := filepath.Join(os.TempDir(), fmt.Sprintf("shoal-containerd-%d.log", os.Getpid()))
			if b, err := os.ReadFile(filepath.Join(envVal.dir, "containerd.log")); err == nil && os.WriteFile(keep, b, 0o644) == nil {
				fmt.Fprintln(os.Stderr, "containerd log kept in", keep)
			}
		}
		os.RemoveAll(envVal.dir)
	}
	os.Exit(code)
}

// missingForIntegration names what the integration tests need and lack.
func missingForIntegration() string {
	var missing []string
	if os.Geteuid() != 0 {
		missing = append(missing, "root")
	}
	for _, bin := range []string{"containerd", "containerd-shim-runc-v2", "runc", "ip"} {
		if _, err := exec.LookPath(bin); err != nil {
			missing = append(missing, bin+" on PATH")
		}
	}
	for _, p := range []string{"bridge", "host-local", "loopback", "portmap"} {
		if _, err := findPlugin([]string{"/opt/cni/bin", "/usr/lib/cni"}, p); err != nil {
			missing = append(missing, "CNI plugin "+p+" in /opt/cni/bin or /usr/lib/cni")
		}
	}
	return strings.Join(missing, ", ")
}

func integrationEnv(t testing.TB) *testEnv {
	t.Helper()
	envOnce.Do(func() {
		if m := missingForIntegration(); m != "" {
			envSkip = "integration test needs " + m
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		dir, err := os.MkdirTemp("", "shoalctd")
		if err != nil {
			envErr = err
			return
		}
		e := &testEnv{dir: dir, images: map[string]string{}}
		e.daemon, err = StartContainerd(ctx, DaemonConfig{Dir: dir})
		if err != nil {
			envErr = err
			os.RemoveAll(dir)
			return
		}
		envVal = e
		if e.registry, envErr = testimages.StartRegistry(); envErr != nil {
			return
		}
		// The exec helper for Secret values in containers' environment: a
		// static shoal binary (exec_env.go).
		e.execHelper = filepath.Join(dir, "shoal-static")
		build := exec.Command("go", "build", "-o", e.execHelper, "github.com/shoal-dev/shoal/cmd/shoal")
		build.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := build.CombinedOutput(); err != nil {
			envErr = fmt.Errorf("build the exec helper: %v: %s", err, out)
			return
		}
		for _, name := range testimages.Names() {
			img, err := e.builder.Build(ctx, name)
			if err != nil {
				envErr = err
				return
			}
			if e.images[name], envErr = e.registry.Push(ctx, img, "shoal/"+name+":v1"); envErr != nil {
				return
			}
		}
	})
	if envSkip != "" {
		t.Skip(envSkip)
	}
	if envErr != nil {
		t.Fatalf("integration environment: %v", envErr)
	}
	return envVal
}

type testNode struct {
	*Containerd
	cfg Config
	env *testEnv
}

// newTestNode makes a runtime with its own namespace, data dir, bridge and
// pod CIDR, and a cleanup that removes every pod, asserts nothing leaked,
// and removes the bridge and the namespace.
func newTestNode(t testing.TB) *testNode {
	t.Helper()
	env := integrationEnv(t)
	n := netSeq.Add(1)
	cfg := Config{
		Address:     env.daemon.Address,
		Namespace:   fmt.Sprintf("shoaltest-%d-%d", os.Getpid(), n),
		DataDir:     t.TempDir(),
		PodCIDR:     netip.MustParsePrefix(fmt.Sprintf("10.250.%d.0/24", n)),
		BridgeName:  fmt.Sprintf("shlt%d-%d", os.Getpid()%100000, n),
		NetworkName: "shoaltest",
		ExecHelper:  env.execHelper,
		DNS:         DNSConfig{Nameservers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local", "svc.cluster.local"}, Options: []string{"ndots:5"}},
		Logger:      slog.New(slog.NewTextHandler(tWriter{t}, nil)),
	}
	ctx := context.Background()
	rt, err := NewContainerd(ctx, cfg)
	if err != nil {
		t.Fatal(err)
	}
	node := &testNode{Containerd: rt, cfg: rt.cfg, env: env}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		// The runtime may have been replaced by the test (adoption).
		if _, err := node.GC(ctx, nil); err != nil {
			t.Errorf("cleanup GC: %v", err)
		}
		node.assertNoLeaks(t)
		defer node.Close()
		if out, err := exec.Command("ip", "link", "del", cfg.BridgeName).CombinedOutput(); err != nil && !strings.Contains(string(out), "Cannot find device") {
			t.Errorf("delete bridge %s: %v: %s", cfg.BridgeName, err, out)
		}
		node.deleteNamespace(ctx, t)
		// runc leaves the namespace's parent cgroup (/NAMESPACE) in every
		// hierarchy; rmdir removes it only if empty, as it must be now.
		cgs, _ := filepath.Glob(filepath.Join(cgroupRoot, "*", cfg.Namespace))
		if own := filepath.Join(cgroupRoot, cfg.Namespace); dirExists(own) {
			cgs = append(cgs, own)
		}
		for _, cg := range cgs {
			if err := os.Remove(cg); err != nil && !os.IsNotExist(err) { // cpu may link to cpu,cpuacct
				t.Errorf("cgroup of the namespace: %v", err)
			}
		}
		if err := os.Remove(filepath.Join(hostRunDir, "runc", cfg.Namespace)); err != nil && !os.IsNotExist(err) {
			t.Errorf("runc state dir of the namespace: %v", err)
		}
	})
	return node
}

// reopen replaces the runtime with a new instance over the same namespace
// and data dir, as an agent restart does.
func (n *testNode) reopen(t *testing.T) { n.reopenWith(t, func(*Config) {}) }

// reopenWith is reopen with a changed configuration.
func (n *testNode) reopenWith(t *testing.T, change func(*Config)) {
	t.Helper()
	change(&n.cfg)
	if err := n.Containerd.Close(); err != nil {
		t.Fatal(err)
	}
	rt, err := NewContainerd(context.Background(), n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Containerd = rt
}

func (n *testNode) deleteNamespace(ctx context.Context, t testing.TB) {
	ctx = n.ctx(ctx)
	imgs, err := n.client.ImageService().List(ctx)
	if err != nil {
		t.Errorf("list images: %v", err)
		return
	}
	for i, im := range imgs {
		var opts []images.DeleteOpt
		if i == len(imgs)-1 {
			opts = append(opts, images.SynchronousDelete())
		}
		if err := n.client.ImageService().Delete(ctx, im.Name, opts...); err != nil {
			t.Errorf("delete image %s: %v", im.Name, err)
		}
	}
	if err := n.client.NamespaceService().Delete(ctx, n.cfg.Namespace); err != nil {
		t.Logf("namespace %s not deleted (content GC may lag): %v", n.cfg.Namespace, err)
	}
}

// assertNoLeaks checks that nothing of any pod is left: records, netns
// files and mounts, veths on the bridge, host-local allocations, CNI
// cache entries, containers, and container snapshots.
func (n *testNode) assertNoLeaks(t testing.TB) {
	t.Helper()
	ctx := n.ctx(context.Background())
	dd := n.cfg.DataDir
	for _, sub := range []string{"pods", "netns", "cni/cache/results", "fifo"} {
		if ents, err := os.ReadDir(filepath.Join(dd, sub)); err == nil && len(ents) > 0 {
			t.Errorf("leak: %s has %d entries: %v", sub, len(ents), names(ents))
		}
	}
	if ents, err := os.ReadDir(filepath.Join(dd, "cni", "networks", n.cfg.NetworkName)); err == nil {
		for _, e := range ents {
			if e.Name() != "lock" && !strings.HasPrefix(e.Name(), "last_reserved_ip") {
				t.Errorf("leak: host-local still holds %s", e.Name())
			}
		}
	}
	mi, err := os.ReadFile("/proc/self/mountinfo")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, dd) || strings.Contains(line, "/"+n.cfg.Namespace+"/") {
			t.Errorf("leak: mount %s", line)
		}
	}
	out, err := exec.Command("ip", "-o", "link", "show", "master", n.cfg.BridgeName).CombinedOutput()
	if err == nil && strings.TrimSpace(string(out)) != "" {
		t.Errorf("leak: links on bridge %s:\n%s", n.cfg.BridgeName, out)
	}
	ctrs, err := n.client.Containers(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range ctrs {
		t.Errorf("leak: container %s", c.ID())
	}
	err = n.client.SnapshotService(n.cfg.Snapshotter).Walk(ctx, func(_ context.Context, info snapshots.Info) error {
		if info.Kind != snapshots.KindCommitted {
			t.Errorf("leak: %s snapshot %s", info.Kind, info.Name)
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func names(ents []os.DirEntry) []string {
	var out []string
	for _, e := range ents {
		out = append(out, e.Name())
	}
	return out
}

// tWriter sends log output to t.Log.
type tWriter struct{ t testing.TB }

func (w tWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// eventually polls cond until it returns true or the deadline passes; the
// deadline only guards against hanging, it is not what is tested.
func eventually(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for {
		ok, last := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("gave up waiting for %s; last: %s", what, last)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func logsOf(t *testing.T, n *testNode, key PodKey, container string) string {
	t.Helper()
	rc, err := n.Logs(context.Background(), key, container, LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	b, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func freeLoopbackPort(t *testing.T) int32 {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return int32(ln.Addr().(*net.TCPAddr).Port)
}

func iptablesSave(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("iptables-save", "-t", "nat").CombinedOutput()
	if err != nil {
		t.Fatalf("iptables-save: %v: %s", err, out)
	}
	return string(out)
}

func iptablesHas(t *testing.T, chain string) bool {
	return strings.Contains(iptablesSave(t), ":"+chain+" ")
}

// removePortmapChains undoes what the portmap plugin adds to the host's
// nat table once (its shared chains and the jumps to them), for a test
// that found none there.
func removePortmapChains(t *testing.T) {
	t.Helper()
	out, err := exec.Command("iptables", "-t", "nat", "-S").CombinedOutput()
	if err != nil {
		t.Errorf("iptables -S: %v: %s", err, out)
		return
	}
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[0] == "-A" && !strings.HasPrefix(f[1], "CNI-") && strings.Contains(line, "-j CNI-") {
			// iptables -S quotes arguments as a shell would.
			cmd := "iptables -t nat -D " + strings.TrimPrefix(line, "-A ")
			if out, err := exec.Command("sh", "-c", cmd).CombinedOutput(); err != nil {
				t.Errorf("%s: %v: %s", cmd, err, out)
			}
		}
	}
	for _, pass := range []string{"-F", "-X"} {
		for _, line := range strings.Split(string(out), "\n") {
			f := strings.Fields(line)
			if len(f) >= 2 && f[0] == "-N" && strings.HasPrefix(f[1], "CNI-") {
				if o, err := exec.Command("iptables", "-t", "nat", pass, f[1]).CombinedOutput(); err != nil {
					t.Errorf("iptables %s %s: %v: %s", pass, f[1], err, o)
				}
			}
		}
	}
}

// waitLog polls a container's log until it contains want.
func waitLog(t *testing.T, n *testNode, key PodKey, container, want string) {
	t.Helper()
	eventually(t, fmt.Sprintf("%s log to contain %q", container, want), func() (bool, string) {
		logs := logsOf(t, n, key, container)
		return strings.Contains(logs, want), logs
	})
}

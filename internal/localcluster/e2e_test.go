package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/shoal-dev/shoal/internal/testimages"
	"github.com/shoal-dev/shoal/state"
)

// The end-to-end tests run `shoal up` for real: network namespaces, a
// bridge, containerd daemons, runc containers and agents built from this
// tree. They need root and the Debian packages CI installs.

// testSubnet is not shoal up's default, so that the tests can run while
// a demo cluster is up, and differs between test processes running at the
// same time (see pickTestSubnet).
var testSubnet = pickTestSubnet()

// pickTestSubnet returns a 10.79.X.0/24 that no interface of the host has
// an address in, starting from one derived from the process ID.
func pickTestSubnet() netip.Prefix {
	used := map[byte]bool{}
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil && p.Addr().Is4() {
				b := p.Addr().As4()
				if b[0] == 10 && b[1] == 79 {
					used[b[2]] = true
				}
			}
		}
	}
	start := os.Getpid() % 250
	for i := range 250 {
		x := byte((start + i) % 250)
		if !used[x] {
			return netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 79, x, 0}), 24)
		}
	}
	return netip.MustParsePrefix("10.79.0.0/24")
}

// testName makes a cluster name unique to this test process, so that two
// test processes never build the same bridge or namespaces: the first four
// characters of name and four hex digits of the process ID.
func testName(name string) string {
	if len(name) > 4 {
		name = name[:4]
	}
	return fmt.Sprintf("%s%04x", name, os.Getpid()&0xffff)
}

func skipUnlessIntegration(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("end-to-end test; not with -short")
	}
	if err := Preflight(); err != nil {
		t.Skipf("end-to-end test needs: %v", err)
	}
}

func TestMain(m *testing.M) {
	code := m.Run()
	if builtBin != "" {
		os.RemoveAll(filepath.Dir(builtBin))
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	builtBin  string
	buildErr  error
)

// shoalBinary builds cmd/shoal once per test process, statically linked
// (CGO_ENABLED=0, as make build does): the agents then also serve as the
// exec helper for Secret values in containers' environment, which runs
// inside images that have no C library. (So the agents run without the
// race detector; the agent package's own tests run under it.)
func shoalBinary(t testing.TB) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "shoal-e2e-bin-")
		if err != nil {
			buildErr = err
			return
		}
		builtBin = filepath.Join(dir, "shoal")
		cmd := exec.Command("go", "build", "-o", builtBin, "github.com/shoal-dev/shoal/cmd/shoal")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %w: %s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return builtBin
}

// imageTar writes the named demo image as an archive tagged ref.
func imageTar(t testing.TB, dir, image, ref string) string {
	t.Helper()
	var b testimages.Builder
	img, err := b.Build(context.Background(), image)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, strings.NewReplacer("/", "_", ":", "_").Replace(ref)+".tar")
	if err := testimages.WriteOCITar(img, ref, path); err != nil {
		t.Fatal(err)
	}
	return path
}

// exampleCopy copies examples/NAME into a temporary directory, for Up to
// make a repository of.
func exampleCopy(t testing.TB, name string) string {
	t.Helper()
	dst := filepath.Join(t.TempDir(), name)
	if err := copyTree(filepath.Join("..", "..", "examples", name), dst); err != nil {
		t.Fatal(err)
	}
	return dst
}

// upForTest starts a cluster following repo (see Options.Repo) and takes
// it down at the end of the test, checking that nothing is left.
func upForTest(t testing.TB, name string, nodes int, repo string, images []string) *Record {
	t.Helper()
	return upForTestWith(t, name, nodes, repo, images)
}

// upForTestWith is upForTest with extra `shoal agent` flags for every node.
func upForTestWith(t testing.TB, name string, nodes int, repo string, images []string, agentArgs ...string) *Record {
	t.Helper()
	return upWith(t, Options{Name: name, Nodes: nodes, Repo: repo, Images: images, AgentArgs: agentArgs}, 40)
}

// upWith starts a cluster with o and waits until it runs its commit; at
// the end of the test it takes it down, checking that nothing is left.
// Dir, Subnet, Binary and Out are the test's own; Name is made unique to
// the test process (testName). A failed test shows the last logLines
// lines of every agent's log. The other up helpers all come here, so
// they cannot drift apart; one that must undo more before Down registers
// that with t.Cleanup after upWith returns (cleanups run last first).
func upWith(t testing.TB, o Options, logLines int) *Record {
	t.Helper()
	bin := shoalBinary(t) // before anything is made: it may fail the test
	dir, err := os.MkdirTemp("", "shoal-e2e-")
	if err != nil {
		t.Fatal(err)
	}
	var log bytes.Buffer
	ctx := context.Background()
	o.Dir, o.Name, o.Subnet, o.Binary, o.Out = filepath.Join(dir, "c"), testName(o.Name), testSubnet, bin, &log
	rec, err := Up(ctx, o)
	if err != nil {
		os.RemoveAll(dir)
		t.Fatalf("up: %v\n%s", err, log.String())
	}
	t.Cleanup(func() {
		if t.Failed() {
			for _, n := range rec.Nodes {
				t.Logf("the end of %s:\n%s", n.LogFile, tail(n.LogFile, logLines))
			}
		}
		if err := Down(context.Background(), rec.Dir, io.Discard); err != nil {
			t.Errorf("down: %v", err)
		}
		assertGone(t, rec)
		os.RemoveAll(dir)
	})
	wctx, cancel := context.WithTimeout(ctx, 3*time.Minute)
	defer cancel()
	if err := rec.Wait(wctx, &log); err != nil {
		t.Fatalf("wait: %v\n%s", err, log.String())
	}
	return rec
}

// assertGone checks that Down left nothing of the cluster.
func assertGone(t testing.TB, rec *Record) {
	t.Helper()
	if _, err := os.Stat(rec.Dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("leak: %s still exists (%v)", rec.Dir, err)
	}
	if linkExists(rec.Bridge) {
		t.Errorf("leak: bridge %s", rec.Bridge)
	}
	for _, n := range rec.Nodes {
		if netnsExists(n.NetNS) {
			t.Errorf("leak: network namespace %s", n.NetNS)
		}
		if linkExists(n.HostVeth) {
			t.Errorf("leak: link %s", n.HostVeth)
		}
	}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err == nil && isProcess(pid, rec.Dir) {
			cmd, _ := os.ReadFile("/proc/" + e.Name() + "/cmdline")
			t.Errorf("leak: process %d %s", pid, bytes.ReplaceAll(cmd, []byte{0}, []byte{' '}))
		}
	}
	mi, _ := os.ReadFile("/proc/self/mountinfo")
	for _, line := range strings.Split(string(mi), "\n") {
		if strings.Contains(line, rec.Dir) {
			t.Errorf("leak: mount %s", line)
		}
	}
}

// inNode runs a command in a node's network namespace.
func inNode(n NodeRecord, name string, args ...string) ([]byte, error) {
	return exec.Command("nsenter", append([]string{"--net=/run/netns/" + n.NetNS, "--", name}, args...)...).CombinedOutput()
}

// podsOf returns the pods of a namespace that should run.
func podsOf(t testing.TB, rec *Record, namespace string) []*state.Pod {
	t.Helper()
	c, err := rec.Client()
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.Pods(context.Background(), namespace)
	if err != nil {
		t.Fatal(err)
	}
	var out []*state.Pod
	for _, p := range list.Pods {
		if p.Desired == state.DesiredRun {
			out = append(out, p)
		}
	}
	return out
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t testing.TB, what string, d time.Duration, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	var last string
	for time.Now().Before(deadline) {
		ok, s := cond()
		if ok {
			return
		}
		last = s
		time.Sleep(200 * time.Millisecond)
	}
	t.Fatalf("gave up waiting for %s; last: %s", what, last)
}

// commitFile writes a file of the cluster's repository and commits it.
func commitFile(t *testing.T, rec *Record, file, content, msg string) string {
	t.Helper()
	r, err := git.PlainOpen(rec.Repo)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(rec.Repo, file), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := wt.Add(file); err != nil {
		t.Fatal(err)
	}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "e2e", Email: "e2e@localhost", When: time.Now()}})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestLocalClusterHello: three nodes run the hello example; every replica
// serves from every node's namespace (pod routes across nodes); a commit
// scales it; an agent restart keeps its containers running; Down removes
// everything.
func TestLocalClusterHello(t *testing.T) {
	skipUnlessIntegration(t)
	dir := t.TempDir()
	rec := upForTest(t, "shoale2e", 3, exampleCopy(t, "hello"), []string{imageTar(t, dir, "web", "shoal.dev/examples/web:1.0")})

	pods := podsOf(t, rec, "hello")
	if len(pods) != 3 {
		t.Fatalf("%d pods, want 3", len(pods))
	}
	// Placement may use two nodes only: the first pods can be scheduled
	// before the last node has registered.
	t.Logf("3 replicas on %d nodes", answerFromEveryNode(t, rec, pods))

	// shoal logs, asked of node1, for each replica (most on other nodes).
	for _, p := range pods {
		out, err := exec.Command(shoalBinary(t), "logs", p.Name, "-n", "hello",
			"--server", rec.Nodes[0].StatusAddr, "--cluster-key-file", rec.KeyFile).CombinedOutput()
		if err != nil || !strings.Contains(string(out), "web "+p.Name+" listening on :8080") {
			t.Errorf("shoal logs %s (on %s): %v\n%s", p.Name, p.NodeName, err, out)
		}
	}

	// The Service: its NodePort on every node from the host, its ClusterIP
	// from every node's namespace; every replica answers through each.
	c, err := rec.Client()
	if err != nil {
		t.Fatal(err)
	}
	svcs, err := c.Services(context.Background(), "hello")
	if err != nil || len(svcs.Services) != 1 || svcs.Services[0].ClusterIP == "" || svcs.Services[0].Ports[0].NodePort != 30080 {
		t.Fatalf("services: %+v %v", svcs, err)
	}
	clusterIP := svcs.Services[0].ClusterIP
	for _, n := range rec.Nodes {
		seen := map[string]bool{}
		for range 30 {
			out, err := exec.Command("curl", "-sS", "-m", "5", "http://"+n.Addr+":30080/").CombinedOutput()
			if err != nil {
				t.Fatalf("NodePort of %s: %v %s", n.Name, err, out)
			}
			seen[strings.Fields(string(out))[2]] = true
			out, err = inNode(n, "curl", "-sS", "-m", "5", "http://"+clusterIP+"/")
			if err != nil {
				t.Fatalf("ClusterIP from %s: %v %s", n.Name, err, out)
			}
			seen[strings.Fields(string(out))[2]] = true
		}
		if len(seen) != 3 {
			t.Errorf("through %s the Service reached %d replicas in 60 requests, want all 3: %v", n.Name, len(seen), seen)
		}
	}

	// Scale by a commit.
	web, err := os.ReadFile(filepath.Join(rec.Repo, "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	commit := commitFile(t, rec, "web.yaml", strings.Replace(string(web), "replicas: 3", "replicas: 5", 1), "scale web to 5")
	waitFor(t, "5 ready replicas at "+commit[:12], 2*time.Minute, func() (bool, string) {
		c, _ := rec.Client()
		st, err := c.Status(context.Background())
		if err != nil {
			return false, err.Error()
		}
		ready := 0
		pods := podsOf(t, rec, "hello")
		for _, p := range pods {
			if p.Status.Ready {
				ready++
			}
		}
		pinned := ""
		if st.Pinned != nil {
			pinned = st.Pinned.Commit
		}
		return pinned == commit && ready == 5 && len(pods) == 5, fmt.Sprintf("pinned %s, %d/%d ready", pinned, ready, len(pods))
	})

	// Every replica answers from every node's namespace, on at least two
	// nodes now that all are Ready: pod routes across nodes.
	if used := answerFromEveryNode(t, rec, podsOf(t, rec, "hello")); used < 2 {
		t.Errorf("5 replicas on %d node, want them spread", used)
	}

	// A rolling update under steady load loses no request, and git revert
	// rolls it back.
	nodePort := "http://" + rec.Nodes[0].Addr + ":30080/"
	allSay := func(text string) func() (bool, string) {
		return func() (bool, string) {
			for range 12 {
				out, err := exec.Command("curl", "-sS", "-m", "5", nodePort).CombinedOutput()
				if err != nil || !strings.Contains(string(out), text) {
					return false, fmt.Sprintf("%s %v", out, err)
				}
			}
			return true, ""
		}
	}
	underLoad(t, nodePort, func() {
		web, err := os.ReadFile(filepath.Join(rec.Repo, "web.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		commitFile(t, rec, "web.yaml", strings.Replace(string(web), `"version 1"`, `"version 2"`, 1), "roll out version 2")
		waitFor(t, "every answer from version 2", 2*time.Minute, allSay("version 2"))
	})
	git := exec.Command("git", "-C", rec.Repo, "-c", "user.name=e2e", "-c", "user.email=e2e@localhost", "revert", "--no-edit", "HEAD")
	if out, err := git.CombinedOutput(); err != nil {
		t.Fatalf("git revert: %v %s", err, out)
	}
	waitFor(t, "every answer from version 1 after git revert", 2*time.Minute, allSay("version 1"))

	// An agent restart keeps its containers: same start times, no restarts.
	// The node is one that runs replicas (a rollout may leave one without),
	// preferably not node1, whose status API the test reads.
	idx := -1
	before := map[string]state.ContainerStatus{}
	for _, i := range []int{1, 2, 0} {
		for _, p := range podsOf(t, rec, "hello") {
			if p.NodeName == rec.Nodes[i].Name {
				before[p.UID] = p.Status.Containers[0]
			}
		}
		if len(before) > 0 {
			idx = i
			break
		}
	}
	if idx < 0 {
		t.Fatal("no node runs a hello pod")
	}
	n2 := rec.Nodes[idx]
	if err := stopProcess(n2.AgentPID, "agent", agentStopGrace); err != nil {
		t.Fatal(err)
	}
	pid, err := startAgent(shoalBinary(t), &n2, nil)
	if err != nil {
		t.Fatal(err)
	}
	rec.Nodes[idx].AgentPID = pid
	if err := rec.save(); err != nil {
		t.Fatal(err)
	}
	waitFor(t, "node2's pods reported by its new agent", time.Minute, func() (bool, string) {
		c, _ := rec.Client()
		nodes, err := c.Nodes(context.Background())
		if err != nil {
			return false, err.Error()
		}
		for _, n := range nodes.Nodes {
			if n.Name == n2.Name && n.Status != state.NodeReady {
				return false, "node2 " + n.Status.String()
			}
		}
		return rec.agentsAlive() == nil, "agents"
	})
	for _, p := range podsOf(t, rec, "hello") {
		b, ok := before[p.UID]
		if !ok {
			continue
		}
		a := p.Status.Containers[0]
		if !a.StartedAt.Equal(b.StartedAt) || a.Restarts != 0 || !p.Status.Ready {
			t.Errorf("pod %s after the agent restart: started %v (was %v), restarts %d, ready %v",
				p.Name, a.StartedAt, b.StartedAt, a.Restarts, p.Status.Ready)
		}
		delete(before, p.UID)
	}
	if len(before) > 0 {
		t.Errorf("pods of %s gone after its agent restarted: %v", n2.Name, before)
	}
	out, err := inNode(rec.Nodes[0], "curl", "-sS", "-m", "5", "http://"+rec.Nodes[1].Addr+":7949/v1/status")
	if err == nil && !bytes.Contains(out, []byte("unauthorized")) && !bytes.Contains(out, []byte("401")) && bytes.Contains(out, []byte("leader")) {
		t.Errorf("status API answered without the token: %s", out)
	}
}

// underLoad sends requests to url back to back while f runs, and fails the
// test if any of them fails.
func underLoad(t *testing.T, url string, f func()) {
	t.Helper()
	stop := make(chan struct{})
	type result struct {
		ok, failed int
		first      string
	}
	done := make(chan result)
	go func() {
		var r result
		// A new connection per request, as separate clients make: a kept-alive
		// connection would pin one pod and bypass the balancing.
		client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		for {
			select {
			case <-stop:
				done <- r
				return
			default:
			}
			resp, err := client.Get(url)
			if err == nil {
				_, err = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				if err == nil && resp.StatusCode != http.StatusOK {
					err = fmt.Errorf("status %s", resp.Status)
				}
			}
			if err != nil {
				r.failed++
				if r.first == "" {
					r.first = err.Error()
				}
			} else {
				r.ok++
			}
			time.Sleep(10 * time.Millisecond)
		}
	}()
	f()
	close(stop)
	r := <-done
	t.Logf("under load: %d requests answered, %d failed", r.ok, r.failed)
	if r.failed > 0 || r.ok == 0 {
		t.Errorf("%d of %d requests failed during the change (first: %s)", r.failed, r.ok+r.failed, r.first)
	}
}

// answerFromEveryNode checks that every pod answers HTTP from every node's
// network namespace, and returns on how many nodes the pods run.
func answerFromEveryNode(t *testing.T, rec *Record, pods []*state.Pod) int {
	t.Helper()
	nodesUsed := map[string]bool{}
	for _, p := range pods {
		nodesUsed[p.NodeName] = true
		for _, n := range rec.Nodes {
			out, err := inNode(n, "curl", "-sS", "-m", "5", "http://"+p.Status.PodIP+":8080/")
			if err != nil || !strings.Contains(string(out), "hello from "+p.Name) {
				t.Errorf("pod %s (%s on %s) from %s: %v %s", p.Name, p.Status.PodIP, p.NodeName, n.Name, err, out)
			}
		}
	}
	return len(nodesUsed)
}

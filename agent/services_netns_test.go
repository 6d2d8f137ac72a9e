package agent

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	goruntime "runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	mdns "github.com/miekg/dns"
	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// TestServiceNetworkingInNetns runs the node's Service loop (runServices:
// kernel settings, svcproxy on real iptables, cluster DNS on the bridge
// address) against a real state store and repository, inside network
// namespaces the test creates and deletes: a node with a pod bridge, two
// endpoint pods and a client pod on the same bridge (so the replies only
// come back un-DNATed through br_netfilter, as on a real node).
//
// The agent runs in a child process started with `ip netns exec NODE`, so
// every socket and iptables call of its goroutines lands in the node
// namespace; the host's tables and links are never touched.
func TestServiceNetworkingInNetns(t *testing.T) {
	if os.Getenv("SHOAL_SVC_NETNS_CHILD") != "" {
		serviceNetnsChild(t, os.Getenv("SHOAL_SVC_NETNS_CHILD"))
		return
	}
	if testing.Short() {
		t.Skip("builds network namespaces")
	}
	if os.Geteuid() != 0 {
		t.Skip("needs root to create network namespaces and program iptables in them")
	}
	for _, bin := range []string{"ip", "iptables", "iptables-restore", "iptables-save", "git"} {
		if _, err := exec.LookPath(bin); err != nil {
			t.Skipf("needs %s: %v", bin, err)
		}
	}
	if _, err := os.Stat("/proc/sys/net/bridge/bridge-nf-call-iptables"); err != nil {
		t.Skip("needs the br_netfilter module loaded (pods reaching a Service on their own bridge)")
	}
	node := newTestNetns(t, "node")
	netnsRun(t, "ip", "-n", node, "link", "add", "shoal-tbr", "type", "bridge")
	netnsRun(t, "ip", "-n", node, "link", "set", "shoal-tbr", "up")
	var pods []string
	for _, p := range []struct{ name, ip string }{{"p1", "10.244.1.10"}, {"p2", "10.244.1.11"}, {"cl", "10.244.1.12"}} {
		ns := newTestNetns(t, p.name)
		pods = append(pods, ns)
		host := "veth-" + p.name
		netnsRun(t, "ip", "-n", node, "link", "add", host, "type", "veth", "peer", "name", "eth0", "netns", ns)
		netnsRun(t, "ip", "-n", node, "link", "set", host, "master", "shoal-tbr", "up")
		netnsRun(t, "ip", "-n", ns, "addr", "add", p.ip+"/24", "dev", "eth0")
		netnsRun(t, "ip", "-n", ns, "link", "set", "eth0", "up")
		netnsRun(t, "ip", "-n", ns, "route", "add", "default", "via", "10.244.1.1")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*guard)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", node, os.Args[0], "-test.run=^TestServiceNetworkingInNetns$", "-test.count=1", "-test.v")
	cmd.Env = append(os.Environ(), "SHOAL_SVC_NETNS_CHILD="+strings.Join(pods, ","))
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestServiceNetworkingInNetns") {
		t.Fatalf("child in %s: %v\n%s", node, err, out)
	}
	t.Logf("child in %s:\n%s", node, out)
}

// serviceNetnsChild runs in the node namespace; pods are the endpoint and
// client namespaces.
func serviceNetnsChild(t *testing.T, pods string) {
	names := strings.Split(pods, ",")
	p1, p2, client := names[0], names[1], names[2]
	netnsEcho(t, p1, "p1", 8080)
	netnsEcho(t, p2, "p2", 8080)

	repo := newTestRepo(t)
	pod := func(name string) string {
		return fmt.Sprintf(`apiVersion: v1
kind: Pod
metadata: {name: %s, namespace: default, labels: {app: web}}
spec:
  containers:
    - name: app
      image: example.com/web:1
      ports: [{name: http, containerPort: 8080}]
`, name)
	}
	commit := repo.commit("web", map[string]string{"p1.yaml": pod("p1"), "p2.yaml": pod("p2"), "svc.yaml": `apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: v1
kind: Service
metadata: {name: web-pods, namespace: default}
spec:
  clusterIP: None
  selector: {app: web}
`})
	a, s := pinAgent(t, repo)
	a.log = testLogger(t)
	a.cfg = Config{NodeName: "n1", Runtime: RuntimeContainerd}.WithDefaults()
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	mustApply(t, s, &state.Allocate{Allocations: []state.Allocation{{Kind: state.AllocPodCIDR, Value: "10.244.1.0/24", Owner: "n1"}}})
	mustApply(t, s, &state.PinRevision{Commit: commit, Ref: "refs/heads/main", Time: t0})
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	l, err := a.src.load(ctx, commit)
	if err != nil {
		t.Fatal(err)
	}
	uids := map[string]string{}
	for name, ip := range map[string]string{"p1": "10.244.1.10", "p2": "10.244.1.11"} {
		p := l.set.Get(manifest.Key{Kind: "Pod", Namespace: "default", Name: name})
		rec := podRecord(p.Obj.(*corev1.Pod), podTemplateHash(p.Obj.(*corev1.Pod)), commit, t0)
		uids[name] = rec.UID
		mustApply(t, s, &state.CreatePods{Pods: []state.Pod{rec}, Time: t0})
		mustApply(t, s, &state.BindPods{Bindings: []state.Binding{{UID: rec.UID, Node: "n1"}}})
		mustApply(t, s, &state.UpdatePodStatus{Node: "n1", Updates: []state.PodStatusUpdate{{UID: rec.UID,
			Status: state.PodStatus{Phase: state.PhaseRunning, PodIP: ip, Ready: true}}}})
	}
	// The leader's step allocates web its ClusterIP.
	if _, err := a.serviceAllocStep(ctx, s.Snapshot()); err != nil {
		t.Fatal(err)
	}
	clusterIP := s.Snapshot().AllocationsOf(state.AllocClusterIP, "default/web")[0].Value

	loopCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		a.runServices(loopCtx)
	}()
	t.Cleanup(func() { stop(); wg.Wait() })

	// The bridge gets its address only now, as with the first pod's CNI
	// call: the DNS server was started before and must bind once it exists.
	netnsRun(t, "ip", "addr", "add", "10.244.1.1/24", "dev", "shoal-tbr")

	lookup := func(name string) ([]string, error) {
		var ips []string
		var err error
		inNetns(t, client, func() {
			m := new(mdns.Msg)
			m.SetQuestion(name, mdns.TypeA)
			var r *mdns.Msg
			r, _, err = (&mdns.Client{Net: "udp", Timeout: 300 * time.Millisecond}).Exchange(m, "10.244.1.1:53")
			if err != nil {
				return
			}
			for _, rr := range r.Answer {
				if a, ok := rr.(*mdns.A); ok {
					ips = append(ips, a.A.String())
				}
			}
			slices.Sort(ips)
		})
		return ips, err
	}
	dial := func() (string, error) {
		var line string
		var err error
		inNetns(t, client, func() {
			var c net.Conn
			if c, err = net.DialTimeout("tcp4", clusterIP+":80", 300*time.Millisecond); err != nil {
				return
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(time.Second))
			line, err = bufio.NewReader(c).ReadString('\n')
		})
		if err != nil {
			return "", err
		}
		id, _, _ := strings.Cut(line, " ")
		return id, nil
	}
	// until retries a check (each attempt bounded by its own timeout) until
	// it holds: the loops run asynchronously; guard bounds the wait.
	until := func(what string, check func() error) {
		t.Helper()
		deadline := time.Now().Add(guard)
		for {
			err := check()
			if err == nil {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not reached within %s: %v", what, guard, err)
			}
			<-time.After(10 * time.Millisecond) // paces the retries; the outcome is the condition
		}
	}

	until("cluster DNS answers for the Service", func() error {
		ips, err := lookup("web.default.svc.cluster.local.")
		if err == nil && !slices.Equal(ips, []string{clusterIP}) {
			err = fmt.Errorf("answers %v, want %s", ips, clusterIP)
		}
		return err
	})
	if ips, err := lookup("web-pods.default.svc.cluster.local."); err != nil || !slices.Equal(ips, []string{"10.244.1.10", "10.244.1.11"}) {
		t.Errorf("headless Service: %v %v", ips, err)
	}
	seen := map[string]int{}
	until("the ClusterIP reaches both pods from a pod on the same bridge", func() error {
		id, err := dial()
		if err != nil {
			return err
		}
		seen[id]++
		if seen["p1"] == 0 || seen["p2"] == 0 {
			return fmt.Errorf("answers so far %v", seen)
		}
		return nil
	})

	// p2 turns unready: the loop sees the store change and both the rules
	// and DNS drop it.
	mustApply(t, s, &state.UpdatePodStatus{Node: "n1", Updates: []state.PodStatusUpdate{{UID: uids["p2"],
		Status: state.PodStatus{Phase: state.PhaseRunning, PodIP: "10.244.1.11", Ready: false}}}})
	until("DNS drops the unready pod", func() error {
		ips, err := lookup("web-pods.default.svc.cluster.local.")
		if err == nil && !slices.Equal(ips, []string{"10.244.1.10"}) {
			err = fmt.Errorf("answers %v", ips)
		}
		return err
	})
	streak := 0
	until("20 connections in a row reach p1 only", func() error {
		id, err := dial()
		if err != nil || id != "p1" {
			streak = 0
			return fmt.Errorf("answer %q, %v", id, err)
		}
		if streak++; streak < 20 {
			return fmt.Errorf("%d in a row", streak)
		}
		return nil
	})
}

// Helpers for the namespaces (as in svcproxy's tests): names are
// shoal-a<pid>-<n>-<role>, deleted with every link in them in Cleanup.

var netnsCount atomic.Int64

func netnsRun(t *testing.T, args ...string) {
	t.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		t.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

func newTestNetns(t *testing.T, role string) string {
	t.Helper()
	name := fmt.Sprintf("shoal-a%d-%d-%s", os.Getpid(), netnsCount.Add(1), role)
	netnsRun(t, "ip", "netns", "add", name)
	t.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			t.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	netnsRun(t, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// inNetns runs fn on a thread switched into namespace ns.
func inNetns(t *testing.T, ns string, fn func()) {
	t.Helper()
	goruntime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		goruntime.UnlockOSThread()
		t.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		goruntime.UnlockOSThread()
		t.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		goruntime.UnlockOSThread()
		t.Fatalf("setns %s: %v", ns, err)
	}
	defer func() {
		// If the way back fails the thread stays locked and dies with the
		// goroutine instead of serving others in the wrong namespace.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			t.Errorf("setns back: %v", err)
			return
		}
		goruntime.UnlockOSThread()
	}()
	fn()
}

// netnsEcho answers every TCP connection on port in namespace ns with id.
func netnsEcho(t *testing.T, ns, id string, port int) {
	t.Helper()
	var ln net.Listener
	inNetns(t, ns, func() {
		var err error
		if ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", port)); err != nil {
			t.Fatal(err)
		}
	})
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			fmt.Fprintf(c, "%s %s\n", id, c.RemoteAddr())
			c.Close()
		}
	}()
	t.Cleanup(func() { ln.Close(); <-done })
}

package runtime

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/shoal-dev/shoal/internal/testimages"
	corev1 "k8s.io/api/core/v1"
)

func podSpec(name string, containers ...ContainerSpec) PodSpec {
	return PodSpec{
		Key:                    PodKey{Namespace: "default", Name: name, UID: "uid-" + name},
		Hostname:               name,
		RestartPolicy:          corev1.RestartPolicyNever,
		TerminationGracePeriod: 30 * time.Second,
		Containers:             containers,
	}
}

func httpGet(url string) (int, string, error) {
	c := &http.Client{Timeout: 2 * time.Second}
	resp, err := c.Get(url)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// waitHTTP polls the pod until it answers 200 on path.
func waitHTTP(t *testing.T, ip, path string) string {
	t.Helper()
	var body string
	eventually(t, "GET "+ip+path, func() (bool, string) {
		code, b, err := httpGet("http://" + ip + ":8080" + path)
		body = b
		if err != nil {
			return false, err.Error()
		}
		return code == http.StatusOK, fmt.Sprintf("%d %s", code, b)
	})
	return body
}

func waitTerminated(t *testing.T, n *testNode, key PodKey, container string) ContainerStatus {
	t.Helper()
	var cs ContainerStatus
	eventually(t, container+" terminated", func() (bool, string) {
		st, err := n.PodStatus(context.Background(), key)
		if err != nil {
			return false, err.Error()
		}
		cs, _ = st.Container(container)
		return cs.State == StateTerminated, fmt.Sprintf("%+v", cs)
	})
	return cs
}

func TestContainerdWebPodLifecycle(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	web := n.env.images["web"]

	ref, err := n.EnsureImage(ctx, web, corev1.PullAlways)
	if err != nil {
		t.Fatalf("pull from the in-process registry: %v", err)
	}
	if ref != web {
		t.Errorf("EnsureImage ref = %q, want %q", ref, web)
	}

	spec := podSpec("web-1", ContainerSpec{
		Name: "web", Image: web, PullPolicy: corev1.PullIfNotPresent,
		Env:        []EnvVar{{Name: "GREETING", Value: "hi there"}},
		WorkingDir: "/tmp",
	})
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	ip, err := netip.ParseAddr(st.PodIP)
	if err != nil || !n.cfg.PodCIDR.Contains(ip) {
		t.Fatalf("pod IP %q is not in %s", st.PodIP, n.cfg.PodCIDR)
	}
	cs, _ := st.Container("web")
	if cs.State != StateRunning || cs.PID == 0 {
		t.Fatalf("web container: %+v, want Running with a PID", cs)
	}
	if st.Phase != corev1.PodRunning {
		t.Errorf("phase %s, want Running", st.Phase)
	}

	// From the host, through the bridge, to the pod's netns.
	if body := waitHTTP(t, st.PodIP, "/"); body != "hello from web-1\n" {
		t.Errorf("GET / = %q: the hostname should be the pod name", body)
	}
	if body := waitHTTP(t, st.PodIP, "/env/GREETING"); body != "hi there\n" {
		t.Errorf("env GREETING = %q", body)
	}
	if body := waitHTTP(t, st.PodIP, "/env/HOSTNAME"); body != "web-1\n" {
		t.Errorf("env HOSTNAME = %q", body)
	}
	if body := waitHTTP(t, st.PodIP, "/cwd"); body != "/tmp\n" {
		t.Errorf("cwd = %q, want /tmp", body)
	}
	if body := waitHTTP(t, st.PodIP, "/file/etc/hosts"); !strings.Contains(body, st.PodIP+"\tweb-1") {
		t.Errorf("/etc/hosts lacks the pod's own line:\n%s", body)
	}
	if body := waitHTTP(t, st.PodIP, "/file/etc/resolv.conf"); body != "nameserver 10.96.0.10\nsearch default.svc.cluster.local svc.cluster.local\noptions ndots:5\n" {
		t.Errorf("/etc/resolv.conf:\n%s", body)
	}

	// Labels tie the container to its pod.
	ctr, err := n.client.LoadContainer(n.ctx(ctx), cs.ID)
	if err != nil {
		t.Fatal(err)
	}
	labels, err := ctr.Labels(n.ctx(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if labels[LabelPodUID] != spec.Key.UID || labels[LabelPodName] != "web-1" || labels[LabelPodNamespace] != "default" || labels[LabelContainer] != "web" {
		t.Errorf("labels %v", labels)
	}

	// RunPod again is a no-op returning the same pod.
	again, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if c2, _ := again.Container("web"); c2.PID != cs.PID || again.PodIP != st.PodIP {
		t.Errorf("second RunPod changed the pod: %+v", again)
	}

	waitLog(t, n, spec.Key, "web", "web web-1 listening on :8080")
	waitLog(t, n, spec.Key, "web", "GET /env/GREETING")

	// A following reader sees lines written after it was opened.
	fctx, cancelFollow := context.WithCancel(ctx)
	rc, err := n.Logs(fctx, spec.Key, "web", LogOptions{Follow: true})
	if err != nil {
		t.Fatal(err)
	}
	lines := make(chan string, 64)
	go func() {
		defer close(lines)
		sc := bufio.NewScanner(rc)
		for sc.Scan() {
			lines <- sc.Text()
		}
	}()
	httpGet("http://" + st.PodIP + ":8080/followed")
	guard := time.After(30 * time.Second)
	for seen := false; !seen; {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatal("follow reader ended early")
			}
			seen = strings.Contains(l, "GET /followed")
		case <-guard:
			t.Fatal("following reader never returned the new line")
		}
	}
	cancelFollow()
	for range lines {
	}
	rc.Close()

	// SIGTERM is honoured: the server logs it and exits 0 well within grace.
	if err := n.StopPod(ctx, spec.Key, 20*time.Second); err != nil {
		t.Fatal(err)
	}
	st, err = n.PodStatus(ctx, spec.Key)
	if err != nil {
		t.Fatal(err)
	}
	cs, _ = st.Container("web")
	if cs.State != StateTerminated || cs.ExitCode != 0 || cs.Reason != ReasonCompleted {
		t.Errorf("after stop: %+v, want Terminated/Completed/0", cs)
	}
	if st.Phase != corev1.PodSucceeded {
		t.Errorf("after stop: phase %s", st.Phase)
	}
	waitLog(t, n, spec.Key, "web", "received terminated, shutting down")
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := n.PodStatus(ctx, spec.Key); !errors.Is(err, ErrPodNotFound) {
		t.Errorf("status after remove: %v", err)
	}
	n.assertNoLeaks(t)
}

func TestContainerdBatchExitCodesAndGrace(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	batch := n.env.images["batch"]

	spec := podSpec("batch-1",
		// args only: appended to the image's entrypoint.
		ContainerSpec{Name: "ok", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-exit-code=0"}},
		// command replaces the entrypoint; the exit code comes from env.
		ContainerSpec{Name: "fail", Image: batch, PullPolicy: corev1.PullIfNotPresent,
			Command: []string{"/batch"}, Env: []EnvVar{{Name: "EXIT_CODE", Value: "3"}}},
		// keeps running through SIGTERM: killed after the grace period.
		ContainerSpec{Name: "stubborn", Image: batch, PullPolicy: corev1.PullIfNotPresent,
			Args: []string{"-sleep=1h", "-ignore-sigterm"}},
	)
	if _, err := n.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	ok := waitTerminated(t, n, spec.Key, "ok")
	if ok.ExitCode != 0 || ok.Reason != ReasonCompleted {
		t.Errorf("ok: %+v, want Completed/0", ok)
	}
	fail := waitTerminated(t, n, spec.Key, "fail")
	if fail.ExitCode != 3 || fail.Reason != ReasonError {
		t.Errorf("fail: %+v, want Error/3", fail)
	}
	st, err := n.PodStatus(ctx, spec.Key)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != corev1.PodRunning {
		t.Errorf("phase with one container still running: %s", st.Phase)
	}
	// The shim copies output to the log asynchronously: the exit can be
	// seen before the last lines land.
	waitLog(t, n, spec.Key, "fail", "batch done, exiting 3")
	// The SIGTERM handler is installed before this line is printed (a
	// signal earlier than that would make Go exit with 2).
	waitLog(t, n, spec.Key, "stubborn", "batch starting")

	if err := n.StopPod(ctx, spec.Key, time.Second); err != nil {
		t.Fatal(err)
	}
	st, err = n.PodStatus(ctx, spec.Key)
	if err != nil {
		t.Fatal(err)
	}
	stub, _ := st.Container("stubborn")
	if stub.State != StateTerminated || stub.ExitCode != 137 || stub.Reason != ReasonError {
		t.Errorf("stubborn after grace: %+v, want Terminated by SIGKILL (137)", stub)
	}
	if st.Phase != corev1.PodFailed {
		t.Errorf("phase %s, want Failed", st.Phase)
	}
	waitLog(t, n, spec.Key, "stubborn", "batch got SIGTERM, ignoring it")
	// The exit states survive a new runtime instance.
	n.reopen(t)
	st, err = n.PodStatus(ctx, spec.Key)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Container("fail"); c.ExitCode != 3 || c.Reason != ReasonError {
		t.Errorf("fail after reopen: %+v", c)
	}
}

func TestContainerdContainerErrors(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	missing := n.env.registry.Host + "/shoal/does-not-exist:v1"
	spec := podSpec("broken",
		ContainerSpec{Name: "nopull", Image: missing, PullPolicy: corev1.PullIfNotPresent},
		ContainerSpec{Name: "never", Image: n.env.registry.Host + "/shoal/never:v1", PullPolicy: corev1.PullNever},
		ContainerSpec{Name: "badcmd", Image: n.env.images["batch"], PullPolicy: corev1.PullIfNotPresent, Command: []string{"/no/such/binary"}},
		ContainerSpec{Name: "good", Image: n.env.images["batch"], PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"}},
	)
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatalf("container failures must not fail RunPod: %v", err)
	}
	want := map[string]string{"nopull": ReasonErrImagePull, "never": ReasonErrImageNeverPull, "badcmd": ReasonCreateContainerError}
	for name, reason := range want {
		c, _ := st.Container(name)
		if c.State != StateWaiting || c.Reason != reason || c.Message == "" {
			t.Errorf("%s: %+v, want Waiting/%s with a message", name, c, reason)
		}
	}
	if c, _ := st.Container("badcmd"); !strings.Contains(c.Message, "/no/such/binary") {
		t.Errorf("badcmd message should name the command: %q", c.Message)
	}
	if c, _ := st.Container("good"); c.State != StateRunning {
		t.Errorf("good: %+v", c)
	}
	if st.Phase != corev1.PodPending {
		t.Errorf("phase %s, want Pending", st.Phase)
	}
	if _, err := n.EnsureImage(ctx, missing, corev1.PullAlways); !errors.Is(err, ErrImagePull) {
		t.Errorf("EnsureImage(missing) = %v, want ErrImagePull", err)
	}
	if _, err := n.EnsureImage(ctx, "UPPER/case::bad", corev1.PullAlways); !errors.Is(err, ErrInvalidImageName) {
		t.Errorf("EnsureImage(bad name) = %v, want ErrInvalidImageName", err)
	}
	// A failed container leaves no containerd object.
	ctrs, err := n.client.Containers(n.ctx(ctx))
	if err != nil {
		t.Fatal(err)
	}
	if len(ctrs) != 1 {
		t.Errorf("%d containers exist, want only the good one", len(ctrs))
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

func TestContainerdAdoptionAndGC(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	a := podSpec("keep", ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent})
	b := podSpec("drop", ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent})
	b.TerminationGracePeriod = 5 * time.Second
	stA, err := n.RunPod(ctx, a)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.RunPod(ctx, b); err != nil {
		t.Fatal(err)
	}
	before, _ := stA.Container("web")
	waitHTTP(t, stA.PodIP, "/healthz")

	// An agent restart: a new instance over the same namespace and data dir.
	n.reopen(t)
	pods, err := n.ListPods(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(pods) != 2 || pods[0].Key.Name != "drop" || pods[1].Key.Name != "keep" {
		t.Fatalf("ListPods after restart: %+v", pods)
	}
	res, err := n.GC(ctx, map[string]bool{a.Key.UID: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.AdoptedPods) != 1 || res.AdoptedPods[0] != a.Key || len(res.RemovedPods) != 1 || res.RemovedPods[0] != b.Key {
		t.Errorf("GC result %+v", res)
	}
	stA2, err := n.PodStatus(ctx, a.Key)
	if err != nil {
		t.Fatal(err)
	}
	after, _ := stA2.Container("web")
	if after.State != StateRunning || after.PID != before.PID || stA2.PodIP != stA.PodIP {
		t.Errorf("adopted pod changed: before %+v ip %s, after %+v ip %s", before, stA.PodIP, after, stA2.PodIP)
	}
	waitHTTP(t, stA2.PodIP, "/healthz")
	if _, err := n.PodStatus(ctx, b.Key); !errors.Is(err, ErrPodNotFound) {
		t.Errorf("unwanted pod still there: %v", err)
	}

	// A crash that lost the record: the container and netns are orphans.
	if err := os.RemoveAll(filepath.Join(n.cfg.DataDir, "pods", a.Key.UID)); err != nil {
		t.Fatal(err)
	}
	res, err = n.GC(ctx, map[string]bool{a.Key.UID: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.OrphanContainers) != 1 || len(res.OrphanSandboxes) != 1 {
		t.Errorf("orphans not collected: %+v", res)
	}
	n.assertNoLeaks(t)
}

func TestContainerdNoLeaksAfterCycles(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	cycles := 100
	if v := os.Getenv("SHOAL_LEAK_CYCLES"); v != "" {
		fmt.Sscan(v, &cycles)
	}
	web := n.env.images["web"]
	for i := range cycles {
		spec := podSpec(fmt.Sprintf("cycle-%d", i), ContainerSpec{Name: "web", Image: web, PullPolicy: corev1.PullIfNotPresent})
		// A SIGTERM that lands before the program installs its handler is
		// ignored (it is PID 1); keep such a cycle short.
		spec.TerminationGracePeriod = time.Second
		st, err := n.RunPod(ctx, spec)
		if err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
		if c, _ := st.Container("web"); c.State != StateRunning || st.PodIP == "" {
			t.Fatalf("cycle %d: %+v", i, st)
		}
		if err := n.RemovePod(ctx, spec.Key); err != nil {
			t.Fatalf("cycle %d: %v", i, err)
		}
	}
	n.assertNoLeaks(t)
}

func TestStartContainerdReusesRunningDaemon(t *testing.T) {
	env := integrationEnv(t)
	d, err := StartContainerd(context.Background(), DaemonConfig{Dir: env.dir})
	if err != nil {
		t.Fatal(err)
	}
	if !d.Reused || d.PID != env.daemon.PID || d.Address != env.daemon.Address {
		t.Errorf("second start: %+v, want reuse of pid %d", d, env.daemon.PID)
	}
	c, err := containerd.New(d.Address)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	v, err := c.Version(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("containerd %s", v.Version)
}

func TestContainerdSandboxFailureLeavesNothing(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	// A /30 has one address for pods once the bridge has the gateway.
	n.reopenWith(t, func(c *Config) { c.PodCIDR = netip.MustParsePrefix(n.cfg.PodCIDR.Addr().String() + "/30") })
	batch := n.env.images["batch"]
	first := podSpec("first", ContainerSpec{Name: "b", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"}})
	second := podSpec("second", ContainerSpec{Name: "b", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"}})
	if _, err := n.RunPod(ctx, first); err != nil {
		t.Fatal(err)
	}
	_, err := n.RunPod(ctx, second)
	if err == nil {
		t.Fatal("second pod got an address from a full /30")
	}
	t.Logf("expected failure: %v", err)
	if _, err := n.PodStatus(ctx, second.Key); !errors.Is(err, ErrPodNotFound) {
		t.Errorf("failed pod still recorded: %v", err)
	}
	if _, err := os.Stat(n.netnsPath(second.Key.UID)); !os.IsNotExist(err) {
		t.Errorf("failed pod's netns still there: %v", err)
	}
	if err := n.RemovePod(ctx, first.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

func TestContainerdImportOCITarball(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	img, err := n.env.builder.Build(ctx, "batch")
	if err != nil {
		t.Fatal(err)
	}
	tarPath := filepath.Join(t.TempDir(), "batch.tar")
	if err := testimages.WriteOCITar(img, "shoal.dev/test/batch:imported", tarPath); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(tarPath)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	names, err := n.ImportImages(ctx, f)
	if err != nil {
		t.Fatal(err)
	}
	if len(names) != 1 || names[0] != "shoal.dev/test/batch:imported" {
		t.Fatalf("imported %v", names)
	}
	spec := podSpec("imported", ContainerSpec{Name: "b", Image: "shoal.dev/test/batch:imported", PullPolicy: corev1.PullNever, Args: []string{"-exit-code=0"}})
	if _, err := n.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if c := waitTerminated(t, n, spec.Key, "b"); c.Reason != ReasonCompleted {
		t.Errorf("%+v", c)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}

	// The same through ImportImageArchive, as `shoal image import` does with no node runtime.
	archive := filepath.Join(t.TempDir(), "batch-archive.tar")
	if err := testimages.WriteOCITar(img, "shoal.dev/test/batch:archive", archive); err != nil {
		t.Fatal(err)
	}
	fa, err := os.Open(archive)
	if err != nil {
		t.Fatal(err)
	}
	defer fa.Close()
	if names, err := ImportImageArchive(ctx, n.cfg.Address, n.cfg.Namespace, "", fa); err != nil || len(names) != 1 || names[0] != "shoal.dev/test/batch:archive" {
		t.Fatalf("ImportImageArchive: %v, %v", names, err)
	}
	spec = podSpec("archived", ContainerSpec{Name: "b", Image: "shoal.dev/test/batch:archive", PullPolicy: corev1.PullNever, Args: []string{"-exit-code=0"}})
	if _, err := n.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if c := waitTerminated(t, n, spec.Key, "b"); c.Reason != ReasonCompleted {
		t.Errorf("%+v", c)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
}

func TestContainerdHostPort(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	hadChains := iptablesHas(t, "CNI-HOSTPORT-DNAT")
	t.Cleanup(func() {
		if !hadChains {
			removePortmapChains(t)
		}
	})
	port := freeLoopbackPort(t)
	spec := podSpec("hp", ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent,
		Ports: []PortMapping{{ContainerPort: 8080, HostPort: port, HostIP: "127.0.0.1", Protocol: corev1.ProtocolTCP}}})
	if _, err := n.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	url := fmt.Sprintf("http://127.0.0.1:%d/", port)
	eventually(t, "GET "+url, func() (bool, string) {
		code, body, err := httpGet(url)
		if err != nil {
			return false, err.Error()
		}
		return code == 200 && body == "hello from hp\n", fmt.Sprintf("%d %q", code, body)
	})
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	if out := iptablesSave(t); strings.Contains(out, spec.Key.UID) {
		t.Errorf("portmap rules for the pod remain:\n%s", out)
	}
}

// An agent that died between building the sandbox and starting a
// container: the next RunPod finishes the job in the same sandbox.
func TestContainerdRunPodResumesInterruptedStart(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	spec := podSpec("resume", ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent})
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	// Undo the container start and forget it, as if never done.
	r, err := n.loadRecord(spec.Key.UID)
	if err != nil {
		t.Fatal(err)
	}
	ctr, err := n.client.LoadContainer(n.ctx(ctx), r.Containers["web"].ID)
	if err != nil {
		t.Fatal(err)
	}
	if err := n.deleteContainer(n.ctx(ctx), ctr); err != nil {
		t.Fatal(err)
	}
	r.Containers["web"].StartedAt = time.Time{}
	if err := n.saveRecord(r); err != nil {
		t.Fatal(err)
	}
	n.reopen(t)
	st2, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := st2.Container("web"); c.State != StateRunning || st2.PodIP != st.PodIP {
		t.Fatalf("after resume: %+v (ip was %s)", st2, st.PodIP)
	}
	waitHTTP(t, st2.PodIP, "/healthz")
}

// BenchmarkContainerdPodStart measures RunPod of a one-container pod whose
// image is present, from the call to the process running with an IP, and
// reports the teardown separately.
func BenchmarkContainerdPodStart(b *testing.B) {
	n := newTestNode(b)
	n.log = slog.New(slog.DiscardHandler)
	ctx := context.Background()
	web := n.env.images["web"]
	if _, err := n.EnsureImage(ctx, web, corev1.PullIfNotPresent); err != nil {
		b.Fatal(err)
	}
	var teardown time.Duration
	i := 0
	for b.Loop() {
		spec := podSpec(fmt.Sprintf("bench-%d", i), ContainerSpec{Name: "web", Image: web, PullPolicy: corev1.PullIfNotPresent})
		spec.TerminationGracePeriod = time.Second
		i++
		st, err := n.RunPod(ctx, spec)
		if err != nil {
			b.Fatal(err)
		}
		if c, _ := st.Container("web"); c.State != StateRunning || st.PodIP == "" {
			b.Fatalf("%+v", st)
		}
		b.StopTimer()
		start := time.Now()
		if err := n.RemovePod(ctx, spec.Key); err != nil {
			b.Fatal(err)
		}
		teardown += time.Since(start)
		b.StartTimer()
	}
	b.ReportMetric(float64(teardown.Milliseconds())/float64(i), "ms-teardown/op")
}

// TestStartContainerdOutlivesCaller starts a private containerd from a
// child process that then exits, and finds the daemon still answering and
// reusable, as an agent restart would.
func TestStartContainerdOutlivesCaller(t *testing.T) {
	if m := missingForIntegration(); m != "" {
		t.Skip("integration test needs " + m)
	}
	dir, err := os.MkdirTemp("", "shoalctd")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperStartContainerd$")
	cmd.Env = append(os.Environ(), "SHOAL_HELPER_CONTAINERD_DIR="+dir)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("helper: %v\n%s", err, out)
	}
	var pid int
	if _, err := fmt.Sscanf(string(out[bytes.Index(out, []byte("pid=")):]), "pid=%d", &pid); err != nil {
		t.Fatalf("helper output %q: %v", out, err)
	}
	d, err := StartContainerd(context.Background(), DaemonConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		if err := d.Stop(ctx); err != nil {
			t.Error(err)
		}
	})
	if !d.Reused || d.PID != pid {
		t.Errorf("after the starter exited: %+v, want reuse of pid %d", d, pid)
	}
}

// TestHelperStartContainerd is run as a child process by
// TestStartContainerdOutlivesCaller.
func TestHelperStartContainerd(t *testing.T) {
	dir := os.Getenv("SHOAL_HELPER_CONTAINERD_DIR")
	if dir == "" {
		t.Skip("helper process for TestStartContainerdOutlivesCaller")
	}
	d, err := StartContainerd(context.Background(), DaemonConfig{Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	fmt.Printf("pid=%d\n", d.PID)
}

// TestContainerdConcurrentFirstPods starts several pods at once on a fresh node, as an agent does
// after a restart or a burst of bindings: the first CNI calls must not race (under -race).
func TestContainerdConcurrentFirstPods(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	if _, err := n.EnsureImage(ctx, n.env.images["web"], corev1.PullIfNotPresent); err != nil {
		t.Fatal(err)
	}
	specs := make([]PodSpec, 3)
	errs := make([]error, len(specs))
	var wg sync.WaitGroup
	for i := range specs {
		specs[i] = podSpec(fmt.Sprintf("burst-%d", i), ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent})
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = n.RunPod(ctx, specs[i])
		}()
	}
	wg.Wait()
	for i, err := range errs {
		if err != nil {
			t.Errorf("%s: %v", specs[i].Key.Name, err)
		}
	}
	for _, s := range specs {
		if err := n.RemovePod(ctx, s.Key); err != nil {
			t.Error(err)
		}
	}
}

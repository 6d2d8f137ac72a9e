package runtime

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	corev1 "k8s.io/api/core/v1"
)

// TestContainerdRotateLogs: a log over the limit moves to .1 (then .2),
// and the shim goes on appending to the truncated file from its start.
func TestContainerdRotateLogs(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	spec := podSpec("logs", ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent})
	spec.TerminationGracePeriod = 5 * time.Second
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	request := func(path string) {
		t.Helper()
		if code, _, err := httpGet("http://" + st.PodIP + ":8080" + path); err != nil || code != 200 {
			t.Fatalf("GET %s: %d %v", path, code, err)
		}
	}
	waitHTTP(t, st.PodIP, "/healthz")
	for i := range 100 {
		request(fmt.Sprintf("/hook/before-%d", i))
	}
	waitLog(t, n, spec.Key, "web", "hook before-99")
	path := n.logPath(spec.Key.UID, "web")
	if rotated, err := n.RotateLogs(1<<20, 2); err != nil || len(rotated) != 0 {
		t.Fatalf("a small log rotated: %v %v", rotated, err)
	}
	rotated, err := n.RotateLogs(2048, 2)
	if err != nil || len(rotated) != 1 || rotated[0] != path {
		t.Fatalf("RotateLogs: %v %v", rotated, err)
	}
	old, err := os.ReadFile(path + ".1")
	if err != nil || !bytes.Contains(old, []byte("hook before-99")) {
		t.Fatalf("rotated copy: %v, has before-99: %v", err, bytes.Contains(old, []byte("hook before-99")))
	}
	request("/hook/after-rotation")
	waitLog(t, n, spec.Key, "web", "hook after-rotation")
	cur, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(cur, []byte{0}) || strings.Contains(string(cur), "hook before-50") || int64(len(cur)) >= int64(len(old)) {
		t.Errorf("after rotation the log must restart small, without a hole (%d bytes):\n%q", len(cur), cur)
	}
	if _, err := n.RotateLogs(1, 2); err != nil {
		t.Fatal(err)
	}
	if prev, err := os.ReadFile(path + ".2"); err != nil || !bytes.Equal(prev, old) {
		t.Errorf(".1 did not move to .2: %v", err)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

// TestContainerdLogsAcrossRestart: output written while the runtime is
// replaced (an agent restart) reaches the log, and once StopPod returns the
// program's last line, written to stderr just before it exits, is in the
// log already.
func TestContainerdLogsAcrossRestart(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	spec := podSpec("logs-restart", ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent})
	spec.TerminationGracePeriod = 20 * time.Second
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	waitHTTP(t, st.PodIP, "/healthz")
	if code, _, err := httpGet("http://" + st.PodIP + ":8080/hook/before-restart"); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	waitLog(t, n, spec.Key, "web", "hook before-restart")

	n.Containerd.Close()
	// Written while no copier runs: it waits in the FIFO.
	if code, _, err := httpGet("http://" + st.PodIP + ":8080/hook/while-down"); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	rt, err := NewContainerd(ctx, n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Containerd = rt
	if code, _, err := httpGet("http://" + st.PodIP + ":8080/hook/after-restart"); err != nil || code != 200 {
		t.Fatalf("GET: %d %v", code, err)
	}
	waitLog(t, n, spec.Key, "web", "hook after-restart")

	if err := n.StopPod(ctx, spec.Key, -1); err != nil {
		t.Fatal(err)
	}
	logs := logsOf(t, n, spec.Key, "web")
	for _, want := range []string{"hook before-restart", "hook while-down", "hook after-restart", "received terminated, shutting down", "bye"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log after StopPod lacks %q:\n%s", want, logs)
		}
	}
	if strings.Count(logs, "hook before-restart") != 1 {
		t.Errorf("a line copied twice across the restart:\n%s", logs)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

// TestContainerdAttachSkipsExitedTasks: after a restart the runtime
// attaches to the output of running tasks only. A task that exited while
// no runtime ran has FIFOs with no writer left, and a copier waiting on
// them would hold up the container's removal. FIFO directories that no
// task uses any more (that one, and others left behind) are removed.
func TestContainerdAttachSkipsExitedTasks(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	batch := n.env.images["batch"]
	spec := podSpec("attach-exited",
		ContainerSpec{Name: "short", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=2s"}},
		ContainerSpec{Name: "long", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"}},
	)
	if _, err := n.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n, spec.Key, "short", "batch starting")
	waitLog(t, n, spec.Key, "long", "batch starting")
	stale := filepath.Join(n.cfg.DataDir, "fifo", "left-by-an-earlier-agent")
	if err := os.MkdirAll(stale, 0o700); err != nil {
		t.Fatal(err)
	}

	// The short container exits while no runtime runs.
	if err := n.Containerd.Close(); err != nil {
		t.Fatal(err)
	}
	client, err := containerd.New(n.cfg.Address, containerd.WithDefaultNamespace(n.cfg.Namespace))
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	waitTaskStopped(t, client, containerID(spec.Key.UID, "short"))
	rt, err := NewContainerd(ctx, n.cfg)
	if err != nil {
		t.Fatal(err)
	}
	n.Containerd = rt

	n.outputs.mu.Lock()
	_, short := n.outputs.m[containerID(spec.Key.UID, "short")]
	_, long := n.outputs.m[containerID(spec.Key.UID, "long")]
	n.outputs.mu.Unlock()
	if short || !long {
		t.Errorf("copiers after the restart: exited container %v, running one %v; want false, true", short, long)
	}
	if _, err := os.Stat(stale); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("unused FIFO directory left after the restart: %v", err)
	}
	entries, err := os.ReadDir(filepath.Join(n.cfg.DataDir, "fifo"))
	if err != nil || len(entries) != 1 {
		t.Errorf("FIFO directories after the restart: %d (%v), want the running container's only", len(entries), err)
	}
	if logs := logsOf(t, n, spec.Key, "short"); !strings.Contains(logs, "batch starting") {
		t.Errorf("short container's log: %q", logs)
	}

	if err := n.StopPod(ctx, spec.Key, time.Second); err != nil {
		t.Fatal(err)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

// waitTaskStopped waits until containerd reports container id's task
// stopped.
func waitTaskStopped(t *testing.T, client *containerd.Client, id string) {
	t.Helper()
	ctx := context.Background()
	ctr, err := client.LoadContainer(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	exitc, err := task.Wait(ctx)
	if err != nil {
		t.Fatal(err)
	}
	<-exitc
}

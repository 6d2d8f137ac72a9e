package runtime

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

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

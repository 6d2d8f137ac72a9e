package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestFromPodLifecycle(t *testing.T) {
	pod := testPod()
	c := &pod.Spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	c.Lifecycle = &corev1.Lifecycle{
		PostStart: &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{"/bin/init"}}},
		PreStop:   &corev1.LifecycleHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromString("http"), Path: "/drain"}},
	}
	spec, err := FromPod(pod, PodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web := spec.Containers[0]
	if web.PostStart == nil || strings.Join(web.PostStart.Exec.Command, " ") != "/bin/init" ||
		web.PreStop == nil || web.PreStop.HTTPGet.Port != 8080 || web.PreStop.HTTPGet.Path != "/drain" || web.PreStop.HTTPGet.Scheme != "HTTP" {
		t.Errorf("hooks %+v %+v", web.PostStart, web.PreStop)
	}
	for name, tc := range map[string]struct {
		l    *corev1.Lifecycle
		want string
	}{
		"tcpSocket": {&corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(1)}}},
			"not supported by the runtime yet: spec.containers[0].lifecycle.preStop.tcpSocket"},
		"stopSignal": {&corev1.Lifecycle{StopSignal: new(corev1.Signal)}, "spec.containers[0].lifecycle.stopSignal"},
		"empty":      {&corev1.Lifecycle{PostStart: &corev1.LifecycleHandler{}}, "spec.containers[0].lifecycle.postStart must have exactly one"},
	} {
		p := testPod()
		p.Spec.Containers[0].Lifecycle = tc.l
		if _, err := FromPod(p, PodOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want %q", name, err, tc.want)
		}
	}
	p := testPod()
	p.Spec.Containers[0].Lifecycle = &corev1.Lifecycle{PreStop: &corev1.LifecycleHandler{Sleep: &corev1.SleepAction{Seconds: 5}}}
	if spec, err := FromPod(p, PodOptions{}); err != nil || spec.Containers[0].PreStop.Sleep != 5*time.Second {
		t.Errorf("sleep: %v", err)
	}
}

// TestContainerdLifecycleHooks: postStart runs before RunPod returns and a
// failing one stops its container; preStop runs before SIGTERM, by exec
// in the container and by HTTP to the pod.
func TestContainerdLifecycleHooks(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	batch, web := n.env.images["batch"], n.env.images["web"]
	mount := []Mount{{Volume: "data", Path: "/data"}}
	spec := podSpec("hooks",
		ContainerSpec{Name: "web", Image: web, PullPolicy: corev1.PullIfNotPresent,
			PreStop: &LifecycleHandler{HTTPGet: &HTTPGetProbe{Scheme: "HTTP", Port: 8080, Path: "/hook/prestop"}}},
		ContainerSpec{Name: "worker", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"}, Mounts: mount,
			PostStart: &LifecycleHandler{Exec: &ExecProbe{Command: []string{"/batch", "-touch=/data/poststart"}}},
			PreStop:   &LifecycleHandler{Exec: &ExecProbe{Command: []string{"/batch", "-touch=/data/prestop"}}}},
		ContainerSpec{Name: "badhook", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"},
			PostStart: &LifecycleHandler{Exec: &ExecProbe{Command: []string{"/batch", "-exit-code=1"}}}},
	)
	spec.Volumes = []Volume{{Name: "data", EmptyDir: &EmptyDirVolume{}}}
	spec.TerminationGracePeriod = 10 * time.Second
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	data := filepath.Join(n.podDir(spec.Key.UID), "volumes", "data")
	if b, err := os.ReadFile(filepath.Join(data, "poststart")); err != nil || string(b) != "touched\n" {
		t.Errorf("postStart did not run before RunPod returned: %q %v", b, err)
	}
	bad, _ := st.Container("badhook")
	if bad.State != StateTerminated || !strings.HasPrefix(bad.Message, ReasonFailedPostStartHook) || bad.ExitCode == 0 {
		t.Errorf("badhook: %+v", bad)
	}
	if w, _ := st.Container("worker"); w.State != StateRunning {
		t.Errorf("worker: %+v", w)
	}
	waitHTTP(t, st.PodIP, "/healthz")
	waitLog(t, n, spec.Key, "worker", "batch starting")

	if err := n.StopPod(ctx, spec.Key, -1); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(data, "prestop")); err != nil || string(b) != "touched\n" {
		t.Errorf("exec preStop did not run: %q %v", b, err)
	}
	// The shim copies output to the log asynchronously: wait for the last line.
	waitLog(t, n, spec.Key, "web", "received terminated")
	st, _ = n.PodStatus(ctx, spec.Key)
	if w, _ := st.Container("worker"); w.ExitCode != 143 {
		t.Errorf("worker after stop: %+v, want SIGTERM's 143 after the hook", w)
	}
	if w, _ := st.Container("web"); w.Reason != ReasonCompleted {
		t.Errorf("web after stop: %+v", w)
	}
	logs := logsOf(t, n, spec.Key, "web")
	if i, j := strings.Index(logs, "hook prestop"), strings.Index(logs, "received terminated"); i < 0 || j < 0 || j < i {
		t.Errorf("preStop must come before SIGTERM:\n%s", logs)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func readCgroup(t *testing.T, n *testNode, controller, id, file string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(cgroupRoot, controller, n.cgroupPath(id), file))
	if err != nil {
		t.Fatalf("cgroup: %v", err)
	}
	return strings.TrimSpace(string(b))
}

// statusField returns one field of a /proc/PID/status text.
func statusField(status, name string) string {
	for _, line := range strings.Split(status, "\n") {
		if v, ok := strings.CutPrefix(line, name+":"); ok {
			return strings.Join(strings.Fields(v), " ")
		}
	}
	return ""
}

func TestContainerdResourceLimitsAndOOM(t *testing.T) {
	n := newTestNode(t)
	if _, err := os.Stat(filepath.Join(cgroupRoot, "memory", "memory.oom_control")); err != nil {
		t.Skip("this test reads cgroup v1 files; the host has no cgroup v1 memory hierarchy")
	}
	ctx := context.Background()
	spec := podSpec("limits",
		ContainerSpec{Name: "hog", Image: n.env.images["batch"], PullPolicy: corev1.PullIfNotPresent,
			Args:      []string{"-alloc-mib=256", "-sleep=1h"},
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("32Mi")}}},
		ContainerSpec{Name: "capped", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent,
			Resources: corev1.ResourceRequirements{
				Limits:   corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m"), corev1.ResourceMemory: resource.MustParse("64Mi")},
				Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")},
			}},
	)
	spec.TerminationGracePeriod = 5 * time.Second
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	capped, _ := st.Container("capped")
	for _, tc := range []struct{ controller, file, want string }{
		{"cpu", "cpu.cfs_quota_us", "50000"},
		{"cpu", "cpu.cfs_period_us", "100000"},
		{"cpu", "cpu.shares", "256"},
		{"memory", "memory.limit_in_bytes", "67108864"},
	} {
		if got := readCgroup(t, n, tc.controller, capped.ID, tc.file); got != tc.want {
			t.Errorf("%s/%s = %s, want %s", tc.controller, tc.file, got, tc.want)
		}
	}
	if n.swapAccounting {
		if got := readCgroup(t, n, "memory", capped.ID, "memory.memsw.limit_in_bytes"); got != "67108864" {
			t.Errorf("memsw limit %s: the container may swap beyond its limit", got)
		}
	}

	// web handles SIGTERM once it listens: StopPod below then ends it
	// with Completed, not with SIGKILL after the grace period.
	waitHTTP(t, st.PodIP, "/healthz")
	hog := waitTerminated(t, n, spec.Key, "hog")
	if hog.Reason != ReasonOOMKilled || hog.ExitCode != 137 {
		t.Errorf("hog: %+v, want OOMKilled/137", hog)
	}
	if st, _ := n.PodStatus(ctx, spec.Key); st.Phase != corev1.PodRunning {
		t.Errorf("phase %s", st.Phase)
	}
	// The reason is kept when the task is deleted (StopPod records it).
	if err := n.StopPod(ctx, spec.Key, -1); err != nil {
		t.Fatal(err)
	}
	st, _ = n.PodStatus(ctx, spec.Key)
	if hog, _ := st.Container("hog"); hog.Reason != ReasonOOMKilled {
		t.Errorf("hog after StopPod: %+v", hog)
	}
	if c, _ := st.Container("capped"); c.Reason != ReasonCompleted {
		t.Errorf("capped after StopPod: %+v (no OOM there)", c)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

func TestContainerdSecurityContext(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	web := n.env.images["web"]
	uid, gid := int64(1000), int64(2000)
	spec := podSpec("sec",
		ContainerSpec{Name: "locked", Image: web, PullPolicy: corev1.PullIfNotPresent,
			Security: &SecurityContext{RunAsUser: &uid, RunAsGroup: &gid, SupplementalGroups: []int64{3000},
				ReadOnlyRootFilesystem: true, NoNewPrivileges: true, CapDrop: []string{"ALL"}, CapAdd: []string{"NET_BIND_SERVICE"}}},
		ContainerSpec{Name: "priv", Image: web, PullPolicy: corev1.PullIfNotPresent,
			Env: []EnvVar{{Name: "PORT", Value: "8081"}}, Security: &SecurityContext{Privileged: true}},
		ContainerSpec{Name: "nonroot", Image: web, PullPolicy: corev1.PullIfNotPresent,
			Env: []EnvVar{{Name: "PORT", Value: "8082"}}, Security: &SecurityContext{RunAsNonRoot: true}},
		ContainerSpec{Name: "plain", Image: web, PullPolicy: corev1.PullIfNotPresent,
			Env: []EnvVar{{Name: "PORT", Value: "8083"}}},
	)
	spec.TerminationGracePeriod = 5 * time.Second
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	nr, _ := st.Container("nonroot")
	if nr.State != StateWaiting || nr.Reason != ReasonCreateContainerConfigError || !strings.Contains(nr.Message, "runAsNonRoot") {
		t.Errorf("nonroot: %+v", nr)
	}
	ip := st.PodIP
	status := func(port string) string {
		t.Helper()
		var body string
		eventually(t, "status on "+port, func() (bool, string) {
			code, b, err := httpGet("http://" + ip + ":" + port + "/file/proc/self/status")
			body = b
			return err == nil && code == 200, b
		})
		return body
	}
	locked := status("8080")
	for field, want := range map[string]string{
		"Uid": "1000 1000 1000 1000", "Gid": "2000 2000 2000 2000", "Groups": "2000 3000",
		"CapBnd": "0000000000000400", "NoNewPrivs": "1",
	} {
		if got := statusField(locked, field); got != want {
			t.Errorf("locked %s: %q, want %q", field, got, want)
		}
	}
	code, body, err := httpPut("http://"+ip+":8080/file/tmp/x", "x")
	if err != nil || code == 200 || !strings.Contains(body, "read-only file system") {
		t.Errorf("write to a read-only root filesystem: %d %s %v", code, body, err)
	}
	host, err := os.ReadFile("/proc/self/status")
	if err != nil {
		t.Fatal(err)
	}
	priv := status("8081")
	if got, want := statusField(priv, "CapBnd"), statusField(string(host), "CapBnd"); got != want {
		t.Errorf("privileged CapBnd %s, want the host's %s", got, want)
	}
	plain := status("8083")
	if got := statusField(plain, "CapBnd"); got == statusField(priv, "CapBnd") || got == "0000000000000000" {
		t.Errorf("default container CapBnd %s: want the default set, neither all nor none", got)
	}
	if statusField(plain, "Uid") != "0 0 0 0" || statusField(plain, "NoNewPrivs") != "0" {
		t.Errorf("default container: Uid %q NoNewPrivs %q", statusField(plain, "Uid"), statusField(plain, "NoNewPrivs"))
	}
	if code, _, err := httpPut("http://"+ip+":8083/file/tmp/x", "x"); err != nil || code != 200 {
		t.Errorf("default container cannot write its root filesystem: %d %v", code, err)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

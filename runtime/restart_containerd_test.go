package runtime

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// TestContainerdRestartWithBackoff drives a crashing container through
// PlanRestarts and RestartContainer as the agent's pod loop will: the
// decision runs on a virtual clock (no test waits out a back-off), the
// restarts run on containerd, in place, next to a container that is never
// disturbed.
func TestContainerdRestartWithBackoff(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	spec := podSpec("crashy",
		ContainerSpec{Name: "crash", Image: n.env.images["batch"], PullPolicy: corev1.PullIfNotPresent, Args: []string{"-exit-code=1"}},
		ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent},
	)
	spec.RestartPolicy = corev1.RestartPolicyAlways
	spec.TerminationGracePeriod = 10 * time.Second
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	ip := st.PodIP
	web0, _ := st.Container("web")
	b := DefaultBackoff()

	waitExit := func(restarts int32) ContainerStatus {
		t.Helper()
		var cs ContainerStatus
		eventually(t, "crash to exit", func() (bool, string) {
			st, err := n.PodStatus(ctx, spec.Key)
			if err != nil {
				return false, err.Error()
			}
			cs, _ = st.Container("crash")
			return cs.State == StateTerminated && cs.RestartCount == restarts, ""
		})
		return cs
	}

	// First exit: restarted at once, with 10s recorded for the next one.
	c := waitExit(0)
	if c.ExitCode != 1 || c.Reason != ReasonError || c.StartedAt.IsZero() || c.FinishedAt.IsZero() {
		t.Fatalf("first exit: %+v", c)
	}
	st, _ = n.PodStatus(ctx, spec.Key)
	if st.Phase != corev1.PodRunning {
		t.Errorf("phase %s with an Always container terminated", st.Phase)
	}
	plan := PlanRestarts(spec.RestartPolicy, st, b, c.FinishedAt)
	if len(plan.Restart) != 1 || plan.Restart[0] != (ContainerRestart{Name: "crash", Backoff: 10 * time.Second}) {
		t.Fatalf("first plan: %+v", plan)
	}
	st, err = n.RestartContainer(ctx, spec.Key, "crash", plan.Restart[0].Backoff)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Container("crash"); c.RestartCount != 1 || c.LastTermination == nil || c.LastTermination.ExitCode != 1 || c.Backoff != 10*time.Second {
		t.Fatalf("after first restart: %+v", c)
	}

	// Second exit: CrashLoopBackOff for 10s on the virtual clock, then
	// restarted with 20s recorded.
	c = waitExit(1)
	st, _ = n.PodStatus(ctx, spec.Key)
	plan = PlanRestarts(spec.RestartPolicy, st, b, c.FinishedAt.Add(3*time.Second))
	pc, _ := plan.Status.Container("crash")
	if len(plan.Restart) != 0 || !plan.Wake.Equal(c.FinishedAt.Add(10*time.Second)) ||
		pc.State != StateWaiting || pc.Reason != ReasonCrashLoopBackOff || pc.Message != "back-off 10s restarting failed container=crash" ||
		pc.LastTermination == nil || pc.LastTermination.Reason != ReasonError || pc.RestartCount != 1 {
		t.Fatalf("second plan during back-off: %+v", plan)
	}
	plan = PlanRestarts(spec.RestartPolicy, st, b, plan.Wake)
	if len(plan.Restart) != 1 || plan.Restart[0].Backoff != 20*time.Second {
		t.Fatalf("second plan when due: %+v", plan)
	}
	if _, err := n.RestartContainer(ctx, spec.Key, "crash", plan.Restart[0].Backoff); err != nil {
		t.Fatal(err)
	}
	c = waitExit(2)
	if c.Backoff != 20*time.Second || c.LastTermination == nil || !c.LastTermination.FinishedAt.Before(c.StartedAt) {
		t.Errorf("after second restart: %+v", c)
	}
	// The log keeps every run.
	eventually(t, "three runs in the log", func() (bool, string) {
		l := logsOf(t, n, spec.Key, "crash")
		return strings.Count(l, "batch done, exiting 1") == 3, l
	})

	// The other container was never touched.
	st, _ = n.PodStatus(ctx, spec.Key)
	if w, _ := st.Container("web"); w.State != StateRunning || w.PID != web0.PID || w.RestartCount != 0 || st.PodIP != ip {
		t.Errorf("web disturbed by its neighbour's restarts: %+v (was pid %d), ip %s (was %s)", w, web0.PID, st.PodIP, ip)
	}

	// Liveness-style: stop the web container alone, then restart it in the
	// same sandbox.
	waitHTTP(t, ip, "/healthz")
	if err := n.StopContainer(ctx, spec.Key, "web", -1); err != nil {
		t.Fatal(err)
	}
	st, _ = n.PodStatus(ctx, spec.Key)
	w, _ := st.Container("web")
	if w.State != StateTerminated || w.ExitCode != 0 || w.Reason != ReasonCompleted {
		t.Fatalf("web after StopContainer: %+v", w)
	}
	plan = PlanRestarts(spec.RestartPolicy, st, b, w.FinishedAt)
	var webRestart *ContainerRestart
	for i := range plan.Restart {
		if plan.Restart[i].Name == "web" {
			webRestart = &plan.Restart[i]
		}
	}
	if webRestart == nil {
		t.Fatalf("web not planned for restart: %+v", plan)
	}
	st, err = n.RestartContainer(ctx, spec.Key, "web", webRestart.Backoff)
	if err != nil {
		t.Fatal(err)
	}
	w, _ = st.Container("web")
	if w.State != StateRunning || w.PID == web0.PID || w.RestartCount != 1 || st.PodIP != ip {
		t.Errorf("web after restart: %+v ip %s", w, st.PodIP)
	}
	waitHTTP(t, ip, "/healthz")

	// The restart state survives an agent restart.
	n.reopen(t)
	st, err = n.PodStatus(ctx, spec.Key)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Container("crash"); c.RestartCount != 2 || c.Backoff != 20*time.Second || c.LastTermination == nil {
		t.Errorf("crash after reopen: %+v", c)
	}

	// Once the pod is stopped nothing restarts and the phase is final.
	if err := n.StopPod(ctx, spec.Key, time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ = n.PodStatus(ctx, spec.Key)
	if !st.Stopped || st.Phase != corev1.PodFailed {
		t.Errorf("stopped pod: stopped=%v phase=%s", st.Stopped, st.Phase)
	}
	if _, err := n.RestartContainer(ctx, spec.Key, "crash", 0); err == nil {
		t.Error("RestartContainer restarted a container of a stopped pod")
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

// TestContainerdImagePullBackOff: a container whose image cannot be pulled
// is retried with back-off (ImagePullBackOff meanwhile, on a virtual
// clock) and runs once the image exists; it never ran, so no restart is
// counted.
func TestContainerdImagePullBackOff(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	// A name of its own: the registry outlives the test (-count=N).
	repo := "shoal/late-" + n.cfg.Namespace + ":v1"
	late := n.env.registry.Host + "/" + repo
	spec := podSpec("late", ContainerSpec{Name: "app", Image: late, PullPolicy: corev1.PullIfNotPresent})
	spec.RestartPolicy = corev1.RestartPolicyAlways
	spec.TerminationGracePeriod = 2 * time.Second // a young container may not handle SIGTERM yet
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	c, _ := st.Container("app")
	if c.State != StateWaiting || c.Reason != ReasonErrImagePull || c.FailedAt.IsZero() {
		t.Fatalf("first attempt: %+v", c)
	}
	b := DefaultBackoff()
	plan := PlanRestarts(spec.RestartPolicy, st, b, c.FailedAt)
	if len(plan.Restart) != 1 || plan.Restart[0].Backoff != 10*time.Second {
		t.Fatalf("first retry: %+v", plan)
	}
	if st, err = n.RestartContainer(ctx, spec.Key, "app", plan.Restart[0].Backoff); err != nil {
		t.Fatal(err)
	}
	c, _ = st.Container("app")
	if c.Reason != ReasonErrImagePull || c.RestartCount != 0 || c.Backoff != 10*time.Second {
		t.Fatalf("second attempt: %+v", c)
	}
	plan = PlanRestarts(spec.RestartPolicy, st, b, c.FailedAt.Add(time.Second))
	pc, _ := plan.Status.Container("app")
	if len(plan.Restart) != 0 || pc.Reason != ReasonImagePullBackOff || !strings.Contains(pc.Message, late) ||
		!plan.Wake.Equal(c.FailedAt.Add(10*time.Second)) || plan.Status.Phase != corev1.PodPending {
		t.Fatalf("during back-off: %+v", plan)
	}

	img, err := n.env.builder.Build(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := n.env.registry.Push(ctx, img, repo); err != nil {
		t.Fatal(err)
	}
	plan = PlanRestarts(spec.RestartPolicy, st, b, plan.Wake)
	if len(plan.Restart) != 1 || plan.Restart[0].Backoff != 20*time.Second {
		t.Fatalf("when due: %+v", plan)
	}
	if st, err = n.RestartContainer(ctx, spec.Key, "app", plan.Restart[0].Backoff); err != nil {
		t.Fatal(err)
	}
	if c, _ = st.Container("app"); c.State != StateRunning || c.RestartCount != 0 {
		t.Fatalf("after the image appeared: %+v", c)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

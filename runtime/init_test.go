package runtime

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestPodPhaseWithInitContainers(t *testing.T) {
	ok := ContainerStatus{State: StateTerminated}
	bad := ContainerStatus{State: StateTerminated, ExitCode: 1}
	run := ContainerStatus{State: StateRunning}
	wait := ContainerStatus{State: StateWaiting, Reason: ReasonPodInitializing}
	loop := ContainerStatus{State: StateWaiting, Reason: ReasonCrashLoopBackOff, LastTermination: &Termination{ExitCode: 1}}
	A, N := corev1.RestartPolicyAlways, corev1.RestartPolicyNever
	for _, tc := range []struct {
		policy     corev1.RestartPolicy
		stopped    bool
		init, ctrs []ContainerStatus
		want       corev1.PodPhase
	}{
		{A, false, []ContainerStatus{ok, run}, []ContainerStatus{wait}, corev1.PodPending},
		{A, false, []ContainerStatus{ok, ok}, []ContainerStatus{run}, corev1.PodRunning},
		{A, false, []ContainerStatus{bad}, []ContainerStatus{wait}, corev1.PodPending}, // will be retried
		{A, false, []ContainerStatus{loop}, []ContainerStatus{wait}, corev1.PodPending},
		{N, false, []ContainerStatus{bad}, []ContainerStatus{wait}, corev1.PodFailed},
		{A, true, []ContainerStatus{run}, []ContainerStatus{wait}, corev1.PodFailed}, // stopped while initialising
		{N, false, []ContainerStatus{ok}, []ContainerStatus{ok}, corev1.PodSucceeded},
	} {
		if got := podPhase(tc.policy, tc.stopped, tc.init, tc.ctrs); got != tc.want {
			t.Errorf("%s stopped=%v init=%+v ctrs=%+v: %s, want %s", tc.policy, tc.stopped, tc.init, tc.ctrs, got, tc.want)
		}
	}
}

func TestPlanRestartsInitContainers(t *testing.T) {
	st := PodStatus{
		InitContainers: []ContainerStatus{
			{Name: "done", State: StateTerminated, StartedAt: t0, FinishedAt: t0.Add(time.Second)},
			{Name: "fails", State: StateTerminated, ExitCode: 2, StartedAt: t0, FinishedAt: t0.Add(time.Second)},
		},
		Containers: []ContainerStatus{{Name: "app", State: StateWaiting, Reason: ReasonPodInitializing}},
	}
	// Always: a failed init container is retried, a successful one never.
	plan := PlanRestarts(corev1.RestartPolicyAlways, st, Backoff{}, t0.Add(time.Minute))
	if len(plan.Restart) != 1 || plan.Restart[0].Name != "fails" || plan.Status.Phase != corev1.PodPending {
		t.Errorf("Always: %+v", plan)
	}
	// Never: nothing, and the pod has failed.
	plan = PlanRestarts(corev1.RestartPolicyNever, st, Backoff{}, t0.Add(time.Minute))
	if len(plan.Restart) != 0 || plan.Status.Phase != corev1.PodFailed {
		t.Errorf("Never: %+v", plan)
	}
}

func TestFakeInitContainers(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: t0}
	f := NewFake(FakeConfig{Now: clk.now, StartLatency: time.Second})
	spec := podSpec("init", ContainerSpec{Name: "app", Image: "web:1"})
	spec.InitContainers = []ContainerSpec{{Name: "one", Image: "batch:1"}, {Name: "two", Image: "batch:1"}}
	if _, err := f.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	state := func() (one, two, app ContainerStatus, phase corev1.PodPhase) {
		st, _ := f.PodStatus(ctx, spec.Key)
		one, _ = st.Container("one")
		two, _ = st.Container("two")
		app, _ = st.Container("app")
		return one, two, app, st.Phase
	}
	clk.advance(time.Second)
	one, two, app, phase := state()
	if one.State != StateRunning || two.State != StateWaiting || app.Reason != ReasonPodInitializing || phase != corev1.PodPending {
		t.Fatalf("first init: %+v %+v %+v %s", one, two, app, phase)
	}
	if err := f.Exit(spec.Key, "one", 0); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	if _, two, app, _ = state(); two.State != StateRunning || app.State != StateWaiting {
		t.Fatalf("second init: %+v %+v", two, app)
	}
	if err := f.Exit(spec.Key, "two", 0); err != nil {
		t.Fatal(err)
	}
	clk.advance(time.Second)
	if _, _, app, phase = state(); app.State != StateRunning || phase != corev1.PodRunning || !app.StartedAt.Equal(clk.t) {
		t.Fatalf("app: %+v %s", app, phase)
	}
}

// TestContainerdInitContainers: init containers run one at a time, in
// order, to completion, before the containers; PlanRestarts' FirstStart
// entries (or RunPod again) move the pod on. A failing one holds the pod:
// Never fails it, Always retries it with back-off.
func TestContainerdInitContainers(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	batch, web := n.env.images["batch"], n.env.images["web"]
	spec := podSpec("inits", ContainerSpec{Name: "app", Image: web, PullPolicy: corev1.PullIfNotPresent})
	spec.RestartPolicy = corev1.RestartPolicyAlways
	spec.InitContainers = []ContainerSpec{
		{Name: "first", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=100ms"}},
		{Name: "second", Image: batch, PullPolicy: corev1.PullIfNotPresent},
	}
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if second, _ := st.Container("second"); second.State == StateRunning || second.ID != "" {
		t.Errorf("second init container started with the first: %+v", second)
	}
	if app, _ := st.Container("app"); app.State != StateWaiting || app.Reason != ReasonPodInitializing || st.Phase != corev1.PodPending {
		t.Errorf("app during init: %+v, phase %s", app, st.Phase)
	}
	d := newPodDriver(t, n, spec)
	st = d.until("app running", func(st PodStatus) bool {
		app, _ := st.Container("app")
		return app.State == StateRunning
	})
	first, _ := st.Container("first")
	second, _ := st.Container("second")
	app, _ := st.Container("app")
	if first.Reason != ReasonCompleted || second.Reason != ReasonCompleted || st.Phase != corev1.PodRunning {
		t.Errorf("after init: %+v %+v phase %s", first, second, st.Phase)
	}
	if second.StartedAt.Before(first.FinishedAt) || app.StartedAt.Before(second.FinishedAt) {
		t.Errorf("out of order: first ended %s, second ran %s-%s, app started %s",
			first.FinishedAt, second.StartedAt, second.FinishedAt, app.StartedAt)
	}
	waitHTTP(t, st.PodIP, "/healthz")
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}

	// A failing init container: Never fails the pod, the app never runs.
	failing := podSpec("init-fails", ContainerSpec{Name: "app", Image: web, PullPolicy: corev1.PullIfNotPresent})
	failing.InitContainers = []ContainerSpec{{Name: "bad", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-exit-code=3"}}}
	d = newPodDriver(t, n, failing)
	d.runPod = true // RunPod as the sync step works too
	st = d.until("pod failed", func(st PodStatus) bool { return st.Phase == corev1.PodFailed })
	if app, _ := st.Container("app"); app.ID != "" || app.State != StateWaiting {
		t.Errorf("app ran after a failed init container: %+v", app)
	}
	if err := n.RemovePod(ctx, failing.Key); err != nil {
		t.Fatal(err)
	}
	// Always: retried (the restart count grows), the pod stays Pending.
	failing.Key.UID += "-always"
	failing.RestartPolicy = corev1.RestartPolicyAlways
	d = newPodDriver(t, n, failing)
	d.runPod = true
	st = d.until("init container retried twice", func(st PodStatus) bool {
		bad, _ := st.Container("bad")
		return bad.RestartCount >= 2
	})
	if st.Phase != corev1.PodPending {
		t.Errorf("phase %s while the init container crash-loops", st.Phase)
	}
	if err := n.RemovePod(ctx, failing.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

func TestPlanRestartsFirstStarts(t *testing.T) {
	done := ContainerStatus{Name: "i1", State: StateTerminated}
	fresh := func(name, reason string) ContainerStatus {
		return ContainerStatus{Name: name, State: StateWaiting, Reason: reason}
	}
	running := ContainerStatus{Name: "i2", State: StateRunning, ID: "x"}
	for _, tc := range []struct {
		name       string
		init, ctrs []ContainerStatus
		want       string
	}{
		{"next init container", []ContainerStatus{done, fresh("i2", ReasonContainerCreating)}, []ContainerStatus{fresh("app", ReasonPodInitializing)}, "i2"},
		{"init still running", []ContainerStatus{done, running}, []ContainerStatus{fresh("app", ReasonPodInitializing)}, ""},
		{"containers after init", []ContainerStatus{done}, []ContainerStatus{fresh("app", ReasonPodInitializing), fresh("side", ReasonPodInitializing)}, "app"},
		{"no init, all attempted", nil, []ContainerStatus{{Name: "app", State: StateRunning, ID: "y"}}, ""},
		{"a failed attempt is a retry, not a first start", nil,
			[]ContainerStatus{{Name: "app", State: StateWaiting, Reason: ReasonContainerCreating, FailedAt: t0}}, ""},
	} {
		plan := PlanRestarts(corev1.RestartPolicyAlways, PodStatus{InitContainers: tc.init, Containers: tc.ctrs}, Backoff{}, t0)
		var got string
		for _, r := range plan.Restart {
			if r.FirstStart {
				got = r.Name
			}
		}
		if got != tc.want {
			t.Errorf("%s: first start %q, want %q (%+v)", tc.name, got, tc.want, plan.Restart)
		}
	}
}

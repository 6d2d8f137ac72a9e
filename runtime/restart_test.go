package runtime

import (
	"context"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"pgregory.net/rapid"
)

var t0 = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func exited(code int32, ran time.Duration, backoff time.Duration) ContainerStatus {
	return ContainerStatus{Name: "app", State: StateTerminated, ExitCode: code, Reason: terminatedReason(code, false),
		StartedAt: t0, FinishedAt: t0.Add(ran), Backoff: backoff}
}

func TestDecideRestartTable(t *testing.T) {
	b := DefaultBackoff()
	end := t0.Add(time.Minute) // when exited(…, time.Minute, …) finished
	for _, tc := range []struct {
		name   string
		policy corev1.RestartPolicy
		c      ContainerStatus
		now    time.Time
		want   RestartDecision
	}{
		{"running is left", corev1.RestartPolicyAlways, ContainerStatus{State: StateRunning}, end, RestartDecision{Action: Leave}},
		{"creating is left", corev1.RestartPolicyAlways, ContainerStatus{State: StateWaiting, Reason: ReasonContainerCreating}, end, RestartDecision{Action: Leave}},
		{"invalid image name is left", corev1.RestartPolicyAlways, ContainerStatus{State: StateWaiting, Reason: ReasonInvalidImageName}, end, RestartDecision{Action: Leave}},
		{"first pull failure: retried at once, even under Never", corev1.RestartPolicyNever,
			ContainerStatus{State: StateWaiting, Reason: ReasonErrImagePull, FailedAt: end}, end,
			RestartDecision{Action: RestartNow, Backoff: 10 * time.Second}},
		{"second pull failure: ImagePullBackOff", corev1.RestartPolicyAlways,
			ContainerStatus{Name: "app", Image: "x:1", State: StateWaiting, Reason: ReasonErrImagePull, Message: "404", FailedAt: end, Backoff: 10 * time.Second}, end.Add(time.Second),
			RestartDecision{Action: RestartLater, At: end.Add(10 * time.Second), Backoff: 10 * time.Second,
				Reason: ReasonImagePullBackOff, Message: `Back-off pulling image "x:1": 404`}},
		{"config error retried after its back-off", corev1.RestartPolicyOnFailure,
			ContainerStatus{State: StateWaiting, Reason: ReasonCreateContainerConfigError, FailedAt: end, Backoff: 20 * time.Second}, end.Add(20 * time.Second),
			RestartDecision{Action: RestartNow, Backoff: 40 * time.Second}},
		{"never after failure", corev1.RestartPolicyNever, exited(1, time.Minute, 0), end, RestartDecision{Action: Leave}},
		{"never after success", corev1.RestartPolicyNever, exited(0, time.Minute, 0), end, RestartDecision{Action: Leave}},
		{"on-failure after success", corev1.RestartPolicyOnFailure, exited(0, time.Minute, 0), end, RestartDecision{Action: Leave}},
		{"on-failure first failure: at once", corev1.RestartPolicyOnFailure, exited(2, time.Minute, 0), end,
			RestartDecision{Action: RestartNow, Backoff: 10 * time.Second}},
		{"always after success: at once", corev1.RestartPolicyAlways, exited(0, time.Minute, 0), end,
			RestartDecision{Action: RestartNow, Backoff: 10 * time.Second}},
		{"empty policy is Always", "", exited(0, time.Minute, 0), end,
			RestartDecision{Action: RestartNow, Backoff: 10 * time.Second}},
		{"second crash waits 10s", corev1.RestartPolicyAlways, exited(1, time.Minute, 10*time.Second), end.Add(3 * time.Second),
			RestartDecision{Action: RestartLater, At: end.Add(10 * time.Second), Backoff: 10 * time.Second,
				Reason: ReasonCrashLoopBackOff, Message: "back-off 10s restarting failed container=app"}},
		{"second crash after 10s: now, then 20s", corev1.RestartPolicyAlways, exited(1, time.Minute, 10*time.Second), end.Add(10 * time.Second),
			RestartDecision{Action: RestartNow, Backoff: 20 * time.Second}},
		{"capped at 5m", corev1.RestartPolicyAlways, exited(1, time.Minute, 160*time.Second), end.Add(160 * time.Second),
			RestartDecision{Action: RestartNow, Backoff: 5 * time.Minute}},
		{"stays at 5m", corev1.RestartPolicyAlways, exited(1, time.Minute, 5*time.Minute), end.Add(time.Minute),
			RestartDecision{Action: RestartLater, At: end.Add(5 * time.Minute), Backoff: 5 * time.Minute,
				Reason: ReasonCrashLoopBackOff, Message: "back-off 5m0s restarting failed container=app"}},
		{"10 minutes running resets", corev1.RestartPolicyAlways, exited(1, 10*time.Minute, 5*time.Minute), t0.Add(10 * time.Minute),
			RestartDecision{Action: RestartNow, Backoff: 10 * time.Second}},
	} {
		if got := DecideRestart(tc.policy, tc.c, b, tc.now); got != tc.want {
			t.Errorf("%s:\n got %+v\nwant %+v", tc.name, got, tc.want)
		}
	}
}

// TestDecideRestartCrashLoopProperty runs random crash loops through
// DecideRestart and checks them against a plain model of the kubelet's
// back-off: the first restart is immediate, then each wait doubles from
// Initial up to Max, counted from the exit; a run of at least Reset starts
// over. Deciding at any instant before the due time says RestartLater with
// that due time.
func TestDecideRestartCrashLoopProperty(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		b := Backoff{
			Initial: time.Duration(rapid.IntRange(1, 20).Draw(t, "initialSec")) * time.Second,
			Reset:   time.Duration(rapid.IntRange(60, 900).Draw(t, "resetSec")) * time.Second,
		}
		b.Max = b.Initial * time.Duration(rapid.IntRange(1, 64).Draw(t, "maxFactor"))
		policy := rapid.SampledFrom([]corev1.RestartPolicy{corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure}).Draw(t, "policy")

		now := t0
		c := ContainerStatus{Name: "app", State: StateRunning, StartedAt: now}
		modelWait := time.Duration(0) // the model's wait for the next quick exit
		for i := range rapid.IntRange(1, 30).Draw(t, "runs") {
			ran := time.Duration(rapid.Int64Range(0, int64(b.Reset*3/2)).Draw(t, "ran")) / time.Second * time.Second
			now = c.StartedAt.Add(ran)
			code := int32(rapid.IntRange(1, 3).Draw(t, "code"))
			c.State, c.ExitCode, c.FinishedAt = StateTerminated, code, now

			if ran >= b.Reset {
				modelWait = 0
			}
			due := now.Add(modelWait)
			peek := now.Add(time.Duration(rapid.Int64Range(0, int64(modelWait)).Draw(t, "peek")))
			d := DecideRestart(policy, c, b, peek)
			if peek.Before(due) {
				if d.Action != RestartLater || !d.At.Equal(due) || d.Reason != ReasonCrashLoopBackOff || d.Backoff != modelWait {
					t.Fatalf("run %d: at +%s before due +%s: %+v", i, peek.Sub(now), modelWait, d)
				}
				peek = due
				d = DecideRestart(policy, c, b, peek)
			}
			if d.Action != RestartNow {
				t.Fatalf("run %d: at due time: %+v", i, d)
			}
			next := b.Initial
			if modelWait > 0 {
				next = min(2*modelWait, b.Max)
			}
			if d.Backoff != next || d.Backoff > b.Max {
				t.Fatalf("run %d: next back-off %s, model %s (max %s)", i, d.Backoff, next, b.Max)
			}
			modelWait = next
			// RestartContainer records the back-off; the new run starts.
			c = ContainerStatus{Name: "app", State: StateRunning, StartedAt: peek, Backoff: d.Backoff, RestartCount: c.RestartCount + 1}
		}
	})
}

// TestDecideRestartNeverRestartsWhatPolicyForbids checks the policy over
// random states: Never restarts nothing, OnFailure nothing that exited 0,
// and nothing but a Terminated container is ever restarted.
func TestDecideRestartNeverRestartsWhatPolicyForbids(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		c := ContainerStatus{
			Name:       "app",
			State:      rapid.SampledFrom([]ContainerState{StateWaiting, StateRunning, StateTerminated}).Draw(t, "state"),
			ExitCode:   int32(rapid.IntRange(0, 2).Draw(t, "code")),
			StartedAt:  t0,
			FinishedAt: t0.Add(time.Duration(rapid.IntRange(0, 3600).Draw(t, "ranSec")) * time.Second),
			Backoff:    time.Duration(rapid.IntRange(0, 600).Draw(t, "backoffSec")) * time.Second,
		}
		policy := rapid.SampledFrom([]corev1.RestartPolicy{"", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever}).Draw(t, "policy")
		now := c.FinishedAt.Add(time.Duration(rapid.IntRange(0, 3600).Draw(t, "afterSec")) * time.Second)
		d := DecideRestart(policy, c, Backoff{}, now)
		forbidden := c.State != StateTerminated || policy == corev1.RestartPolicyNever ||
			(policy == corev1.RestartPolicyOnFailure && c.ExitCode == 0)
		if forbidden && d.Action != Leave {
			t.Fatalf("%s %+v: %+v", policy, c, d)
		}
		if !forbidden && d.Action == Leave {
			t.Fatalf("%s %+v: left a container the policy restarts", policy, c)
		}
		if d.Action == RestartLater && !d.At.After(now) {
			t.Fatalf("RestartLater due %s not after now %s", d.At, now)
		}
	})
}

func TestPlanRestarts(t *testing.T) {
	st := PodStatus{Key: PodKey{Namespace: "default", Name: "p", UID: "u"}, Containers: []ContainerStatus{
		{Name: "web", State: StateRunning},
		func() ContainerStatus {
			c := exited(1, time.Minute, 20*time.Second)
			c.Name = "crashy"
			c.RestartCount = 2
			return c
		}(),
		func() ContainerStatus { c := exited(0, time.Minute, 0); c.Name = "done"; return c }(),
	}}
	now := t0.Add(time.Minute + 5*time.Second)

	plan := PlanRestarts(corev1.RestartPolicyAlways, st, Backoff{}, now)
	if len(plan.Restart) != 1 || plan.Restart[0] != (ContainerRestart{Name: "done", Backoff: 10 * time.Second}) {
		t.Errorf("restart %+v", plan.Restart)
	}
	if !plan.Wake.Equal(t0.Add(time.Minute + 20*time.Second)) {
		t.Errorf("wake %s", plan.Wake)
	}
	c, _ := plan.Status.Container("crashy")
	if c.State != StateWaiting || c.Reason != ReasonCrashLoopBackOff || !strings.Contains(c.Message, "back-off 20s") ||
		c.RestartCount != 2 || c.LastTermination == nil || c.LastTermination.ExitCode != 1 || c.LastTermination.Reason != ReasonError {
		t.Errorf("crashy presented as %+v", c)
	}
	if plan.Status.Phase != corev1.PodRunning {
		t.Errorf("phase %s", plan.Status.Phase)
	}
	if orig, _ := st.Container("crashy"); orig.State != StateTerminated {
		t.Error("PlanRestarts changed its input")
	}

	// OnFailure: the successful one stays done.
	plan = PlanRestarts(corev1.RestartPolicyOnFailure, st, Backoff{}, now)
	if len(plan.Restart) != 0 || plan.Status.Phase != corev1.PodRunning {
		t.Errorf("on-failure: %+v", plan)
	}
	// A stopped pod restarts nothing.
	st.Stopped = true
	if plan := PlanRestarts(corev1.RestartPolicyAlways, st, Backoff{}, now.Add(time.Hour)); len(plan.Restart) != 0 || !plan.Wake.IsZero() {
		t.Errorf("stopped pod: %+v", plan)
	}
}

func TestDerivePhaseWithPolicies(t *testing.T) {
	run := ContainerStatus{State: StateRunning}
	wait := ContainerStatus{State: StateWaiting, Reason: ReasonContainerCreating}
	ok := ContainerStatus{State: StateTerminated}
	bad := ContainerStatus{State: StateTerminated, ExitCode: 2}
	loop := ContainerStatus{State: StateWaiting, Reason: ReasonCrashLoopBackOff, LastTermination: &Termination{ExitCode: 1}}
	A, O, N := corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever
	for _, tc := range []struct {
		policy corev1.RestartPolicy
		cs     []ContainerStatus
		want   corev1.PodPhase
	}{
		{A, []ContainerStatus{ok, ok}, corev1.PodRunning},
		{O, []ContainerStatus{ok, ok}, corev1.PodSucceeded},
		{O, []ContainerStatus{ok, bad}, corev1.PodRunning},
		{N, []ContainerStatus{ok, bad}, corev1.PodFailed},
		{A, []ContainerStatus{loop, run}, corev1.PodRunning},
		{N, []ContainerStatus{loop}, corev1.PodFailed},
		{A, []ContainerStatus{wait, loop}, corev1.PodPending},
	} {
		if got := derivePhase(tc.policy, tc.cs); got != tc.want {
			t.Errorf("%s %+v: %s, want %s", tc.policy, tc.cs, got, tc.want)
		}
	}
	if got := podPhase(A, true, nil, []ContainerStatus{ok, bad}); got != corev1.PodFailed {
		t.Errorf("stopped Always pod: %s, want Failed", got)
	}
}

func TestFakeRestartContainer(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: t0}
	f := NewFake(FakeConfig{Now: clk.now, StartLatency: time.Second})
	spec := podSpec("crash", ContainerSpec{Name: "app", Image: "batch:1", PullPolicy: corev1.PullIfNotPresent})
	spec.RestartPolicy = corev1.RestartPolicyAlways
	if _, err := f.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	b := DefaultBackoff()
	var waits []time.Duration
	for range 4 {
		clk.advance(time.Second) // started
		if err := f.Exit(spec.Key, "app", 1); err != nil {
			t.Fatal(err)
		}
		finished := clk.t
		st, _ := f.PodStatus(ctx, spec.Key)
		plan := PlanRestarts(spec.RestartPolicy, st, b, clk.t)
		if !plan.Wake.IsZero() {
			clk.t = plan.Wake
			plan = PlanRestarts(spec.RestartPolicy, st, b, clk.t)
		}
		if len(plan.Restart) != 1 {
			t.Fatalf("plan %+v", plan)
		}
		waits = append(waits, clk.t.Sub(finished))
		st, err := f.RestartContainer(ctx, spec.Key, "app", plan.Restart[0].Backoff)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := st.Container("app")
		if c.State != StateWaiting || c.LastTermination == nil || c.LastTermination.ExitCode != 1 {
			t.Fatalf("after restart: %+v", c)
		}
	}
	want := []time.Duration{0, 10 * time.Second, 20 * time.Second, 40 * time.Second}
	for i := range want {
		if waits[i] != want[i] {
			t.Fatalf("waits %v, want %v", waits, want)
		}
	}
	clk.advance(time.Second)
	st, _ := f.PodStatus(ctx, spec.Key)
	if c, _ := st.Container("app"); c.State != StateRunning || c.RestartCount != 4 {
		t.Errorf("after 4 restarts: %+v", c)
	}
	// Liveness-style: stop one container, the restart decision follows.
	if err := f.StopContainer(ctx, spec.Key, "app", time.Second); err != nil {
		t.Fatal(err)
	}
	st, _ = f.PodStatus(ctx, spec.Key)
	if c, _ := st.Container("app"); c.State != StateTerminated || c.Reason != ReasonCompleted {
		t.Errorf("after StopContainer: %+v", c)
	}
	if err := f.StopPod(ctx, spec.Key, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := f.RestartContainer(ctx, spec.Key, "app", 0); err == nil {
		t.Error("restarted a container of a stopped pod")
	}
}

package runtime

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"pgregory.net/rapid"
)

func httpProbeSpec(path string, period time.Duration, success, failure int32) *Probe {
	return &Probe{HTTPGet: &HTTPGetProbe{Scheme: "HTTP", Port: 8080, Path: path}, Period: period, Timeout: time.Second,
		SuccessThreshold: success, FailureThreshold: failure}
}

func running(name string, since time.Time) ContainerStatus {
	return ContainerStatus{Name: name, State: StateRunning, StartedAt: since}
}

func kindsOf(runs []ProbeRun) string {
	var ks []string
	for _, r := range runs {
		ks = append(ks, string(r.Kind))
	}
	return strings.Join(ks, ",")
}

// TestProberScript walks one container through startup gating, readiness
// hysteresis and a liveness failure, step by step on a virtual clock.
func TestProberScript(t *testing.T) {
	c := ContainerSpec{Name: "web", Image: "web",
		StartupProbe:   httpProbeSpec("/healthz", time.Second, 1, 3),
		LivenessProbe:  httpProbeSpec("/healthz", 10*time.Second, 1, 2),
		ReadinessProbe: httpProbeSpec("/ready", 5*time.Second, 2, 2),
	}
	c.LivenessProbe.InitialDelay = 15 * time.Second
	spec := PodSpec{Key: PodKey{Namespace: "default", Name: "p", UID: "u"}, Containers: []ContainerSpec{c}}
	st := PodStatus{Key: spec.Key, Containers: []ContainerStatus{running("web", t0)}}
	states := map[string]ProbeState{}
	now := t0
	step := func(wantRuns string, results ...bool) ProbePlan {
		t.Helper()
		plan := PlanProbes(spec, st, states, now)
		if got := kindsOf(plan.Run); got != wantRuns {
			t.Fatalf("at +%s: runs %q, want %q", now.Sub(t0), got, wantRuns)
		}
		states = plan.States
		for i, run := range plan.Run {
			var v ProbeVerdict
			states["web"], v = ObserveProbe(states["web"], c, run, ProbeResult{Success: results[i], Message: "boom"})
			if v.Stop {
				t.Fatalf("at +%s: unexpected stop: %+v", now.Sub(t0), v)
			}
		}
		return PlanProbes(spec, st, states, now) // the status after the results
	}

	// Startup runs alone, at once (no initial delay), every second.
	if p := step("startup", false); p.Status.Containers[0].Started || p.Status.Ready || !p.Wake.Equal(t0.Add(time.Second)) {
		t.Fatalf("after a failed startup probe: %+v", p)
	}
	now = now.Add(500 * time.Millisecond)
	step("") // not due yet
	now = t0.Add(time.Second)
	if p := step("startup", true); !p.Status.Containers[0].Started || p.Status.Containers[0].Ready {
		t.Fatalf("after startup success: %+v", p.Status.Containers[0])
	}
	// Started: readiness is due at once (no initial delay), liveness at +15s.
	now = t0.Add(2 * time.Second)
	step("readiness", true)
	if s := states["web"]; s.Ready {
		t.Fatal("ready after one success with successThreshold 2")
	}
	now = now.Add(5 * time.Second)
	if p := step("readiness", true); !p.Status.Ready || !p.Status.Containers[0].Ready {
		t.Fatalf("not ready after two successes: %+v", p.Status)
	}
	now = now.Add(5 * time.Second) // +12s
	if p := step("readiness", false); !p.Status.Ready {
		t.Fatal("unready after one failure with failureThreshold 2")
	}
	now = t0.Add(15 * time.Second)
	step("liveness", false)
	now = t0.Add(17 * time.Second)
	if p := step("readiness", false); p.Status.Ready {
		t.Fatal("still ready after two failures")
	}
	now = t0.Add(25 * time.Second)
	plan := PlanProbes(spec, st, states, now)
	if kindsOf(plan.Run) != "liveness,readiness" {
		t.Fatalf("runs %q at +25s", kindsOf(plan.Run))
	}
	s, v := ObserveProbe(plan.States["web"], c, plan.Run[0], ProbeResult{Message: "connection refused"})
	if !v.Stop || v.Grace != -1 || v.Message != "Liveness probe failed: connection refused" || !s.Stopping {
		t.Fatalf("second liveness failure: %+v %+v", v, s)
	}
	states = map[string]ProbeState{"web": s}
	if p := PlanProbes(spec, st, states, now.Add(time.Hour)); len(p.Run) != 0 || p.Status.Ready {
		t.Fatalf("a stopping container is probed or ready: %+v", p)
	}

	// The container restarted: a fresh state, startup first again; a
	// late result for the old run is ignored.
	st.Containers[0] = running("web", t0.Add(time.Minute))
	now = t0.Add(time.Minute)
	plan = PlanProbes(spec, st, states, now)
	if kindsOf(plan.Run) != "startup" || plan.Status.Containers[0].Started {
		t.Fatalf("after restart: %+v", plan)
	}
	late := ProbeRun{Container: "web", Kind: ProbeLiveness, RunStartedAt: t0}
	if s, v := ObserveProbe(plan.States["web"], c, late, ProbeResult{}); v.Stop || s.Liveness.Failures != 0 {
		t.Fatalf("a result of the old run counted: %+v %+v", s, v)
	}
	// In flight: not handed out twice.
	if again := PlanProbes(spec, st, plan.States, now.Add(time.Hour)); len(again.Run) != 0 {
		t.Fatalf("in-flight startup probe handed out again: %+v", again.Run)
	}
	// A container that stops running loses its state and readiness.
	st.Containers[0] = ContainerStatus{Name: "web", State: StateTerminated, ExitCode: 1}
	if p := PlanProbes(spec, st, plan.States, now); len(p.States) != 0 || len(p.Run) != 0 || p.Status.Ready {
		t.Fatalf("terminated container: %+v", p)
	}
}

func TestProberStartupFailureStopsWithProbeGrace(t *testing.T) {
	g := 3 * time.Second
	c := ContainerSpec{Name: "app", StartupProbe: &Probe{TCPSocket: &TCPSocketProbe{Port: 1}, Period: time.Second,
		SuccessThreshold: 1, FailureThreshold: 2, TerminationGracePeriod: &g}}
	spec := PodSpec{Containers: []ContainerSpec{c}}
	st := PodStatus{Containers: []ContainerStatus{running("app", t0)}}
	var states map[string]ProbeState
	var v ProbeVerdict
	for i := range 2 {
		plan := PlanProbes(spec, st, states, t0.Add(time.Duration(i)*time.Second))
		states = plan.States
		states["app"], v = ObserveProbe(states["app"], c, plan.Run[0], ProbeResult{Message: "refused"})
	}
	if !v.Stop || v.Grace != g || v.Message != "Startup probe failed: refused" {
		t.Fatalf("verdict %+v", v)
	}
}

// TestProberProperties checks invariants of the prober over random
// probes, results and instants, against a plain model of the counters.
func TestProberProperties(t *testing.T) {
	genProbe := func(t *rapid.T, name string, kind ProbeKind) *Probe {
		if !rapid.Bool().Draw(t, name) {
			return nil
		}
		p := &Probe{
			TCPSocket:        &TCPSocketProbe{Port: 80},
			InitialDelay:     time.Duration(rapid.IntRange(0, 20).Draw(t, name+"Delay")) * time.Second,
			Period:           time.Duration(rapid.IntRange(1, 10).Draw(t, name+"Period")) * time.Second,
			SuccessThreshold: 1,
			FailureThreshold: int32(rapid.IntRange(1, 4).Draw(t, name+"Failure")),
		}
		if kind == ProbeReadiness {
			p.SuccessThreshold = int32(rapid.IntRange(1, 3).Draw(t, name+"Success"))
		}
		return p
	}
	rapid.Check(t, func(t *rapid.T) {
		c := ContainerSpec{Name: "c",
			StartupProbe:   genProbe(t, "startup", ProbeStartup),
			LivenessProbe:  genProbe(t, "liveness", ProbeLiveness),
			ReadinessProbe: genProbe(t, "readiness", ProbeReadiness),
		}
		spec := PodSpec{Containers: []ContainerSpec{c}}
		st := PodStatus{Containers: []ContainerStatus{running("c", t0)}}
		var states map[string]ProbeState
		lastRun := map[ProbeKind]time.Time{}
		fails := map[ProbeKind]int32{}
		succ := map[ProbeKind]int32{}
		modelReady, modelStarted, stopped := false, c.StartupProbe == nil, false
		modelWasReady := false
		now := t0
		for range rapid.IntRange(1, 60).Draw(t, "steps") {
			plan := PlanProbes(spec, st, states, now)
			states = plan.States
			cs := plan.Status.Containers[0]
			wantReady := modelStarted && !stopped && (c.ReadinessProbe == nil || modelReady)
			if cs.Ready != wantReady || cs.Started != modelStarted || plan.Status.Ready != wantReady {
				t.Fatalf("at +%s: ready=%v started=%v, model ready=%v started=%v", now.Sub(t0), cs.Ready, cs.Started, wantReady, modelStarted)
			}
			for _, run := range plan.Run {
				p := c.probe(run.Kind)
				if stopped {
					t.Fatalf("%s probe after a stop", run.Kind)
				}
				if run.Kind != ProbeStartup && !modelStarted {
					t.Fatalf("%s probe before startup succeeded", run.Kind)
				}
				if run.Kind == ProbeStartup && modelStarted {
					t.Fatal("startup probe after it succeeded")
				}
				if now.Before(t0.Add(p.InitialDelay)) {
					t.Fatalf("%s probe at +%s before its initial delay %s", run.Kind, now.Sub(t0), p.InitialDelay)
				}
				gap := p.Period
				if run.Kind == ProbeReadiness && !modelWasReady && fails[run.Kind] > 0 {
					gap = readinessRetry(fails[run.Kind], p.Period) // retried sooner until first ready
				}
				if last, ok := lastRun[run.Kind]; ok && now.Sub(last) < gap {
					t.Fatalf("%s probes %s apart, want at least %s (period %s)", run.Kind, now.Sub(last), gap, p.Period)
				}
				lastRun[run.Kind] = now
			}
			for _, run := range plan.Run {
				ok := rapid.Bool().Draw(t, "result")
				var v ProbeVerdict
				states["c"], v = ObserveProbe(states["c"], c, run, ProbeResult{Success: ok})
				p := c.probe(run.Kind)
				if ok {
					succ[run.Kind]++
					fails[run.Kind] = 0
				} else {
					fails[run.Kind]++
					succ[run.Kind] = 0
				}
				wantStop := run.Kind != ProbeReadiness && fails[run.Kind] >= p.FailureThreshold && !stopped
				if v.Stop != wantStop {
					t.Fatalf("%s result %v (failures %d of %d): stop=%v", run.Kind, ok, fails[run.Kind], p.FailureThreshold, v.Stop)
				}
				if wantStop {
					stopped = true
				}
				switch {
				case stopped:
				case run.Kind == ProbeStartup && ok:
					modelStarted = true
				case run.Kind == ProbeReadiness && succ[run.Kind] >= p.SuccessThreshold:
					modelReady, modelWasReady = true, true
				case run.Kind == ProbeReadiness && fails[run.Kind] >= p.FailureThreshold:
					modelReady = false
				}
			}
			if !plan.Wake.IsZero() && !plan.Wake.After(now) {
				t.Fatalf("wake %s not after now", plan.Wake)
			}
			if rapid.Bool().Draw(t, "toWake") && !plan.Wake.IsZero() {
				now = plan.Wake
			} else {
				now = now.Add(time.Duration(rapid.IntRange(0, 5000).Draw(t, "ms")) * time.Millisecond)
			}
		}
	})
}

func TestFromPodProbes(t *testing.T) {
	pod := testPod()
	c := &pod.Spec.Containers[0]
	c.Ports = append(c.Ports, corev1.ContainerPort{Name: "http", ContainerPort: 8080})
	c.StartupProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("http")}},
		FailureThreshold: 30, PeriodSeconds: 2}
	c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Port: intstr.FromInt32(8080),
		HTTPHeaders: []corev1.HTTPHeader{{Name: "X-A", Value: "1"}}}}, InitialDelaySeconds: 5}
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{Exec: &corev1.ExecAction{Command: []string{"cat", "/ready"}}},
		SuccessThreshold: 2, TimeoutSeconds: 3}
	spec, err := FromPod(pod, PodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	web := spec.Containers[0]
	if s := web.StartupProbe; s == nil || s.TCPSocket.Port != 8080 || s.FailureThreshold != 30 || s.Period != 2*time.Second || s.Timeout != time.Second {
		t.Errorf("startup %+v", s)
	}
	if l := web.LivenessProbe; l == nil || l.HTTPGet.Path != "/" || l.HTTPGet.Scheme != "HTTP" || l.InitialDelay != 5*time.Second ||
		l.Period != 10*time.Second || l.FailureThreshold != 3 || l.SuccessThreshold != 1 || len(l.HTTPGet.Headers) != 1 {
		t.Errorf("liveness %+v", l)
	}
	if r := web.ReadinessProbe; r == nil || strings.Join(r.Exec.Command, " ") != "cat /ready" || r.SuccessThreshold != 2 || r.Timeout != 3*time.Second {
		t.Errorf("readiness %+v", r)
	}
	if spec.RestartPolicy != corev1.RestartPolicyAlways {
		t.Errorf("restartPolicy defaulted to %q", spec.RestartPolicy)
	}

	for name, tc := range map[string]struct {
		mut  func(*corev1.Container)
		want string
	}{
		"unknown named port": {func(c *corev1.Container) {
			c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromString("nope")}}}
		}, "spec.containers[0].livenessProbe.tcpSocket.port"},
		"liveness successThreshold": {func(c *corev1.Container) {
			c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(1)}}, SuccessThreshold: 2}
		}, "spec.containers[0].livenessProbe.successThreshold"},
		"two handlers": {func(c *corev1.Container) {
			c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{TCPSocket: &corev1.TCPSocketAction{Port: intstr.FromInt32(1)},
				Exec: &corev1.ExecAction{Command: []string{"true"}}}}
		}, "spec.containers[0].readinessProbe must have exactly one"},
		"no handler": {func(c *corev1.Container) { c.StartupProbe = &corev1.Probe{} }, "spec.containers[0].startupProbe must have exactly one"},
		"grpc": {func(c *corev1.Container) {
			c.LivenessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 1}}}
		}, "not supported by the runtime yet: spec.containers[0].livenessProbe.grpc"},
	} {
		pod := testPod()
		tc.mut(&pod.Spec.Containers[0])
		if _, err := FromPod(pod, PodOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
	pod = testPod()
	pod.Spec.RestartPolicy = "Sometimes"
	if _, err := FromPod(pod, PodOptions{}); err == nil || !strings.Contains(err.Error(), "spec.restartPolicy") {
		t.Errorf("bad restartPolicy: %v", err)
	}
}

func TestFakeProbeAndReadiness(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: t0}
	ready := false
	f := NewFake(FakeConfig{Now: clk.now, ProbeResults: func(_ PodKey, _ string, p Probe) ProbeResult {
		return ProbeResult{Success: ready}
	}})
	spec := podSpec("p", ContainerSpec{Name: "web", Image: "web:1", PullPolicy: corev1.PullIfNotPresent,
		ReadinessProbe: httpProbeSpec("/ready", time.Second, 1, 1)})
	st, err := f.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready {
		t.Fatal("a pod with a readiness probe is Ready before any probe")
	}
	var states map[string]ProbeState
	for _, want := range []bool{false, true, false} {
		st, _ = f.PodStatus(ctx, spec.Key)
		plan := PlanProbes(spec, st, states, clk.t)
		states = plan.States
		for _, run := range plan.Run {
			states[run.Container], _ = ObserveProbe(states[run.Container], spec.Containers[0], run, f.Probe(ctx, spec.Key, run.Container, run.Probe))
		}
		if got := PlanProbes(spec, st, states, clk.t).Status.Ready; got != want {
			t.Fatalf("ready=%v with probe answering %v", got, ready)
		}
		ready = !ready
		clk.advance(time.Second)
	}
	// Without probes the runtime's own status is Ready when running.
	plain := podSpec("q", ContainerSpec{Name: "web", Image: "web:1", PullPolicy: corev1.PullIfNotPresent})
	if st, _ := f.RunPod(ctx, plain); !st.Ready || !st.Containers[0].Started {
		t.Errorf("probe-less running pod not ready: %+v", st)
	}
}

// TestReadinessRetriedSoonerUntilFirstReady: a readiness probe that fails
// before the container was ever ready is retried after 100 ms, 200 ms,
// 400 ms ... up to its period; once it has succeeded, failures wait the
// whole period again.
func TestReadinessRetriedSoonerUntilFirstReady(t *testing.T) {
	t0 := time.Unix(1000, 0)
	c := ContainerSpec{Name: "c", ReadinessProbe: httpProbeSpec("/ready", time.Second, 1, 3)}
	spec := PodSpec{Containers: []ContainerSpec{c}}
	st := PodStatus{Containers: []ContainerStatus{running("c", t0)}}
	var states map[string]ProbeState
	now := t0
	step := func(ok bool) time.Time {
		t.Helper()
		plan := PlanProbes(spec, st, states, now)
		if len(plan.Run) != 1 {
			t.Fatalf("at +%s: %d probes due, want 1", now.Sub(t0), len(plan.Run))
		}
		states = plan.States
		states["c"], _ = ObserveProbe(states["c"], c, plan.Run[0], ProbeResult{Success: ok})
		return PlanProbes(spec, st, states, now).Wake
	}
	var gaps []time.Duration
	for _, ok := range []bool{false, false, false, false, false, true, false, false} {
		wake := step(ok)
		gaps = append(gaps, wake.Sub(now))
		now = wake
	}
	want := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 400 * time.Millisecond, 800 * time.Millisecond,
		time.Second, time.Second, time.Second, time.Second}
	if fmt.Sprint(gaps) != fmt.Sprint(want) {
		t.Errorf("gaps between readiness probes: %v, want %v", gaps, want)
	}
}

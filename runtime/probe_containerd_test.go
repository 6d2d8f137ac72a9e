package runtime

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// podDriver is the agent's pod loop in miniature, for tests: restarts by
// PlanRestarts, probes by PlanProbes with real probe IO, stops on a probe
// verdict. Decisions run on a virtual clock that jumps to the next wake-up
// (never behind the real one), so no test waits out a period or back-off.
type podDriver struct {
	t      *testing.T
	n      *testNode
	spec   PodSpec
	now    time.Time
	states map[string]ProbeState
	stops  []string // verdict messages, in order
	last   PodStatus
	// runPod makes each step call RunPod (which starts what is due) instead
	// of relying on PlanRestarts' FirstStart entries.
	runPod bool
}

func newPodDriver(t *testing.T, n *testNode, spec PodSpec) *podDriver {
	return &podDriver{t: t, n: n, spec: spec, now: time.Now()}
}

// step runs one sync of the pod and returns its status as reported.
func (d *podDriver) step() PodStatus {
	d.t.Helper()
	ctx := context.Background()
	if real := time.Now(); real.After(d.now) {
		d.now = real
	}
	var st PodStatus
	var err error
	if d.runPod {
		st, err = d.n.RunPod(ctx, d.spec)
	} else {
		st, err = d.n.PodStatus(ctx, d.spec.Key)
	}
	if err != nil {
		d.t.Fatal(err)
	}
	rplan := PlanRestarts(d.spec.RestartPolicy, st, DefaultBackoff(), d.now)
	for _, r := range rplan.Restart {
		if st, err = d.n.RestartContainer(ctx, d.spec.Key, r.Name, r.Backoff); err != nil {
			d.t.Fatal(err)
		}
	}
	if len(rplan.Restart) > 0 {
		rplan = PlanRestarts(d.spec.RestartPolicy, st, DefaultBackoff(), d.now)
	}
	pplan := PlanProbes(d.spec, rplan.Status, d.states, d.now)
	d.states = pplan.States
	for _, run := range pplan.Run {
		c, _ := d.spec.container(run.Container)
		res := d.n.Probe(ctx, d.spec.Key, run.Container, run.Probe)
		var v ProbeVerdict
		d.states[run.Container], v = ObserveProbe(d.states[run.Container], c, run, res)
		if v.Stop {
			d.stops = append(d.stops, v.Message)
			if err := d.n.StopContainer(ctx, d.spec.Key, run.Container, v.Grace); err != nil {
				d.t.Fatal(err)
			}
		}
	}
	d.last = ProbedStatus(d.spec, rplan.Status, d.states)
	for _, w := range []time.Time{pplan.Wake, rplan.Wake} {
		if !w.IsZero() && w.After(d.now) {
			d.now = w
			break
		}
	}
	return d.last
}

// until steps the pod until cond holds.
func (d *podDriver) until(what string, cond func(PodStatus) bool) PodStatus {
	d.t.Helper()
	eventually(d.t, what, func() (bool, string) {
		st := d.step()
		return cond(st), fmt.Sprintf("%+v stops=%q", st, d.stops)
	})
	return d.last
}

func postReady(t *testing.T, ip string, ready bool) {
	t.Helper()
	resp, err := http.Post(fmt.Sprintf("http://%s:8080/ready?ready=%v", ip, ready), "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("POST /ready: %s", resp.Status)
	}
}

func TestContainerdProbes(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	web, batch := n.env.images["web"], n.env.images["batch"]
	httpP := func(path string, failure int32) *Probe {
		return &Probe{HTTPGet: &HTTPGetProbe{Scheme: "HTTP", Port: 8080, Path: path}, Period: time.Second, Timeout: 5 * time.Second,
			SuccessThreshold: 1, FailureThreshold: failure}
	}
	spec := podSpec("probed",
		ContainerSpec{Name: "web", Image: web, PullPolicy: corev1.PullIfNotPresent,
			// Until the server listens the startup probe fails; the
			// threshold is high so that a slow start is never a kill.
			StartupProbe:   httpP("/healthz", 100000),
			LivenessProbe:  httpP("/healthz", 3),
			ReadinessProbe: httpP("/ready", 1),
		},
		ContainerSpec{Name: "side", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"},
			ReadinessProbe: &Probe{TCPSocket: &TCPSocketProbe{Port: 8080}, Period: time.Second, Timeout: 5 * time.Second,
				SuccessThreshold: 1, FailureThreshold: 1},
			LivenessProbe: &Probe{Exec: &ExecProbe{Command: []string{"/batch", "-exit-code=0"}}, Period: time.Second,
				Timeout: 30 * time.Second, SuccessThreshold: 1, FailureThreshold: 1},
		},
	)
	spec.RestartPolicy = corev1.RestartPolicyAlways
	spec.TerminationGracePeriod = 5 * time.Second
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if st.Ready {
		t.Fatal("pod Ready before any probe ran")
	}
	d := newPodDriver(t, n, spec)
	st = d.until("pod ready", func(st PodStatus) bool { return st.Ready })
	for _, c := range st.Containers {
		if !c.Started || !c.Ready || c.RestartCount != 0 {
			t.Errorf("%s: %+v", c.Name, c)
		}
	}
	if s := d.states["side"]; !s.Liveness.Last.Success || !strings.Contains(s.Liveness.Last.Message, "batch done, exiting 0") {
		t.Errorf("exec liveness probe result %+v, want success with the command's output", s.Liveness.Last)
	}

	// The web image's readiness toggle drives the pod's Ready condition.
	postReady(t, st.PodIP, false)
	st = d.until("pod unready", func(st PodStatus) bool { return !st.Ready })
	if w, _ := st.Container("web"); w.Ready || !w.Started || w.State != StateRunning {
		t.Errorf("web after /ready=false: %+v", w)
	}
	if s, _ := st.Container("side"); !s.Ready {
		t.Errorf("side became unready too: %+v", s)
	}
	if m := d.states["web"].Readiness.Last.Message; !strings.Contains(m, "statuscode: 503") {
		t.Errorf("readiness failure message %q", m)
	}
	postReady(t, st.PodIP, true)
	d.until("pod ready again", func(st PodStatus) bool { return st.Ready })
	if len(d.stops) != 0 {
		t.Errorf("containers stopped by probes: %q", d.stops)
	}

	// One-off probes and their failures.
	for name, tc := range map[string]struct {
		container string
		p         Probe
		want      string
	}{
		"tcp closed port":  {"web", Probe{TCPSocket: &TCPSocketProbe{Port: 9}, Timeout: 5 * time.Second}, "connection refused"},
		"http closed port": {"web", Probe{HTTPGet: &HTTPGetProbe{Scheme: "HTTP", Port: 9, Path: "/"}, Timeout: 5 * time.Second}, "connection refused"},
		"http 404":         {"web", Probe{HTTPGet: &HTTPGetProbe{Scheme: "HTTP", Port: 8080, Path: "/file/nope"}, Timeout: 5 * time.Second}, "statuscode: 404"},
		"exec exit code":   {"side", Probe{Exec: &ExecProbe{Command: []string{"/batch", "-exit-code=4"}}, Timeout: 30 * time.Second}, "exited with 4"},
		"exec not found":   {"side", Probe{Exec: &ExecProbe{Command: []string{"/no/such/probe"}}, Timeout: 30 * time.Second}, "/no/such/probe"},
		// The only wait in this test: the exec is killed after its 1s.
		"exec timeout": {"side", Probe{Exec: &ExecProbe{Command: []string{"/batch", "-sleep=1h"}}, Timeout: time.Second}, "timed out after 1s"},
	} {
		res := n.Probe(ctx, spec.Key, tc.container, tc.p)
		if res.Success || !strings.Contains(res.Message, tc.want) {
			t.Errorf("%s: %+v, want a failure mentioning %q", name, res, tc.want)
		}
	}
	if res := n.Probe(ctx, spec.Key, "side", Probe{Exec: &ExecProbe{Command: []string{"/batch", "-exit-code=0"}}, Timeout: 30 * time.Second}); !res.Success {
		t.Errorf("exec after a timed-out exec: %+v", res)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

// TestContainerdLivenessFailureRestarts: a failing exec liveness probe
// stops the container with the probe's grace, and the restart policy runs
// it again.
func TestContainerdLivenessFailureRestarts(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	grace := 20 * time.Second
	spec := podSpec("sick", ContainerSpec{Name: "app", Image: n.env.images["batch"], PullPolicy: corev1.PullIfNotPresent,
		Args: []string{"-sleep=1h"},
		LivenessProbe: &Probe{Exec: &ExecProbe{Command: []string{"/batch", "-exit-code=1"}}, Period: time.Second,
			Timeout: 30 * time.Second, SuccessThreshold: 1, FailureThreshold: 2, TerminationGracePeriod: &grace},
	})
	spec.RestartPolicy = corev1.RestartPolicyAlways
	// A young container may not handle SIGTERM yet (PID 1): keep removal short.
	spec.TerminationGracePeriod = 2 * time.Second
	if _, err := n.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	// The SIGTERM handler is installed before this line is printed: the
	// probe's stop then ends the run with 143, not the grace period's 137.
	waitLog(t, n, spec.Key, "app", "batch starting")
	d := newPodDriver(t, n, spec)
	st := d.until("a restart after liveness failures", func(st PodStatus) bool {
		c, _ := st.Container("app")
		return c.RestartCount >= 1 && c.State == StateRunning
	})
	c, _ := st.Container("app")
	if c.LastTermination == nil || c.LastTermination.ExitCode != 143 || c.LastTermination.Reason != ReasonError {
		t.Errorf("last termination %+v, want the SIGTERM exit (143)", c.LastTermination)
	}
	if len(d.stops) == 0 || !strings.HasPrefix(d.stops[0], "Liveness probe failed: command \"/batch -exit-code=1\" exited with 1") {
		t.Errorf("stop verdicts %q", d.stops)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

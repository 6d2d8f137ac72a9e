package runtime

import (
	"time"
)

// Probes are decided here, by pure functions; running one probe is IO
// (Runtime.Probe). The agent keeps a ProbeState per container and, for
// each pod, loops:
//
//	plan := runtime.PlanProbes(spec, status, states, now)
//	states = plan.States
//	for _, run := range plan.Run {   // may run concurrently
//		res := rt.Probe(ctx, spec.Key, run.Container, run.Probe)
//		states[run.Container], v = runtime.ObserveProbe(states[run.Container], container, run, res)
//		if v.Stop { rt.StopContainer(ctx, spec.Key, run.Container, v.Grace) } // then PlanRestarts
//	}
//	report plan.Status (Ready, Started); call again at plan.Wake
//
// The semantics are Kubernetes': the startup probe runs first and alone;
// until it succeeds the container is neither started nor ready, and
// liveness and readiness are not probed; failureThreshold consecutive
// startup or liveness failures stop the container (its restartPolicy then
// decides, with back-off, through PlanRestarts); readiness turns ready
// after successThreshold consecutive successes and unready after
// failureThreshold consecutive failures, starting unready. Each probe
// first runs initialDelay after the container started, then every period
// (counted from one probe's start to the next); one probe of a kind runs
// at a time. A new run of the container (a restart) starts a fresh state.
//
// One departure: until a container's readiness probe first succeeds in a
// run, a failed readiness probe is retried sooner than its period — after
// readinessRetryMin, doubling up to the period. A program that starts
// listening a moment after its container started (the first probe runs at
// once) is then ready in a fraction of a second instead of a whole period
// later. Those failures count toward failureThreshold as usual, which for
// readiness only keeps the container unready, as it already is.

// ProbeState is the probe memory of one container. The zero value is
// right for a container that has not been seen running.
type ProbeState struct {
	// RunStartedAt identifies the container run this state is about.
	RunStartedAt time.Time
	// Started: the startup probe succeeded (or there is none).
	Started bool
	// Ready is the readiness probe's verdict (false until it succeeds).
	Ready bool
	// Stopping: a startup or liveness failure asked for the container to
	// be stopped; nothing more is probed in this run.
	Stopping bool
	// WasReady: the readiness probe has succeeded in this run; until then
	// its failures are retried sooner than its period.
	WasReady bool

	Startup, Liveness, Readiness ProbeCounter
}

// ProbeCounter is the state of one probe of a container.
type ProbeCounter struct {
	// Next is when the probe is next due.
	Next time.Time
	// InFlight: a run was handed out and its result not yet observed.
	InFlight bool
	// Successes and Failures count consecutive results.
	Successes, Failures int32
	// Last is the latest result.
	Last ProbeResult
}

func (s *ProbeState) counter(kind ProbeKind) *ProbeCounter {
	switch kind {
	case ProbeStartup:
		return &s.Startup
	case ProbeLiveness:
		return &s.Liveness
	default:
		return &s.Readiness
	}
}

// ProbeRun asks for one probe to be run now.
type ProbeRun struct {
	Container string
	Kind      ProbeKind
	Probe     Probe
	// RunStartedAt ties the result to the container run it was asked for:
	// ObserveProbe ignores a result for an earlier run.
	RunStartedAt time.Time
}

// ProbeVerdict is what to do after a result.
type ProbeVerdict struct {
	// Stop: a startup or liveness probe failed failureThreshold times in
	// a row; stop the container (StopContainer with Grace), then let
	// PlanRestarts decide.
	Stop bool
	// Grace is the probe's own terminationGracePeriod, else -1 (the
	// pod's).
	Grace time.Duration
	// Message says which probe failed and why, as Kubernetes words it
	// ("Liveness probe failed: ...").
	Message string
}

// containerProbes steps the state of one container at now: it resets the
// state for a new run, and hands out the probes that are due, marking
// them in flight. It returns the new state, the due probes and the
// earliest time another probe falls due (zero if none).
func containerProbes(c ContainerSpec, cs ContainerStatus, s ProbeState, now time.Time) (ProbeState, []ProbeRun, time.Time) {
	if cs.State != StateRunning {
		return ProbeState{}, nil, time.Time{}
	}
	if !s.RunStartedAt.Equal(cs.StartedAt) {
		s = ProbeState{RunStartedAt: cs.StartedAt, Started: c.StartupProbe == nil}
		for _, kind := range []ProbeKind{ProbeStartup, ProbeLiveness, ProbeReadiness} {
			if p := c.probe(kind); p != nil {
				s.counter(kind).Next = cs.StartedAt.Add(p.InitialDelay)
			}
		}
	}
	if s.Stopping {
		return s, nil, time.Time{}
	}
	kinds := []ProbeKind{ProbeLiveness, ProbeReadiness}
	if !s.Started {
		kinds = []ProbeKind{ProbeStartup}
	}
	var runs []ProbeRun
	var wake time.Time
	for _, kind := range kinds {
		p := c.probe(kind)
		ctr := s.counter(kind)
		if p == nil || ctr.InFlight {
			continue
		}
		if now.Before(ctr.Next) {
			if wake.IsZero() || ctr.Next.Before(wake) {
				wake = ctr.Next
			}
			continue
		}
		ctr.InFlight = true
		ctr.Next = now.Add(p.Period)
		runs = append(runs, ProbeRun{Container: c.Name, Kind: kind, Probe: *p, RunStartedAt: s.RunStartedAt})
	}
	return s, runs, wake
}

// ObserveProbe records the result of a ProbeRun in the container's state.
func ObserveProbe(s ProbeState, c ContainerSpec, run ProbeRun, r ProbeResult) (ProbeState, ProbeVerdict) {
	p := c.probe(run.Kind)
	if p == nil || !s.RunStartedAt.Equal(run.RunStartedAt) {
		return s, ProbeVerdict{}
	}
	ctr := s.counter(run.Kind)
	ctr.InFlight = false
	ctr.Last = r
	if r.Success {
		ctr.Successes, ctr.Failures = ctr.Successes+1, 0
	} else {
		ctr.Successes, ctr.Failures = 0, ctr.Failures+1
	}
	if s.Stopping {
		return s, ProbeVerdict{}
	}
	switch run.Kind {
	case ProbeStartup:
		if ctr.Successes >= p.SuccessThreshold {
			s.Started = true
		}
	case ProbeReadiness:
		if ctr.Successes >= p.SuccessThreshold {
			s.Ready, s.WasReady = true, true
		}
		if ctr.Failures >= p.FailureThreshold {
			s.Ready = false
		}
		if !r.Success && !s.WasReady {
			// The run was handed out at Next-Period.
			retry := ctr.Next.Add(-p.Period).Add(readinessRetry(ctr.Failures, p.Period))
			if retry.Before(ctr.Next) {
				ctr.Next = retry
			}
		}
	}
	if run.Kind != ProbeReadiness && ctr.Failures >= p.FailureThreshold {
		s.Stopping = true
		v := ProbeVerdict{Stop: true, Grace: -1, Message: probeTitle(run.Kind) + " probe failed: " + r.Message}
		if p.TerminationGracePeriod != nil {
			v.Grace = *p.TerminationGracePeriod
		}
		return s, v
	}
	return s, ProbeVerdict{}
}

// readinessRetryMin is the first early retry of a readiness probe that has
// not yet succeeded; see the package's probe semantics.
const readinessRetryMin = 100 * time.Millisecond

// readinessRetry is the wait after the failures-th consecutive failure of
// a readiness probe that has never succeeded: readinessRetryMin, doubling,
// at most period.
func readinessRetry(failures int32, period time.Duration) time.Duration {
	d := readinessRetryMin
	for i := int32(1); i < failures && d < period; i++ {
		d *= 2
	}
	return min(d, period)
}

func probeTitle(k ProbeKind) string {
	switch k {
	case ProbeStartup:
		return "Startup"
	case ProbeLiveness:
		return "Liveness"
	}
	return "Readiness"
}

// ProbePlan is what the pod loop does about probes at one instant.
type ProbePlan struct {
	// Run lists the probes to run now.
	Run []ProbeRun
	// Wake is when the next probe falls due (zero if none).
	Wake time.Time
	// States is the new probe state of every container (by name), with the
	// handed-out probes in flight. Containers not running have none.
	States map[string]ProbeState
	// Status is the pod status with each container's Started and Ready
	// and the pod's Ready condition set from the probes.
	Status PodStatus
}

// PlanProbes steps the probe state of every container of a pod at now.
// st is the runtime's status, or PlanRestarts' Status; states is the
// agent's (nil for a pod seen for the first time) and is not modified.
func PlanProbes(spec PodSpec, st PodStatus, states map[string]ProbeState, now time.Time) ProbePlan {
	plan := ProbePlan{States: map[string]ProbeState{}}
	for _, cs := range st.Containers {
		c, _ := spec.container(cs.Name)
		s := states[cs.Name]
		if st.Stopped {
			s = ProbeState{}
		}
		s, runs, wake := containerProbes(c, cs, s, now)
		if st.Stopped {
			runs, wake = nil, time.Time{}
		}
		if cs.State == StateRunning {
			plan.States[cs.Name] = s
		}
		plan.Run = append(plan.Run, runs...)
		if !wake.IsZero() && (plan.Wake.IsZero() || wake.Before(plan.Wake)) {
			plan.Wake = wake
		}
	}
	plan.Status = ProbedStatus(spec, st, plan.States)
	return plan
}

// ProbedStatus sets each container's Started and Ready, and the pod's
// Ready condition, from the probe states, without stepping them: for
// reporting after results came in. A state that belongs to another run of
// the container counts as fresh (not started if there is a startup probe,
// not ready if there is a readiness probe).
func ProbedStatus(spec PodSpec, st PodStatus, states map[string]ProbeState) PodStatus {
	st.Containers = append([]ContainerStatus(nil), st.Containers...)
	for i := range st.Containers {
		cs := &st.Containers[i]
		c, _ := spec.container(cs.Name)
		s := states[cs.Name]
		if !s.RunStartedAt.Equal(cs.StartedAt) {
			s = ProbeState{Started: c.StartupProbe == nil}
		}
		cs.Started = cs.State == StateRunning && !st.Stopped && s.Started
		cs.Ready = cs.Started && !s.Stopping && (c.ReadinessProbe == nil || s.Ready)
	}
	st.Ready = podReady(st)
	return st
}

// podReady is the pod's Ready condition: every container ready, and the
// pod not stopped.
func podReady(st PodStatus) bool {
	if st.Stopped || len(st.Containers) == 0 {
		return false
	}
	for _, c := range st.Containers {
		if !c.Ready {
			return false
		}
	}
	return true
}

package agent

import (
	"context"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/runtime"
)

// probeStates is the pod loop's probe memory: per pod UID, per container.
// It is node-local by nature (like the kubelet's): an agent restart starts
// every probe afresh, which Kubernetes also does.
type probeStates struct {
	mu    sync.Mutex
	byPod map[string]map[string]runtime.ProbeState
}

func newProbeStates() *probeStates {
	return &probeStates{byPod: map[string]map[string]runtime.ProbeState{}}
}

// runProbes steps the probes of every pod in specs at now, as
// runtime.PlanProbes decides, runs the probes that are due (concurrently),
// stops containers whose startup or liveness probe failed, and returns each
// pod's status with Started and Ready set from the probes. Wake is when the
// next probe falls due; stopped reports whether a container was stopped
// (the restart decision follows in the next round).
func (a *Agent) runProbes(ctx context.Context, rt PodRuntime, specs map[string]runtime.PodSpec, statuses map[string]runtime.PodStatus, now time.Time) (out map[string]runtime.PodStatus, wake time.Time, stopped bool) {
	ps := a.probes
	out = map[string]runtime.PodStatus{}
	ps.mu.Lock()
	for uid := range ps.byPod {
		if _, ok := specs[uid]; !ok {
			delete(ps.byPod, uid) // the pod is gone or no longer runs
		}
	}
	ps.mu.Unlock()

	var (
		mu sync.Mutex
		wg sync.WaitGroup
	)
	for uid, spec := range specs {
		st, ok := statuses[uid]
		if !ok {
			continue
		}
		ps.mu.Lock()
		plan := runtime.PlanProbes(spec, st, ps.byPod[uid], now)
		ps.mu.Unlock()
		if !plan.Wake.IsZero() && (wake.IsZero() || plan.Wake.Before(wake)) {
			wake = plan.Wake
		}
		if len(plan.Run) == 0 {
			ps.mu.Lock()
			ps.byPod[uid] = plan.States
			ps.mu.Unlock()
			mu.Lock() // probes of other pods may be reporting already
			out[uid] = plan.Status
			mu.Unlock()
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			states := plan.States
			for _, run := range plan.Run {
				res := rt.Probe(ctx, spec.Key, run.Container, run.Probe)
				c, _ := containerSpec(spec, run.Container)
				var v runtime.ProbeVerdict
				states[run.Container], v = runtime.ObserveProbe(states[run.Container], c, run, res)
				if !v.Stop {
					continue
				}
				a.log.Warn("probe failed: stopping the container", "pod", spec.Key.Namespace+"/"+spec.Key.Name, "uid", uid, "container", run.Container, "reason", v.Message)
				if err := rt.StopContainer(ctx, spec.Key, run.Container, v.Grace); err != nil {
					a.log.Warn("container stop failed", "pod", spec.Key.Namespace+"/"+spec.Key.Name, "container", run.Container, "err", err)
				}
				mu.Lock()
				stopped = true
				mu.Unlock()
			}
			ps.mu.Lock()
			ps.byPod[uid] = states
			ps.mu.Unlock()
			mu.Lock()
			out[uid] = runtime.ProbedStatus(spec, st, states)
			mu.Unlock()
		}()
	}
	wg.Wait()
	return out, wake, stopped
}

func containerSpec(spec runtime.PodSpec, name string) (runtime.ContainerSpec, bool) {
	for _, c := range spec.Containers {
		if c.Name == name {
			return c, true
		}
	}
	return runtime.ContainerSpec{}, false
}

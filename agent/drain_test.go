package agent

import (
	"testing"
	"time"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

func TestGateStops(t *testing.T) {
	s, _ := state.NewStore()
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	rec := func(name string) state.Pod {
		p := podRecord(k8sPod(name, name+":1"), "h", "c1", t0)
		p.NodeName = "n1"
		return p
	}
	serving, starting, running := rec("serving"), rec("starting"), rec("running")
	mustApply(t, s, &state.CreatePods{Pods: []state.Pod{serving, starting, running}, Time: t0})
	mustApply(t, s, &state.UpdatePodStatus{Node: "n1", Updates: []state.PodStatusUpdate{
		{UID: serving.UID, Status: state.PodStatus{Phase: state.PhaseRunning, Ready: true}},
		{UID: starting.UID, Status: state.PodStatus{Phase: state.PhaseRunning}},
	}})
	v := s.Snapshot()
	key := func(p state.Pod) runtime.PodKey {
		return runtime.PodKey{Namespace: p.Namespace, Name: p.Name, UID: p.UID}
	}
	acts := []PodAction{
		{Op: OpStop, Key: key(serving)},
		{Op: OpStop, Key: key(starting)},
		{Op: OpRun, Key: key(running)},
		{Op: OpRemove, Key: runtime.PodKey{UID: "gone"}},
	}
	ops := func(acts []PodAction) map[string]PodOp {
		m := map[string]PodOp{}
		for _, a := range acts {
			m[a.Key.UID] = a.Op
		}
		return m
	}
	seen := map[string]time.Time{}
	const drain = 2 * time.Second

	// The serving pod's stop waits; everything else goes at once.
	out, wake := GateStops(v, acts, seen, t0, drain)
	got := ops(out)
	if _, held := got[serving.UID]; held || len(got) != 3 || got[starting.UID] != OpStop || got["gone"] != OpRemove {
		t.Errorf("at t0: %v, want everything but the serving pod's stop", got)
	}
	if !wake.Equal(t0.Add(drain)) || !seen[serving.UID].Equal(t0) || len(seen) != 1 {
		t.Errorf("wake %v, seen %v", wake, seen)
	}
	// Still draining a moment later: the first sighting counts, not the latest.
	if out, wake = GateStops(v, acts, seen, t0.Add(drain-time.Millisecond), drain); len(out) != 3 || !wake.Equal(t0.Add(drain)) {
		t.Errorf("before the drain ends: %v, wake %v", ops(out), wake)
	}
	// The pod's status stops saying Ready while it drains (it is no longer
	// probed): it still drains to the end.
	mustApply(t, s, &state.UpdatePodStatus{Node: "n1", Updates: []state.PodStatusUpdate{
		{UID: serving.UID, Status: state.PodStatus{Phase: state.PhaseRunning}},
	}})
	v = s.Snapshot()
	if out, _ = GateStops(v, acts, seen, t0.Add(time.Second), drain); len(out) != 3 {
		t.Errorf("a draining pod no longer Ready: %v, want its stop still held", ops(out))
	}
	// Drained: the stop goes, and the pod is forgotten once no longer pending.
	if out, wake = GateStops(v, acts, seen, t0.Add(drain), drain); ops(out)[serving.UID] != OpStop || !wake.IsZero() {
		t.Errorf("after the drain: %v, wake %v", ops(out), wake)
	}
	if GateStops(v, nil, seen, t0.Add(drain), drain); len(seen) != 0 {
		t.Errorf("seen not cleaned: %v", seen)
	}
	// No drain configured: nothing waits.
	if out, _ = GateStops(v, acts, map[string]time.Time{}, t0, 0); len(out) != 4 {
		t.Errorf("drain 0: %v", ops(out))
	}
}

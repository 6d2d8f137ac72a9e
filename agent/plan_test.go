package agent

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/shoal-dev/shoal/cluster"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

var t0 = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

func mustApply(t *testing.T, s *state.Store, c state.Command) *state.Result {
	t.Helper()
	r, err := s.ApplyCommand(c)
	if err != nil {
		t.Fatalf("%T: %v", c, err)
	}
	if len(r.Rejected) > 0 {
		t.Fatalf("%T rejected: %+v", c, r.Rejected)
	}
	return r
}

func testNode(name string) state.Node {
	return state.Node{Name: name, Status: state.NodeReady, Capacity: state.Resources{MilliCPU: 2000, Memory: 4 << 30, Pods: 110},
		Allocatable: state.Resources{MilliCPU: 2000, Memory: 4 << 30, Pods: 110}}
}

func k8sPod(name, image string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "default"},
		Spec:       corev1.PodSpec{Containers: []corev1.Container{{Name: "app", Image: image}}},
	}
}

// fsmApplier commits through the adapter FSM as cluster would, with the
// response passed as bytes.
type fsmApplier struct {
	fsm   resultFSM
	index uint64
}

func (f *fsmApplier) Apply(_ context.Context, cmd []byte) (cluster.ApplyResult, error) {
	f.index++
	switch r := f.fsm.Apply(&raft.Log{Index: f.index, Type: raft.LogCommand, Data: cmd}).(type) {
	case nil:
		return cluster.ApplyResult{Index: f.index}, nil
	case []byte:
		return cluster.ApplyResult{Index: f.index, Response: r}, nil
	case error:
		return cluster.ApplyResult{}, &cluster.FSMError{Msg: r.Error()}
	default:
		return cluster.ApplyResult{}, errors.New("response of a type that cannot cross the network")
	}
}

func TestResultFSMCarriesTheResult(t *testing.T) {
	s, _ := state.NewStore()
	a := &fsmApplier{fsm: resultFSM{s.FSM()}}
	ctx := context.Background()
	if _, err := applyCommand(ctx, a, &state.UpsertNode{Node: testNode("n1")}); err != nil {
		t.Fatal(err)
	}
	p := podRecord(k8sPod("a", "img"), "h", "c1", t0)
	res, err := applyCommand(ctx, a, &state.CreatePods{Pods: []state.Pod{p, p}, Time: t0})
	if err != nil {
		t.Fatal(err)
	}
	if res.Index != 2 || res.Applied != 1 || len(res.Rejected) != 1 || res.Rejected[0].Reason != state.RejectPodExists {
		t.Errorf("result: %+v", res)
	}
	if _, err := applyCommand(ctx, a, &state.RefuseRevision{Commit: "c"}); err == nil {
		t.Error("an invalid command (no reason) did not fail")
	}
}

func TestPlanBarePods(t *testing.T) {
	s, _ := state.NewStore()
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	a, b := k8sPod("a", "a:1"), k8sPod("b", "b:1")

	plan := PlanBarePods([]*corev1.Pod{a, b}, "c1", s.Snapshot(), t0)
	if len(plan.Create) != 2 || len(plan.Delete)+len(plan.Purge) != 0 {
		t.Fatalf("first plan: %+v", plan)
	}
	if plan.Create[0].Name != "a" || plan.Create[0].Commit != "c1" || plan.Create[0].Spec.Images[0] != "a:1" {
		t.Errorf("record: %+v", plan.Create[0])
	}
	again := PlanBarePods([]*corev1.Pod{a, b}, "c1", s.Snapshot(), t0)
	if again.Create[0].UID != plan.Create[0].UID {
		t.Error("UIDs differ between two plans of the same inputs")
	}
	mustApply(t, s, &state.CreatePods{Pods: plan.Create, Time: t0})
	uidA, uidB := plan.Create[0].UID, plan.Create[1].UID
	mustApply(t, s, &state.BindPods{Bindings: []state.Binding{{UID: uidA, Node: "n1"}}})

	if p := PlanBarePods([]*corev1.Pod{a, b}, "c2", s.Snapshot(), t0); !p.Empty() {
		t.Errorf("unchanged pods at a new commit: %+v", p)
	}
	// a changed: replaced (stopped first, being bound); b gone from Git
	// and never bound: purged at once.
	a2 := k8sPod("a", "a:2")
	p := PlanBarePods([]*corev1.Pod{a2}, "c3", s.Snapshot(), t0)
	if len(p.Create) != 0 || len(p.Delete) != 1 || p.Delete[0] != uidA || len(p.Purge) != 1 || p.Purge[0] != uidB {
		t.Fatalf("changed a, removed b: %+v", p)
	}
	mustApply(t, s, &state.SetPodsDesired{Changes: []state.DesiredChange{{UID: uidA, Desired: state.DesiredDelete}}})
	mustApply(t, s, &state.DeletePods{UIDs: []string{uidB}})
	if p := PlanBarePods([]*corev1.Pod{a2}, "c3", s.Snapshot(), t0); !p.Empty() {
		t.Errorf("while a stops: %+v", p)
	}
	mustApply(t, s, &state.UpdatePodStatus{Node: "n1", Updates: []state.PodStatusUpdate{{UID: uidA, Status: state.PodStatus{Phase: state.PhaseSucceeded}}}})
	if p := PlanBarePods([]*corev1.Pod{a2}, "c3", s.Snapshot(), t0); len(p.Purge) != 1 || p.Purge[0] != uidA {
		t.Errorf("a stopped: %+v, want purged", p)
	}
	mustApply(t, s, &state.DeletePods{UIDs: []string{uidA}})
	p = PlanBarePods([]*corev1.Pod{a2}, "c3", s.Snapshot(), t0)
	if len(p.Create) != 1 || p.Create[0].Spec.Images[0] != "a:2" || p.Create[0].UID == uidA {
		t.Errorf("a recreated: %+v", p)
	}
}

func TestBarePodLostIsNotReplaced(t *testing.T) {
	s, _ := state.NewStore()
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	a := k8sPod("a", "a:1")
	plan := PlanBarePods([]*corev1.Pod{a}, "c1", s.Snapshot(), t0)
	plan.Create[0].NodeName = "n1"
	mustApply(t, s, &state.CreatePods{Pods: plan.Create, Time: t0})
	mustApply(t, s, &state.MarkPodsLost{UIDs: []string{plan.Create[0].UID}, Reason: "node gone", Time: t0})
	if p := PlanBarePods([]*corev1.Pod{a}, "c1", s.Snapshot(), t0); !p.Empty() {
		t.Errorf("lost bare pod: %+v, want nothing (bare pods are not replaced)", p)
	}
	if p := PlanBarePods(nil, "c2", s.Snapshot(), t0); len(p.Purge) != 1 {
		t.Errorf("lost pod removed from Git: %+v, want purged", p)
	}
}

func TestPlanPodCIDRs(t *testing.T) {
	s, _ := state.NewStore()
	for _, n := range []string{"n1", "n2", "n3"} {
		mustApply(t, s, &state.UpsertNode{Node: testNode(n)})
	}
	mustApply(t, s, &state.Allocate{Allocations: []state.Allocation{{Kind: state.AllocPodCIDR, Value: "10.244.0.0/24", Owner: "n2"}}})
	got, err := PlanPodCIDRs(s.Snapshot(), "10.244.0.0/16", 24)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got[0] != (state.Allocation{Kind: state.AllocPodCIDR, Value: "10.244.1.0/24", Owner: "n1"}) || got[1].Value != "10.244.2.0/24" || got[1].Owner != "n3" {
		t.Errorf("allocations: %+v", got)
	}
	mustApply(t, s, &state.Allocate{Allocations: got})
	if more, err := PlanPodCIDRs(s.Snapshot(), "10.244.0.0/16", 24); err != nil || len(more) != 0 {
		t.Errorf("all allocated: %+v, %v", more, err)
	}
	s2, _ := state.NewStore()
	for _, n := range []string{"n1", "n2", "n3"} {
		mustApply(t, s2, &state.UpsertNode{Node: testNode(n)})
	}
	if got, err := PlanPodCIDRs(s2.Snapshot(), "10.0.0.0/23", 24); err == nil || !strings.Contains(err.Error(), "exhausted") || len(got) != 2 {
		t.Errorf("3 nodes in 2 subnets: %+v, %v", got, err)
	}
}

func TestPlanNodeHealth(t *testing.T) {
	s, _ := state.NewStore()
	for _, n := range []string{"n1", "n2", "n3"} {
		mustApply(t, s, &state.UpsertNode{Node: testNode(n)})
	}
	p := podRecord(k8sPod("a", "a:1"), "h", "c1", t0)
	p.NodeName = "n2"
	mustApply(t, s, &state.CreatePods{Pods: []state.Pod{p}, Time: t0})
	grace := 5 * time.Second
	failedAt := t0.Add(time.Second)
	members := map[string]cluster.Member{
		"n1": {Name: "n1", Status: cluster.MemberAlive},
		"n2": {Name: "n2", Status: cluster.MemberFailed, Since: failedAt},
		// n3 is not known to gossip at all (a new leader that never saw it).
	}
	now := t0.Add(2 * time.Second)
	plan := PlanNodeHealth(s.Snapshot(), members, now, grace)
	if len(plan.Status) != 2 || plan.Status[0].Name != "n2" || plan.Status[0].Status != state.NodeNotReady ||
		!plan.Status[0].Heartbeat.Equal(failedAt) || plan.Status[1].Name != "n3" || !plan.Status[1].Heartbeat.Equal(now) {
		t.Fatalf("statuses: %+v", plan.Status)
	}
	if len(plan.Lost) != 0 || plan.Wake != 4*time.Second {
		t.Errorf("lost %+v wake %s, want none and 4s (grace from the failure)", plan.Lost, plan.Wake)
	}
	for _, c := range plan.Status {
		mustApply(t, s, &c)
	}
	if plan := PlanNodeHealth(s.Snapshot(), members, failedAt.Add(grace-time.Millisecond), grace); len(plan.Lost) != 0 || plan.Wake != time.Millisecond {
		t.Errorf("just before the grace: %+v", plan)
	}
	plan = PlanNodeHealth(s.Snapshot(), members, failedAt.Add(grace), grace)
	if len(plan.Lost) != 1 || len(plan.Lost[0].UIDs) != 1 || plan.Lost[0].UIDs[0] != p.UID || len(plan.Status) != 0 {
		t.Fatalf("after the grace: %+v", plan)
	}
	mustApply(t, s, &plan.Lost[0])
	if plan := PlanNodeHealth(s.Snapshot(), members, failedAt.Add(time.Hour), grace); len(plan.Lost)+len(plan.Status) != 0 {
		t.Errorf("pods already lost: %+v", plan)
	}
	members["n2"] = cluster.Member{Name: "n2", Status: cluster.MemberAlive}
	if plan := PlanNodeHealth(s.Snapshot(), members, failedAt.Add(time.Hour), grace); len(plan.Status) != 1 || plan.Status[0].Status != state.NodeReady {
		t.Errorf("n2 back: %+v", plan)
	}
}

// TestPlanNodeHealthGoneNodes: a node the repository declares gone is
// marked Gone once it is not alive, its pods lost at once (no grace); while
// alive it is left alone; once no longer declared and alive, Ready again.
func TestPlanNodeHealthGoneNodes(t *testing.T) {
	s, _ := state.NewStore()
	for _, n := range []string{"n1", "n2"} {
		mustApply(t, s, &state.UpsertNode{Node: testNode(n)})
	}
	p := podRecord(k8sPod("a", "a:1"), "h", "c1", t0)
	p.NodeName = "n2"
	mustApply(t, s, &state.CreatePods{Pods: []state.Pod{p}, Time: t0})
	grace := time.Hour
	members := map[string]cluster.Member{
		"n1": {Name: "n1", Status: cluster.MemberAlive},
		"n2": {Name: "n2", Status: cluster.MemberAlive},
	}
	if plan := PlanNodeHealth(s.Snapshot(), members, t0, grace, "n2"); len(plan.Status)+len(plan.Lost) != 0 {
		t.Errorf("declared gone but alive: %+v, want nothing", plan)
	}
	members["n2"] = cluster.Member{Name: "n2", Status: cluster.MemberFailed, Since: t0}
	plan := PlanNodeHealth(s.Snapshot(), members, t0.Add(time.Second), grace, "n2")
	if len(plan.Status) != 1 || plan.Status[0].Name != "n2" || plan.Status[0].Status != state.NodeGone {
		t.Fatalf("statuses: %+v", plan.Status)
	}
	if len(plan.Lost) != 1 || len(plan.Lost[0].UIDs) != 1 || plan.Lost[0].UIDs[0] != p.UID || !strings.Contains(plan.Lost[0].Reason, "goneNodes") {
		t.Fatalf("lost: %+v, want n2's pod at once", plan.Lost)
	}
	mustApply(t, s, &plan.Status[0])
	mustApply(t, s, &plan.Lost[0])
	if plan := PlanNodeHealth(s.Snapshot(), members, t0.Add(time.Minute), grace, "n2"); len(plan.Status)+len(plan.Lost) != 0 {
		t.Errorf("already gone: %+v", plan)
	}
	// Back, but still declared: stays Gone. No longer declared: Ready.
	members["n2"] = cluster.Member{Name: "n2", Status: cluster.MemberAlive}
	if plan := PlanNodeHealth(s.Snapshot(), members, t0.Add(time.Minute), grace, "n2"); len(plan.Status) != 0 {
		t.Errorf("alive and still declared gone: %+v", plan)
	}
	if plan := PlanNodeHealth(s.Snapshot(), members, t0.Add(time.Minute), grace); len(plan.Status) != 1 || plan.Status[0].Status != state.NodeReady {
		t.Errorf("alive and no longer declared gone: %+v", plan)
	}
}

func TestPlanPodSync(t *testing.T) {
	s, _ := state.NewStore()
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	rec := func(name string) state.Pod {
		p := podRecord(k8sPod(name, name+":1"), "h", "c1", t0)
		p.NodeName = "n1"
		return p
	}
	run, keep, stop, lost, stray := rec("run"), rec("keep"), rec("stop"), rec("lost"), "stray-uid"
	mustApply(t, s, &state.CreatePods{Pods: []state.Pod{run, keep, stop, lost}, Time: t0})
	mustApply(t, s, &state.SetPodsDesired{Changes: []state.DesiredChange{{UID: stop.UID, Desired: state.DesiredDelete}}})
	mustApply(t, s, &state.MarkPodsLost{UIDs: []string{lost.UID}, Reason: "x", Time: t0})

	fake := runtime.NewFake(runtime.FakeConfig{Now: func() time.Time { return t0 }})
	ctx := context.Background()
	for _, p := range []state.Pod{keep, stop, lost} {
		spec, err := runtimeSpec(k8sPod(p.Name, p.Name+":1"), p.UID, runtime.PodOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fake.RunPod(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	spec, _ := runtimeSpec(k8sPod("stray", "s:1"), stray, runtime.PodOptions{})
	fake.RunPod(ctx, spec)
	actual, _ := fake.ListPods(ctx)

	v := s.Snapshot()
	got := map[string]PodOp{}
	for _, a := range PlanPodSync("n1", v, actual) {
		got[a.Key.UID] = a.Op
	}
	want := map[string]PodOp{run.UID: OpRun, stop.UID: OpStop, lost.UID: OpRemove, stray: OpRemove}
	if len(got) != len(want) {
		t.Errorf("actions %v, want %v", got, want)
	}
	for uid, op := range want {
		if got[uid] != op {
			t.Errorf("pod %s: %v, want %v", uid, got[uid], op)
		}
	}

	// Statuses: keep reports Running and ready; stop, once stopped, is
	// Succeeded; run's failed start is reported as given; lost is never
	// reported.
	fake.StopPod(ctx, runtime.PodKey{Namespace: "default", Name: "stop", UID: stop.UID}, 0)
	actual, _ = fake.ListPods(ctx)
	failed := map[string]state.PodStatus{run.UID: {Phase: state.PhasePending, Reason: "FailedCreatePodSandBox"}}
	ups := map[string]state.PodStatus{}
	for _, u := range PodStatusUpdates("n1", v, actual, failed) {
		ups[u.UID] = u.Status
	}
	if len(ups) != 3 {
		t.Errorf("updates for %d pods, want 3: %+v", len(ups), ups)
	}
	if s := ups[keep.UID]; s.Phase != state.PhaseRunning || !s.Ready || s.PodIP == "" || len(s.Containers) != 1 || s.Containers[0].State != "running" {
		t.Errorf("keep: %+v", s)
	}
	if s := ups[stop.UID]; s.Phase != state.PhaseSucceeded || s.Ready || s.Reason != "Stopped" {
		t.Errorf("stop: %+v", s)
	}
	if s := ups[run.UID]; s.Reason != "FailedCreatePodSandBox" {
		t.Errorf("run: %+v", s)
	}
	// Reported once: the same status again is not an update.
	mustApply(t, s, &state.UpdatePodStatus{Node: "n1", Updates: []state.PodStatusUpdate{{UID: keep.UID, Status: ups[keep.UID]}}})
	for _, u := range PodStatusUpdates("n1", s.Snapshot(), actual, nil) {
		if u.UID == keep.UID {
			t.Errorf("unchanged status reported again: %+v", u.Status)
		}
	}
}

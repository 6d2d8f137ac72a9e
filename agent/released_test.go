package agent

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// TestReleasedPods: a node releases the StatefulSet pods lost with it once
// its runtime no longer holds them, and no other record.
func TestReleasedPods(t *testing.T) {
	s, _ := state.NewStore()
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	rec := func(name, kind string) state.Pod {
		p := podRecord(k8sPod(name, name+":1"), "h", "c1", t0)
		p.NodeName = "n1"
		p.Owner = state.Owner{Kind: kind, Name: "x"}
		return p
	}
	gone, still, live, dep, bare := rec("db-0", "StatefulSet"), rec("db-1", "StatefulSet"), rec("db-2", "StatefulSet"), rec("web-a", "Deployment"), rec("pod", "")
	mustApply(t, s, &state.CreatePods{Pods: []state.Pod{gone, still, live, dep, bare}, Time: t0})
	mustApply(t, s, &state.MarkPodsLost{UIDs: []string{gone.UID, still.UID, dep.UID, bare.UID}, Reason: "x", Time: t0})

	fake := runtime.NewFake(runtime.FakeConfig{Now: func() time.Time { return t0 }})
	ctx := context.Background()
	for _, p := range []state.Pod{still, live} {
		spec, err := runtimeSpec(k8sPod(p.Name, p.Name+":1"), p.UID, runtime.PodOptions{})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fake.RunPod(ctx, spec); err != nil {
			t.Fatal(err)
		}
	}
	actual, _ := fake.ListPods(ctx)
	if got := ReleasedPods("n1", s.Snapshot(), actual); !slices.Equal(got, []string{gone.UID}) {
		t.Errorf("released %v, want only the lost StatefulSet pod the runtime no longer holds (%s)", got, gone.UID)
	}
	if got := ReleasedPods("n2", s.Snapshot(), nil); len(got) != 0 {
		t.Errorf("another node released %v", got)
	}
}

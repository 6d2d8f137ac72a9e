package runtime

import (
	"context"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestFakeStats(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: t0}
	f := NewFake(FakeConfig{Now: clk.now, Stats: func(_ PodKey, c string) ContainerStats {
		return ContainerStats{CPU: time.Second, MemoryWorkingSet: 42}
	}})
	spec := podSpec("s", ContainerSpec{Name: "a", Image: "x:1"}, ContainerSpec{Name: "b", Image: "x:1"})
	if _, err := f.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := f.Exit(spec.Key, "b", 0); err != nil {
		t.Fatal(err)
	}
	st, err := f.Stats(ctx, spec.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Containers) != 1 || st.Containers[0].Name != "a" || st.Containers[0].MemoryWorkingSet != 42 || !st.Containers[0].Timestamp.Equal(t0) {
		t.Errorf("stats %+v", st)
	}
}

func TestContainerdStats(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	spec := podSpec("stats",
		ContainerSpec{Name: "hold", Image: n.env.images["batch"], PullPolicy: corev1.PullIfNotPresent, Args: []string{"-alloc-mib=64", "-sleep=1h"}},
		ContainerSpec{Name: "done", Image: n.env.images["batch"], PullPolicy: corev1.PullIfNotPresent},
	)
	spec.TerminationGracePeriod = 5 * time.Second
	if _, err := n.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	waitLog(t, n, spec.Key, "hold", "batch allocated 64 MiB")
	waitTerminated(t, n, spec.Key, "done")
	st, err := n.Stats(ctx, spec.Key)
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Containers) != 1 || st.Containers[0].Name != "hold" {
		t.Fatalf("stats of running containers only: %+v", st)
	}
	h := st.Containers[0]
	if h.MemoryWorkingSet < 64<<20 || h.MemoryUsage < h.MemoryWorkingSet || h.CPU <= 0 || h.Timestamp.IsZero() {
		t.Errorf("hold: %+v, want at least 64 MiB in use and some CPU time", h)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

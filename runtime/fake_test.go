package runtime

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// clock is a virtual clock for the fake.
type clock struct{ t time.Time }

func (c *clock) now() time.Time          { return c.t }
func (c *clock) advance(d time.Duration) { c.t = c.t.Add(d) }

func TestFakeLifecycle(t *testing.T) {
	ctx := context.Background()
	clk := &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}
	f := NewFake(FakeConfig{Now: clk.now, StartLatency: 2 * time.Second})
	spec := podSpec("job", ContainerSpec{Name: "main", Image: "batch:1", PullPolicy: corev1.PullIfNotPresent})

	st, err := f.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Container("main"); c.State != StateWaiting || c.Reason != ReasonContainerCreating || st.PodIP != "10.244.0.2" {
		t.Fatalf("at start: %+v", st)
	}
	clk.advance(time.Second)
	if st, _ = f.PodStatus(ctx, spec.Key); st.Phase != corev1.PodPending {
		t.Errorf("before latency: %s", st.Phase)
	}
	clk.advance(time.Second)
	st, _ = f.PodStatus(ctx, spec.Key)
	c, _ := st.Container("main")
	if c.State != StateRunning || !c.StartedAt.Equal(clk.t) || st.Phase != corev1.PodRunning {
		t.Fatalf("after latency: %+v", st)
	}
	if err := f.WriteLog(spec.Key, "main", "working\n"); err != nil {
		t.Fatal(err)
	}
	rc, err := f.Logs(ctx, spec.Key, "main", LogOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := io.ReadAll(rc); string(b) != "working\n" {
		t.Errorf("logs %q", b)
	}
	if err := f.Exit(spec.Key, "main", 4); err != nil {
		t.Fatal(err)
	}
	st, _ = f.PodStatus(ctx, spec.Key)
	if c, _ := st.Container("main"); c.State != StateTerminated || c.ExitCode != 4 || c.Reason != ReasonError || st.Phase != corev1.PodFailed {
		t.Errorf("after exit: %+v", st)
	}
	if err := f.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := f.PodStatus(ctx, spec.Key); !errors.Is(err, ErrPodNotFound) {
		t.Errorf("after remove: %v", err)
	}
	// The address is free again and handed out first.
	st, _ = f.RunPod(ctx, podSpec("next", ContainerSpec{Name: "main", Image: "batch:1"}))
	if st.PodIP != "10.244.0.2" {
		t.Errorf("reused IP %s", st.PodIP)
	}
}

func TestFakeFailures(t *testing.T) {
	ctx := context.Background()
	f := NewFake(FakeConfig{
		PullErrors:   map[string]error{"gone:1": errors.New("manifest unknown")},
		CreateErrors: map[string]string{"broken:1": "exec: no such file"},
		LocalImages:  []string{"here:1"},
	})
	spec := podSpec("p",
		ContainerSpec{Name: "a", Image: "gone:1", PullPolicy: corev1.PullIfNotPresent},
		ContainerSpec{Name: "b", Image: "broken:1", PullPolicy: corev1.PullIfNotPresent},
		ContainerSpec{Name: "c", Image: "absent:1", PullPolicy: corev1.PullNever},
		ContainerSpec{Name: "d", Image: "here:1", PullPolicy: corev1.PullNever},
	)
	st, err := f.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"a": ReasonErrImagePull, "b": ReasonCreateContainerError, "c": ReasonErrImageNeverPull}
	for name, reason := range want {
		if c, _ := st.Container(name); c.State != StateWaiting || c.Reason != reason {
			t.Errorf("%s: %+v, want %s", name, c, reason)
		}
	}
	if c, _ := st.Container("d"); c.State != StateRunning {
		t.Errorf("d: %+v", c)
	}
	if _, err := f.EnsureImage(ctx, "gone:1", corev1.PullAlways); !errors.Is(err, ErrImagePull) {
		t.Errorf("EnsureImage: %v", err)
	}
}

func TestFakeGCAndIdempotentRun(t *testing.T) {
	ctx := context.Background()
	f := NewFake(FakeConfig{})
	a, b := podSpec("a", ContainerSpec{Name: "m", Image: "x:1"}), podSpec("b", ContainerSpec{Name: "m", Image: "x:1"})
	f.RunPod(ctx, a)
	f.RunPod(ctx, b)
	f.RunPod(ctx, a) // no-op
	if calls := f.Calls(); len(calls) != 2 {
		t.Errorf("calls %v", calls)
	}
	res, err := f.GC(ctx, map[string]bool{a.Key.UID: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.AdoptedPods) != 1 || res.AdoptedPods[0] != a.Key || len(res.RemovedPods) != 1 || res.RemovedPods[0] != b.Key {
		t.Errorf("%+v", res)
	}
	pods, _ := f.ListPods(ctx)
	if len(pods) != 1 || pods[0].Key != a.Key {
		t.Errorf("%+v", pods)
	}
	if err := f.StopPod(ctx, a.Key, 0); err != nil {
		t.Fatal(err)
	}
	if st, _ := f.PodStatus(ctx, a.Key); st.Phase != corev1.PodSucceeded {
		t.Errorf("after stop: %s", st.Phase)
	}
}

func TestFakeSandboxErrorsAndExhaustion(t *testing.T) {
	ctx := context.Background()
	boom := errors.New("cni: boom")
	f := NewFake(FakeConfig{
		PodCIDR: netip.MustParsePrefix("10.9.0.0/30"),
		SandboxError: func(k PodKey) error {
			if k.Name == "bad" {
				return boom
			}
			return nil
		},
	})
	if _, err := f.RunPod(ctx, podSpec("bad", ContainerSpec{Name: "m", Image: "x:1"})); !errors.Is(err, boom) {
		t.Errorf("sandbox error: %v", err)
	}
	if _, err := f.PodStatus(ctx, PodKey{Namespace: "default", Name: "bad", UID: "uid-bad"}); !errors.Is(err, ErrPodNotFound) {
		t.Errorf("failed pod recorded: %v", err)
	}
	// A /30 has one pod address: .1 is the gateway, .3 the broadcast.
	if st, err := f.RunPod(ctx, podSpec("one", ContainerSpec{Name: "m", Image: "x:1"})); err != nil || st.PodIP != "10.9.0.2" {
		t.Fatalf("%+v %v", st, err)
	}
	if _, err := f.RunPod(ctx, podSpec("two", ContainerSpec{Name: "m", Image: "x:1"})); err == nil {
		t.Error("a full /30 gave out a second address")
	}
}

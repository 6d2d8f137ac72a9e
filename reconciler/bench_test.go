package reconciler

import (
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// benchCluster builds a store of 100 nodes running deployments×5 ready pods, created by the
// reconciler itself, and the object set that owns them.
func benchCluster(b *testing.B, deployments int) (*state.Store, *manifest.Set) {
	b.Helper()
	var doc strings.Builder
	for i := range deployments {
		fmt.Fprintf(&doc, `---
apiVersion: apps/v1
kind: Deployment
metadata: {name: app%d, namespace: ns%d}
spec:
  replicas: 5
  selector: {matchLabels: {app: app%d}}
  template:
    metadata: {labels: {app: app%d}}
    spec:
      containers:
      - name: main
        image: registry.example/app%d:v1
        resources: {requests: {cpu: 100m, memory: 64Mi}}
        ports: [{containerPort: 8080}]
`, i, i%50, i, i, i)
	}
	objs, errs := manifest.Decode("bench.yaml", []byte(doc.String()))
	if err := errs.Err(); err != nil {
		b.Fatal(err)
	}
	set, errs := manifest.NewSet(objs)
	if err := errs.Err(); err != nil {
		b.Fatal(err)
	}
	w := newWorld(b)
	for i := range 100 {
		w.addNode(fmt.Sprintf("node%03d", i))
	}
	p, err := Reconcile(Input{Objects: set, Commit: "c1", State: w.store.Snapshot(), Now: epoch})
	if err != nil {
		b.Fatal(err)
	}
	started := epoch.Add(time.Second)
	for i := 0; i < len(p.Create); i += 1000 {
		batch := p.Create[i:min(i+1000, len(p.Create))]
		w.apply(&state.CreatePods{Pods: batch, Time: epoch})
		binds := make([]state.Binding, len(batch))
		for j := range batch {
			binds[j] = state.Binding{UID: batch[j].UID, Node: fmt.Sprintf("node%03d", (i+j)%100)}
		}
		w.apply(&state.BindPods{Bindings: binds})
	}
	for n := range 100 {
		node := fmt.Sprintf("node%03d", n)
		var ups []state.PodStatusUpdate
		for _, pod := range w.store.Snapshot().PodsOnNode(node) {
			ups = append(ups, state.PodStatusUpdate{UID: pod.UID, Status: state.PodStatus{Phase: state.PhaseRunning, Ready: true, StartTime: started,
				Containers: []state.ContainerStatus{{Name: "main", State: "running", Ready: true, StartedAt: started}}}})
		}
		w.apply(&state.UpdatePodStatus{Node: node, Updates: ups})
	}
	return w.store, set
}

// BenchmarkReconcile10kDeployments: one reconcile of 10,000 Deployments (50,000 pods) from one
// snapshot, at rest (nothing to do: the common case, every change and every tick) and with a
// new commit that changes every template (a rollout step for all of them). Target ≤ 200 ms.
func BenchmarkReconcile10kDeployments(b *testing.B) {
	store, set := benchCluster(b, 10000)
	snap := store.Snapshot()
	now := epoch.Add(time.Hour)
	b.Run("steady", func(b *testing.B) {
		defer cpuPerOp(b)()
		for b.Loop() {
			p, err := Reconcile(Input{Objects: set, Commit: "c1", State: snap, Now: now})
			if err != nil || !p.Empty() {
				b.Fatalf("unexpected plan: %v, %d creates", err, len(p.Create))
			}
		}
	})
	b.Run("steady-cached", func(b *testing.B) {
		// The leader's case: the same object set as the last reconcile, hashes memoised.
		cache := &Cache{}
		if _, err := Reconcile(Input{Objects: set, Commit: "c1", State: snap, Now: now, Cache: cache}); err != nil {
			b.Fatal(err)
		}
		defer cpuPerOp(b)()
		for b.Loop() {
			p, err := Reconcile(Input{Objects: set, Commit: "c1", State: snap, Now: now, Cache: cache})
			if err != nil || !p.Empty() {
				b.Fatalf("unexpected plan: %v, %d creates", err, len(p.Create))
			}
		}
	})
	b.Run("rollout", func(b *testing.B) {
		// The same objects with another image: every Deployment takes a rollout step.
		objs := set.Objects()
		changed := make([]*manifest.Object, 0, len(objs))
		for _, o := range objs {
			c := *o
			d := o.Obj.DeepCopyObject()
			c.Obj = d
			setImage(d, "v2")
			changed = append(changed, &c)
		}
		set2, errs := manifest.NewSet(changed)
		if err := errs.Err(); err != nil {
			b.Fatal(err)
		}
		defer cpuPerOp(b)()
		for b.Loop() {
			p, err := Reconcile(Input{Objects: set2, Commit: "c2", State: snap, Now: now})
			if err != nil || len(p.Create) != 20000 {
				b.Fatalf("unexpected plan: %v, %d creates", err, len(p.Create))
			}
		}
	})
}

// cpuPerOp reports the process CPU time (user + system, GC included) per iteration: on a shared
// machine it is steadier than wall time.
func cpuPerOp(b *testing.B) func() {
	start := cpuTime()
	return func() {
		b.ReportMetric(float64((cpuTime()-start).Microseconds())/1000/float64(b.N), "cpu-ms/op")
	}
}

func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func setImage(o any, tag string) {
	switch v := o.(type) {
	case *appsv1.Deployment:
		for i := range v.Spec.Template.Spec.Containers {
			c := &v.Spec.Template.Spec.Containers[i]
			c.Image = strings.TrimSuffix(c.Image, ":v1") + ":" + tag
		}
	}
}

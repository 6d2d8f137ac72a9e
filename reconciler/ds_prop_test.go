package reconciler

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"pgregory.net/rapid"

	"github.com/shoal-dev/shoal/state"
)

// TestDaemonSetBounds: over random histories (new images, nodes joining, lost, back and gone,
// pods ready and failing), no plan leaves a node with more than two daemon pods meant to run
// (the old one and a surge), no plan makes more eligible nodes lack an available daemon than
// maxUnavailable (or than the world already did), and a calm world converges to one pod of the
// current revision on every eligible node.
func TestDaemonSetBounds(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t)
		surge := rapid.SampledFrom([]string{"0", "1"}).Draw(rt, "surge")
		unavail := "1"
		if surge == "0" {
			unavail = rapid.SampledFrom([]string{"1", "2", "50%"}).Draw(rt, "unavail")
		} else {
			unavail = "0"
		}
		image := "v1"
		commit := func() {
			w.commitYAML(fmt.Sprintf(`apiVersion: apps/v1
kind: DaemonSet
metadata: {name: ds, namespace: default}
spec:
  selector: {matchLabels: {app: ds}}
  updateStrategy: {rollingUpdate: {maxSurge: %s, maxUnavailable: %s}}
  template:
    metadata: {labels: {app: ds}}
    spec:
      containers: [{name: c, image: "ds:%s"}]
`, surge, unavail, image))
		}
		nodes := rapid.IntRange(1, 4).Draw(rt, "nodes")
		for i := range nodes {
			w.addNode(fmt.Sprintf("n%d", i+1))
		}
		commit()

		// perNode counts, for each non-gone node, the daemon pods meant to run and whether one
		// is available.
		perNode := func(s *state.Snapshot) (max int, lacking int) {
			for _, n := range s.Nodes() {
				if n.Status == state.NodeGone {
					continue
				}
				count, ok := 0, false
				for _, p := range s.PodsByOwner("default", "DaemonSet", "ds") {
					if p.Spec.PinnedNode != n.Name || p.Desired != state.DesiredRun || p.Status.Phase.Terminal() {
						continue
					}
					count++
					ok = ok || n.Status == state.NodeReady && p.NodeName == n.Name && p.Status.Ready && p.Status.Phase == state.PhaseRunning
				}
				if count > max {
					max = count
				}
				if !ok {
					lacking++
				}
			}
			return max, lacking
		}
		check := func() {
			before := w.store.Snapshot()
			_, lackB := perNode(before)
			p := w.reconcile()
			after := w.store.Snapshot()
			maxA, lackA := perNode(after)
			d := w.objs.Objects()[0].Obj.(*appsv1.DaemonSet)
			eligible := 0
			for _, n := range after.Nodes() {
				if n.Status != state.NodeGone {
					eligible++
				}
			}
			mu := 0
			if d.Spec.UpdateStrategy.RollingUpdate.MaxSurge.IntValue() == 0 {
				mu, _ = scaled(d.Spec.UpdateStrategy.RollingUpdate.MaxUnavailable, eligible)
			}
			if maxA > 2 {
				rt.Fatalf("a node has %d daemon pods meant to run\n%s", maxA, describePlan(before, p, w.now))
			}
			if lackA > max(lackB, mu) {
				rt.Fatalf("nodes without an available daemon %d → %d, maxUnavailable %d\n%s", lackB, lackA, mu, describePlan(before, p, w.now))
			}
		}
		for range rapid.IntRange(5, 50).Draw(rt, "steps") {
			check()
			switch rapid.IntRange(0, 7).Draw(rt, "event") {
			case 0, 1:
				w.schedule()
			case 2:
				w.setPods([]string{"all"}, true, state.PhaseRunning)
			case 3:
				w.setPods([]string{pick(rt, w, "fail")}, false, state.PhaseFailed)
			case 4:
				w.now = w.now.Add(time.Duration(rapid.IntRange(1, 30).Draw(rt, "tick")) * time.Second)
			case 5:
				n := fmt.Sprintf("n%d", rapid.IntRange(1, nodes).Draw(rt, "node"))
				switch node := w.store.Snapshot().Node(n); rapid.IntRange(0, 2).Draw(rt, "nodeEvent") {
				case 0:
					if node.Status == state.NodeReady {
						w.killNode(n)
					}
				case 1:
					if node.Status == state.NodeNotReady {
						w.setNode(n, state.NodeReady)
					}
				case 2:
					w.setNode(n, state.NodeGone)
				}
			case 6:
				nodes++
				w.addNode(fmt.Sprintf("n%d", nodes))
			case 7:
				image = rapid.SampledFrom([]string{"v1", "v2", "v3"}).Draw(rt, "image")
				commit()
			}
		}
		for _, n := range w.store.Snapshot().Nodes() {
			if n.Status == state.NodeNotReady {
				w.setNode(n.Name, state.NodeReady)
			}
		}
		for range 60 {
			check()
			w.schedule()
			w.setPods([]string{"all"}, true, state.PhaseRunning)
			w.now = w.now.Add(5 * time.Second)
		}
		p := w.reconcile()
		st := p.Status[0]
		if !p.Empty() || st.Updated != st.Replicas || st.Available != st.Replicas || st.Current != st.Replicas {
			rt.Fatalf("did not converge: %+v\n%s", st, describePods(w.store.Snapshot()))
		}
	})
}

package reconciler

import (
	"fmt"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"pgregory.net/rapid"

	"github.com/shoal-dev/shoal/state"
)

// deploymentYAML renders the Deployment the property tests roll around.
func deploymentYAML(replicas int, strategy, surge, unavail string, minReady int, image string, paused bool) string {
	s := fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: %d
  paused: %v
  minReadySeconds: %d
  progressDeadlineSeconds: 30
  selector: {matchLabels: {app: web}}
`, replicas, paused, minReady)
	if strategy == "Recreate" {
		s += "  strategy: {type: Recreate}\n"
	} else {
		s += fmt.Sprintf("  strategy: {rollingUpdate: {maxSurge: %s, maxUnavailable: %s}}\n", surge, unavail)
	}
	return s + fmt.Sprintf(`  template:
    metadata: {labels: {app: web}}
    spec:
      containers: [{name: web, image: "web:%s"}]
`, image)
}

// counts are what the invariants are about, computed here independently of the reconciler:
// live pods (meant to run, not terminated, not on a dead node) and available ones.
func counts(s *state.Snapshot, now time.Time, minReady time.Duration) (live, avail int, hashes map[string]int) {
	hashes = map[string]int{}
	for _, p := range s.PodsByOwner("default", "Deployment", "web") {
		if p.Desired != state.DesiredRun || p.Status.Phase.Terminal() {
			continue
		}
		var node *state.Node
		if p.NodeName != "" {
			if node = s.Node(p.NodeName); node == nil || node.Status == state.NodeGone {
				continue
			}
		}
		live++
		hashes[p.TemplateHash]++
		if node == nil || node.Status != state.NodeReady || p.Status.Phase != state.PhaseRunning || !p.Status.Ready {
			continue
		}
		if !readySince(p).Add(minReady).After(now) {
			avail++
		}
	}
	return live, avail, hashes
}

// TestRollingUpdateBounds: over random histories (commits of new and reverted templates and
// replica counts, pods becoming ready, failing, nodes lost, gone and back, time passing), no
// plan takes the available pods below replicas − maxUnavailable (or below what there was, when
// the world already took them lower), and no plan grows the live pods beyond
// replicas + maxSurge. Recreate never has old and new pods at once. Once the world calms down,
// every history converges to replicas pods of the current template.
func TestRollingUpdateBounds(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t)
		strategy := rapid.SampledFrom([]string{"RollingUpdate", "RollingUpdate", "Recreate"}).Draw(rt, "strategy")
		surge := rapid.SampledFrom([]string{"0", "1", "2", "25%", "50%"}).Draw(rt, "surge")
		unavail := rapid.SampledFrom([]string{"0", "1", "25%", "50%"}).Draw(rt, "unavail")
		minReady := rapid.SampledFrom([]int{0, 5}).Draw(rt, "minReady")
		replicas := rapid.IntRange(1, 6).Draw(rt, "replicas")
		image := "v1"
		for i := range rapid.IntRange(1, 4).Draw(rt, "nodes") {
			w.addNode(fmt.Sprintf("n%d", i+1))
		}
		nodes := len(w.store.Snapshot().Nodes())
		commit := func() {
			w.commitYAML(deploymentYAML(replicas, strategy, surge, unavail, minReady, image, false))
		}
		commit()
		minReadyD := time.Duration(minReady) * time.Second

		check := func() {
			before := w.store.Snapshot()
			liveB, availB, _ := counts(before, w.now, minReadyD)
			p := w.reconcile()
			after := w.store.Snapshot()
			liveA, availA, _ := counts(after, w.now, minReadyD)
			d := w.objs.Objects()[0].Obj.(*appsv1.Deployment)
			s, u, err := Fenceposts(d.Spec.Strategy, replicas)
			if err != nil {
				rt.Fatal(err)
			}
			if strategy == "Recreate" {
				s, u = 0, replicas
				if running := runningRevisions(after); len(running) > 1 {
					rt.Fatalf("recreate: two revisions running at once: %v\n%s", running, describePlan(before, p, w.now))
				}
			}
			if liveA > max(liveB, replicas+s) {
				rt.Fatalf("live pods %d → %d, above replicas %d + maxSurge %d\n%s", liveB, liveA, replicas, s, describePlan(before, p, w.now))
			}
			if availA < min(availB, replicas-u) {
				rt.Fatalf("available pods %d → %d, below replicas %d − maxUnavailable %d\n%s", availB, availA, replicas, u, describePlan(before, p, w.now))
			}
		}

		steps := rapid.IntRange(5, 60).Draw(rt, "steps")
		for range steps {
			check()
			switch rapid.IntRange(0, 11).Draw(rt, "event") {
			case 0, 1:
				w.schedule()
			case 2:
				w.setPods([]string{"all"}, true, state.PhaseRunning)
			case 3:
				w.setPods([]string{pick(rt, w, "ready")}, true, state.PhaseRunning)
			case 4:
				w.setPods([]string{pick(rt, w, "fail")}, false, state.PhaseFailed)
			case 5:
				w.setPods([]string{pick(rt, w, "unready")}, false, state.PhaseRunning)
			case 6:
				w.now = w.now.Add(time.Duration(rapid.IntRange(1, 40).Draw(rt, "tick")) * time.Second)
			case 7:
				n := fmt.Sprintf("n%d", rapid.IntRange(1, nodes).Draw(rt, "node"))
				switch rapid.IntRange(0, 2).Draw(rt, "nodeEvent") {
				case 0:
					w.killNode(n)
				case 1:
					w.setNode(n, state.NodeReady)
				case 2:
					w.setNode(n, state.NodeGone)
				}
			case 8:
				nodes++
				w.addNode(fmt.Sprintf("n%d", nodes))
			case 9, 10:
				image = rapid.SampledFrom([]string{"v1", "v2", "v3"}).Draw(rt, "image")
				commit()
			case 11:
				replicas = rapid.IntRange(0, 6).Draw(rt, "newReplicas")
				commit()
			}
		}

		// Calm: every node back, pods start and become ready as soon as they can.
		for _, n := range w.store.Snapshot().Nodes() {
			if n.Status != state.NodeReady {
				w.setNode(n.Name, state.NodeReady)
			}
		}
		w.addNode("spare")
		for round := 0; round < 100; round++ {
			check()
			w.schedule()
			w.setPods([]string{"all"}, true, state.PhaseRunning)
			w.now = w.now.Add(5 * time.Second)
		}
		p := w.reconcile()
		want := TemplateHash("default", &w.objs.Objects()[0].Obj.(*appsv1.Deployment).Spec.Template, nil)
		live, avail, hashes := counts(w.store.Snapshot(), w.now, minReadyD)
		if !p.Empty() || live != replicas || avail != replicas || hashes[want] != replicas {
			rt.Fatalf("did not converge: live %d, available %d, by revision %v (want %d of %s)\n%s\n%s",
				live, avail, hashes, replicas, want, describePlan(w.store.Snapshot(), p, w.now), describePods(w.store.Snapshot()))
		}
	})
}

// runningRevisions counts the pods that may be running, by revision: every record not
// terminated and not on a dead node, whether it is meant to run or told to stop.
func runningRevisions(s *state.Snapshot) map[string]int {
	out := map[string]int{}
	for _, p := range s.PodsByOwner("default", "Deployment", "web") {
		if p.Status.Phase.Terminal() {
			continue
		}
		if p.NodeName == "" && p.Desired != state.DesiredRun {
			continue
		}
		if p.NodeName != "" {
			if n := s.Node(p.NodeName); n == nil || n.Status == state.NodeGone {
				continue
			}
		}
		out[p.TemplateHash]++
	}
	return out
}

// pick chooses a pod name (or "none") for a world event.
func pick(rt *rapid.T, w *world, label string) string {
	pods := w.store.Snapshot().Pods()
	if len(pods) == 0 {
		return "none"
	}
	return rapid.SampledFrom(pods).Draw(rt, label).Name
}

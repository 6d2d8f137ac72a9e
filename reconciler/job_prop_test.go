package reconciler

import (
	"fmt"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/shoal-dev/shoal/state"
)

// TestJobBounds: over random histories (pods succeeding and failing, nodes lost, time
// passing), a Job never has more than parallelism pods meant to run, an Indexed Job never runs
// one index twice at once, and in a calm world every Job finishes (Complete or Failed) and is
// not run again by a later commit that leaves it unchanged.
func TestJobBounds(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t)
		parallelism := rapid.IntRange(1, 3).Draw(rt, "parallelism")
		completions := rapid.IntRange(0, 5).Draw(rt, "completions") // 0: unset
		indexed := completions > 0 && rapid.Bool().Draw(rt, "indexed")
		backoff := rapid.IntRange(0, 3).Draw(rt, "backoffLimit")
		doc := fmt.Sprintf("apiVersion: batch/v1\nkind: Job\nmetadata: {name: j, namespace: default}\nspec:\n  parallelism: %d\n  backoffLimit: %d\n", parallelism, backoff)
		if completions > 0 {
			doc += fmt.Sprintf("  completions: %d\n", completions)
		}
		if indexed {
			doc += "  completionMode: Indexed\n"
		}
		doc += "  template:\n    spec:\n      restartPolicy: Never\n      containers: [{name: c, image: \"job:v1\"}]\n"
		nodes := rapid.IntRange(1, 3).Draw(rt, "nodes")
		for i := range nodes {
			w.addNode(fmt.Sprintf("n%d", i+1))
		}
		w.commitYAML(doc)

		check := func() {
			w.reconcile()
			live := 0
			byIndex := map[string]int{}
			snap := w.store.Snapshot()
			for _, p := range snap.PodsByOwner("default", "Job", "j") {
				if p.Desired != state.DesiredRun || p.Status.Phase.Terminal() {
					continue
				}
				if p.NodeName != "" {
					if n := snap.Node(p.NodeName); n == nil || n.Status == state.NodeGone {
						continue
					}
				}
				live++
				if i, ok := p.Labels[LabelJobCompletionIdx]; ok {
					byIndex[i]++
					if byIndex[i] > 1 {
						rt.Fatalf("index %s has two pods meant to run\n%s", i, describePods(snap))
					}
				}
			}
			if live > parallelism {
				rt.Fatalf("%d pods meant to run, parallelism %d\n%s", live, parallelism, describePods(snap))
			}
		}
		for range rapid.IntRange(5, 50).Draw(rt, "steps") {
			check()
			switch rapid.IntRange(0, 6).Draw(rt, "event") {
			case 0, 1:
				w.schedule()
			case 2:
				w.setPods([]string{pick(rt, w, "succeed")}, false, state.PhaseSucceeded)
			case 3:
				w.setPods([]string{pick(rt, w, "fail")}, false, state.PhaseFailed)
			case 4:
				w.now = w.now.Add(time.Duration(rapid.IntRange(1, 60).Draw(rt, "tick")) * time.Second)
			case 5:
				n := fmt.Sprintf("n%d", rapid.IntRange(1, nodes).Draw(rt, "node"))
				if w.store.Snapshot().Node(n).Status == state.NodeReady {
					w.killNode(n)
				}
			case 6:
				nodes++
				w.addNode(fmt.Sprintf("n%d", nodes))
			}
		}
		for _, n := range w.store.Snapshot().Nodes() {
			if n.Status != state.NodeReady {
				w.setNode(n.Name, state.NodeGone)
			}
		}
		w.addNode("spare")
		for range 100 {
			check()
			w.schedule()
			w.setPods([]string{"all"}, false, state.PhaseSucceeded)
			w.now = w.now.Add(time.Minute)
		}
		p := w.reconcile()
		if st := p.Status[0]; len(st.Conditions) == 0 {
			rt.Fatalf("job did not finish: %+v\n%s", st, describePods(w.store.Snapshot()))
		}
		w.commitYAML(doc)
		if p := w.reconcile(); len(p.Create) > 0 {
			rt.Fatalf("an unchanged finished Job ran again: %d pods", len(p.Create))
		}
	})
}

package reconciler

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"pgregory.net/rapid"

	"github.com/shoal-dev/shoal/state"
)

// TestCronJobFailover: a CronJob running every minute (Allow, startingDeadlineSeconds 90)
// while leaders come and go: some reconciles are lost with their leader (the plan is never
// applied), some are made by a new leader from an older view of the store and applied late.
// No scheduled time ever gets two runs, and every time that was the latest due one when a
// reconcile did commit (within the deadline) got its run.
func TestCronJobFailover(t *testing.T) {
	rapid.Check(t, func(rt *rapid.T) {
		w := newWorld(t)
		w.addNode("n1")
		w.commitYAML(`apiVersion: batch/v1
kind: CronJob
metadata: {name: tick, namespace: default}
spec:
  schedule: "* * * * *"
  startingDeadlineSeconds: 90
  successfulJobsHistoryLimit: 1
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: Never
          containers: [{name: t, image: "tick:v1"}]
`)
		seen := map[int64]map[string]bool{} // minute → pod names ever seen
		owed := map[int64]bool{}            // minutes that must have a run
		observe := func() {
			for _, p := range w.store.Snapshot().PodsByOwner("default", "CronJob", "tick") {
				parts := strings.Split(p.Name, "-")
				m, err := strconv.ParseInt(parts[1], 10, 64)
				if err != nil {
					rt.Fatalf("pod name %s", p.Name)
				}
				if seen[m] == nil {
					seen[m] = map[string]bool{}
				}
				seen[m][p.Name] = true
				if len(seen[m]) > 1 {
					rt.Fatalf("minute %d ran twice: %v", m, seen[m])
				}
			}
		}
		owe := func(now time.Time) {
			due := now.Truncate(time.Minute)
			if due.After(w.pinnedAt) && now.Sub(due) <= 90*time.Second {
				owed[due.Unix()/60] = true
			}
		}
		view := w.store.Snapshot()
		for range rapid.IntRange(5, 80).Draw(rt, "steps") {
			w.now = w.now.Add(time.Duration(rapid.IntRange(1, 50).Draw(rt, "tick")) * time.Second)
			switch rapid.IntRange(0, 3).Draw(rt, "leader") {
			case 0:
				// The leader dies before its plan commits.
				if _, err := Reconcile(w.input(w.store.Snapshot())); err != nil {
					rt.Fatal(err)
				}
			case 1:
				// A new leader on an older view.
				p, err := Reconcile(w.input(view))
				if err != nil {
					rt.Fatal(err)
				}
				for _, c := range p.Commands() {
					w.apply(c)
				}
				owe(w.now)
			default:
				w.reconcile()
				owe(w.now)
			}
			observe()
			if rapid.Bool().Draw(rt, "saveView") {
				view = w.store.Snapshot()
			}
			w.schedule()
			w.setPods([]string{"all"}, false, state.PhaseSucceeded)
			observe()
		}
		for m := range owed {
			if len(seen[m]) == 0 {
				rt.Fatalf("minute %d was due at a committed reconcile and never ran", m)
			}
		}
	})
}

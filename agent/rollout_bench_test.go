package agent

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/state"
)

// rolloutYAML is a Deployment of 10 replicas, maxSurge 1, maxUnavailable
// 0, no probes (a pod is Ready once running), with a VERSION value.
func rolloutYAML(version int) string {
	return strings.Replace(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 10
  selector: {matchLabels: {app: web}}
  strategy: {type: RollingUpdate, rollingUpdate: {maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web:1
          env: [{name: VERSION, value: "V"}]
          resources: {requests: {cpu: 10m, memory: 16Mi}}
`, `"V"`, fmt.Sprintf(`"%d"`, version), 1)
}

// BenchmarkRolloutFake measures a rollout of 10 replicas, maxSurge 1, on a
// 3-node in-process cluster with the fake runtime whose RunPod takes
// 200 ms (as containerd's returns once the container runs), against the
// sum of its pod start times (10 × 200 ms: with maxSurge 1 and
// maxUnavailable 0 the pods start one after another). Each iteration
// times from the commit being pinned to 10 Ready pods of the new template
// and no old pod still wanted, as Kubernetes counts a rollout complete
// (the old pods' stops then take their endpoint drain and grace).
//
//	go test -run '^$' -bench RolloutFake -benchtime 5x ./agent
func BenchmarkRolloutFake(b *testing.B) {
	const (
		replicas   = 10
		startDelay = 200 * time.Millisecond
	)
	repo := newTestRepo(b)
	first := repo.commit("web", map[string]string{"web.yaml": rolloutYAML(0)})
	c := newTestCluster(b, repo, 3)
	c.startDelay = startDelay
	for _, n := range []string{"n1", "n2", "n3"} {
		c.start(n)
	}
	all := c.live()
	// done reports whether commit is pinned and rolled out; pinnedAt is
	// set the first time the commit is seen pinned.
	done := func(commit string, pinnedAt *time.Time) func(v *state.Snapshot) error {
		return func(v *state.Snapshot) error {
			if err := pinned(v, commit); err != nil {
				return err
			}
			if pinnedAt.IsZero() {
				*pinnedAt = time.Now()
			}
			ready, other := 0, 0
			for _, p := range v.PodsInNamespace("default") {
				switch {
				case p.Commit == commit && p.Desired == state.DesiredRun && p.Status.Ready:
					ready++
				case p.Commit != commit && p.Desired == state.DesiredRun:
					other++ // an old pod still wanted; stopping ones drain on
				}
			}
			if ready != replicas || other != 0 {
				return fmt.Errorf("%d new ready, %d old", ready, other)
			}
			return nil
		}
	}
	var t0 time.Time
	waitState(b, "first rollout", all[:1], done(first, &t0))

	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		commit := repo.commit(fmt.Sprintf("version %d", i+1), map[string]string{"web.yaml": rolloutYAML(i + 1)})
		var pinnedAt time.Time
		waitState(b, "rollout "+commit, all[:1], done(commit, &pinnedAt))
		took = append(took, time.Since(pinnedAt))
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	sum := replicas * startDelay
	p50 := took[len(took)/2]
	b.ReportMetric(float64(p50.Milliseconds()), "p50-ms")
	b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
	b.ReportMetric(float64(p50)/float64(sum), "p50/sum-of-starts")
	b.Logf("rollouts (pin to done) %v; sum of pod start times %s", took, sum)
}

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
// (the old pods' stops then take their endpoint drain and grace). Every
// other iteration reverts the one before, and the revert's time is
// reported against the forward rollout's.
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

	// Odd iterations roll a new template out, even ones revert it (the
	// content of the commit before, as git revert makes it): the
	// controller reuses the old revision.
	var forward, revert []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		version, what := i/2+1, "roll out"
		if i%2 == 1 {
			version, what = i/2, "revert"
		}
		commit := repo.commit(fmt.Sprintf("%s version %d", what, version), map[string]string{"web.yaml": rolloutYAML(version)})
		var pinnedAt time.Time
		waitState(b, what+" "+commit, all[:1], done(commit, &pinnedAt))
		if i%2 == 1 {
			revert = append(revert, time.Since(pinnedAt))
		} else {
			forward = append(forward, time.Since(pinnedAt))
		}
	}
	b.StopTimer()
	sum := replicas * startDelay
	p50 := func(d []time.Duration) time.Duration {
		d = append([]time.Duration(nil), d...)
		sort.Slice(d, func(i, j int) bool { return d[i] < d[j] })
		return d[len(d)/2]
	}
	b.ReportMetric(float64(p50(forward).Milliseconds()), "p50-ms")
	b.ReportMetric(float64(p50(forward))/float64(sum), "p50/sum-of-starts")
	if len(revert) > 0 {
		b.ReportMetric(float64(p50(revert))/float64(p50(forward)), "revert/forward")
	}
	b.Logf("rollouts (pin to done) %v, reverts %v; sum of pod start times %s", forward, revert, sum)
}

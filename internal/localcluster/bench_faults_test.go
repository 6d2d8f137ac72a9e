package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/state"
)

// BenchmarkRecovery measures, on a real three-node local cluster running
// the hello example (3 web replicas, the agents' default timings):
//
//   - node-lost: a machine dies (agent, containers and containerd killed)
//     → its web pods Ready elsewhere (target ≤ 10 s);
//   - leader-lost: the leader's agent is killed and a commit rolls the
//     Deployment at the same moment → a pod of the new template is bound
//     (target ≤ 3 s).
//
// Each iteration restores the cluster (the node restarted, every pod
// Ready again) outside the timer. The figures are the median and the
// worst of the iterations of the last run, with the phases of each
// interval. It needs root, like the end-to-end tests:
//
//	go test -run '^$' -bench Recovery -benchtime 5x -timeout 30m ./internal/localcluster
func BenchmarkRecovery(b *testing.B) {
	if err := Preflight(); err != nil {
		b.Skipf("needs: %v", err)
	}
	dir := b.TempDir()
	rec := upBench(b, exampleCopy(b, "hello"), imageTar(b, dir, "web", "shoal.dev/examples/web:1.0"))
	b.Run("node-lost", func(b *testing.B) { benchNodeLost(b, rec) })
	b.Run("leader-lost", func(b *testing.B) { benchLeaderLost(b, rec) })
}

// upBench starts the benchmark's cluster and takes it down at the end.
func upBench(b *testing.B, repo, image string) *Record {
	b.Helper()
	return upWith(b, Options{Name: "fbch", Nodes: 3, Repo: repo, Images: []string{image}}, 40)
}

// steady waits until every node is Ready, every agent alive, commit (if
// given) pinned, and the web Deployment runs its 3 Ready pods of one
// template, as reader sees them, and returns that view.
func steady(b *testing.B, rec *Record, reader, commit string) view {
	b.Helper()
	var last view
	waitFor(b, "a steady cluster", 3*time.Minute, func() (bool, string) {
		if err := rec.agentsAlive(); err != nil {
			return false, err.Error()
		}
		v, err := observe(b, rec, reader)
		if err != nil {
			return false, err.Error()
		}
		last = v
		ready := 0
		for _, s := range v.nodes {
			if s == state.NodeReady {
				ready++
			}
		}
		r := v.ready("web-")
		return ready == len(rec.Nodes) && v.st.Leader != "" && (commit == "" || v.pinned() == commit) && len(r) == 1 && sum(r) == 3 && len(v.pods) == 3,
			fmt.Sprintf("%d/%d nodes ready, leader %q, ready web pods by template %v of %d", ready, len(rec.Nodes), v.st.Leader, r, len(v.pods))
	})
	return last
}

// poll calls cond every 50 ms until it holds, and returns when it first
// did; it fails the benchmark after limit.
func poll(b *testing.B, what string, limit time.Duration, cond func() bool) time.Time {
	b.Helper()
	deadline := time.Now().Add(limit)
	for {
		if cond() {
			return time.Now()
		}
		if time.Now().After(deadline) {
			b.Fatalf("gave up waiting for %s after %s", what, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// figures reports the median and the worst of each named series.
type figures map[string][]time.Duration

func (f figures) report(b *testing.B, order ...string) {
	for _, name := range order {
		d := slices.Clone(f[name])
		if len(d) == 0 {
			continue
		}
		slices.Sort(d)
		b.ReportMetric(d[len(d)/2].Seconds(), name+"-median-s")
		b.ReportMetric(d[len(d)-1].Seconds(), name+"-max-s")
		b.Logf("%s (%d): %v", name, len(d), d)
	}
}

func benchNodeLost(b *testing.B, rec *Record) {
	ctx := context.Background()
	f := figures{}
	b.StopTimer()
	for range b.N {
		// The victim: a node that is neither the leader nor node1 (which
		// the host reads through), holding web pods. When every web pod
		// sits on those two, a rollout spreads them again.
		v := steady(b, rec, "node1", "")
		victim := ""
		for try := 0; ; try++ {
			for _, p := range v.pods {
				if p.NodeName != "node1" && p.NodeName != v.st.Leader {
					victim = p.NodeName
				}
			}
			if victim != "" {
				break
			}
			if try == 3 {
				b.Fatalf("no web pod off node1 and the leader %s after 3 rollouts: %v", v.st.Leader, names(v.pods))
			}
			v = steady(b, rec, "node1", rollWebCommit(b, rec))
		}
		var lost []string
		for _, p := range v.pods {
			if p.NodeName == victim {
				lost = append(lost, p.UID)
			}
		}
		start := time.Now()
		b.StartTimer()
		if err := rec.KillNode(victim); err != nil {
			b.Fatal(err)
		}
		var notReady, lostAt time.Time
		end := poll(b, "the web pods Ready elsewhere", 2*time.Minute, func() bool {
			v, err := observe(b, rec, "node1")
			if err != nil {
				return false
			}
			if notReady.IsZero() && v.nodes[victim] == state.NodeNotReady {
				notReady = time.Now()
			}
			ready, gone := 0, true
			for _, p := range v.pods {
				if p.Status.Ready && p.NodeName != victim && p.Status.Phase != state.PhaseLost {
					ready++
				}
				if slices.Contains(lost, p.UID) && p.Status.Phase != state.PhaseLost {
					gone = false
				}
			}
			if lostAt.IsZero() && gone {
				lostAt = time.Now()
			}
			return ready == 3
		})
		b.StopTimer()
		f["notready"] = append(f["notready"], notReady.Sub(start))
		f["lost"] = append(f["lost"], lostAt.Sub(start))
		f["ready"] = append(f["ready"], end.Sub(start))
		if err := rec.RestartNode(ctx, victim, shoalBinary(b), nil); err != nil {
			b.Fatal(err)
		}
	}
	f.report(b, "notready", "lost", "ready")
}

func benchLeaderLost(b *testing.B, rec *Record) {
	ctx := context.Background()
	f := figures{}
	b.StopTimer()
	commit := ""
	for range b.N {
		v := steady(b, rec, "node1", commit)
		leader := v.st.Leader
		reader := "node1"
		if leader == reader {
			reader = "node2"
		}
		// Every pod record there is, also those still stopping after
		// the last rollout: the new pod is none of them.
		all, err := clientOf(b, rec, reader).Pods(ctx, "hello")
		if err != nil {
			b.Fatal(err)
		}
		before := map[string]bool{}
		for _, p := range all.Pods {
			before[p.UID] = true
		}
		start := time.Now()
		b.StartTimer()
		if err := rec.KillAgent(leader); err != nil {
			b.Fatal(err)
		}
		commit = rollWebCommit(b, rec)
		var elected time.Time
		end := poll(b, "a new pod bound", time.Minute, func() bool {
			c := clientOf(b, rec, reader)
			st, err := c.Status(ctx)
			if err != nil {
				return false
			}
			if elected.IsZero() && st.Leader != "" && st.Leader != leader {
				elected = time.Now()
			}
			pl, err := c.Pods(ctx, "hello")
			if err != nil {
				return false
			}
			for _, p := range pl.Pods {
				if !before[p.UID] && p.NodeName != "" {
					return true
				}
			}
			return false
		})
		b.StopTimer()
		if elected.IsZero() {
			elected = end // seen in the same poll
		}
		f["elected"] = append(f["elected"], elected.Sub(start))
		f["bound"] = append(f["bound"], end.Sub(start))
		if err := rec.RestartNode(ctx, leader, shoalBinary(b), nil); err != nil {
			b.Fatal(err)
		}
	}
	f.report(b, "elected", "bound")
}

// rollWebCommit commits a change of the web pods' template (a new
// MESSAGE), which rolls the Deployment, and returns the commit.
func rollWebCommit(b *testing.B, rec *Record) string {
	b.Helper()
	file := filepath.Join(rec.Repo, "web.yaml")
	web, err := os.ReadFile(file)
	if err != nil {
		b.Fatal(err)
	}
	lines := strings.Split(string(web), "\n")
	for i, l := range lines {
		if strings.Contains(l, `value: "version `) {
			lines[i] = fmt.Sprintf(`              value: "version %d"`, time.Now().UnixNano())
		}
	}
	if err := os.WriteFile(file, []byte(strings.Join(lines, "\n")), 0o644); err != nil {
		b.Fatal(err)
	}
	return commitAll(b, rec.Repo, "roll web", nil)
}

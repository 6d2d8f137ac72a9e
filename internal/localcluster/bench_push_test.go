package localcluster

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/config"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/shoal-dev/shoal/state"
)

// benchDeployment is a Deployment of the web image with replicas and a
// RUN value that makes every run's pods new.
func benchDeployment(replicas, run int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: bench
  namespace: default
spec:
  replicas: %d
  selector:
    matchLabels: {app: bench}
  template:
    metadata:
      labels: {app: bench}
    spec:
      containers:
        - name: web
          image: shoal.dev/examples/web:1.0
          env:
            - {name: RUN, value: "%d"}
          ports:
            - {name: http, containerPort: 8080}
          readinessProbe:
            httpGet: {path: /ready, port: http}
            periodSeconds: 1
`, replicas, run)
}

// BenchmarkPushToReady measures, on a real three-node local cluster, the
// time from `git push` into the local bare repository the agents follow
// (their fsnotify trigger sees it) to all 10 replicas of a Deployment
// Ready, their readiness probes answering, spread over the nodes. Each
// iteration scales from 0 to 10 with a new template, then back to 0
// (untimed). Run it with
//
//	go test -run '^$' -bench PushToReady -benchtime 10x ./internal/localcluster
//
// It reports p50, p90 and max in milliseconds.
func BenchmarkPushToReady(b *testing.B) {
	if err := Preflight(); err != nil {
		b.Skipf("needs: %v", err)
	}
	const replicas = 10
	dir := b.TempDir()
	bare := filepath.Join(dir, "bare.git")
	if _, err := git.PlainInitWithOptions(bare, &git.PlainInitOptions{
		Bare: true, InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	}); err != nil {
		b.Fatal(err)
	}
	work := filepath.Join(dir, "work")
	repo, err := git.PlainInitWithOptions(work, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName("main")},
	})
	if err != nil {
		b.Fatal(err)
	}
	if _, err := repo.CreateRemote(&config.RemoteConfig{Name: "origin", URLs: []string{bare}}); err != nil {
		b.Fatal(err)
	}
	wt, err := repo.Worktree()
	if err != nil {
		b.Fatal(err)
	}
	commitAndPush := func(content, msg string) (time.Time, string) {
		b.Helper()
		if err := os.WriteFile(filepath.Join(work, "bench.yaml"), []byte(content), 0o644); err != nil {
			b.Fatal(err)
		}
		if _, err := wt.Add("bench.yaml"); err != nil {
			b.Fatal(err)
		}
		h, err := wt.Commit(msg, &git.CommitOptions{Author: &object.Signature{Name: "bench", Email: "bench@localhost", When: time.Now()}})
		if err != nil {
			b.Fatal(err)
		}
		start := time.Now()
		if err := repo.Push(&git.PushOptions{RemoteName: "origin"}); err != nil {
			b.Fatal(err)
		}
		return start, h.String()
	}
	commitAndPush(benchDeployment(0, 0), "bench: nothing yet")
	rec := upForTest(b, "shoalbn", 3, bare, []string{imageTar(b, dir, "web", "shoal.dev/examples/web:1.0")})
	c, err := rec.Client()
	if err != nil {
		b.Fatal(err)
	}

	// readyCount returns how many pods of the commit's template are Ready,
	// how many pods there are, and on how many nodes the ready ones run.
	readyCount := func(commit string) (ready, total, nodes int, err error) {
		list, err := c.Pods(context.Background(), "default")
		if err != nil {
			return 0, 0, 0, err
		}
		on := map[string]bool{}
		for _, p := range list.Pods {
			if p.Desired != state.DesiredRun {
				continue
			}
			total++
			if p.Commit == commit && p.Status.Ready {
				ready++
				on[p.NodeName] = true
			}
		}
		return ready, total, len(on), nil
	}

	var took []time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		start, commit := commitAndPush(benchDeployment(replicas, i+1), fmt.Sprintf("bench: run %d", i+1))
		for {
			ready, total, nodes, err := readyCount(commit)
			if err == nil && ready == replicas && total == replicas {
				took = append(took, time.Since(start))
				if nodes < 3 {
					b.Logf("run %d: the %d replicas ran on %d nodes of 3", i+1, replicas, nodes)
				}
				break
			}
			if time.Since(start) > 2*time.Minute {
				b.Fatalf("run %d: not ready after 2 minutes: %d/%d ready (%v)", i+1, ready, total, err)
			}
			time.Sleep(20 * time.Millisecond) // polling resolution of the measurement
		}
		b.StopTimer()
		// Every replica answers from the first node's namespace.
		list, err := c.Pods(context.Background(), "default")
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range list.Pods {
			if p.Desired == state.DesiredRun {
				if out, err := inNode(rec.Nodes[0], "curl", "-sS", "-m", "5", "http://"+p.Status.PodIP+":8080/"); err != nil || !strings.Contains(string(out), p.Name) {
					b.Errorf("run %d: pod %s: %v %s", i+1, p.Name, err, out)
				}
			}
		}
		_, zero := commitAndPush(benchDeployment(0, i+1), fmt.Sprintf("bench: run %d done", i+1))
		waitFor(b, "no bench pods", 2*time.Minute, func() (bool, string) {
			_, total, _, err := readyCount(zero)
			return err == nil && total == 0, fmt.Sprintf("%d pods (%v)", total, err)
		})
		b.StartTimer()
	}
	b.StopTimer()
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	if len(took) > 0 {
		pct := func(p float64) time.Duration { return took[min(len(took)-1, int(p*float64(len(took))))] }
		b.ReportMetric(float64(pct(0.5).Milliseconds()), "p50-ms")
		b.ReportMetric(float64(pct(0.9).Milliseconds()), "p90-ms")
		b.ReportMetric(float64(took[len(took)-1].Milliseconds()), "max-ms")
		b.Logf("push to %d ready, %d runs: %v", replicas, len(took), took)
	}
}

package localcluster

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// BenchmarkAgentMemory50Pods measures the resident memory of an agent
// running 50 pods on containerd: a one-node cluster runs a Deployment of
// 50 web replicas; once all are Ready and the agent has run for a while
// (probes, status reports, Service rules), it reports the agent's VmRSS
// and VmHWM (peak) and its private anonymous memory (RssAnon) from /proc,
// and the RSS of the node's containerd for comparison.
//
//	go test -run '^$' -bench AgentMemory50Pods -benchtime 1x ./internal/localcluster
func BenchmarkAgentMemory50Pods(b *testing.B) {
	if err := Preflight(); err != nil {
		b.Skipf("needs: %v", err)
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "repo")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "web.yaml"), []byte(strings.Replace(benchDeployment(50, 1),
		"          readinessProbe:", "          resources:\n            requests: {cpu: 10m, memory: 8Mi}\n          readinessProbe:", 1)), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		rec := upForTest(b, "shoalmem", 1, src, []string{imageTar(b, dir, "web", "shoal.dev/examples/web:1.0")})
		// Let it settle: probes every second, status reports, a few
		// proxier syncs and Go's GC cycles.
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if err := rec.agentsAlive(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		n := rec.Nodes[0]
		rss, hwm, anon := procMemory(b, n.AgentPID)
		b.ReportMetric(float64(rss)/(1<<20), "agent-rss-MiB")
		b.ReportMetric(float64(hwm)/(1<<20), "agent-peak-MiB")
		b.ReportMetric(float64(anon)/(1<<20), "agent-anon-MiB")
		crss, _, _ := procMemory(b, n.ContainerdPID)
		b.ReportMetric(float64(crss)/(1<<20), "containerd-rss-MiB")
		b.StopTimer()
	}
}

// procMemory returns VmRSS, VmHWM and RssAnon of a process, in bytes.
// RSS counts the pages of the executable the process touched (clean, and
// shared with every process running the same binary); RssAnon is the
// memory the process itself allocated.
func procMemory(t testing.TB, pid int) (rss, hwm, anon int64) {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			rss = kb << 10
		case "VmHWM:":
			hwm = kb << 10
		case "RssAnon:":
			anon = kb << 10
		}
	}
	return rss, hwm, anon
}

// BenchmarkAgentMemory1000PodsInState measures the memory of an agent
// whose state holds 1,000 pods: a one-node cluster with the fake runtime
// (pods run in memory, so the figure is the agent's own: state store, raft,
// loops) runs a Deployment of 1,000 replicas; once all are Ready and it
// settled, it reports VmRSS, VmHWM and RssAnon.
//
//	go test -run '^$' -bench AgentMemory1000PodsInState -benchtime 1x ./internal/localcluster
func BenchmarkAgentMemory1000PodsInState(b *testing.B) {
	if err := Preflight(); err != nil {
		b.Skipf("needs: %v", err)
	}
	dir := b.TempDir()
	src := filepath.Join(dir, "repo")
	if err := os.MkdirAll(src, 0o755); err != nil {
		b.Fatal(err)
	}
	// No readiness probe: the fake runtime's pods are ready when running.
	manifest := benchDeployment(1000, 1)
	manifest = manifest[:strings.Index(manifest, "          readinessProbe:")]
	if err := os.WriteFile(filepath.Join(src, "web.yaml"), []byte(manifest), 0o644); err != nil {
		b.Fatal(err)
	}
	for i := 0; i < b.N; i++ {
		rec := upForTestWith(b, "shoalst", 1, src, nil, "--runtime=fake", "--max-pods=2000", "--node-cidr-bits=21")
		deadline := time.Now().Add(20 * time.Second)
		for time.Now().Before(deadline) {
			if err := rec.agentsAlive(); err != nil {
				b.Fatal(err)
			}
			time.Sleep(time.Second)
		}
		rss, hwm, anon := procMemory(b, rec.Nodes[0].AgentPID)
		b.ReportMetric(float64(rss)/(1<<20), "agent-rss-MiB")
		b.ReportMetric(float64(hwm)/(1<<20), "agent-peak-MiB")
		b.ReportMetric(float64(anon)/(1<<20), "agent-anon-MiB")
		b.StopTimer()
	}
}

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
		m := procMemory(b, n.AgentPID)
		m.report(b, "agent")
		b.ReportMetric(float64(procMemory(b, n.ContainerdPID).rss)/(1<<20), "containerd-rss-MiB")
		b.StopTimer()
	}
}

// procMem is a process's memory from /proc/PID/status, in bytes. RSS
// counts the pages of the executable the process touched (clean, and
// shared with every process running the same binary: RssFile); RssAnon is
// the memory the process itself allocated.
type procMem struct {
	rss, hwm, anon, file int64
}

func procMemory(t testing.TB, pid int) procMem {
	t.Helper()
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		t.Fatal(err)
	}
	var m procMem
	for _, line := range bytes.Split(b, []byte("\n")) {
		f := strings.Fields(string(line))
		if len(f) < 2 {
			continue
		}
		kb, _ := strconv.ParseInt(f[1], 10, 64)
		switch f[0] {
		case "VmRSS:":
			m.rss = kb << 10
		case "VmHWM:":
			m.hwm = kb << 10
		case "RssAnon:":
			m.anon = kb << 10
		case "RssFile:":
			m.file = kb << 10
		}
	}
	return m
}

// report reports m as the benchmark's metrics WHO-rss-MiB, -peak-MiB,
// -anon-MiB and -file-MiB.
func (m procMem) report(b *testing.B, who string) {
	b.ReportMetric(float64(m.rss)/(1<<20), who+"-rss-MiB")
	b.ReportMetric(float64(m.hwm)/(1<<20), who+"-peak-MiB")
	b.ReportMetric(float64(m.anon)/(1<<20), who+"-anon-MiB")
	b.ReportMetric(float64(m.file)/(1<<20), who+"-file-MiB")
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
		procMemory(b, rec.Nodes[0].AgentPID).report(b, "agent")
		b.StopTimer()
	}
}

package scheduler

import (
	"fmt"
	"math/rand/v2"
	"runtime"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// benchWorkload builds the shape of work: nodes of mixed sizes
// (4/8/16/32 cores, 16–128 GiB), most in one of five zones, some with SSDs,
// a few tainted; pods from owners of podsPerOwner replicas each, most
// plain, some with required anti-affinity by hostname, some with topology
// spread (zone DoNotSchedule or hostname ScheduleAnyway), some with a
// nodeSelector, a few tolerating the GPU taint. Pods come owner by owner,
// as a commit's workloads do. Deterministic for a given seed.
func benchWorkload(nodes, owners, podsPerOwner int, seed uint64) (StaticSnapshot, []Pod) {
	rng := rand.New(rand.NewPCG(seed, 0))
	snap := StaticSnapshot{}
	for i := range nodes {
		cores := []int64{4, 8, 16, 32}[rng.IntN(4)]
		gib := min(max(cores*int64(2+2*rng.IntN(2)), 16), 128) // 2 or 4 GiB per core
		n := Node{
			Name:     fmt.Sprintf("node-%05d", i),
			MilliCPU: cores * 1000,
			Memory:   gib << 30,
			MaxPods:  110,
			Ready:    true,
			Labels:   map[string]string{HostnameKey: fmt.Sprintf("node-%05d", i)},
		}
		if rng.IntN(10) < 9 {
			n.Labels["topology.kubernetes.io/zone"] = fmt.Sprintf("zone-%d", rng.IntN(5))
		}
		if rng.IntN(10) < 3 {
			n.Labels["disk"] = "ssd"
		}
		switch r := rng.IntN(100); {
		case r < 2:
			n.Taints = []corev1.Taint{{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
		case r < 3:
			n.Taints = []corev1.Taint{{Key: "spot", Value: "yes", Effect: corev1.TaintEffectPreferNoSchedule}}
		}
		if rng.IntN(4) == 0 {
			n.Images = []string{"registry.local/app:1"}
		}
		snap.NodeList = append(snap.NodeList, n)
	}
	var pods []Pod
	for o := range owners {
		ns := fmt.Sprintf("team-%d", o%20)
		name := fmt.Sprintf("app-%d", o)
		labels := map[string]string{"app": name}
		sel := &metav1.LabelSelector{MatchLabels: map[string]string{"app": name}}
		tmpl := Pod{
			Namespace: ns,
			Labels:    labels,
			Owner:     OwnerKey{Kind: "ReplicaSet", Namespace: ns, Name: name},
			MilliCPU:  []int64{50, 100, 250, 500}[rng.IntN(4)],
			Memory:    []int64{64 << 20, 128 << 20, 256 << 20, 512 << 20}[rng.IntN(4)],
		}
		switch r := rng.IntN(100); {
		case r < 7: // one per node
			tmpl.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
				RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{LabelSelector: sel, TopologyKey: HostnameKey}},
			}}
		case r < 11: // even over zones
			tmpl.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: "topology.kubernetes.io/zone", WhenUnsatisfiable: corev1.DoNotSchedule, LabelSelector: sel,
			}}
		case r < 15: // softly over nodes
			tmpl.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{{
				MaxSkew: 1, TopologyKey: HostnameKey, WhenUnsatisfiable: corev1.ScheduleAnyway, LabelSelector: sel,
			}}
		case r < 20:
			tmpl.NodeSelector = map[string]string{"disk": "ssd"}
		case r < 22:
			tmpl.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
		case r < 30:
			tmpl.Images = []string{"registry.local/app:1"}
		}
		for i := range podsPerOwner {
			p := tmpl
			p.Name = fmt.Sprintf("%s-%d", name, i)
			p.ID = fmt.Sprintf("%s/%s", ns, p.Name)
			pods = append(pods, p)
		}
	}
	return snap, pods
}

// BenchmarkSchedule150kOn5k is the target: 150,000 pods from 1,000
// owners onto 5,000 nodes, in three ScheduleState calls on one
// ClusterState (built inside the timed loop). Reports pods/s and the heap
// in use once everything is placed.
func BenchmarkSchedule150kOn5k(b *testing.B) {
	benchOurs(b, 5000, 1000, 150, 3)
}

// BenchmarkSchedule15kOn500 is the same shape at a tenth of the size, the
// size the reference is measured at.
func BenchmarkSchedule15kOn500(b *testing.B) {
	benchOurs(b, 500, 100, 150, 3)
}

// BenchmarkReference15kOn500 is the plain "score every node, recompute
// from scratch" reference on that smaller workload.
func BenchmarkReference15kOn500(b *testing.B) {
	snap, pods := benchWorkload(500, 100, 150, 1)
	b.ReportAllocs()
	b.ResetTimer()
	var placed int
	cpu0 := cpuTime()
	for range b.N {
		res := newRefCluster(snap, Config{}).schedule(pods)
		placed = len(res.Bindings)
	}
	b.ReportMetric(float64(len(pods)*b.N)/b.Elapsed().Seconds(), "pods/s")
	b.ReportMetric(float64(len(pods)*b.N)/(cpuTime()-cpu0).Seconds(), "pods/cpu-s")
	b.ReportMetric(float64(placed), "placed")
}

// cpuTime is the CPU time this process has used (user+system, all
// threads, GC included). On a shared machine wall-clock pods/s falls with
// other people's load; pods per CPU-second much less so.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchOurs(b *testing.B, nodes, owners, perOwner, calls int) {
	snap, pods := benchWorkload(nodes, owners, perOwner, 1)
	s := New(Config{})
	b.ReportAllocs()
	b.ResetTimer()
	var placed int
	var heap uint64
	var first, last time.Duration // the first and the last call: does a fuller cluster cost more?
	var cpu time.Duration
	for range b.N {
		cpu0 := cpuTime()
		cs := NewClusterState(snap)
		placed = 0
		chunk := (len(pods) + calls - 1) / calls
		for lo := 0; lo < len(pods); lo += chunk {
			start := time.Now()
			res := s.ScheduleState(cs, pods[lo:min(lo+chunk, len(pods))])
			d := time.Since(start)
			if lo == 0 {
				first += d
			}
			if lo+chunk >= len(pods) {
				last += d
			}
			placed += len(res.Bindings)
		}
		cpu += cpuTime() - cpu0
		b.StopTimer()
		var ms runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&ms)
		heap = max(heap, ms.HeapInuse)
		runtime.KeepAlive(cs)
		b.StartTimer()
	}
	b.ReportMetric(float64(len(pods)*b.N)/b.Elapsed().Seconds(), "pods/s")
	b.ReportMetric(float64(len(pods)*b.N)/cpu.Seconds(), "pods/cpu-s")
	b.ReportMetric(float64(placed), "placed")
	b.ReportMetric(float64(heap)/(1<<20), "heap-MiB")
	chunk := float64((len(pods)+calls-1)/calls) * float64(b.N)
	b.ReportMetric(chunk/first.Seconds(), "first-call-pods/s")
	b.ReportMetric(chunk/last.Seconds(), "last-call-pods/s")
}

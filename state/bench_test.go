package state

import (
	"bytes"
	"fmt"
	"runtime"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	corev1 "k8s.io/api/core/v1"
)

// Figures from these benchmarks are in docs/state.md. Run them with:
//
//	go test ./state -run '^$' -bench . -benchtime 1x      (scale, snapshot)
//	go test ./state -run '^$' -bench ApplyBindPods          (throughput)

var benchEpoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func benchNode(i int) Node {
	return Node{
		Name:    fmt.Sprintf("node-%04d", i),
		Address: fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255),
		Labels: map[string]string{
			"kubernetes.io/hostname":      fmt.Sprintf("node-%04d", i),
			"topology.kubernetes.io/zone": fmt.Sprintf("zone-%d", i%3),
		},
		Capacity:      Resources{MilliCPU: 16000, Memory: 64 << 30, Pods: 110},
		Allocatable:   Resources{MilliCPU: 15000, Memory: 60 << 30, Pods: 110},
		Status:        NodeReady,
		LastHeartbeat: benchEpoch,
	}
}

// benchPod is a pod of a Deployment as the reconciler would create it; one
// in ten carries an anti-affinity and a toleration.
func benchPod(i int) Pod {
	owner := fmt.Sprintf("svc-%04d", i/150)
	p := Pod{
		UID:          benchUID(i),
		Namespace:    fmt.Sprintf("team-%d", i%20),
		Name:         fmt.Sprintf("%s-7d9c5b-%05d", owner, i),
		Labels:       map[string]string{"app": owner, "pod-template-hash": "7d9c5b"},
		Owner:        Owner{Kind: "Deployment", Name: owner},
		TemplateHash: "7d9c5b",
		Commit:       "3f786850e387550fdab836ed7e6dc881de23001b",
		Created:      benchEpoch,
		Spec: PodSpec{
			Requests: Resources{MilliCPU: 100, Memory: 128 << 20},
			Images:   []string{"registry.local/" + owner + ":v1"},
		},
	}
	if i%10 == 0 {
		p.Spec.Affinity = &corev1.Affinity{PodAntiAffinity: &corev1.PodAntiAffinity{
			RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{{
				TopologyKey: "kubernetes.io/hostname",
			}},
		}}
		p.Spec.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "web", Effect: corev1.TaintEffectNoSchedule}}
	}
	return p
}

// benchUID spreads UIDs like random v4 UUIDs do, deterministically.
func benchUID(i int) string {
	x := uint64(i) + 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return fmt.Sprintf("%08x-%04x-4%03x-8%03x-%012x", x>>32, x>>16&0xffff, x>>4&0xfff, x&0xfff, uint64(i))
}

// cpuTime is the CPU time the process used so far (all threads, GC
// included): a cost that does not depend on what else the machine runs.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

func benchStatus(i int) PodStatus {
	return PodStatus{
		Phase:     PhaseRunning,
		PodIP:     fmt.Sprintf("10.244.%d.%d", i>>8&255, i&255),
		Ready:     true,
		StartTime: benchEpoch.Add(time.Second),
		Containers: []ContainerStatus{{
			Name: "app", State: "running", Ready: true, StartedAt: benchEpoch.Add(2 * time.Second),
		}},
	}
}

// buildCluster fills a store through ApplyCommand, the way a leader would:
// nodes, pod creates, bindings round-robin, then each node's status report.
func buildCluster(tb testing.TB, nodes, pods int) *Store {
	tb.Helper()
	s := mustStore(tb)
	for i := range nodes {
		mustApply(tb, s, &UpsertNode{Node: benchNode(i)})
	}
	const batch = 1000
	for lo := 0; lo < pods; lo += batch {
		hi := min(pods, lo+batch)
		c := &CreatePods{Time: benchEpoch}
		b := &BindPods{}
		for i := lo; i < hi; i++ {
			c.Pods = append(c.Pods, benchPod(i))
			b.Bindings = append(b.Bindings, Binding{UID: c.Pods[i-lo].UID, Node: fmt.Sprintf("node-%04d", i%nodes)})
		}
		mustApply(tb, s, c)
		if r := mustApply(tb, s, b); len(r.Rejected) > 0 {
			tb.Fatalf("bindings rejected: %v", r.Rejected[0])
		}
	}
	updates := make([][]PodStatusUpdate, nodes)
	for i := range pods {
		updates[i%nodes] = append(updates[i%nodes], PodStatusUpdate{UID: benchPod(i).UID, Status: benchStatus(i)})
	}
	for n, us := range updates {
		if len(us) > 0 {
			mustApply(tb, s, &UpdatePodStatus{Node: fmt.Sprintf("node-%04d", n), Updates: us})
		}
	}
	return s
}

func heapInUse() uint64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return m.HeapAlloc
}

const fullNodes, fullPods = 5000, 150000

// full is the full-size store, built once (about a minute) and shared by
// the throughput and snapshot benchmarks.
var full struct {
	once  sync.Once
	store *Store
}

func fullStore(tb testing.TB) *Store {
	full.once.Do(func() { full.store = buildCluster(tb, fullNodes, fullPods) })
	if full.store == nil {
		tb.Fatal("building the full-size store failed")
	}
	return full.store
}

// BenchmarkStoreMemory reports the live heap of a store after GC: the
// cluster target (5,000 nodes, 150,000 pods, at most 1 GB) and an agent's
// share of a small cluster (1,000 pods, part of the 80 MB RSS budget).
func BenchmarkStoreMemory(b *testing.B) {
	for _, size := range []struct{ nodes, pods int }{{10, 1000}, {fullNodes, fullPods}} {
		b.Run(fmt.Sprintf("nodes=%d/pods=%d", size.nodes, size.pods), func(b *testing.B) {
			var heap uint64
			for range b.N {
				base := heapInUse()
				s := buildCluster(b, size.nodes, size.pods)
				heap = heapInUse() - base
				runtime.KeepAlive(s)
			}
			b.ReportMetric(float64(heap)/(1<<20), "heap-MB")
			b.ReportMetric(float64(heap)/float64(size.pods), "heap-B/pod")
		})
	}
}

// BenchmarkApplyBindPods measures FSM.Apply of bind batches (decode, checks,
// index updates, commit) on a store that already holds the full cluster.
// Creating the pods to bind is outside the timer.
func BenchmarkApplyBindPods(b *testing.B) {
	const nodes, background, batch = fullNodes, fullPods, 1000
	s := fullStore(b)
	fsm := s.FSM()
	next := background
	var cpu time.Duration
	defer func() { // leave the shared store as it was built
		del := &DeletePods{}
		for i := background; i < next; i++ {
			del.UIDs = append(del.UIDs, benchPod(i).UID)
		}
		mustApply(b, s, del)
	}()
	b.ResetTimer()
	for range b.N {
		b.StopTimer()
		c := &CreatePods{Time: benchEpoch}
		bind := &BindPods{}
		for i := range batch {
			p := benchPod(next + i)
			c.Pods = append(c.Pods, p)
			bind.Bindings = append(bind.Bindings, Binding{UID: p.UID, Node: fmt.Sprintf("node-%04d", (next+i)%nodes)})
		}
		next += batch
		mustApply(b, s, c)
		data, err := Encode(bind)
		if err != nil {
			b.Fatal(err)
		}
		index := s.Snapshot().Index() + 1
		c0 := cpuTime()
		b.StartTimer()
		r, err := resultOf(fsm.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}))
		b.StopTimer()
		cpu += cpuTime() - c0
		b.StartTimer()
		if err != nil || r.Applied != batch {
			b.Fatalf("bind: %v %+v", err, r)
		}
	}
	b.StopTimer() // the deferred clean-up is not part of the figure
	b.ReportMetric(float64(b.N*batch)/b.Elapsed().Seconds(), "bindings/s")
	b.ReportMetric(float64(b.N*batch)/cpu.Seconds(), "bindings/cpu-s")
}

// BenchmarkSnapshot persists the full-size store through the raft path and
// restores it into a fresh store.
func BenchmarkSnapshot(b *testing.B) {
	s := fullStore(b)
	var size int
	var persist, restore, persistCPU, restoreCPU time.Duration
	b.ResetTimer()
	for range b.N {
		t0, c0 := time.Now(), cpuTime()
		data := persistBytes(b, s)
		t1, c1 := time.Now(), cpuTime()
		r := mustStore(b)
		if err := r.FSM().Restore(nopCloser{bytes.NewReader(data)}); err != nil {
			b.Fatal(err)
		}
		persist += t1.Sub(t0)
		restore += time.Since(t1)
		persistCPU += c1 - c0
		restoreCPU += cpuTime() - c1
		size = len(data)
		if r.Snapshot().Index() != s.Snapshot().Index() {
			b.Fatal("restored store at another index")
		}
	}
	b.ReportMetric(float64(size)/(1<<20), "snapshot-MB")
	b.ReportMetric(persist.Seconds()*1000/float64(b.N), "persist-ms")
	b.ReportMetric(restore.Seconds()*1000/float64(b.N), "restore-ms")
	b.ReportMetric(persistCPU.Seconds()*1000/float64(b.N), "persist-cpu-ms")
	b.ReportMetric(restoreCPU.Seconds()*1000/float64(b.N), "restore-cpu-ms")
}

func persistBytes(tb testing.TB, s *Store) []byte {
	snap, err := s.FSM().Snapshot()
	if err != nil {
		tb.Fatal(err)
	}
	defer snap.Release()
	sink := &memSink{}
	if err := snap.Persist(sink); err != nil {
		tb.Fatal(err)
	}
	return sink.Bytes()
}

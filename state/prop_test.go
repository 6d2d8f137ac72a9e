package state

import (
	"bytes"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	corev1 "k8s.io/api/core/v1"
	"pgregory.net/rapid"
)

// The generators draw from small universes (3 nodes, 8 pod UIDs, 6 names)
// so that random histories collide: double binds, names taken, lost pods
// reporting, allocations fought over. About one command in ten is invalid.

var (
	genNode  = rapid.SampledFrom([]string{"n0", "n1", "n2"})
	genUID   = rapid.SampledFrom([]string{"u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7"})
	genName  = rapid.SampledFrom([]string{"web-0", "web-1", "db-0", "job-a", "job-b", "x"})
	genNS    = rapid.SampledFrom([]string{"default", "prod"})
	genTime  = rapid.Custom(func(t *rapid.T) time.Time { return time.Unix(1767225600+rapid.Int64Range(0, 100).Draw(t, "sec"), 0) })
	genPhase = rapid.SampledFrom([]Phase{PhasePending, PhaseRunning, PhaseSucceeded, PhaseFailed, PhaseUnknown})
	// rapid favours small numbers; a middle value keeps invalid commands rare.
	genBad = rapid.IntRange(0, 29)
)

// valid is 1, rarely 0 (which makes an enum invalid).
func valid(t *rapid.T) int {
	if genBad.Draw(t, "bad") == 13 {
		return 0
	}
	return 1
}

func badID(t *rapid.T, id string) string {
	if genBad.Draw(t, "bad") == 13 {
		return rapid.SampledFrom([]string{"", "nul\x00"}).Draw(t, "badID")
	}
	return id
}

func genPod(t *rapid.T) Pod {
	p := Pod{
		UID:       badID(t, genUID.Draw(t, "uid")),
		Namespace: genNS.Draw(t, "ns"),
		Name:      genName.Draw(t, "name"),
		Labels:    map[string]string{"app": genName.Draw(t, "app")},
		Commit:    rapid.SampledFrom([]string{"c1", "c2"}).Draw(t, "commit"),
		Spec: PodSpec{
			Requests:     Resources{MilliCPU: rapid.Int64Range(0, 2000).Draw(t, "cpu"), Memory: rapid.Int64Range(0, 1<<30).Draw(t, "mem")},
			NodeSelector: map[string]string{"zone": rapid.SampledFrom([]string{"a", "b"}).Draw(t, "zone")},
			Tolerations:  []corev1.Toleration{{Key: "k", Operator: corev1.TolerationOpExists}},
		},
	}
	if rapid.Bool().Draw(t, "owned") {
		p.Owner = Owner{Kind: rapid.SampledFrom([]string{"StatefulSet", "Deployment"}).Draw(t, "kind"), Name: "o"}
	}
	if rapid.IntRange(0, 4).Draw(t, "prebound") == 0 {
		p.NodeName = genNode.Draw(t, "node")
	}
	return p
}

func genStatus(t *rapid.T) PodStatus {
	return PodStatus{
		Phase:     genPhase.Draw(t, "phase"),
		PodIP:     "10.244.0." + fmt.Sprint(rapid.IntRange(1, 9).Draw(t, "ip")),
		Ready:     rapid.Bool().Draw(t, "ready"),
		StartTime: genTime.Draw(t, "start"),
		Containers: []ContainerStatus{{
			Name: "c", State: "running", Restarts: rapid.Int32Range(0, 3).Draw(t, "restarts"),
			Message: string(bytes.Repeat([]byte("é"), rapid.IntRange(0, 600).Draw(t, "msglen"))),
		}},
	}
}

var genCommand = rapid.Custom(func(t *rapid.T) Command {
	// rapid favours the first entries: the pod lifecycle comes first, and twice.
	switch rapid.SampledFrom([]int{5, 6, 7, 0, 6, 7, 5, 1, 10, 8, 9, 11, 3, 4, 12, 13, 2}).Draw(t, "cmd") {
	case 0:
		st := NodeStatus(rapid.IntRange(1, 3).Draw(t, "status"))
		st *= NodeStatus(valid(t))
		return &UpsertNode{Node: Node{
			Name: badID(t, genNode.Draw(t, "node")), Address: "10.0.0.1", Status: st,
			Labels:        map[string]string{"zone": rapid.SampledFrom([]string{"a", "b"}).Draw(t, "zone")},
			Taints:        []corev1.Taint{{Key: "k", Effect: corev1.TaintEffectNoSchedule}},
			Allocatable:   Resources{MilliCPU: 4000, Memory: 8 << 30, Pods: 110},
			PodCIDR:       "ignored",
			LastHeartbeat: genTime.Draw(t, "hb"),
		}}
	case 1:
		return &SetNodeStatus{Name: genNode.Draw(t, "node"), Status: NodeStatus(rapid.IntRange(1, 3).Draw(t, "status") * valid(t)), Heartbeat: genTime.Draw(t, "hb")}
	case 2:
		return &DeleteNode{Name: badID(t, genNode.Draw(t, "node"))}
	case 3:
		return &PinRevision{Commit: badID(t, rapid.SampledFrom([]string{"c1", "c2", "c3"}).Draw(t, "commit")), Time: genTime.Draw(t, "time"), Keep: rapid.IntRange(0, 3).Draw(t, "keep")}
	case 4:
		return &RefuseRevision{Commit: rapid.SampledFrom([]string{"c4", "c5"}).Draw(t, "commit"), Reason: badID(t, "bad yaml"), Keep: 2}
	case 5:
		return &CreatePods{Pods: rapid.SliceOfN(rapid.Custom(genPod), 1, 4).Draw(t, "pods"), Time: genTime.Draw(t, "time")}
	case 6:
		bs := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Binding {
			return Binding{UID: genUID.Draw(t, "uid"), Node: badID(t, genNode.Draw(t, "node"))}
		}), 1, 6).Draw(t, "bindings")
		return &BindPods{Bindings: bs}
	case 7:
		us := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) PodStatusUpdate {
			return PodStatusUpdate{UID: genUID.Draw(t, "uid"), Status: genStatus(t)}
		}), 1, 4).Draw(t, "updates")
		return &UpdatePodStatus{Node: genNode.Draw(t, "node"), Updates: us}
	case 8:
		return &SetPodsDesired{Changes: []DesiredChange{{UID: genUID.Draw(t, "uid"), Desired: Desired(rapid.IntRange(1, 3).Draw(t, "desired") * valid(t))}}}
	case 9:
		return &DeletePods{UIDs: rapid.SliceOfN(genUID, 1, 3).Draw(t, "uids")}
	case 10:
		return &MarkPodsLost{UIDs: rapid.SliceOfN(genUID, 1, 3).Draw(t, "uids"), Reason: "node lost", Time: genTime.Draw(t, "time")}
	case 11:
		as := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Allocation {
			switch rapid.IntRange(0, 2).Draw(t, "kind") {
			case 0:
				return Allocation{Kind: AllocPodCIDR, Value: fmt.Sprintf("10.244.%d.0/24", rapid.IntRange(0, 3).Draw(t, "cidr")), Owner: genNode.Draw(t, "node")}
			case 1:
				return Allocation{Kind: AllocClusterIP, Value: fmt.Sprintf("10.96.0.%d", rapid.IntRange(1, 3).Draw(t, "ip")), Owner: badID(t, "default/svc")}
			}
			return Allocation{Kind: AllocNodePort, Value: fmt.Sprint(rapid.IntRange(30000, 30002).Draw(t, "port")), Owner: genName.Draw(t, "svc")}
		}), 1, 3).Draw(t, "allocs")
		return &Allocate{Allocations: as}
	case 12:
		return &Release{Keys: []AllocKey{{Kind: AllocPodCIDR, Value: fmt.Sprintf("10.244.%d.0/24", rapid.IntRange(0, 3).Draw(t, "cidr"))}}}
	}
	evs := rapid.SliceOfN(rapid.Custom(func(t *rapid.T) Event {
		return Event{Key: badID(t, "Pod/"+genName.Draw(t, "name")), Reason: "R", Time: genTime.Draw(t, "time")}
	}), 1, 4).Draw(t, "events")
	return &AppendEvents{Events: evs, Limits: EventLimits{PerObject: rapid.IntRange(0, 3).Draw(t, "per"), Total: rapid.IntRange(0, 6).Draw(t, "total")}}
})

// responseString makes two responses comparable.
func responseString(r *Result, err error) string {
	if err != nil {
		return "error: " + err.Error()
	}
	return fmt.Sprintf("%+v", *r)
}

// TestReplicasConverge: the same history applied to one store directly and
// to another that is persisted and restored midway gives identical
// responses, dumps and snapshot bytes; a failed command never changes the
// store; the indexes agree with the records.
func TestReplicasConverge(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		cmds := rapid.SliceOfN(genCommand, 20, 80).Draw(t, "commands")
		cut := rapid.IntRange(0, len(cmds)).Draw(t, "cut")
		a, b := mustStore(t), mustStore(t)
		for i, c := range cmds {
			if i == cut {
				var buf bytes.Buffer
				if err := b.Snapshot().Persist(&buf); err != nil {
					t.Fatal(err)
				}
				b = mustStore(t)
				if err := b.Restore(&buf); err != nil {
					t.Fatal(err)
				}
			}
			before := a.Snapshot().DumpString()
			ra, erra := a.ApplyCommand(c)
			rb, errb := b.ApplyCommand(c)
			if sa, sb := responseString(ra, erra), responseString(rb, errb); sa != sb {
				t.Fatalf("command %d %s: responses differ:\n%s\n%s", i, c.CommandType(), sa, sb)
			}
			if erra != nil {
				if after := a.Snapshot().DumpString(); after != before {
					t.Fatalf("command %d %s failed (%v) but changed the store", i, c.CommandType(), erra)
				}
			}
		}
		va, vb := a.Snapshot(), b.Snapshot()
		if da, db := va.DumpString(), vb.DumpString(); da != db {
			t.Fatalf("dumps differ:\n%s\n---\n%s", da, db)
		}
		var pa, pb bytes.Buffer
		if err := va.Persist(&pa); err != nil {
			t.Fatal(err)
		}
		if err := vb.Persist(&pb); err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(pa.Bytes(), pb.Bytes()) {
			t.Fatal("snapshots of equal states differ")
		}
		checkIndexes(t, va)
	})
}

// checkIndexes compares every secondary index with a scan of the records.
func checkIndexes(t *rapid.T, v *Snapshot) {
	pods := v.Pods()
	uids := func(ps []*Pod) []string {
		var out []string
		for _, p := range ps {
			out = append(out, p.UID)
		}
		slices.Sort(out)
		return out
	}
	filter := func(keep func(*Pod) bool) []string {
		var out []*Pod
		for _, p := range pods {
			if keep(p) {
				out = append(out, p)
			}
		}
		return uids(out)
	}
	check := func(what string, got, want []string) {
		if !slices.Equal(got, want) {
			t.Fatalf("%s: index gives %v, scan gives %v", what, got, want)
		}
	}
	check("unplaced", uids(v.UnplacedPods()), filter(unplaced))
	names := map[string]bool{}
	for _, p := range pods {
		if names[p.Key()] {
			t.Fatalf("two pods named %s", p.Key())
		}
		names[p.Key()] = true
		if got := v.PodByName(p.Namespace, p.Name); got == nil || got.UID != p.UID {
			t.Fatalf("PodByName(%s) does not find %s", p.Key(), p.UID)
		}
	}
	for _, n := range []string{"n0", "n1", "n2"} {
		check("node "+n, uids(v.PodsOnNode(n)), filter(func(p *Pod) bool { return p.NodeName == n }))
		node := v.Node(n)
		held := v.AllocationsOf(AllocPodCIDR, n)
		if node != nil {
			want := ""
			if len(held) > 0 {
				want = held[0].Value
			}
			if node.PodCIDR != want {
				t.Fatalf("node %s pod CIDR %q, allocation %q", n, node.PodCIDR, want)
			}
		}
	}
	for _, ph := range []Phase{PhasePending, PhaseRunning, PhaseSucceeded, PhaseFailed, PhaseUnknown, PhaseLost} {
		check("phase "+string(ph), uids(v.PodsInPhase(ph)), filter(func(p *Pod) bool { return p.Status.Phase == ph }))
	}
	for _, ns := range []string{"default", "prod"} {
		check("namespace "+ns, uids(v.PodsInNamespace(ns)), filter(func(p *Pod) bool { return p.Namespace == ns }))
		for _, k := range []string{"StatefulSet", "Deployment"} {
			check("owner "+k, uids(v.PodsByOwner(ns, k, "o")), filter(func(p *Pod) bool { return p.Namespace == ns && p.Owner.Kind == k }))
		}
	}
	evs := v.AllEvents()
	if int(must(readMeta(v.tx, metaEventCount))) != len(evs) {
		t.Fatalf("event count %d, table holds %d", must(readMeta(v.tx, metaEventCount)), len(evs))
	}
}

// FuzzApply: arbitrary log entries never panic, and one that fails leaves
// the store unchanged. `go test` runs the seeds; `go test -fuzz FuzzApply`
// explores.
func FuzzApply(f *testing.F) {
	for _, c := range []Command{
		&UpsertNode{Node: Node{Name: "n1", Status: NodeReady}},
		&CreatePods{Pods: []Pod{{UID: "u1", Namespace: "ns", Name: "p", Spec: PodSpec{Affinity: &corev1.Affinity{}}}}},
		&BindPods{Bindings: []Binding{{UID: "u1", Node: "n1"}}},
		&UpdatePodStatus{Node: "n1", Updates: []PodStatusUpdate{{UID: "u1", Status: PodStatus{Phase: PhaseRunning}}}},
		&Allocate{Allocations: []Allocation{{Kind: AllocNodePort, Value: "30000", Owner: "s"}}},
		&AppendEvents{Events: []Event{{Key: "k", Reason: "r"}}},
	} {
		data, err := Encode(c)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		s := mustStore(t)
		mustApply(t, s, &UpsertNode{Node: Node{Name: "n1", Status: NodeReady}})
		mustApply(t, s, &CreatePods{Pods: []Pod{{UID: "u0", Namespace: "ns", Name: "q"}}})
		before := s.Snapshot().DumpString()
		resp := s.FSM().Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: data})
		if _, err := resultOf(resp); err != nil && s.Snapshot().DumpString() != before {
			t.Fatalf("failed entry (%v) changed the store", err)
		}
	})
}

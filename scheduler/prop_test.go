package scheduler

import (
	"maps"
	"reflect"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"pgregory.net/rapid"
)

// TestReferenceAgrees checks the optimised scheduler against the plain
// reference on random small clusters, pod by pod, with sampling off: the
// same nodes are feasible, for the same reasons, and the chosen node has the
// highest reference score.
func TestReferenceAgrees(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t)
		cfg := Config{CandidatePercent: 100}
		cs := NewClusterState(s.snap)
		ref := newRefCluster(s.snap, cfg)
		r := newRun(New(cfg), cs)
		order := slices.Clone(s.pods)
		slices.SortStableFunc(order, func(a, b Pod) int { return int(b.Priority) - int(a.Priority) })
		for i := range order {
			p := &order[i]
			e := ref.evaluate(*p)
			r.prepare(p)
			if r.pl.invalid != "" {
				t.Fatalf("pod %s: invalid: %s", p.ID, r.pl.invalid)
			}
			for ni := range cs.nodes {
				got := ""
				if f := r.feasible(&cs.nodes[ni]); f != fitOK {
					got = reasonText(f, &r.pl, &cs.nodes[ni])
				}
				if fast := r.fits(int32(ni)); fast != (got == "") {
					t.Fatalf("pod %s on %s: hot path says fits=%v, filters say %q", p.ID, cs.nodes[ni].Name, fast, got)
				}
				if got != e.reason[ni] {
					t.Fatalf("pod %s on %s: scheduler says %q, reference says %q", p.ID, cs.nodes[ni].Name, got, e.reason[ni])
				}
			}
			b, u := r.place(p)
			best, ok := e.best()
			if u != nil {
				if ok {
					t.Fatalf("pod %s unplaced (%s) but reference places it on %s", p.ID, u.Reason, ref.nodes[best].Name)
				}
				if want := e.counts(); !maps.Equal(u.Counts, want) {
					t.Fatalf("pod %s: counts %v, reference %v", p.ID, u.Counts, want)
				}
				continue
			}
			if !ok {
				t.Fatalf("pod %s bound to %s but reference finds no node", p.ID, b.Node)
			}
			ni := int(cs.byName[b.Node])
			if e.score[ni] != e.score[best] || b.Score != e.score[best] {
				t.Fatalf("pod %s: chose %s (score %d, reference %d), reference best %s score %d; all %v",
					p.ID, b.Node, b.Score, e.score[ni], ref.nodes[best].Name, e.score[best], e.score)
			}
			ref.placed = append(ref.placed, refPlaced{*p, ni})
		}
	})
}

// TestProperties checks invariants of whole Schedule calls, with the
// candidate bound small enough that sampling is exercised.
func TestProperties(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t)
		cfg := Config{MinCandidates: rapid.IntRange(1, 3).Draw(t, "minCandidates"), CandidatePercent: 10}
		if rapid.Bool().Draw(t, "mostAllocated") {
			cfg.Strategy = MostAllocated
		}
		sch := New(cfg)
		res := sch.Schedule(s.snap, s.pods)

		// Replayable: the same input gives the same output.
		if again := sch.Schedule(s.snap, s.pods); !reflect.DeepEqual(res, again) {
			t.Fatalf("not deterministic:\n%+v\n%+v", res, again)
		}

		// Every pod is accounted for exactly once; reasons count every node.
		seen := map[string]int{}
		for _, b := range res.Bindings {
			seen[b.PodID]++
		}
		for _, u := range res.Unplaced {
			seen[u.PodID]++
			total := 0
			for _, c := range u.Counts {
				total += c
			}
			if total != len(s.snap.NodeList) {
				t.Fatalf("pod %s: reasons count %d nodes of %d: %s", u.PodID, total, len(s.snap.NodeList), u.Reason)
			}
		}
		for _, p := range s.pods {
			if seen[p.ID] != 1 {
				t.Fatalf("pod %s appears %d times in the result", p.ID, seen[p.ID])
			}
		}

		// Every binding passes every filter at the moment it was made:
		// re-checking them in order from the snapshot accepts all.
		if v := sch.Verify(s.snap, s.pods, res.Bindings); len(v.Rejected) > 0 {
			t.Fatalf("verify rejects %+v", v.Rejected)
		}

		// Sampling never gives up on a pod that fits: replaying the result
		// in the reference, every unplaced pod had no feasible node at its
		// turn and every bound pod's node was feasible.
		ref := newRefCluster(s.snap, cfg)
		outcome := map[string]string{}
		for _, b := range res.Bindings {
			outcome[b.PodID] = b.Node
		}
		order := slices.Clone(s.pods)
		slices.SortStableFunc(order, func(a, b Pod) int { return int(b.Priority) - int(a.Priority) })
		for _, p := range order {
			e := ref.evaluate(p)
			node, bound := outcome[p.ID]
			if !bound {
				if best, ok := e.best(); ok {
					t.Fatalf("pod %s unplaced but %s fits it", p.ID, ref.nodes[best].Name)
				}
				continue
			}
			ni := slices.IndexFunc(ref.nodes, func(n Node) bool { return n.Name == node })
			if e.reason[ni] != "" {
				t.Fatalf("pod %s bound to %s, which the reference rejects: %s", p.ID, node, e.reason[ni])
			}
			ref.placed = append(ref.placed, refPlaced{p, ni})
		}

		// The final state, recomputed from scratch.
		byID := map[string]Pod{}
		for _, p := range s.pods {
			byID[p.ID] = p
		}
		onNode := map[string][]Pod{}
		fresh := map[string]bool{}
		for n, ps := range s.snap.Bound {
			onNode[n] = append(onNode[n], ps...)
		}
		for _, b := range res.Bindings {
			onNode[b.Node] = append(onNode[b.Node], byID[b.PodID])
			fresh[b.PodID] = true
		}
		nodeByName := map[string]Node{}
		for _, n := range s.snap.NodeList {
			nodeByName[n.Name] = n
		}
		for _, b := range res.Bindings {
			n, p := nodeByName[b.Node], byID[b.PodID]
			var cpu, mem int64
			ports := map[HostPort]int{}
			for _, q := range onNode[b.Node] {
				cpu += q.MilliCPU
				mem += q.Memory
				for _, hp := range q.HostPorts {
					ports[refProto(hp)]++
				}
			}
			if cpu > n.MilliCPU || mem > n.Memory || int64(len(onNode[b.Node])) > n.MaxPods {
				t.Fatalf("node %s overcommitted: cpu %d/%d mem %d/%d pods %d/%d", n.Name, cpu, n.MilliCPU, mem, n.Memory, len(onNode[b.Node]), n.MaxPods)
			}
			for _, hp := range p.HostPorts {
				if ports[refProto(hp)] > 1 {
					t.Fatalf("node %s: host port %v used twice", n.Name, hp)
				}
			}
			if !n.Ready || n.Cordoned || (p.PinnedNode != "" && p.PinnedNode != n.Name) || !refNodeAffinity(p, n) {
				t.Fatalf("pod %s on unusable node %+v", p.ID, n)
			}
			if taint, bad := refHardTaint(p, n); bad {
				t.Fatalf("pod %s on %s with untolerated taint %v", p.ID, n.Name, taint)
			}
		}

		// Required anti-affinity is never violated by a new binding, in
		// either direction, in the final state.
		type placed struct {
			p    Pod
			node Node
		}
		var all []placed
		for n, ps := range onNode {
			for _, p := range ps {
				all = append(all, placed{p, nodeByName[n]})
			}
		}
		for _, a := range all {
			for _, b := range all {
				if a.p.ID == b.p.ID || !(fresh[a.p.ID] || fresh[b.p.ID]) {
					continue
				}
				for _, term := range requiredAnti(a.p) {
					da, ok1 := refDomain(a.node, term.TopologyKey)
					db, ok2 := refDomain(b.node, term.TopologyKey)
					if ok1 && ok2 && da == db && refTermMatches(a.p.Namespace, term.Namespaces, term.NamespaceSelector, term.LabelSelector, b.p) {
						t.Fatalf("pod %s (on %s) has anti-affinity to %s (on %s)", a.p.ID, a.node.Name, b.p.ID, b.node.Name)
					}
				}
			}
		}
	})
}

// TestRemoveRestoresTotals: binding pods and removing some leaves the same
// state as never binding them, as judged by how later pods are placed.
func TestRemoveRestoresTotals(t *testing.T) {
	rapid.Check(t, func(t *rapid.T) {
		s := genScenario(t)
		if len(s.pods) == 0 {
			return
		}
		split := rapid.IntRange(0, len(s.pods)-1).Draw(t, "split")
		extra, rest := s.pods[:split], s.pods[split:]
		sch := New(Config{CandidatePercent: 100})

		withRemoval := NewClusterState(s.snap)
		res := sch.ScheduleState(withRemoval, extra)
		for _, b := range res.Bindings {
			if !withRemoval.Remove(b.PodID) {
				t.Fatalf("remove %s: not found", b.PodID)
			}
		}
		want := sch.ScheduleState(NewClusterState(s.snap), rest)
		got := sch.ScheduleState(withRemoval, rest)
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("after removal:\n%+v\nfresh:\n%+v", got, want)
		}
	})
}

func TestConfigValidate(t *testing.T) {
	for _, tc := range []struct {
		cfg Config
		ok  bool
	}{
		{Config{}, true},
		{Config{Strategy: MostAllocated, MinCandidates: 50, CandidatePercent: 10}, true},
		{Config{Strategy: "Random"}, false},
		{Config{CandidatePercent: 101}, false},
		{Config{MinCandidates: -1}, false},
		{Config{Weights: Weights{Resources: -1}}, false},
	} {
		if err := tc.cfg.Validate(); (err == nil) != tc.ok {
			t.Errorf("Validate(%+v) = %v, want ok=%v", tc.cfg, err, tc.ok)
		}
	}
	if got := (Config{}).withDefaults().candidates(5000); got != 250 {
		t.Errorf("candidates(5000) = %d, want 250", got)
	}
	if got := (Config{}).withDefaults().candidates(40); got != 40 {
		t.Errorf("candidates(40) = %d, want 40", got)
	}
}

// TestSeededOrderVisitsEveryNode: the stride walk is a permutation.
func TestSeededOrderVisitsEveryNode(t *testing.T) {
	for n := 1; n < 60; n++ {
		for _, id := range []string{"a", "b", "pod-17", ""} {
			rng := seed(id)
			idx := int(rng.next() % uint64(n))
			step := stride(&rng, n)
			seen := make([]bool, n)
			for range n {
				if seen[idx] {
					t.Fatalf("n=%d id=%q: node %d visited twice", n, id, idx)
				}
				seen[idx] = true
				idx = (idx + step) % n
			}
		}
	}
}

var _ = corev1.ProtocolTCP

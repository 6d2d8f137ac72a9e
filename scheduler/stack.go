package scheduler

import (
	"cmp"
	"fmt"
	"hash/fnv"
	"slices"
	"strings"
)

// Scheduler places pods. It holds only its configuration and pipeline, so
// one Scheduler may serve concurrent calls on different ClusterStates.
type Scheduler struct {
	cfg     Config
	filters []checker
	rankers []weightedRanker
}

type weightedRanker struct {
	r ranker
	w int64
}

// New assembles the pipeline. It panics on a Config that fails Validate:
// configuration is checked where it is loaded, so reaching here with a bad
// one is a programming error.
//
// The filters run in this order, and a node is counted under the first one
// it fails, so the order is also the order of blame:
//
//  1. NodeUsable: NotReady or cordoned says the most about a node, and is
//     one flag test.
//  2. PinnedNode: a pod pinned by a local volume has one possible node;
//     every other node fails here, before any costlier test.
//  3. NodeAffinity, 4. TaintToleration: static tests of the node's labels
//     and taints. Before resources so that a full GPU node is reported as
//     "untolerated taint" to a pod that could never use it, not as
//     "insufficient cpu".
//  5. ResourcesFit: three integer compares against the running totals; the
//     filter that rejects most nodes in a full cluster.
//  6. HostPorts: a short slice scan, only for pods with host ports.
//  7. PodAntiAffinity, 8. PodAffinity, 9. TopologySpread: counter lookups
//     resolved when the pod was compiled; last because they apply to few
//     pods and their reasons are the least specific.
//
// Then the rankers score the candidates; each is normalised to 0..100 and
// weighted (Config.Weights). Resources comes first only by convention:
// scores are summed, so their order does not change the result.
func New(cfg Config) *Scheduler {
	if err := cfg.Validate(); err != nil {
		panic(err)
	}
	cfg = cfg.withDefaults()
	w := cfg.Weights
	s := &Scheduler{
		cfg: cfg,
		filters: []checker{
			nodeUsable{},
			pinnedNode{},
			nodeAffinity{},
			taintToleration{},
			resourcesFit{},
			hostPorts{},
			podAntiAffinity{},
			podAffinity{},
			topologySpread{},
		},
	}
	for _, wr := range []weightedRanker{
		{resourceScore{most: cfg.Strategy == MostAllocated}, w.Resources},
		{ownerSpread{}, w.OwnerSpread},
		{topologySpreadScore{}, w.TopologySpread},
		{nodeAffinityScore{}, w.NodeAffinity},
		{podAffinityScore{}, w.PodAffinity},
		{imageLocality{}, w.ImageLocality},
		{taintPreferNoSchedule{}, w.TaintPreferNoSchedule},
	} {
		if wr.w > 0 {
			s.rankers = append(s.rankers, wr)
		}
	}
	return s
}

// Schedule places pods on the snapshot, which it does not modify.
func (s *Scheduler) Schedule(snap Snapshot, pods []Pod) Result {
	return s.ScheduleState(NewClusterState(snap), pods)
}

// ScheduleState places pods into cs and records each binding in it, so
// that a caller keeping a ClusterState across calls sees its own
// placements. Pods are placed highest Priority first, then in the order
// given. A pod already bound in cs is reported unplaced.
func (s *Scheduler) ScheduleState(cs *ClusterState, pods []Pod) Result {
	order := make([]int, len(pods))
	for i := range order {
		order[i] = i
	}
	slices.SortStableFunc(order, func(a, b int) int {
		return cmp.Compare(pods[b].Priority, pods[a].Priority)
	})
	r := newRun(s, cs)
	var res Result
	for _, i := range order {
		b, u := r.place(&pods[i])
		if u != nil {
			res.Unplaced = append(res.Unplaced, *u)
			continue
		}
		res.Bindings = append(res.Bindings, b)
	}
	return res
}

// run is the scratch space of one Schedule call, reused across its pods so
// that evaluating a node allocates nothing.
type run struct {
	s       *Scheduler
	cs      *ClusterState
	pl      podPlan
	filters []checker // every checker that applies to the pod, in order
	dynamic []checker // the non-static ones, for the hot loop
	static  []checker // the static ones, cached per signature
	verdict []bool    // per node: passes every static checker; nil = not cached
	rankers []weightedRanker
	cand    []int32
	raw     []int64
	total   []int64
}

func newRun(s *Scheduler, cs *ClusterState) *run {
	return &run{s: s, cs: cs}
}

// prepare compiles the pod and selects the steps that apply to it.
func (r *run) prepare(p *Pod) {
	r.cs.compile(p, &r.pl)
	r.filters, r.dynamic, r.static = r.filters[:0], r.dynamic[:0], r.static[:0]
	for _, f := range r.s.filters {
		if f.applies(&r.pl) {
			r.filters = append(r.filters, f)
			if f.static() {
				r.static = append(r.static, f)
			} else {
				r.dynamic = append(r.dynamic, f)
			}
		}
	}
	r.verdict = nil
	if r.pl.invalid == "" {
		r.verdict = r.cs.staticVerdicts(&r.pl, r.static)
	}
	r.rankers = r.rankers[:0]
	for _, wr := range r.s.rankers {
		if wr.r.applies(&r.pl) {
			r.rankers = append(r.rankers, wr)
		}
	}
}

func (r *run) feasible(n *nodeState) failure {
	for _, f := range r.filters {
		if why := f.feasible(&r.pl, n); why != fitOK {
			return why
		}
	}
	return fitOK
}

// fits is feasible as a yes/no for the hot loop: the cached static verdict,
// then only the checkers that read the running totals. The order of blame
// does not matter here; explain recomputes it when no node fits.
func (r *run) fits(i int32) bool {
	if r.verdict == nil {
		return r.feasible(&r.cs.nodes[i]) == fitOK
	}
	if !r.verdict[i] {
		return false
	}
	n := &r.cs.nodes[i]
	for _, f := range r.dynamic {
		if f.feasible(&r.pl, n) != fitOK {
			return false
		}
	}
	return true
}

// place finds a node for one pod and records the binding in the state.
func (r *run) place(p *Pod) (Binding, *Unplaced) {
	if node, ok := r.cs.NodeOf(p.ID); ok {
		return Binding{}, &Unplaced{PodID: p.ID, Reason: fmt.Sprintf("pod %s/%s is already bound to node %s", p.Namespace, p.Name, node)}
	}
	r.prepare(p)
	if r.pl.invalid != "" {
		return Binding{}, &Unplaced{PodID: p.ID, Reason: r.pl.invalid}
	}
	r.candidates(p)
	if len(r.cand) == 0 {
		return Binding{}, r.explain(p)
	}
	best, score := r.rank()
	r.cs.add(*p, best)
	return Binding{PodID: p.ID, Node: r.cs.nodes[best].Name, Score: score}, nil
}

// candidates collects up to the candidate bound of feasible nodes, visiting
// nodes in a pseudo-random order drawn from the pod's ID: a start and a
// stride coprime with the node count, which visits every node exactly once
// without allocating a permutation. It stops early once the bound is
// reached; otherwise it has seen every node.
func (r *run) candidates(p *Pod) {
	r.cand = r.cand[:0]
	n := len(r.cs.nodes)
	if n == 0 {
		return
	}
	if r.pl.pinned >= 0 {
		if r.fits(r.pl.pinned) {
			r.cand = append(r.cand, r.pl.pinned)
		}
		return
	}
	want := r.s.cfg.candidates(n)
	rng := seed(p.ID)
	idx := int(rng.next() % uint64(n))
	step := stride(&rng, n)
	for i := 0; i < n; i++ {
		if r.fits(int32(idx)) {
			r.cand = append(r.cand, int32(idx))
			if len(r.cand) == want {
				return
			}
		}
		idx += step
		if idx >= n {
			idx -= n
		}
	}
}

// rank scores the candidates and returns the best; ties go to the
// candidate met first, which the seeded visiting order makes random but
// replayable.
func (r *run) rank() (int32, int64) {
	k := len(r.cand)
	if cap(r.total) < k {
		r.total = make([]int64, k)
		r.raw = make([]int64, k)
	}
	total, raw := r.total[:k], r.raw[:k]
	clear(total)
	for _, wr := range r.rankers {
		for i, c := range r.cand {
			raw[i] = wr.r.raw(&r.pl, &r.cs.nodes[c])
		}
		normalise(wr.r.norm(), raw)
		for i := range raw {
			total[i] += wr.w * raw[i]
		}
	}
	best := 0
	for i := 1; i < k; i++ {
		if total[i] > total[best] {
			best = i
		}
	}
	return r.cand[best], total[best]
}

// explain runs every applicable filter on every node and counts, per node,
// the first reason it fails. Only for pods that fit nowhere.
func (r *run) explain(p *Pod) *Unplaced {
	counts := map[string]int{}
	for i := range r.cs.nodes {
		n := &r.cs.nodes[i]
		if why := r.feasible(n); why != fitOK {
			counts[reasonText(why, &r.pl, n)]++
		}
	}
	return &Unplaced{PodID: p.ID, Reason: reasonMessage(len(r.cs.nodes), counts), Counts: counts}
}

// reasonMessage renders counts as kube-scheduler does:
// "0/3 nodes are available: 2 insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}."
// Most frequent reason first, ties alphabetical.
func reasonMessage(nodes int, counts map[string]int) string {
	type rc struct {
		r string
		c int
	}
	list := make([]rc, 0, len(counts))
	for r, c := range counts {
		list = append(list, rc{r, c})
	}
	slices.SortFunc(list, func(a, b rc) int {
		if a.c != b.c {
			return b.c - a.c
		}
		return strings.Compare(a.r, b.r)
	})
	var sb strings.Builder
	fmt.Fprintf(&sb, "0/%d nodes are available", nodes)
	for i, x := range list {
		if i == 0 {
			sb.WriteString(": ")
		} else {
			sb.WriteString(", ")
		}
		fmt.Fprintf(&sb, "%d %s", x.c, x.r)
	}
	sb.WriteByte('.')
	return sb.String()
}

// splitmix is a tiny deterministic generator (SplitMix64); the standard
// library's are fine too but this keeps the sequence fixed across Go
// releases, so a recorded placement replays.
type splitmix struct{ s uint64 }

func seed(id string) splitmix {
	h := fnv.New64a()
	h.Write([]byte(id))
	return splitmix{s: h.Sum64()}
}

func (x *splitmix) next() uint64 {
	x.s += 0x9e3779b97f4a7c15
	z := x.s
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9
	z = (z ^ (z >> 27)) * 0x94d049bb133111eb
	return z ^ (z >> 31)
}

// stride picks a step in [1, n) coprime with n (1 when n is 1).
func stride(x *splitmix, n int) int {
	if n <= 2 {
		return 1
	}
	s := 1 + int(x.next()%uint64(n-1))
	for gcd(s, n) != 1 {
		s++
		if s == n {
			s = 1
		}
	}
	return s
}

func gcd(a, b int) int {
	for b != 0 {
		a, b = b, a%b
	}
	return a
}

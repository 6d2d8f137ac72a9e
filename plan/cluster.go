package plan

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/scheduler"
	"github.com/shoal-dev/shoal/state"
)

// The scheduling dry run (`shoal plan --cluster`): the live cluster's nodes and pods, as one
// agent's status API serves them, are written into a fresh local state store; HEAD is pinned
// in it as the leader would pin it; then the leader's own decisions run over it, in the order
// the leader's loops make them: the workload controllers (reconciler.Reconcile), the bare-Pod
// controller, and the scheduler for every pod without a node, with the leader's scheduler
// configuration. Their commands are applied to the local store only. The rounds repeat until
// nothing changes, so a decision that follows another (a pod created, then placed) is seen.
//
// Like Compute, Simulate is a function of its arguments: the caller reads the cluster and the
// clock. What it cannot know, it says in ClusterPlan.NotSimulated rather than guess.

// BarePodsFunc is the bare-Pod controller: the commands it would apply for the Pods of set at
// commit, given the view v. The agent owns it (agent.PlanBarePods); the caller passes it in so
// that this package stays free of the agent's dependencies.
type BarePodsFunc func(set *manifest.Set, commit string, v *state.Snapshot, now time.Time) []state.Command

// ClusterInput is what one dry run reads.
type ClusterInput struct {
	// Server names the cluster in the report (the status API's address).
	Server string
	// Nodes and Pods are the live records (GET /v1/nodes, /v1/pods).
	Nodes []*state.Node
	Pods  []*state.Pod
	// Running is the commit the cluster runs (its pinned revision), nil before the first pin.
	Running *state.Revision
	// RunningSet is the object set at Running.Commit, or nil when it cannot be read; the
	// workload controllers read it only for the prune annotation of objects HEAD removes.
	RunningSet *manifest.Set
	// Head is the commit under review and HeadSet its valid object set.
	Head    string
	HeadSet *manifest.Set
	// Now is the caller's clock, read once.
	Now time.Time
	// BarePods is the bare-Pod controller (required).
	BarePods BarePodsFunc
	// TimeZone loads a CronJob's spec.timeZone (time.LoadLocation); nil knows only UTC.
	TimeZone func(name string) (*time.Location, error)
}

// Validate reports an input that cannot be simulated.
func (in *ClusterInput) Validate() error {
	var errs []error
	if in.Head == "" {
		errs = append(errs, errors.New("dry run: no HEAD commit"))
	}
	if in.HeadSet == nil {
		errs = append(errs, errors.New("dry run: no object set for HEAD"))
	}
	if in.Now.IsZero() {
		errs = append(errs, errors.New("dry run: zero time"))
	}
	if in.BarePods == nil {
		errs = append(errs, errors.New("dry run: no bare-Pod controller"))
	}
	return errors.Join(errs...)
}

// ClusterPlan is what HEAD would do to the live cluster's pods: per workload, the pods its
// controllers would create or stop, and where the scheduler would place the pods waiting for
// a node, or why they fit nowhere.
type ClusterPlan struct {
	Server string
	// Running is the commit the cluster runs, "" before its first pin; Head the one simulated.
	Running, Head string
	// Nodes and Pods count the live records read.
	Nodes, Pods int
	// Skipped, when set, says why no dry run was made (HEAD is invalid); the rest is empty.
	Skipped string
	// Workloads are those with a pod created, stopped or waiting for a node, in key order. A
	// bare Pod is its own workload (Kind "Pod").
	Workloads []Placement
	// NotSimulated lists, in plain words, what the dry run does not model.
	NotSimulated []string
}

// Placement is one workload's part of the dry run.
type Placement struct {
	Workload manifest.Key
	// New counts the pods HEAD's controllers would create.
	New int
	// Pending counts the pods that were already waiting for a node in the live cluster.
	Pending int
	// Stopping counts the live pods they would stop (replaced, scaled down, removed).
	Stopping int
	// Placed is where the new and pending pods would be bound, by node name.
	Placed []NodeCount
	// Unfit groups the pods that would fit on no node by the scheduler's reason.
	Unfit []Unfit
}

// NodeCount is how many of a workload's pods would be bound to one node.
type NodeCount struct {
	Node string
	Pods int
}

// Unfit is a number of a workload's pods that would fit nowhere, for one reason, worded as the
// scheduler words it ("0/3 nodes are available: 3 insufficient cpu.").
type Unfit struct {
	Pods   int
	Reason string
}

// UnfitPods is the number of pods that would fit nowhere.
func (p Placement) UnfitPods() int {
	n := 0
	for _, u := range p.Unfit {
		n += u.Pods
	}
	return n
}

// UnfitPods is the number of pods, over all workloads, that would fit nowhere.
func (c *ClusterPlan) UnfitPods() int {
	if c == nil {
		return 0
	}
	n := 0
	for _, w := range c.Workloads {
		n += w.UnfitPods()
	}
	return n
}

// maxRounds bounds the dry run. A round is one reconcile, one bare-Pod plan and one schedule;
// the leader's decisions settle in two (create, then place), a third proves it.
const maxRounds = 5

// notSimulated is what the dry run never models, whatever the input.
var notSimulated = []string{
	"config-change rolls: ConfigMap and Secret contents are not read, so a workload rolls only if its template changed",
	"pods becoming ready or stopping: a rollout's later steps, and what fits once stopped pods free their nodes, are not shown; a pod being stopped still holds its node's resources",
	"node liveness: a node is judged by its recorded status, not by gossip",
	"StatefulSet local volumes: the status API does not serve them, so a recreated StatefulSet pod is not pinned to its volume's node",
}

// Simulate runs the leader's decisions for HEAD over the live records and reports them.
func Simulate(in ClusterInput) (*ClusterPlan, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	out := &ClusterPlan{Server: in.Server, Head: in.Head, Nodes: len(in.Nodes), Pods: len(in.Pods)}
	if in.Running != nil {
		out.Running = in.Running.Commit
	}
	pods := withoutConfigHashes(in.HeadSet, in.Pods)
	store, err := RebuildStore(in.Nodes, pods, in.Running)
	if err != nil {
		return nil, err
	}
	if _, err := applyAll(store, &state.PinRevision{Commit: in.Head, Time: in.Now}); err != nil {
		return nil, err
	}
	before := store.Snapshot()
	var previous *manifest.Set
	if in.Running != nil && in.Running.Commit != in.Head {
		previous = in.RunningSet
	}
	sched := scheduler.New(scheduler.Config{}) // the leader's configuration (agent.New)
	var cache reconciler.Cache
	bound := map[string]string{}             // pod UID → node
	unfit := map[string]scheduler.Unplaced{} // pod UID → why, from the newest schedule
	for round := 0; ; round++ {
		if round == maxRounds {
			return nil, fmt.Errorf("dry run: the decisions did not settle after %d rounds", maxRounds)
		}
		changed := 0
		v := store.Snapshot()
		rp, err := reconciler.Reconcile(reconciler.Input{
			Objects:  in.HeadSet,
			Previous: previous,
			Commit:   in.Head,
			PinnedAt: v.PinnedRevision().Time,
			State:    v,
			Now:      in.Now,
			TimeZone: in.TimeZone,
			Cache:    &cache,
		})
		if err != nil {
			return nil, fmt.Errorf("dry run: reconcile: %w", err)
		}
		n, err := applyAll(store, rp.Commands()...)
		if err != nil {
			return nil, err
		}
		changed += n
		n, err = applyAll(store, in.BarePods(in.HeadSet, in.Head, store.Snapshot(), in.Now)...)
		if err != nil {
			return nil, err
		}
		changed += n
		res := scheduleUnplaced(sched, store.Snapshot())
		bindings := make([]state.Binding, len(res.Bindings))
		for i, b := range res.Bindings {
			bindings[i] = state.Binding{UID: b.PodID, Node: b.Node}
			bound[b.PodID] = b.Node
			delete(unfit, b.PodID)
		}
		for _, u := range res.Unplaced {
			unfit[u.PodID] = u
		}
		if len(bindings) > 0 {
			n, err := applyAll(store, &state.BindPods{Bindings: bindings})
			if err != nil {
				return nil, err
			}
			changed += n
		}
		if changed == 0 {
			break
		}
	}
	out.Workloads = placements(before, store.Snapshot(), bound, unfit)
	out.NotSimulated = append([]string(nil), notSimulated...)
	if in.Running != nil && in.Running.Commit != in.Head && in.RunningSet == nil {
		out.NotSimulated = append(out.NotSimulated, fmt.Sprintf(
			"the running commit %s is not in the local repository: the prune annotation of removed objects is read from their pods' labels only", shortCommit(in.Running.Commit)))
	}
	return out, nil
}

// applyAll applies commands to a dry run's store and returns how many items they changed. A
// rejected item is not an error: the leader logs it and decides again, and so does the next
// round.
func applyAll(s *state.Store, cmds ...state.Command) (int, error) {
	n := 0
	for _, c := range cmds {
		res, err := s.ApplyCommand(c)
		if err != nil {
			return n, fmt.Errorf("dry run: %s: %w", c.CommandType(), err)
		}
		if _, ok := c.(*state.AppendEvents); !ok {
			n += res.Applied
		}
	}
	return n, nil
}

// scheduleUnplaced is the leader's schedule step without the writes: every pod without a node, placed
// against every node and the pods that hold its resources.
func scheduleUnplaced(s *scheduler.Scheduler, v *state.Snapshot) scheduler.Result {
	unplaced := v.UnplacedPods()
	if len(unplaced) == 0 {
		return scheduler.Result{}
	}
	return s.Schedule(scheduler.SnapshotOf(v, nil), scheduler.PodsOf(unplaced))
}

// workloadOf is the workload a pod belongs to: its owner, or the bare Pod itself.
func workloadOf(p *state.Pod) manifest.Key {
	if p.Owner.Kind == "" {
		return manifest.Key{Kind: "Pod", Namespace: p.Namespace, Name: p.Name}
	}
	return manifest.Key{Kind: p.Owner.Kind, Namespace: p.Namespace, Name: p.Owner.Name}
}

// placements compares the store before and after the dry run, per workload.
func placements(before, after *state.Snapshot, bound map[string]string, unfit map[string]scheduler.Unplaced) []Placement {
	type acc struct {
		p      Placement
		nodes  map[string]int
		unfits map[string]int
	}
	by := map[manifest.Key]*acc{}
	get := func(k manifest.Key) *acc {
		a := by[k]
		if a == nil {
			a = &acc{p: Placement{Workload: k}, nodes: map[string]int{}, unfits: map[string]int{}}
			by[k] = a
		}
		return a
	}
	for _, p := range before.Pods() {
		now := after.Pod(p.UID)
		if p.Desired == state.DesiredRun && (now == nil || now.Desired != state.DesiredRun) {
			get(workloadOf(p)).p.Stopping++
		}
		if p.NodeName == "" && p.Desired == state.DesiredRun {
			get(workloadOf(p)).p.Pending++
		}
	}
	for _, p := range after.Pods() {
		old := before.Pod(p.UID)
		if old == nil {
			get(workloadOf(p)).p.New++
		}
		if p.Desired != state.DesiredRun {
			continue
		}
		if node, ok := bound[p.UID]; ok && p.NodeName == node {
			get(workloadOf(p)).nodes[node]++
		} else if u, ok := unfit[p.UID]; ok && p.NodeName == "" {
			get(workloadOf(p)).unfits[u.Reason]++
		}
	}
	out := make([]Placement, 0, len(by))
	for _, a := range by {
		for n, c := range a.nodes {
			a.p.Placed = append(a.p.Placed, NodeCount{Node: n, Pods: c})
		}
		sort.Slice(a.p.Placed, func(i, j int) bool { return a.p.Placed[i].Node < a.p.Placed[j].Node })
		for r, c := range a.unfits {
			a.p.Unfit = append(a.p.Unfit, Unfit{Pods: c, Reason: r})
		}
		sort.Slice(a.p.Unfit, func(i, j int) bool {
			if a.p.Unfit[i].Pods != a.p.Unfit[j].Pods {
				return a.p.Unfit[i].Pods > a.p.Unfit[j].Pods
			}
			return a.p.Unfit[i].Reason < a.p.Unfit[j].Reason
		})
		out = append(out, a.p)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Workload.Less(out[j].Workload) })
	return out
}

// shortCommit abbreviates a commit hash for a sentence.
func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// placedText is "n1: 2, n2: 1".
func placedText(ns []NodeCount) string {
	parts := make([]string, len(ns))
	for i, n := range ns {
		parts[i] = fmt.Sprintf("%s: %d", n.Node, n.Pods)
	}
	return strings.Join(parts, ", ")
}

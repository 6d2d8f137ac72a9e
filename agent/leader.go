package agent

import (
	"context"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/shoal-dev/shoal/cluster"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/scheduler"
	"github.com/shoal-dev/shoal/state"
)

// The leader's loops. Each is a step that reads a fresh snapshot and writes
// what it decided, run again whenever the tables it reads change (or its
// other inputs: the watcher's newest commit, gossip membership, a grace
// expiring). No step keeps memory between runs: a new leader, or the same
// one restarted, picks up from the replicated state.

// batchSize bounds the items of one command (see docs/state.md).
const batchSize = 1000

// leader runs every leader loop until leadership is lost.
func (a *Agent) leader(ctx context.Context) {
	a.log.Info("leadership gained: starting leader loops")
	var wg sync.WaitGroup
	run := func(name string, tables []state.Table, extra func() <-chan struct{}, step func(context.Context, *state.Snapshot) (time.Duration, error)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if name == "pin" {
				// A watcher that lagged behind the old leader's must not
				// pin an older commit back.
				a.src.refresh(ctx)
			}
			a.runLoop(ctx, name, tables, extra, step)
		}()
	}
	run("pin", []state.Table{state.TableRevisions}, func() <-chan struct{} { _, ch := a.src.newest(); return ch }, a.pinStep)
	run("pod-cidr", []state.Table{state.TableNodes, state.TableAllocations}, nil, a.cidrStep)
	run("bare-pods", []state.Table{state.TableRevisions, state.TablePods, state.TableNodes}, nil, a.barePodsStep)
	// Volumes too: a claim's pod waits for its deleted volume's record to go (reconciler/volumes.go).
	run("workloads", []state.Table{state.TableRevisions, state.TablePods, state.TableNodes, state.TableVolumes}, nil, a.workloadsStep(&workloads{}))
	run("service-alloc", []state.Table{state.TableRevisions, state.TableAllocations}, nil, a.serviceAllocStep)
	run("schedule", []state.Table{state.TablePods, state.TableNodes}, a.node.MembersWatch, a.scheduleStep)
	run("node-health", []state.Table{state.TableNodes, state.TablePods, state.TableRevisions}, a.node.MembersWatch, a.healthStep)
	wg.Wait()
	a.log.Info("leadership lost: leader loops stopped")
}

// runLoop runs step on a fresh snapshot, then again after a change to
// tables, a close of extra's channel, or the delay step asked for. A failed
// step is retried with back-off.
func (a *Agent) runLoop(ctx context.Context, name string, tables []state.Table, extra func() <-chan struct{}, step func(context.Context, *state.Snapshot) (time.Duration, error)) {
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		var ex <-chan struct{}
		if extra != nil {
			ex = extra() // before the snapshot: a change after it is not missed
		}
		v := a.store.Snapshot()
		next, err := step(ctx, v)
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			a.log.Warn("leader loop step failed", "loop", name, "err", err, "retry", backoff)
			next, backoff = backoff, min(backoff*2, 5*time.Second)
		} else {
			backoff = 100 * time.Millisecond
		}
		wctx, cancel := context.WithCancel(ctx)
		woke := make(chan struct{})
		go func() {
			_ = v.Wait(wctx, tables...)
			close(woke)
		}()
		var timer <-chan time.Time
		var t *time.Timer
		if next > 0 {
			t = time.NewTimer(next)
			timer = t.C
		}
		select {
		case <-woke:
		case <-ex:
		case <-timer:
		case <-ctx.Done():
		}
		if t != nil {
			t.Stop()
		}
		cancel()
		<-woke
	}
}

// pinStep pins the watcher's newest commit, or refuses it with the reason.
func (a *Agent) pinStep(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
	c, _ := a.src.newest()
	if c.Commit == "" {
		return 0, nil
	}
	if p := v.PinnedRevision(); p != nil && p.Commit == c.Commit {
		return 0, nil
	}
	if revs := v.RevisionsOf(c.Commit); len(revs) > 0 {
		// Already judged: refused and nothing newer since, or judged
		// before the pinned commit, so older than it. A commit is not
		// pinned back: roll back with a new commit (git revert).
		return 0, nil
	}
	reason := c.Refused
	if reason == "" {
		l, err := a.src.load(ctx, c.Commit)
		if err != nil {
			return 0, err
		}
		reason = judgeCommit(l)
		if reason == "" {
			reason = a.vals.judgeSecrets(ctx, c.Commit, l.set)
		}
	}
	now := a.now().UTC()
	if reason != "" {
		a.log.Warn("commit refused", "commit", c.Commit, "reason", reason)
		_, err := a.apply(ctx, &state.RefuseRevision{Commit: c.Commit, Ref: c.Ref, Reason: reason, Time: now})
		return 0, err
	}
	a.log.Info("commit pinned", "commit", c.Commit, "ref", c.Ref)
	_, err := a.apply(ctx, &state.PinRevision{Commit: c.Commit, Ref: c.Ref, Time: now})
	return 0, err
}

// cidrStep gives every node without a pod CIDR the lowest free one.
func (a *Agent) cidrStep(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
	allocs, err := PlanPodCIDRs(v, a.cfg.PodCIDRRange, a.cfg.NodeCIDRBits)
	if err != nil || len(allocs) == 0 {
		return 0, err
	}
	for _, al := range allocs {
		a.log.Info("pod CIDR allocated", "to", al.Owner, "cidr", al.Value)
	}
	_, err = a.apply(ctx, &state.Allocate{Allocations: allocs})
	return 0, err
}

// PlanPodCIDRs allocates one /bits of rangeText to every node that has
// none, lowest free first, in node-name order.
func PlanPodCIDRs(v *state.Snapshot, rangeText string, bits int) ([]state.Allocation, error) {
	r, err := netip.ParsePrefix(rangeText)
	if err != nil {
		return nil, err
	}
	used := map[string]bool{}
	for _, al := range v.Allocations(state.AllocPodCIDR) {
		used[al.Value] = true
	}
	var out []state.Allocation
	next := 0
	total := 1 << (bits - r.Bits())
	base := r.Addr().As4()
	baseN := uint32(base[0])<<24 | uint32(base[1])<<16 | uint32(base[2])<<8 | uint32(base[3])
	for _, n := range v.Nodes() {
		if n.PodCIDR != "" || len(v.AllocationsOf(state.AllocPodCIDR, n.Name)) > 0 {
			continue
		}
		for ; next < total; next++ {
			x := baseN + uint32(next)<<(32-bits)
			p := netip.PrefixFrom(netip.AddrFrom4([4]byte{byte(x >> 24), byte(x >> 16), byte(x >> 8), byte(x)}), bits)
			if !used[p.String()] {
				used[p.String()] = true
				out = append(out, state.Allocation{Kind: state.AllocPodCIDR, Value: p.String(), Owner: n.Name})
				break
			}
		}
		if next == total {
			return out, fmt.Errorf("pod CIDR range %s is exhausted (%d nodes of /%d)", rangeText, total, bits)
		}
	}
	return out, nil
}

// barePodsStep runs the bare-Pod controller on the pinned commit.
func (a *Agent) barePodsStep(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
	pinned := v.PinnedRevision()
	if pinned == nil {
		return 0, nil
	}
	l, err := a.src.load(ctx, pinned.Commit)
	if err != nil {
		return 0, err
	}
	if l.set == nil {
		return 0, fmt.Errorf("pinned commit %s holds no objects", pinned.Commit)
	}
	now := a.now().UTC()
	for _, c := range BarePodCommands(l.set, pinned.Commit, v, now) {
		res, err := a.apply(ctx, c)
		if err != nil {
			return 0, err
		}
		if cp, ok := c.(*state.CreatePods); ok {
			for _, p := range cp.Pods {
				a.log.Info("pod created", "pod", p.Key(), "uid", p.UID, "commit", p.Commit)
			}
			for _, r := range res.Rejected {
				a.log.Warn("pod create rejected", "uid", r.UID, "reason", r.Reason)
			}
		}
	}
	return 0, nil
}

// scheduleStep places the unplaced pods and records why the others wait.
func (a *Agent) scheduleStep(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
	unplaced := v.UnplacedPods()
	if len(unplaced) == 0 {
		return 0, nil
	}
	pods := scheduler.PodsOf(unplaced)
	byID := map[string]*state.Pod{}
	for _, p := range unplaced {
		byID[p.UID] = p
	}
	alive := map[string]bool{}
	for _, m := range a.node.Members() {
		alive[m.Name] = m.Status == cluster.MemberAlive
	}
	res := a.sched.Schedule(scheduler.SnapshotOf(v, func(n string) bool { return alive[n] }), pods)
	bindings := make([]state.Binding, len(res.Bindings))
	for i, b := range res.Bindings {
		bindings[i] = state.Binding{UID: b.PodID, Node: b.Node}
	}
	for _, bs := range chunks(bindings) {
		r, err := a.apply(ctx, &state.BindPods{Bindings: bs})
		if err != nil {
			return 0, err
		}
		a.log.Info("pods bound", "count", r.Applied, "rejected", len(r.Rejected))
	}
	now := a.now().UTC()
	var events []state.Event
	for _, u := range res.Unplaced {
		p := byID[u.PodID]
		key := "Pod/" + p.Key()
		if evs := v.Events(key); len(evs) > 0 && evs[len(evs)-1].Reason == "FailedScheduling" && evs[len(evs)-1].Message == u.Reason {
			continue // said already
		}
		events = append(events, state.Event{Key: key, Type: "Warning", Reason: "FailedScheduling", Message: u.Reason, Commit: p.Commit, Time: now})
	}
	for _, evs := range chunks(events) {
		if _, err := a.apply(ctx, &state.AppendEvents{Events: evs}); err != nil {
			return 0, err
		}
	}
	return 0, nil
}

// healthStep turns gossip membership into node status: a member that
// stopped answering is NotReady at once, its pods lost after the grace.
func (a *Agent) healthStep(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
	members := map[string]cluster.Member{}
	for _, m := range a.node.Members() {
		members[m.Name] = m
	}
	now := a.now().UTC()
	gone, err := a.goneNodes(ctx, v)
	if err != nil {
		a.log.Warn("nodes declared gone unknown: judging without them", "err", err)
	}
	for _, name := range gone {
		if m, ok := members[name]; ok && m.Status == cluster.MemberAlive {
			if n := v.Node(name); n != nil && n.Status != state.NodeGone {
				a.log.Warn("node is declared gone in Git but alive: left alone until it stops", "node", name)
			}
		}
	}
	plan := PlanNodeHealth(v, members, now, time.Duration(a.cfg.LostGrace), gone...)
	for _, s := range plan.Status {
		a.log.Info("node status", "node", s.Name, "status", s.Status.String())
		if _, err := a.apply(ctx, &s); err != nil {
			return 0, err
		}
	}
	for _, l := range plan.Lost {
		a.log.Warn("pods lost with their node", "count", len(l.UIDs), "reason", l.Reason)
		if _, err := a.apply(ctx, &l); err != nil {
			return 0, err
		}
	}
	return plan.Wake, nil
}

// HealthPlan is what the node-health loop writes.
type HealthPlan struct {
	Status []state.SetNodeStatus
	Lost   []state.MarkPodsLost
	// Wake is when a grace expires next (0: nothing pending).
	Wake time.Duration
}

// PlanNodeHealth decides node statuses from gossip membership, and which
// pods are lost: those of a node NotReady for longer than grace, measured
// from the heartbeat recorded when it was marked NotReady. A node the
// pinned commit declares gone (gone, from the repository's goneNodes) is
// marked Gone once it is not alive, and its pods lost at once; a Gone node
// that is alive again and no longer declared gone is Ready again.
func PlanNodeHealth(v *state.Snapshot, members map[string]cluster.Member, now time.Time, grace time.Duration, gone ...string) HealthPlan {
	var plan HealthPlan
	declared := make(map[string]bool, len(gone))
	for _, g := range gone {
		declared[g] = true
	}
	for _, n := range v.Nodes() {
		m, known := members[n.Name]
		alive := known && m.Status == cluster.MemberAlive
		switch {
		case n.Status == state.NodeGone && alive && !declared[n.Name]:
			plan.Status = append(plan.Status, state.SetNodeStatus{Name: n.Name, Status: state.NodeReady, Heartbeat: now})
		case declared[n.Name] && !alive:
			if n.Status != state.NodeGone {
				plan.Status = append(plan.Status, state.SetNodeStatus{Name: n.Name, Status: state.NodeGone, Heartbeat: now})
			}
			var uids []string
			for _, p := range v.PodsOnNode(n.Name) {
				if !p.Status.Phase.Terminal() {
					uids = append(uids, p.UID)
				}
			}
			if len(uids) > 0 {
				plan.Lost = append(plan.Lost, state.MarkPodsLost{UIDs: uids, Reason: fmt.Sprintf("node %s is declared gone in Git (goneNodes)", n.Name), Time: now})
			}
		case n.Status == state.NodeGone:
		case alive && n.Status != state.NodeReady:
			plan.Status = append(plan.Status, state.SetNodeStatus{Name: n.Name, Status: state.NodeReady, Heartbeat: now})
		case !alive && n.Status == state.NodeReady:
			since := now
			if known && !m.Since.IsZero() && m.Since.Before(now) {
				since = m.Since.UTC()
			}
			plan.Status = append(plan.Status, state.SetNodeStatus{Name: n.Name, Status: state.NodeNotReady, Heartbeat: since})
			plan.wake(since.Add(grace).Sub(now))
		case !alive && n.Status == state.NodeNotReady:
			var uids []string
			for _, p := range v.PodsOnNode(n.Name) {
				if !p.Status.Phase.Terminal() {
					uids = append(uids, p.UID)
				}
			}
			if len(uids) == 0 {
				continue
			}
			if due := n.LastHeartbeat.Add(grace); now.Before(due) {
				plan.wake(due.Sub(now))
				continue
			}
			plan.Lost = append(plan.Lost, state.MarkPodsLost{
				UIDs:   uids,
				Reason: fmt.Sprintf("node %s stopped answering at %s and did not return within %s", n.Name, n.LastHeartbeat.Format(time.RFC3339), grace),
				Time:   now,
			})
		}
	}
	return plan
}

func (p *HealthPlan) wake(d time.Duration) {
	if d <= 0 {
		d = time.Millisecond
	}
	if p.Wake == 0 || d < p.Wake {
		p.Wake = d
	}
}

// chunks splits s into batches of at most batchSize items.
func chunks[T any](s []T) [][]T { return reconciler.Batches(s, batchSize) }

// goneNodes returns the nodes the pinned commit declares gone.
func (a *Agent) goneNodes(ctx context.Context, v *state.Snapshot) ([]string, error) {
	pinned := v.PinnedRevision()
	if pinned == nil {
		return nil, nil
	}
	l, err := a.src.load(ctx, pinned.Commit)
	if err != nil {
		return nil, err
	}
	return l.set.GoneNodes(), nil
}

package scheduler

import "fmt"

// Rejected is a binding that no longer fits.
type Rejected struct {
	PodID  string
	Node   string
	Reason string
}

// VerifyResult splits bindings into those still valid and those not.
type VerifyResult struct {
	Accepted []Binding
	Rejected []Rejected
}

// Verify re-checks bindings, in order, against a newer snapshot: the leader
// calls it before committing a batch of bindings computed on an older one
// (optimistic concurrency, as nomad's plan applier). Every filter is run
// for each binding on its node against the snapshot plus the bindings
// accepted before it, so two bindings that each fit alone but not together
// are caught. pods holds the specs of the bound pods, by ID.
func (s *Scheduler) Verify(snap Snapshot, pods []Pod, bindings []Binding) VerifyResult {
	return s.VerifyState(NewClusterState(snap), pods, bindings)
}

// VerifyState is Verify on a ClusterState, which it updates with every
// accepted binding.
func (s *Scheduler) VerifyState(cs *ClusterState, pods []Pod, bindings []Binding) VerifyResult {
	byID := make(map[string]*Pod, len(pods))
	for i := range pods {
		byID[pods[i].ID] = &pods[i]
	}
	r := newRun(s, cs)
	var res VerifyResult
	for _, b := range bindings {
		if why := r.check(byID[b.PodID], b); why != "" {
			res.Rejected = append(res.Rejected, Rejected{PodID: b.PodID, Node: b.Node, Reason: why})
			continue
		}
		cs.add(*byID[b.PodID], cs.byName[b.Node])
		res.Accepted = append(res.Accepted, b)
	}
	return res
}

// check returns why binding b of pod p is invalid on the state, or "".
func (r *run) check(p *Pod, b Binding) string {
	if p == nil {
		return fmt.Sprintf("pod %s: spec not given", b.PodID)
	}
	if node, ok := r.cs.NodeOf(p.ID); ok {
		return fmt.Sprintf("pod %s/%s is already bound to node %s", p.Namespace, p.Name, node)
	}
	i, ok := r.cs.byName[b.Node]
	if !ok {
		return fmt.Sprintf("node %s no longer exists", b.Node)
	}
	r.prepare(p)
	if r.pl.invalid != "" {
		return r.pl.invalid
	}
	n := &r.cs.nodes[i]
	if why := r.feasible(n); why != fitOK {
		return reasonText(why, &r.pl, n)
	}
	return ""
}

package reconciler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// StatefulSet event reasons.
const (
	ReasonWaitingForNode = "WaitingForNodeGone"
	ReasonCreated        = "SuccessfulCreate"
	ReasonDeleted        = "SuccessfulDelete"
	ReasonRollingUpdate  = "RollingUpdate"
	ReasonVolumeConflict = "VolumeConflict"
)

// slot is one ordinal of a StatefulSet and the record holding its name, if any.
type slot struct {
	ord int
	rec *state.Pod
	pod pod
	// fate of the record: live, terminating, held (lost on an unreachable node), or gone
	// (removed in this plan; the slot is free).
	fate podFate
}

func (s *slot) healthy() bool { return s.rec != nil && s.fate == fateLive && s.pod.available }

// sts is the working state of one StatefulSet in one reconcile.
type sts struct {
	r         *run
	key       manifest.Key
	spec      *appsv1.StatefulSetSpec
	update    *revision
	replicas  int
	start     int
	slots     []slot // ordinals start..start+replicas-1
	condemned []slot // ordinals out of range, highest first
	parallel  bool
}

func (r *run) statefulSet(o *manifest.Object, s *appsv1.StatefulSet) {
	x := &sts{r: r, key: o.Key, spec: &s.Spec, replicas: int(ptrOr(s.Spec.Replicas, 1)),
		parallel: s.Spec.PodManagementPolicy == appsv1.ParallelPodManagement}
	if s.Spec.Ordinals != nil {
		x.start = int(s.Spec.Ordinals.Start)
	}
	x.update = r.newRevision(o, &s.Spec.Template, LabelControllerHash)
	minReady := time.Duration(s.Spec.MinReadySeconds) * time.Second

	x.slots = make([]slot, x.replicas)
	for i := range x.slots {
		x.slots[i].ord = x.start + i
	}
	for _, p := range r.in.State.PodsByOwner(o.Key.Namespace, "StatefulSet", o.Key.Name) {
		x.noteVolumes(p)
		sl := slot{ord: -1, rec: p, fate: r.statefulFate(p)}
		if sl.fate == fateLive {
			sl.pod = r.classify(p, minReady)
		}
		if ord, ok := ordinalOf(o.Key.Name, p.Name); ok && ord >= x.start && ord < x.start+x.replicas {
			sl.ord = ord
			x.slots[ord-x.start] = sl
			continue
		} else if ok {
			sl.ord = ord
		}
		x.condemned = append(x.condemned, sl)
	}
	sort.Slice(x.condemned, func(i, j int) bool { return x.condemned[i].ord > x.condemned[j].ord })
	x.reconcile()
	x.retainVolumes()
}

// ordinalOf parses "NAME-ORDINAL".
func ordinalOf(set, pod string) (int, bool) {
	rest, ok := strings.CutPrefix(pod, set+"-")
	if !ok {
		return 0, false
	}
	n, err := strconv.Atoi(rest)
	if err != nil || n < 0 || strconv.Itoa(n) != rest {
		return 0, false
	}
	return n, true
}

// statefulFate decides what a StatefulSet pod record is. The rule that a name never runs
// twice lives here: a record is removed only when nothing can be running it any more: it
// was never bound, its node reported it terminated, or its node is gone. A pod lost with an
// unreachable node keeps its record, and so its name, until the node is declared gone.
func (r *run) statefulFate(p *state.Pod) podFate {
	nodeDead := p.NodeName != "" && r.nodeGone(p.NodeName)
	// An unplaced pod pinned to a gone node (its claims' volumes were there) can never be
	// placed; nothing runs it, and its volumes are forgotten with the node: it is created
	// again, placed anywhere.
	pinDead := p.NodeName == "" && p.Spec.PinnedNode != "" && r.nodeGone(p.Spec.PinnedNode)
	switch {
	case p.NodeName == "" && p.Desired != state.DesiredRun,
		nodeDead, pinDead,
		p.Status.Phase == state.PhaseSucceeded, p.Status.Phase == state.PhaseFailed:
		r.deleteRecord(p)
		return fateGone
	case p.Status.Phase == state.PhaseLost:
		return fateHeld
	case p.Desired != state.DesiredRun:
		return fateTerminating
	}
	return fateLive
}

func (x *sts) podName(ord int) string { return x.key.Name + "-" + strconv.Itoa(ord) }

// maxUnavailable resolves the rolling update's maxUnavailable: rounded up, at least 1.
func (x *sts) maxUnavailable() int {
	ru := x.spec.UpdateStrategy.RollingUpdate
	if ru == nil || ru.MaxUnavailable == nil {
		return 1
	}
	n, err := intstr.GetScaledValueFromIntOrPercent(ru.MaxUnavailable, x.replicas, true)
	if err != nil || n < 1 {
		return 1
	}
	return n
}

func (x *sts) partition() int {
	if ru := x.spec.UpdateStrategy.RollingUpdate; ru != nil && ru.Partition != nil {
		return int(*ru.Partition)
	}
	return 0
}

// revisionFor picks the revision a new pod at ord starts with, as Kubernetes does: below the
// partition (an index from spec.ordinals.start) of a RollingUpdate, the current revision (the one the other pods below the
// partition run, rebuilt from one of their records, which carry the commit holding its
// template); otherwise the update revision.
func (x *sts) revisionFor(ord int) *revision {
	if x.spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType || !belowPartition(x.spec, ord) {
		return x.update
	}
	count := map[string]int{}
	var best *state.Pod
	for i := range x.slots {
		p := x.slots[i].rec
		// A record being removed still says which revision its ordinal ran.
		if p == nil || p.TemplateHash == x.update.hash || i >= x.partition() {
			continue
		}
		count[p.TemplateHash]++
		if best == nil || count[p.TemplateHash] > count[best.TemplateHash] {
			best = p
		}
	}
	if best == nil {
		return x.update
	}
	return revisionOf(best)
}

// create makes the pod of a free slot, pinned to its volumes' node if they exist. It makes
// none while a volume of the pod's claims is being deleted: the pod waits for a new, empty one,
// and the slot stays free (not available, so OrderedReady goes no further).
func (x *sts) create(sl *slot) {
	name := x.podName(sl.ord)
	if claim, node := x.claimBeingDeleted(name); claim != "" {
		x.waitForClaim(name, claim, node)
		return
	}
	rev := x.revisionFor(sl.ord)
	p := x.r.podRecord(x.key.Namespace, name, "StatefulSet", x.key.Name, rev)
	labels := make(map[string]string, len(p.Labels)+2)
	for k, v := range p.Labels {
		labels[k] = v
	}
	labels[LabelStatefulSetPod] = name
	labels[LabelPodIndex] = strconv.Itoa(sl.ord)
	p.Labels = labels
	// A pod of an old revision copies the spec of a record of it, pin and fresh claims
	// included; the pin is the claims' volumes' node now, which may have been deleted or
	// forgotten since. A claim with no volume gets a new, empty one wherever the pod is
	// placed (FreshClaims): its node must not reopen a directory an earlier incarnation of the
	// claim left there.
	p.Spec.PinnedNode, p.Spec.FreshClaims = "", nil
	for _, t := range x.spec.VolumeClaimTemplates {
		claim := ClaimName(t.Name, name)
		node := x.r.volumeNode(x.key.Namespace, claim)
		switch {
		case node == "":
			p.Spec.FreshClaims = append(p.Spec.FreshClaims, claim)
		case p.Spec.PinnedNode == "":
			p.Spec.PinnedNode = node
		case p.Spec.PinnedNode != node:
			x.r.event(x.key, "Warning", ReasonVolumeConflict, fmt.Sprintf("pod %s: volumes on both %s and %s; pinned to %s", name, p.Spec.PinnedNode, node, p.Spec.PinnedNode))
		}
	}
	x.r.plan.Create = append(x.r.plan.Create, p)
	x.r.event(x.key, "Normal", ReasonCreated, fmt.Sprintf("create pod %s (revision %s)", name, p.TemplateHash))
	sl.rec, sl.fate, sl.pod = &p, fateLive, pod{Pod: &p}
}

func (x *sts) stop(sl *slot, why string) {
	x.r.setDesired(sl.rec, state.DesiredDelete)
	sl.fate = fateTerminating
	x.r.event(x.key, "Normal", ReasonDeleted, fmt.Sprintf("delete pod %s%s", sl.rec.Name, why))
}

// reconcile is one pass of Kubernetes' StatefulSet control loop: replace what is gone, create
// missing ordinals (OrderedReady: one at a time, lowest first, each once the ones below are
// available; Parallel: all at once), remove condemned ordinals (highest first; OrderedReady
// one at a time and only when everything else is available), then update to the new revision
// from the highest ordinal down to the partition, at most maxUnavailable at a time.
func (x *sts) reconcile() {
	blocked := false // OrderedReady: an earlier ordinal is not available, stop here
	for i := range x.slots {
		sl := &x.slots[i]
		switch {
		case sl.rec == nil || sl.fate == fateGone:
			if blocked {
				continue
			}
			x.create(sl)
			// Created or waiting for its claims, the pod is not available yet.
			blocked = !x.parallel
		case sl.fate == fateHeld:
			x.waitForNode(sl.rec)
			blocked = blocked || !x.parallel
		case !sl.healthy():
			blocked = blocked || !x.parallel
		}
	}

	unhealthy := 0
	for i := range x.slots {
		if !x.slots[i].healthy() {
			unhealthy++
		}
	}
	for i := range x.condemned {
		sl := &x.condemned[i]
		switch sl.fate {
		case fateHeld:
			x.waitForNode(sl.rec)
			unhealthy++
			continue
		case fateGone:
			continue
		case fateTerminating:
			unhealthy++
			continue
		}
		if !x.parallel && (unhealthy > 0 || blocked) {
			// OrderedReady removes one at a time, and only when everything else is available.
			break
		}
		x.stop(sl, " (scale down)")
		unhealthy++
	}

	x.rollingUpdate(blocked)
	x.status()
}

// rollingUpdate deletes pods of an old revision, highest ordinal first, down to the partition;
// each comes back (in a later reconcile, once its node reported it stopped) with the update
// revision. At most maxUnavailable pods of the set are unavailable at once.
func (x *sts) rollingUpdate(blocked bool) {
	if x.spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
		return
	}
	if blocked && !x.parallel {
		return
	}
	unavailable := 0
	for i := range x.slots {
		if !x.slots[i].healthy() {
			unavailable++
		}
	}
	for i := range x.condemned {
		if x.condemned[i].fate == fateTerminating || x.condemned[i].fate == fateLive {
			unavailable++
		}
	}
	budget := x.maxUnavailable() - unavailable
	floor := max(x.partition(), 0)
	for i := len(x.slots) - 1; i >= floor && budget > 0; i-- {
		sl := &x.slots[i]
		if sl.rec == nil || sl.fate != fateLive || sl.rec.TemplateHash == x.update.hash {
			continue
		}
		if !sl.healthy() {
			// An outdated pod that is not available anyway: replacing it costs nothing more,
			// but Kubernetes waits for it like any other; so does shoal.
			continue
		}
		x.stop(sl, fmt.Sprintf(" (update to revision %s)", x.update.hash))
		budget--
	}
}

// waitForNode records, once, that a pod lost with its node holds its name until the node is
// declared gone.
func (x *sts) waitForNode(p *state.Pod) {
	msg := fmt.Sprintf("pod %s is on unreachable node %s: it is not replaced until the node is declared gone", p.Name, p.NodeName)
	if e := x.r.lastEvent(x.key); e != nil && e.Reason == ReasonWaitingForNode && e.Message == msg {
		return
	}
	for _, e := range x.r.plan.Events {
		if e.Reason == ReasonWaitingForNode && e.Message == msg {
			return
		}
	}
	x.r.event(x.key, "Warning", ReasonWaitingForNode, msg)
}

func (x *sts) status() {
	st := Status{Key: x.key, Commit: x.r.in.Commit, Revision: x.update.hash, Replicas: x.replicas}
	for _, group := range [][]slot{x.slots, x.condemned} {
		for i := range group {
			sl := &group[i]
			switch sl.fate {
			case fateLive:
				if sl.rec == nil {
					continue
				}
				st.Current++
				if sl.rec.TemplateHash == x.update.hash {
					st.Updated++
				}
				if sl.pod.ready {
					st.Ready++
				}
				if sl.pod.available {
					st.Available++
				}
			case fateTerminating:
				st.Terminating++
			}
		}
	}
	cond := Condition{Type: "Progressing", Status: "True", Reason: ReasonNewRevision, Message: "all pods run revision " + x.update.hash}
	if st.Updated != x.replicas || st.Available != x.replicas || st.Current != x.replicas {
		cond = Condition{Type: "Progressing", Status: "True", Reason: ReasonUpdating,
			Message: fmt.Sprintf("%d of %d pods updated, %d available", st.Updated, x.replicas, st.Available)}
	}
	st.Conditions = []Condition{cond}
	x.r.plan.Status = append(x.r.plan.Status, st)
}

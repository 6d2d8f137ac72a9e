package reconciler

import (
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// Snapshot is the part of the state store the controllers read. *state.Snapshot satisfies it;
// tests may pass any other implementation.
type Snapshot interface {
	Nodes() []*state.Node
	Pods() []*state.Pod
	PodsByOwner(namespace, kind, name string) []*state.Pod
	Events(key string) []*state.Event
}

var (
	_ Snapshot       = (*state.Snapshot)(nil)
	_ VolumeSnapshot = (*state.Snapshot)(nil)
)

// VolumeSnapshot is implemented by a snapshot that knows where local volumes live
// (*state.Snapshot does: the volumes table). A StatefulSet pod is pinned to the node of its
// claims' volumes; with a snapshot without it, only to volumes recorded by the same plan, and
// no volume is ever deleted or forgotten.
type VolumeSnapshot interface {
	// VolumeNode returns the node holding the local volume of claim (the PVC name,
	// "CLAIM-POD", e.g. "data-web-0") in namespace, or "" when no such volume exists.
	VolumeNode(namespace, claim string) string
	// Volumes returns every volume record: owners, retention policies, deletion marks.
	Volumes() []*state.Volume
}

// Input is everything one reconcile reads.
type Input struct {
	// Objects is the decoded, defaulted object set at Commit.
	Objects *manifest.Set
	// Previous is the object set at the commit pinned before Commit, or nil. It is read only
	// for the shoal.dev/prune annotation of objects removed since.
	Previous *manifest.Set
	// Commit is the pinned commit; it is recorded on every pod created and every event.
	Commit string
	// PinnedAt is when Commit was pinned (state.Revision.Time). A rollout's progress deadline
	// never counts from before it; see docs/controllers.md.
	PinnedAt time.Time
	// State is the view of the store the decisions are made from.
	State Snapshot
	// Now is the leader's clock, read once by the caller.
	Now time.Time
	// ConfigHashes maps a ConfigMap or Secret (by Key) to a hash of its content. A template
	// that references one has that hash folded into its template hash, so that changing the
	// content rolls the workload. nil folds nothing in. See TemplateHash.
	ConfigHashes map[manifest.Key]string
	// Local is the time zone of a CronJob without spec.timeZone (Kubernetes uses the
	// controller's local zone); nil means UTC.
	Local *time.Location
	// TimeZone loads a CronJob's spec.timeZone (time.LoadLocation, which reads the zone
	// database: IO, so the caller provides it). nil knows only UTC.
	TimeZone func(name string) (*time.Location, error)
	// Cache, when set, memoises template hashes across reconciles (see Cache).
	Cache *Cache
}

// Validate reports an Input that cannot be reconciled.
func (in *Input) Validate() error {
	switch {
	case in.Objects == nil:
		return fmt.Errorf("reconcile: no object set")
	case in.Commit == "":
		return fmt.Errorf("reconcile: no commit: pods record the commit their template is read from")
	case in.State == nil:
		return fmt.Errorf("reconcile: no state snapshot")
	case in.Now.IsZero():
		return fmt.Errorf("reconcile: zero time")
	}
	return nil
}

// Plan is what one reconcile decided. The zero Plan does nothing.
type Plan struct {
	// Now is the time the plan was made for; Commands stamps it on creates and events.
	Now time.Time
	// Create holds new pod records, complete with owner, template hash, commit and
	// scheduling requirements, desired Run, unbound.
	Create []state.Pod
	// Desired changes the desired state of existing pods (Delete: stop, then remove).
	Desired []state.DesiredChange
	// Delete removes pod records that can no longer run: stopped, lost on a dead node,
	// or never bound.
	Delete []string
	// Events record every decision, with the object key and commit.
	Events []state.Event
	// Volumes records where StatefulSet claims' local volumes live, with their owner and
	// retention policy (see volumes.go).
	Volumes []state.Volume
	// UpdateVolumes keeps the owner, pod, retention policy and prune choice recorded on
	// existing volume records in step with Git; the store never makes a record from one.
	UpdateVolumes []state.Volume
	// ForgetVolumes removes the records of volumes whose node is gone.
	ForgetVolumes []state.VolumeRef
	// DeleteVolumes marks volumes for deletion under their StatefulSet's retention policy;
	// their nodes delete them and remove the records.
	DeleteVolumes []state.VolumeRef
	// Status is the status of every workload reconciled, in object order.
	Status []Status
	// NextAt is the earliest time at which time alone changes a decision; zero when none.
	NextAt time.Time
}

// Empty reports whether the plan changes nothing in the store.
func (p *Plan) Empty() bool {
	return len(p.Create) == 0 && len(p.Desired) == 0 && len(p.Delete) == 0 && len(p.Events) == 0 && len(p.Volumes) == 0 &&
		len(p.UpdateVolumes) == 0 && len(p.ForgetVolumes) == 0 && len(p.DeleteVolumes) == 0
}

// MaxBatch is the most items Commands puts in one command: the state store's figures are for
// batches of 1,000, and much larger ones make its index bookkeeping walk whole trees.
const MaxBatch = 1000

// Commands returns the state commands that carry out the plan, in the order they must be
// applied: volumes first, so that a pod is never recreated before its claims' node is on
// record, nor pinned to a gone node's forgotten volume; then record deletions, so that a
// StatefulSet name freed here can be created again in the same plan; then volume deletions,
// which the store refuses while a record of the claim's pod is live; then desired-state
// changes, creates and events, each split into batches of at most MaxBatch items.
func (p *Plan) Commands() []state.Command {
	var out []state.Command
	for _, b := range Batches(p.Volumes, MaxBatch) {
		out = append(out, &state.RecordVolumes{Volumes: b})
	}
	for _, b := range Batches(p.UpdateVolumes, MaxBatch) {
		out = append(out, &state.RecordVolumes{Updates: b})
	}
	for _, b := range Batches(p.ForgetVolumes, MaxBatch) {
		out = append(out, &state.RemoveVolumes{Volumes: b})
	}
	for _, b := range Batches(p.Delete, MaxBatch) {
		out = append(out, &state.DeletePods{UIDs: b})
	}
	for _, b := range Batches(p.DeleteVolumes, MaxBatch) {
		out = append(out, &state.DeleteVolumes{Volumes: b, Time: p.Now})
	}
	for _, b := range Batches(p.Desired, MaxBatch) {
		out = append(out, &state.SetPodsDesired{Changes: b})
	}
	for _, b := range Batches(p.Create, MaxBatch) {
		out = append(out, &state.CreatePods{Pods: b, Time: p.Now})
	}
	for _, b := range Batches(p.Events, MaxBatch) {
		out = append(out, &state.AppendEvents{Events: b})
	}
	return out
}

// Batches splits xs into consecutive batches of at most n items (n > 0), in order; it returns
// nil for an empty xs. The batches share xs's backing array.
func Batches[T any](xs []T, n int) [][]T {
	var out [][]T
	for i := 0; i < len(xs); i += n {
		out = append(out, xs[i:min(i+n, len(xs))])
	}
	return out
}

// Status is a workload's status as the controller computed it: what `shoal rollout status`
// shows. It is recomputed on every reconcile, so it needs no storage.
type Status struct {
	Key      manifest.Key
	Commit   string
	Revision string // the template hash the workload is moving to
	// Replicas is the desired count; the others count live pods (desired to run, not
	// terminated).
	Replicas, Current, Updated, Ready, Available, Terminating int
	// Succeeded and Failed count a Job run's terminated pods.
	Succeeded, Failed int
	// LastSchedule is a CronJob's newest run.
	LastSchedule time.Time
	Conditions   []Condition
}

// Condition is a Kubernetes-style condition: Progressing, Available, Complete, Failed.
type Condition struct {
	Type, Status, Reason, Message string
}

// Reconcile runs every controller over every workload in the set and returns the plan.
func Reconcile(in Input) (*Plan, error) {
	if err := in.Validate(); err != nil {
		return nil, err
	}
	if in.Cache != nil {
		in.Cache.begin()
		defer in.Cache.end()
	}
	r := &run{in: in, plan: &Plan{Now: in.Now, Status: make([]Status, 0, in.Objects.Len())}, nodes: nodeStatuses(in.State.Nodes()),
		deleted: map[string]bool{}}
	r.loadVolumes()
	for _, o := range in.Objects.Objects() {
		switch obj := o.Obj.(type) {
		case *appsv1.Deployment:
			r.deployment(o, obj)
		case *appsv1.StatefulSet:
			r.statefulSet(o, obj)
		case *appsv1.DaemonSet:
			r.daemonSet(o, obj)
		case *batchv1.Job:
			r.job(o, obj)
		case *batchv1.CronJob:
			r.cronJob(o, obj)
		}
	}
	r.prune()
	r.retainOrphanVolumes()
	return r.plan, nil
}

// run is the working state of one Reconcile.
type run struct {
	in    Input
	plan  *Plan
	nodes map[string]state.NodeStatus
	buf   []byte // scratch for hashing
	// vols is the volume records (volumes.go); deleted, the pod records this plan removes.
	vols    volumes
	deleted map[string]bool
}

func nodeStatuses(nodes []*state.Node) map[string]state.NodeStatus {
	m := make(map[string]state.NodeStatus, len(nodes))
	for _, n := range nodes {
		m[n.Name] = n.Status
	}
	return m
}

// nodeGone reports whether the node named name is gone: declared gone, or without a record.
func (r *run) nodeGone(name string) bool {
	st := r.nodes[name]
	return st == 0 || st == state.NodeGone
}

// wake lowers NextAt to t when t is after now.
func (r *run) wake(t time.Time) {
	if !t.After(r.in.Now) {
		return
	}
	if r.plan.NextAt.IsZero() || t.Before(r.plan.NextAt) {
		r.plan.NextAt = t
	}
}

func (r *run) event(k manifest.Key, typ, reason, msg string) {
	r.plan.Events = append(r.plan.Events, state.Event{
		Key: eventKey(k), Type: typ, Reason: reason, Message: msg, Commit: r.in.Commit, Time: r.in.Now,
	})
}

// eventKey renders an object's key as the events table names objects: "Deployment/ns/name".
func eventKey(k manifest.Key) string {
	if k.Namespace == "" {
		return k.Kind + "/" + k.Name
	}
	return k.Kind + "/" + k.Namespace + "/" + k.Name
}

func (r *run) setDesired(p *state.Pod, d state.Desired) {
	r.plan.Desired = append(r.plan.Desired, state.DesiredChange{UID: p.UID, Desired: d})
}

func (r *run) deleteRecord(p *state.Pod) {
	r.plan.Delete = append(r.plan.Delete, p.UID)
	r.deleted[p.UID] = true
}

// lastEvent returns the newest event of an object, or nil.
func (r *run) lastEvent(k manifest.Key) *state.Event {
	evs := r.in.State.Events(eventKey(k))
	if len(evs) == 0 {
		return nil
	}
	return evs[len(evs)-1]
}

// pod is one owned pod record with what the controllers derive from it.
type pod struct {
	*state.Pod
	ready      bool      // running, ready, on a Ready node
	readySince time.Time // when it became ready, if ready
	available  bool      // ready for at least minReadySeconds
}

// classify reads a pod's health. minReady is the workload's minReadySeconds.
func (r *run) classify(p *state.Pod, minReady time.Duration) pod {
	out := pod{Pod: p}
	if p.Desired != state.DesiredRun || p.NodeName == "" || r.nodes[p.NodeName] != state.NodeReady {
		return out
	}
	if p.Status.Phase != state.PhaseRunning || !p.Status.Ready {
		return out
	}
	out.ready = true
	out.readySince = readySince(p)
	at := out.readySince.Add(minReady)
	if minReady == 0 || !at.After(r.in.Now) {
		out.available = true
	} else {
		r.wake(at)
	}
	return out
}

// readySince is when a ready pod became ready. The state store does not record the ready
// transition yet (docs/controllers.md asks for PodStatus.ReadySince); until it does, the
// latest container start stands in for it, or the pod's start time.
func readySince(p *state.Pod) time.Time {
	t := p.Status.StartTime
	for i := range p.Status.Containers {
		if s := p.Status.Containers[i].StartedAt; s.After(t) {
			t = s
		}
	}
	return t
}

// podFate is what the generic pod housekeeping decided for one record.
type podFate uint8

const (
	fateLive        podFate = iota // desired to run and not terminated: counts toward replicas
	fateTerminating                // told to stop, still running on a node
	fateGone                       // the record is being removed in this plan
	fateHeld                       // terminated or lost, but the record must stay (StatefulSet on an unreachable node)
)

// housekeep decides the fate of a pod record that a controller replaces freely (Deployment
// pods: their names are never reused). A record is removed once nothing can be running it.
func (r *run) housekeep(p *state.Pod) podFate {
	nodeDead := p.NodeName != "" && r.nodeGone(p.NodeName)
	switch {
	case p.Status.Phase.Terminal(), p.NodeName == "" && p.Desired != state.DesiredRun, nodeDead:
		r.deleteRecord(p)
		return fateGone
	case p.Desired != state.DesiredRun:
		return fateTerminating
	}
	return fateLive
}

// sortByCreated orders pods oldest first, ties by name.
func sortByCreated(ps []pod) {
	sort.Slice(ps, func(i, j int) bool {
		if !ps[i].Created.Equal(ps[j].Created) {
			return ps[i].Created.Before(ps[j].Created)
		}
		return ps[i].Name < ps[j].Name
	})
}

package reconciler

import (
	"encoding/json"
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"time"

	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// Job event and condition reasons, as Kubernetes names them.
const (
	ReasonCompleted        = "Completed"
	ReasonBackoffLimit     = "BackoffLimitExceeded"
	ReasonDeadlineExceeded = "DeadlineExceeded"
	ReasonBackoff          = "BackOff"
	LabelJobName           = "batch.kubernetes.io/job-name"
)

// Back-off between failed pods of a Job: 10 s doubled per failure, at most 6 minutes, as
// Kubernetes does.
const (
	backoffBase = 10 * time.Second
	backoffMax  = 6 * time.Minute
)

// RunHash identifies a run of a Job: its whole spec, with the template hashed as TemplateHash
// does (config folded in). A commit that changes anything in the spec starts a new run, which
// is what `shoal plan` announces; a commit that leaves the spec alone never runs it again.
func RunHash(namespace string, spec *batchv1.JobSpec, config map[manifest.Key]string) string {
	return runHash(TemplateHash(namespace, &spec.Template, config), spec)
}

func runHash(templateHash string, spec *batchv1.JobSpec) string {
	h := fnv.New64a()
	h.Write([]byte(templateHash))
	rest := *spec
	rest.Template = corev1.PodTemplateSpec{}
	if err := json.NewEncoder(h).Encode(&rest); err != nil {
		h.Write([]byte(rest.String()))
	}
	return encodeSafe(h.Sum64(), 10)
}

// jobRun is one run of a Job's spec: the pods of a Job at one RunHash, or of one scheduled
// run of a CronJob. It is everything a Job controller needs; the records are its memory.
type jobRun struct {
	r         *run
	key       manifest.Key // the object events are recorded under
	spec      *batchv1.JobSpec
	rev       *revision
	ownerKind string
	prefix    string // pod names: PREFIX-XXXXX, or PREFIX-INDEX-XXXXX when Indexed
	labels    map[string]string
	records   []*state.Pod

	active    []pod
	succeeded []*state.Pod
	failed    []*state.Pod
	start     time.Time
	taken     map[string]bool
}

// jobOutcome is what a run step found.
type jobOutcome struct {
	done, failed bool
	reason, msg  string
	finishedAt   time.Time
}

func (j *jobRun) indexed() bool {
	return ptrOr(j.spec.CompletionMode, batchv1.NonIndexedCompletion) == batchv1.IndexedCompletion
}

// sort out the records: active, succeeded and failed pods of the run. A pod told to stop is
// not a success or a failure: it is removed once stopped.
func (j *jobRun) classify() {
	j.taken = make(map[string]bool, len(j.records))
	for _, p := range j.records {
		j.taken[p.Name] = true
		if j.start.IsZero() || p.Created.Before(j.start) {
			j.start = p.Created
		}
		nodeDead := p.NodeName != "" && j.r.nodeGone(p.NodeName)
		if p.Desired != state.DesiredRun {
			if p.Status.Phase.Terminal() || p.NodeName == "" || nodeDead {
				j.r.deleteRecord(p)
			}
			continue
		}
		switch {
		case p.Status.Phase == state.PhaseSucceeded:
			j.succeeded = append(j.succeeded, p)
		case p.Status.Phase == state.PhaseFailed, p.Status.Phase == state.PhaseLost, nodeDead:
			j.failed = append(j.failed, p)
		default:
			j.active = append(j.active, j.r.classify(p, 0))
		}
	}
}

// finishedAt is when a terminated pod finished. The state store does not record it yet
// (docs/controllers.md asks for ContainerStatus.FinishedAt); until it does, the pod's latest
// start stands in, so back-off and TTL count from a pod's start, not its end.
func finishedAt(p *state.Pod) time.Time {
	t := readySince(p)
	if t.IsZero() {
		t = p.Created
	}
	return t
}

func podIndex(p *state.Pod) int {
	n, err := strconv.Atoi(p.Labels[LabelJobCompletionIdx])
	if err != nil {
		return -1
	}
	return n
}

// step is one pass of Kubernetes' Job controller over the run.
func (j *jobRun) step() jobOutcome {
	j.classify()
	completions := int(ptrOr(j.spec.Completions, -1))
	parallelism := int(ptrOr(j.spec.Parallelism, 1))
	backoffLimit := int(ptrOr(j.spec.BackoffLimit, 6))
	now := j.r.in.Now

	var out jobOutcome
	latest := func(ps []*state.Pod) time.Time {
		var t time.Time
		for _, p := range ps {
			if f := finishedAt(p); f.After(t) {
				t = f
			}
		}
		return t
	}
	doneIdx := map[int]bool{}
	for _, p := range j.succeeded {
		doneIdx[podIndex(p)] = true
	}
	switch {
	case completions < 0:
		out.done = len(j.succeeded) > 0 && len(j.active) == 0
	case j.indexed():
		n := 0
		for i := range completions {
			if doneIdx[i] {
				n++
			}
		}
		out.done = n == completions
	default:
		out.done = len(j.succeeded) >= completions
	}
	if out.done {
		out.reason, out.msg, out.finishedAt = ReasonCompleted, "Job completed", latest(j.succeeded)
	}
	if !out.done && len(j.failed) > backoffLimit {
		out.failed, out.reason = true, ReasonBackoffLimit
		out.msg = fmt.Sprintf("Job has reached the specified backoff limit (%d failed pods, backoffLimit %d)", len(j.failed), backoffLimit)
		out.finishedAt = latest(j.failed)
	}
	if ads := j.spec.ActiveDeadlineSeconds; !out.done && !out.failed && ads != nil && !j.start.IsZero() {
		deadline := j.start.Add(time.Duration(*ads) * time.Second)
		if !now.Before(deadline) {
			out.failed, out.reason, out.finishedAt = true, ReasonDeadlineExceeded, deadline
			out.msg = fmt.Sprintf("Job was active longer than specified deadline (%ds)", *ads)
		} else {
			j.r.wake(deadline)
		}
	}
	if out.done || out.failed {
		for i := range j.active {
			j.r.setDesired(j.active[i].Pod, state.DesiredDelete)
		}
		j.active = nil
		return out
	}

	// How many pods should be running, and at which indexes.
	var pending []int
	want := parallelism
	switch {
	case completions < 0:
		if len(j.succeeded) > 0 {
			want = 0
		}
	case j.indexed():
		running := map[int]bool{}
		for i := range j.active {
			running[podIndex(j.active[i].Pod)] = true
		}
		for i := range completions {
			if !doneIdx[i] && !running[i] {
				pending = append(pending, i)
			}
		}
		want = min(parallelism, len(j.active)+len(pending))
	default:
		want = min(parallelism, completions-len(j.succeeded))
	}
	if n := len(j.active) - want; n > 0 {
		for _, v := range victims(j.active, n) {
			j.r.setDesired(v.Pod, state.DesiredDelete)
		}
		j.active = j.active[n:]
		return out
	}
	n := want - len(j.active)
	if n <= 0 {
		return out
	}
	if f := len(j.failed); f > 0 {
		delay := backoffMax
		if f <= 6 {
			delay = min(backoffBase<<(f-1), backoffMax)
		}
		if at := latest(j.failed).Add(delay); now.Before(at) {
			j.r.wake(at)
			return out
		}
	}
	for i := range n {
		idx := -1
		if j.indexed() {
			idx = pending[i]
		}
		j.create(idx)
	}
	j.r.event(j.key, "Normal", ReasonCreated, fmt.Sprintf("created %s (%d active, %d succeeded, %d failed)", plural(n, "pod"), len(j.active), len(j.succeeded), len(j.failed)))
	return out
}

// create makes one pod of the run; idx is its completion index, or -1. The name depends on
// the run and the pods already recorded, never on the time, so two leaders proposing the same
// run propose the same names and the store keeps only one.
func (j *jobRun) create(idx int) {
	prefix := j.prefix + "-"
	if idx >= 0 {
		prefix += strconv.Itoa(idx) + "-"
	}
	var name string
	for i := 0; ; i++ {
		h := fnv.New64a()
		h.Write([]byte(prefix + j.rev.hash + "/" + strconv.Itoa(i)))
		name = prefix + encodeSafe(h.Sum64(), 5)
		if !j.taken[name] {
			break
		}
	}
	j.taken[name] = true
	p := j.r.podRecord(j.key.Namespace, name, j.ownerKind, j.key.Name, j.rev)
	labels := make(map[string]string, len(p.Labels)+len(j.labels)+1)
	for k, v := range p.Labels {
		labels[k] = v
	}
	for k, v := range j.labels {
		labels[k] = v
	}
	if idx >= 0 {
		// The node sets JOB_COMPLETION_INDEX from this label, as Kubernetes does from the
		// annotation of the same name.
		labels[LabelJobCompletionIdx] = strconv.Itoa(idx)
	}
	p.Labels = labels
	j.r.plan.Create = append(j.r.plan.Create, p)
	j.active = append(j.active, pod{Pod: &p})
}

// expire applies ttlSecondsAfterFinished to a finished run: the records of its pods are
// removed, except the receipts that prove it finished (as many succeeded records as the run
// needed, or one failed record), so that an unchanged Job is never run again. See
// docs/controllers.md for what state needs to drop the receipts too.
func (j *jobRun) expire(out jobOutcome, ttl *int32) {
	if ttl == nil || out.finishedAt.IsZero() {
		return
	}
	at := out.finishedAt.Add(time.Duration(*ttl) * time.Second)
	if j.r.in.Now.Before(at) {
		j.r.wake(at)
		return
	}
	keep := map[*state.Pod]bool{}
	switch {
	case out.failed:
		// The failure is proven by more than backoffLimit failures or by the deadline, which
		// counts from the oldest pod: keep the failed records and the oldest one.
		for _, p := range j.failed {
			keep[p] = true
		}
		if len(j.records) > 0 {
			oldest := j.records[0]
			for _, p := range j.records {
				if p.Created.Before(oldest.Created) {
					oldest = p
				}
			}
			keep[oldest] = true
		}
	case j.indexed():
		seen := map[int]bool{}
		for _, p := range j.succeeded {
			if i := podIndex(p); !seen[i] {
				seen[i] = true
				keep[p] = true
			}
		}
	default:
		n := max(int(ptrOr(j.spec.Completions, 1)), 1)
		ps := append([]*state.Pod(nil), j.succeeded...)
		sort.Slice(ps, func(a, b int) bool { return ps[a].Name < ps[b].Name })
		for _, p := range ps[:min(n, len(ps))] {
			keep[p] = true
		}
	}
	for _, p := range j.records {
		if !keep[p] && p.Desired == state.DesiredRun && (p.Status.Phase.Terminal() || j.r.nodes[p.NodeName] == state.NodeGone) {
			j.r.deleteRecord(p)
		}
	}
}

func (r *run) job(o *manifest.Object, job *batchv1.Job) {
	spec := &job.Spec
	rev := r.newRevision(o, &spec.Template, LabelTemplateHash)
	hash := runHash(rev.hash, spec)
	rev.hash = hash // the pods' TemplateHash names the run
	jr := &jobRun{r: r, key: o.Key, spec: spec, rev: rev, ownerKind: "Job",
		prefix: o.Key.Name, labels: map[string]string{LabelJobName: o.Key.Name}}
	for _, p := range r.in.State.PodsByOwner(o.Key.Namespace, "Job", o.Key.Name) {
		if p.TemplateHash == hash {
			jr.records = append(jr.records, p)
			continue
		}
		// A pod of an earlier run: the spec changed, that run is over.
		if p.Status.Phase.Terminal() || p.NodeName == "" || r.nodeGone(p.NodeName) {
			r.deleteRecord(p)
		} else if p.Desired == state.DesiredRun {
			r.setDesired(p, state.DesiredDelete)
		}
	}
	out := jr.step()
	if out.done || out.failed {
		typ := "Normal"
		if out.failed {
			typ = "Warning"
		}
		msg := out.msg + " (run " + hash + ")"
		if e := r.lastEvent(o.Key); e == nil || e.Reason != out.reason || e.Message != msg {
			r.event(o.Key, typ, out.reason, msg)
		}
		jr.expire(out, spec.TTLSecondsAfterFinished)
	}
	r.plan.Status = append(r.plan.Status, jr.status(hash, out))
}

func (j *jobRun) status(run string, out jobOutcome) Status {
	st := Status{Key: j.key, Commit: j.r.in.Commit, Revision: run, Replicas: int(ptrOr(j.spec.Completions, 1)),
		Current: len(j.active), Succeeded: len(j.succeeded), Failed: len(j.failed)}
	for i := range j.active {
		if j.active[i].ready {
			st.Ready++
		}
	}
	switch {
	case out.done:
		st.Conditions = []Condition{{Type: "Complete", Status: "True", Reason: out.reason, Message: out.msg}}
	case out.failed:
		st.Conditions = []Condition{{Type: "Failed", Status: "True", Reason: out.reason, Message: out.msg}}
	}
	return st
}

func plural(n int, noun string) string {
	if n == 1 {
		return "1 " + noun
	}
	return strconv.Itoa(n) + " " + noun + "s"
}

package reconciler

import (
	"fmt"
	"hash/fnv"
	"sort"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// Deployment condition reasons, as Kubernetes names them.
const (
	ReasonProgressDeadline = "ProgressDeadlineExceeded"
	ReasonNewRevision      = "NewReplicaSetAvailable"
	ReasonUpdating         = "ReplicaSetUpdated"
	ReasonPaused           = "DeploymentPaused"
	ReasonScaled           = "ScalingReplicaSet"
)

// revSet is the live pods of one revision of a Deployment: Kubernetes' ReplicaSet. Its
// replica count is not stored anywhere: it is the number of its live pods.
type revSet struct {
	hash   string
	live   []pod
	newest time.Time // the newest pod's creation time: old revisions scale down oldest first
	isNew  bool
}

func (s *revSet) available() int {
	n := 0
	for i := range s.live {
		if s.live[i].available {
			n++
		}
	}
	return n
}

// deploy is the working state of one Deployment in one reconcile.
type deploy struct {
	r        *run
	key      manifest.Key
	spec     *appsv1.DeploymentSpec
	rev      *revision
	replicas int
	newSet   *revSet
	olds     []*revSet // oldest first
	// records are every pod record of the Deployment, for choosing unused names.
	records     []*state.Pod
	terminating int
	oldTerm     int // terminating pods of old revisions (Recreate waits for them)
	created     map[string]bool
}

func (r *run) deployment(o *manifest.Object, d *appsv1.Deployment) {
	ns, name := o.Key.Namespace, o.Key.Name
	x := &deploy{r: r, key: o.Key, spec: &d.Spec, replicas: int(ptrOr(d.Spec.Replicas, 1))}
	x.rev = r.newRevision(o, &d.Spec.Template, LabelTemplateHash)
	x.newSet = &revSet{hash: x.rev.hash, isNew: true}
	minReady := time.Duration(d.Spec.MinReadySeconds) * time.Second

	x.records = r.in.State.PodsByOwner(ns, "Deployment", name)
	byHash := map[string]*revSet{}
	for _, p := range x.records {
		switch r.housekeep(p) {
		case fateLive:
			s := x.newSet
			if p.TemplateHash != x.rev.hash {
				if s = byHash[p.TemplateHash]; s == nil {
					s = &revSet{hash: p.TemplateHash}
					byHash[p.TemplateHash] = s
					x.olds = append(x.olds, s)
				}
			}
			s.live = append(s.live, r.classify(p, minReady))
			if p.Created.After(s.newest) {
				s.newest = p.Created
			}
		case fateTerminating:
			x.terminating++
			if p.TemplateHash != x.rev.hash {
				x.oldTerm++
			}
		}
	}
	sort.Slice(x.olds, func(i, j int) bool {
		if !x.olds[i].newest.Equal(x.olds[j].newest) {
			return x.olds[i].newest.Before(x.olds[j].newest)
		}
		return x.olds[i].hash < x.olds[j].hash
	})

	switch {
	case d.Spec.Paused:
		x.paused()
	case d.Spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType:
		x.recreate()
	default:
		x.rolling()
	}
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// Fenceposts resolves a rolling update's maxSurge and maxUnavailable against the replica count
// as Kubernetes does: maxSurge rounds up, maxUnavailable rounds down, unset means 25%, and when
// both come to 0 maxUnavailable is 1 so that the rollout can progress. It agrees with plan's
// words for the same Deployment.
func Fenceposts(s appsv1.DeploymentStrategy, replicas int) (surge, unavailable int, err error) {
	def := intstr.FromString("25%")
	ms, mu := &def, &def
	if ru := s.RollingUpdate; ru != nil {
		if ru.MaxSurge != nil {
			ms = ru.MaxSurge
		}
		if ru.MaxUnavailable != nil {
			mu = ru.MaxUnavailable
		}
	}
	if surge, err = intstr.GetScaledValueFromIntOrPercent(ms, replicas, true); err != nil {
		return 0, 0, fmt.Errorf("maxSurge: %w", err)
	}
	if unavailable, err = intstr.GetScaledValueFromIntOrPercent(mu, replicas, false); err != nil {
		return 0, 0, fmt.Errorf("maxUnavailable: %w", err)
	}
	if surge == 0 && unavailable == 0 {
		unavailable = 1
	}
	return surge, unavailable, nil
}

// all returns the live revisions, the new one first when it has pods.
func (x *deploy) all() []*revSet {
	out := make([]*revSet, 0, len(x.olds)+1)
	if len(x.newSet.live) > 0 {
		out = append(out, x.newSet)
	}
	return append(out, x.olds...)
}

func (x *deploy) total() int {
	n := len(x.newSet.live)
	for _, s := range x.olds {
		n += len(s.live)
	}
	return n
}

func (x *deploy) oldCount() int {
	n := 0
	for _, s := range x.olds {
		n += len(s.live)
	}
	return n
}

// remove tells n pods of a revision to stop, chosen as Kubernetes chooses.
func (x *deploy) remove(s *revSet, n int, why string) {
	n = min(n, len(s.live))
	if n <= 0 {
		return
	}
	from := len(s.live)
	vs := victims(s.live, n)
	for i := range vs {
		x.r.setDesired(vs[i].Pod, state.DesiredDelete)
	}
	s.live = s.live[n:]
	x.terminating += n
	if !s.isNew {
		x.oldTerm += n
	}
	x.r.event(x.key, "Normal", ReasonScaled, fmt.Sprintf("Scaled down revision %s from %d to %d%s", s.hash, from, len(s.live), why))
}

// add creates n pods of a revision: the Deployment's template for the new revision, or a copy
// of an existing pod's record for an old one (proportional scaling), so that no old manifest
// is needed.
func (x *deploy) add(s *revSet, n int, why string) {
	if n <= 0 {
		return
	}
	rev := x.rev
	if !s.isNew {
		if len(s.live) == 0 {
			return
		}
		rev = revisionOf(s.live[0].Pod)
	}
	from := len(s.live)
	for range n {
		p := x.r.podRecord(x.key.Namespace, x.podName(s.hash), "Deployment", x.key.Name, rev)
		x.r.plan.Create = append(x.r.plan.Create, p)
		pp := &x.r.plan.Create[len(x.r.plan.Create)-1]
		s.live = append(s.live, pod{Pod: pp})
	}
	x.r.event(x.key, "Normal", ReasonScaled, fmt.Sprintf("Scaled up revision %s from %d to %d%s", s.hash, from, len(s.live), why))
}

// podName returns an unused name "NAME-HASH-XXXXX". The suffix is drawn from a sequence
// seeded by the name, the hash and the time, skipping names any record of the Deployment
// holds: a replayed reconcile proposes the same names, and a name freed by a lost pod is not
// handed to its replacement (a returning node may still run the old one).
func (x *deploy) podName(hash string) string {
	if x.created == nil {
		x.created = make(map[string]bool, len(x.records))
		for _, p := range x.records {
			x.created[p.Name] = true
		}
	}
	prefix := x.key.Name + "-" + hash + "-"
	for i := 0; ; i++ {
		h := fnv.New64a()
		h.Write([]byte(prefix))
		h.Write([]byte(strconv.FormatInt(x.r.in.Now.UnixNano(), 10)))
		h.Write([]byte{'/'})
		h.Write([]byte(strconv.Itoa(i)))
		n := prefix + encodeSafe(h.Sum64(), 5)
		if !x.created[n] {
			x.created[n] = true
			return n
		}
	}
}

// proportional moves the live total by delta, spread over the revisions in proportion to
// their sizes (Kubernetes' proportional scaling): each revision gets its share rounded down,
// and what is left over goes to the largest, the new revision winning ties.
func (x *deploy) proportional(delta int, why string) {
	sets := x.all()
	total := x.total()
	if delta == 0 || total == 0 {
		return
	}
	sort.SliceStable(sets, func(i, j int) bool { return len(sets[i].live) > len(sets[j].live) })
	abs := delta
	if abs < 0 {
		abs = -abs
	}
	shares := make([]int, len(sets))
	left := abs
	for i, s := range sets {
		shares[i] = len(s.live) * abs / total
		left -= shares[i]
	}
	for i := 0; left > 0; i = (i + 1) % len(sets) {
		if delta > 0 || shares[i] < len(sets[i].live) {
			shares[i]++
			left--
		}
	}
	for i, s := range sets {
		if delta > 0 {
			x.add(s, shares[i], why)
		} else {
			x.remove(s, shares[i], why)
		}
	}
}

// shrink removes n pods after a scale-down: the unavailable ones first (old revisions first),
// which costs no availability, then the rest spread proportionally over the revisions.
// Kubernetes spreads the whole scale-down proportionally and can take available pods while
// unavailable ones remain; shrinking this way keeps at least replicas available whenever
// that many were.
func (x *deploy) shrink(n int, why string) {
	for _, s := range append(append([]*revSet(nil), x.olds...), x.newSet) {
		if n <= 0 {
			return
		}
		k := min(n, len(s.live)-s.available())
		x.remove(s, k, why)
		n -= k
	}
	x.proportional(-n, why)
}

// paused: no rollout, no new revision; scaling still happens, proportionally.
func (x *deploy) paused() {
	surge, _, _ := Fenceposts(x.spec.Strategy, x.replicas)
	sets := x.all()
	switch {
	case len(sets) == 0:
	case len(sets) == 1:
		if n := len(sets[0].live) - x.replicas; n > 0 {
			x.remove(sets[0], n, " (scaled while paused)")
		} else {
			x.add(sets[0], -n, " (scaled while paused)")
		}
	case x.total() > x.replicas+surge:
		x.shrink(x.total()-x.replicas-surge, " (proportional scaling while paused)")
	case x.total() < x.replicas:
		x.proportional(x.replicas-x.total(), " (proportional scaling while paused)")
	}
	x.status(Condition{Type: "Progressing", Status: "Unknown", Reason: ReasonPaused, Message: "Deployment is paused"})
}

// recreate: stop every old pod, wait until they have stopped, then start the new revision.
func (x *deploy) recreate() {
	switch {
	case x.oldCount() > 0:
		for _, s := range x.olds {
			x.remove(s, len(s.live), " (recreate)")
		}
	case x.oldTerm > 0:
		// Old pods are still stopping: the new revision never runs beside them.
	default:
		if n := len(x.newSet.live) - x.replicas; n > 0 {
			x.remove(x.newSet, n, "")
		} else {
			x.add(x.newSet, -n, "")
		}
	}
	x.progress(0)
}

// rolling is one step of a RollingUpdate, Kubernetes' rolloutRolling: scale the new revision
// up within maxSurge, then scale old revisions down within maxUnavailable, unhealthy pods
// first. Both happen in one step: the pods created count as unavailable new pods, so the
// scale-down bound is the same as if they did not exist yet.
func (x *deploy) rolling() {
	surge, unavail, err := Fenceposts(x.spec.Strategy, x.replicas)
	if err != nil {
		// manifest.Validate refuses such a Deployment; never act on one that slipped through.
		x.r.event(x.key, "Warning", "InvalidStrategy", err.Error())
		return
	}
	if x.failed() {
		x.halt(surge, unavail)
		return
	}
	maxTotal := x.replicas + surge
	// A scale-down below the pods already running.
	if t := x.total(); t > maxTotal && len(x.olds) > 0 {
		x.shrink(t-maxTotal, " (proportional scaling)")
	}

	if n := len(x.newSet.live) - x.replicas; n > 0 {
		x.remove(x.newSet, n, "")
	} else if up := min(maxTotal-x.total(), x.replicas-len(x.newSet.live)); up > 0 {
		x.add(x.newSet, up, "")
	}

	if oc := x.oldCount(); oc > 0 {
		minAvail := x.replicas - unavail
		newUnavail := len(x.newSet.live) - x.newSet.available()
		maxDown := oc + len(x.newSet.live) - minAvail - newUnavail
		// Unhealthy old pods go first: removing them costs no availability.
		for _, s := range x.olds {
			if maxDown <= 0 {
				break
			}
			k := min(maxDown, len(s.live)-s.available())
			x.remove(s, k, " (unhealthy)")
			maxDown -= k
		}
		avail := x.newSet.available()
		for _, s := range x.olds {
			avail += s.available()
		}
		down := avail - minAvail
		for _, s := range x.olds {
			if down <= 0 {
				break
			}
			k := min(down, len(s.live))
			x.remove(s, k, "")
			down -= k
		}
	}
	x.progress(unavail)
}

// lastProgress is the newest sign of progress of the rollout to the new revision: the commit
// being pinned, a new pod created, a new pod becoming available.
func (x *deploy) lastProgress() time.Time {
	t := x.r.in.PinnedAt
	minReady := time.Duration(x.spec.MinReadySeconds) * time.Second
	for i := range x.newSet.live {
		p := &x.newSet.live[i]
		if p.Created.After(t) {
			t = p.Created
		}
		if p.available {
			if a := p.readySince.Add(minReady); a.After(t) {
				t = a
			}
		}
	}
	return t
}

func (x *deploy) complete() bool {
	return len(x.newSet.live) == x.replicas && x.oldCount() == 0 && x.newSet.available() == x.replicas
}

// deadline is the progress deadline, or 0 when there is none.
func (x *deploy) deadline() time.Duration {
	if x.spec.ProgressDeadlineSeconds == nil || *x.spec.ProgressDeadlineSeconds == 1<<31-1 {
		return 0
	}
	return time.Duration(*x.spec.ProgressDeadlineSeconds) * time.Second
}

// failed reports a rollout stuck past its progress deadline: some pod of the new revision is
// not available and nothing has progressed for progressDeadlineSeconds. A rollout whose new
// pods are all available is never stuck, only waiting for its next step, which this reconcile
// takes. The failure is recorded as an event once per revision and as the Progressing
// condition; halt says what a failed rollout still does.
func (x *deploy) failed() bool {
	dl := x.deadline()
	if dl == 0 || x.complete() || len(x.newSet.live) == x.newSet.available() {
		return false
	}
	last := x.lastProgress()
	if last.IsZero() || x.r.in.Now.Before(last.Add(dl)) {
		return false
	}
	msg := fmt.Sprintf("revision %s has not progressed for %s: rollout halted, old pods keep serving", x.rev.hash, dl)
	if e := x.r.lastEvent(x.key); e == nil || e.Reason != ReasonProgressDeadline || !strings.Contains(e.Message, x.rev.hash) {
		x.r.event(x.key, "Warning", ReasonProgressDeadline, msg)
	}
	x.status(Condition{Type: "Progressing", Status: "False", Reason: ReasonProgressDeadline, Message: msg})
	return true
}

// halt is what a failed rollout does: nothing moves towards the new revision (no new pod is
// added, no old pod removed), but when old pods die, pods of the old revision replace them, so
// that at least replicas − maxUnavailable pods can serve (the new revision's available pods
// and the old revision's live ones), within replicas + maxSurge. The rollout resumes by itself
// when a new pod becomes available, or when a commit changes the template (a revert makes the
// old revision the new one, and its pods are reused).
func (x *deploy) halt(surge, unavail int) {
	if len(x.olds) == 0 {
		return
	}
	serving := x.newSet.available() + x.oldCount()
	n := min(x.replicas-unavail-serving, x.replicas+surge-x.total())
	// The newest old revision is the one the rollout started from.
	x.add(x.olds[len(x.olds)-1], n, " (replacing a dead pod while the rollout is halted)")
}

// progress records the status after a step, and when the rollout is still under way, wakes the
// leader at its deadline.
func (x *deploy) progress(unavail int) {
	if x.complete() {
		x.status(Condition{Type: "Progressing", Status: "True", Reason: ReasonNewRevision, Message: "revision " + x.rev.hash + " is available"})
		return
	}
	if dl := x.deadline(); dl > 0 {
		if last := x.lastProgress(); !last.IsZero() {
			x.r.wake(last.Add(dl))
		}
	}
	x.status(Condition{Type: "Progressing", Status: "True", Reason: ReasonUpdating, Message: "rolling out revision " + x.rev.hash})
}

func (x *deploy) status(progressing Condition) {
	st := Status{Key: x.key, Commit: x.r.in.Commit, Revision: x.rev.hash, Replicas: x.replicas,
		Current: x.total(), Updated: len(x.newSet.live), Terminating: x.terminating}
	for _, s := range x.all() {
		for i := range s.live {
			if s.live[i].ready {
				st.Ready++
			}
			if s.live[i].available {
				st.Available++
			}
		}
	}
	_, unavail, _ := Fenceposts(x.spec.Strategy, x.replicas)
	if x.spec.Strategy.Type == appsv1.RecreateDeploymentStrategyType {
		unavail = 0
	}
	avail := Condition{Type: "Available", Status: "True", Reason: "MinimumReplicasAvailable"}
	if st.Available < x.replicas-unavail {
		avail = Condition{Type: "Available", Status: "False", Reason: "MinimumReplicasUnavailable",
			Message: fmt.Sprintf("%d of at least %d pods available", st.Available, x.replicas-unavail)}
	}
	st.Conditions = []Condition{avail, progressing}
	x.r.plan.Status = append(x.r.plan.Status, st)
}

package reconciler

import (
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// LabelScheduledTime marks every pod of a CronJob run with the run's scheduled time, in Unix
// seconds. The newest one is the CronJob's last schedule time.
const LabelScheduledTime = "shoal.dev/scheduled-time"

// CronJob event reasons, as Kubernetes names them where it has one.
const (
	ReasonMissSchedule     = "MissSchedule"
	ReasonJobAlreadyActive = "JobAlreadyActive"
	ReasonInvalidSchedule  = "InvalidSchedule"
	ReasonSawCompletedJob  = "SawCompletedJob"
	ReasonStopped          = "JobReplaced"
	ReasonTooManyMissed    = "TooManyMissedTimes"
)

// maxMissed bounds the walk over missed schedule times, as Kubernetes' 100 does; beyond it
// only the most recent time is run and a warning recorded.
const maxMissed = 100

type cronRun struct {
	at   time.Time
	job  *jobRun
	out  jobOutcome
	live bool // has pods meant to run
}

func (r *run) cronJob(o *manifest.Object, cj *batchv1.CronJob) {
	spec := &cj.Spec
	jobSpec := &spec.JobTemplate.Spec
	st := Status{Key: o.Key, Commit: r.in.Commit}
	defer func() { r.plan.Status = append(r.plan.Status, st) }()

	// The runs, from the pods' scheduled-time label.
	byTime := map[int64]*cronRun{}
	var runs []*cronRun
	for _, p := range r.in.State.PodsByOwner(o.Key.Namespace, "CronJob", o.Key.Name) {
		sec, err := strconv.ParseInt(p.Labels[LabelScheduledTime], 10, 64)
		if err != nil {
			// Not ours to understand: never leave an unknown pod running.
			if p.Desired == state.DesiredRun {
				r.setDesired(p, state.DesiredDelete)
			} else if p.Status.Phase.Terminal() || p.NodeName == "" {
				r.deleteRecord(p)
			}
			continue
		}
		cr := byTime[sec]
		if cr == nil {
			cr = &cronRun{at: time.Unix(sec, 0).UTC()}
			byTime[sec] = cr
			runs = append(runs, cr)
		}
		if cr.job == nil {
			// A run keeps the template it started with: the node reads it at the pod's commit.
			cr.job = r.cronJobRun(o.Key, jobSpec, cr.at, revisionOf(p))
		}
		cr.job.records = append(cr.job.records, p)
	}
	sort.Slice(runs, func(i, j int) bool { return runs[i].at.Before(runs[j].at) })

	// Every run carries on as a Job would.
	for _, cr := range runs {
		cr.out = cr.job.step()
		cr.live = len(cr.job.active) > 0
		if cr.out.done || cr.out.failed {
			cr.job.expire(cr.out, jobSpec.TTLSecondsAfterFinished)
		}
	}

	var last time.Time
	if len(runs) > 0 {
		last = runs[len(runs)-1].at
		st.LastSchedule = last
	}
	defer r.cronHistory(spec, runs)
	for _, cr := range runs {
		if cr.live {
			st.Current++
		}
	}
	sched, loc, err := r.parseSchedule(spec)
	if err != nil {
		r.cronEvent(o.Key, "Warning", ReasonInvalidSchedule, err.Error())
		return
	}
	now := r.in.Now
	if isTrue(spec.Suspend) {
		return
	}

	// The most recent schedule time due since the last run; without a last run, since the
	// commit was pinned, or since startingDeadlineSeconds ago if that is later.
	earliest := last
	if earliest.IsZero() {
		earliest = r.in.PinnedAt
	}
	if earliest.IsZero() {
		earliest = now.Add(-time.Nanosecond) // no history at all: only a time due right now
	}
	if sd := spec.StartingDeadlineSeconds; sd != nil {
		// Times older than the deadline are missed: say so once, and do not walk them.
		cut := now.Add(-time.Duration(*sd) * time.Second)
		if t := sched.Next(earliest.In(loc)); t.Before(cut) {
			r.cronEvent(o.Key, "Warning", ReasonMissSchedule, fmt.Sprintf("missed the runs from %s on by more than startingDeadlineSeconds (%d)", t.UTC().Format(time.RFC3339), *sd))
			earliest = cut.Add(-time.Nanosecond) // a time exactly at the deadline is still on time
		}
	}
	due, missed := latestDue(sched, earliest.In(loc), now)
	r.wake(sched.Next(now.In(loc)))
	if due.IsZero() {
		return
	}
	if missed > maxMissed {
		r.cronEvent(o.Key, "Warning", ReasonTooManyMissed, fmt.Sprintf("%d schedule times missed; running only the latest, %s", missed, due.UTC().Format(time.RFC3339)))
	}

	var active []*cronRun
	for _, cr := range runs {
		if cr.live {
			active = append(active, cr)
		}
	}
	switch spec.ConcurrencyPolicy {
	case batchv1.ForbidConcurrent:
		if len(active) > 0 {
			// Not recorded as run: tried again while the time is within the deadline.
			r.cronEvent(o.Key, "Normal", ReasonJobAlreadyActive, fmt.Sprintf("the run at %s waits: a run is still active (concurrencyPolicy Forbid)", due.UTC().Format(time.RFC3339)))
			return
		}
	case batchv1.ReplaceConcurrent:
		for _, cr := range active {
			for i := range cr.job.active {
				r.setDesired(cr.job.active[i].Pod, state.DesiredDelete)
			}
			r.event(o.Key, "Normal", ReasonStopped, fmt.Sprintf("stopped the run at %s for the run at %s (concurrencyPolicy Replace)", cr.at.Format(time.RFC3339), due.UTC().Format(time.RFC3339)))
			st.Current--
		}
	}
	rev := r.newRevision(o, &jobSpec.Template, LabelTemplateHash)
	rev.hash = runHash(rev.hash, jobSpec)
	jr := r.cronJobRun(o.Key, jobSpec, due.UTC(), rev)
	jr.step()
	if len(jr.active) > 0 {
		st.Current++
		st.LastSchedule = due.UTC()
	}
}

// latestDue returns the latest schedule time in (from, now] and how many there are. The walk
// is bounded: past 100×maxMissed times it only finds the latest by walking the last day, which
// holds at least one time of any schedule frequent enough to have that many.
func latestDue(sched cron.Schedule, from, now time.Time) (due time.Time, missed int) {
	for t := sched.Next(from); !t.After(now); t = sched.Next(t) {
		due = t
		missed++
		if missed == 100*maxMissed {
			for t := sched.Next(now.Add(-24 * time.Hour)); !t.After(now); t = sched.Next(t) {
				due = t
			}
			return due, missed
		}
	}
	return due, missed
}

// cronJobRun is the jobRun of one scheduled time. Pod names are CRONJOB-MINUTES-XXXXX, the
// minutes since the Unix epoch as Kubernetes names a CronJob's Jobs, so the names of a run
// depend only on its time: two leaders starting the same run propose the same names.
func (r *run) cronJobRun(key manifest.Key, spec *batchv1.JobSpec, at time.Time, rev *revision) *jobRun {
	return &jobRun{r: r, key: key, spec: spec, rev: rev, ownerKind: "CronJob",
		prefix: key.Name + "-" + strconv.FormatInt(at.Unix()/60, 10),
		labels: map[string]string{LabelScheduledTime: strconv.FormatInt(at.Unix(), 10), LabelJobName: key.Name}}
}

// parseSchedule reads the schedule (five fields or a macro, robfig/cron's standard parser) and
// the time zone it is in: spec.timeZone through Input.TimeZone, or Input.Local when unset. A
// TZ= or CRON_TZ= prefix is refused, as Kubernetes refuses it: it would make the parser load
// a zone from disk.
func (r *run) parseSchedule(spec *batchv1.CronJobSpec) (cron.Schedule, *time.Location, error) {
	s := strings.TrimSpace(spec.Schedule)
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		return nil, nil, fmt.Errorf("schedule %q: use spec.timeZone, not a TZ prefix", spec.Schedule)
	}
	sched, err := cron.ParseStandard(s)
	if err != nil {
		return nil, nil, fmt.Errorf("schedule %q: %v", spec.Schedule, err)
	}
	loc := r.in.Local
	if loc == nil {
		loc = time.UTC
	}
	if tz := ptrOr(spec.TimeZone, ""); tz != "" {
		if r.in.TimeZone == nil {
			if tz != "UTC" && tz != "Etc/UTC" {
				return nil, nil, fmt.Errorf("time zone %q: no time zone database was given to the reconciler", tz)
			}
			loc = time.UTC
		} else if loc, err = r.in.TimeZone(tz); err != nil {
			return nil, nil, fmt.Errorf("time zone %q: %v", tz, err)
		}
	}
	return sched, loc, nil
}

// cronHistory removes the records of finished runs beyond the history limits, oldest first.
// The newest run is always kept, whatever the limits: its time is the CronJob's last schedule
// time, which state does not record yet (docs/controllers.md).
func (r *run) cronHistory(spec *batchv1.CronJobSpec, runs []*cronRun) {
	okLimit := int(ptrOr(spec.SuccessfulJobsHistoryLimit, 3))
	failLimit := int(ptrOr(spec.FailedJobsHistoryLimit, 1))
	for i := len(runs) - 2; i >= 0; i-- {
		cr := runs[i]
		switch {
		case cr.out.done && okLimit > 0:
			okLimit--
			continue
		case cr.out.failed && failLimit > 0:
			failLimit--
			continue
		case !cr.out.done && !cr.out.failed:
			continue
		}
		for _, p := range cr.job.records {
			if p.Desired == state.DesiredRun && (p.Status.Phase.Terminal() || p.NodeName == "" || r.nodes[p.NodeName] == state.NodeGone) {
				r.deleteRecord(p)
			}
		}
	}
}

// cronEvent records an event unless it is already the object's latest.
func (r *run) cronEvent(k manifest.Key, typ, reason, msg string) {
	if e := r.lastEvent(k); e != nil && e.Reason == reason && e.Message == msg {
		return
	}
	r.event(k, typ, reason, msg)
}

func isTrue(p *bool) bool { return p != nil && *p }

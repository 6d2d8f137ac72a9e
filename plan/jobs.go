package plan

import (
	"fmt"

	batchv1 "k8s.io/api/batch/v1"

	"github.com/shoal-dev/shoal/manifest"
)

// Job rules. A Job runs once per spec: an unchanged Job is never run again, and a changed spec
// (Kubernetes forbids editing a Job's template) replaces the Job, which starts a new run.
func jobConsequences(pl *planner, c manifest.Change) []string {
	_, h, ok := pair[*batchv1.Job](c)
	if !ok {
		return genericConsequences(pl, c)
	}
	switch c.Op {
	case manifest.Added:
		return []string{"start: " + jobRun(h.Spec)}
	case manifest.Removed:
		return []string{"delete the Job and its pods"}
	}
	return []string{"a new run starts: " + jobRun(h.Spec) + "; the previous run and its pods are deleted"}
}

// jobRun describes a run: "5 completions, 2 at a time".
func jobRun(s batchv1.JobSpec) string {
	par := 1
	if s.Parallelism != nil {
		par = int(*s.Parallelism)
	}
	if par == 0 {
		return "parallelism 0, so no pod runs"
	}
	if s.Completions == nil {
		// A work queue: pods run until one succeeds.
		return fmt.Sprintf("%d at a time until one succeeds", par)
	}
	noun := "completion"
	if s.CompletionMode != nil && *s.CompletionMode == batchv1.IndexedCompletion {
		noun = "indexed completion"
	}
	return fmt.Sprintf("%s, %d at a time", count(int(*s.Completions), noun), min(par, int(*s.Completions)))
}

// CronJob rules: the schedule makes Jobs; a change affects later runs, never running Jobs.
func cronJobConsequences(pl *planner, c manifest.Change) []string {
	b, h, ok := pair[*batchv1.CronJob](c)
	if !ok {
		return genericConsequences(pl, c)
	}
	switch c.Op {
	case manifest.Added:
		if isTrue(h.Spec.Suspend) {
			return []string{"created suspended: no runs until spec.suspend is false"}
		}
		return []string{"runs on schedule " + schedule(h)}
	case manifest.Removed:
		return []string{"no more runs; running Jobs deleted"}
	}
	var out []string
	if b.Spec.Schedule != h.Spec.Schedule {
		out = append(out, fmt.Sprintf("schedule %s → %s", b.Spec.Schedule, h.Spec.Schedule))
	}
	if tz(b) != tz(h) {
		out = append(out, fmt.Sprintf("time zone %s → %s", tz(b), tz(h)))
	}
	switch was, is := isTrue(b.Spec.Suspend), isTrue(h.Spec.Suspend); {
	case !was && is:
		out = append(out, "suspended: no new runs; running Jobs continue")
	case was && !is:
		out = append(out, "resumed: runs on schedule "+schedule(h))
	}
	if b.Spec.ConcurrencyPolicy != h.Spec.ConcurrencyPolicy {
		out = append(out, fmt.Sprintf("concurrencyPolicy %s → %s", b.Spec.ConcurrencyPolicy, h.Spec.ConcurrencyPolicy))
	}
	if changedUnder(c.Fields, "spec.jobTemplate") {
		out = append(out, "later runs use the new Job template; running Jobs are not changed")
	}
	if len(out) == 0 {
		out = append(out, "run settings changed; running Jobs are not changed")
	}
	return out
}

func schedule(c *batchv1.CronJob) string {
	if c.Spec.TimeZone != nil && *c.Spec.TimeZone != "" {
		return c.Spec.Schedule + " (" + *c.Spec.TimeZone + ")"
	}
	return c.Spec.Schedule
}

func tz(c *batchv1.CronJob) string {
	if c.Spec.TimeZone == nil || *c.Spec.TimeZone == "" {
		return "(unset)"
	}
	return *c.Spec.TimeZone
}

func isTrue(p *bool) bool { return p != nil && *p }

package plan

import (
	"fmt"
	"strings"

	"github.com/shoal-dev/shoal/manifest"
)

// Plan is what deploying head does relative to base.
type Plan struct {
	// Changes are the objects that differ, in Key order.
	Changes []Change
	// Errors are head's validation errors plus the changes Kubernetes forbids (a StatefulSet's
	// volumeClaimTemplates, a selector), sorted by file and line. Any error makes the plan
	// invalid: a cluster refuses the commit as a whole.
	Errors  manifest.ErrorList
	Summary Summary
	// Cluster is the scheduling dry run of head against a live cluster (`shoal plan
	// --cluster`, see Simulate), nil when none was asked for.
	Cluster *ClusterPlan
}

// Change is one object's change and what it does.
type Change struct {
	Key manifest.Key
	Op  manifest.Op
	// Source is where the object is defined: in head, or in base when it is removed.
	Source manifest.Source
	// Fields are the differing fields of a Changed object (see manifest.FieldChange).
	Fields []manifest.FieldChange
	// Consequences say in plain words what the cluster will do, most important first. Every
	// change has at least one.
	Consequences []string
}

// Summary counts the changes by op.
type Summary struct {
	Added, Changed, Removed int
}

// Total is the number of changed objects.
func (s Summary) Total() int { return s.Added + s.Changed + s.Removed }

// Valid reports whether head has no error, so a cluster would accept it.
func (p *Plan) Valid() bool { return len(p.Errors) == 0 }

// ExitCode is `shoal plan`'s exit status: 1 when head is invalid (this wins over the rest), 3
// when a dry run against a cluster leaves a pod that fits on no node, 2 when head changes
// something, 0 when it changes nothing.
func (p *Plan) ExitCode() int {
	switch {
	case !p.Valid():
		return 1
	case p.Cluster.UnfitPods() > 0:
		return 3
	case len(p.Changes) > 0:
		return 2
	}
	return 0
}

// Compute diffs base against head and says what every change does. headErrs are head's
// validation errors (from Load and Validate); they are copied into the plan, not modified.
// Either set may be nil (empty). When head is invalid, its valid part is still planned so that
// the reviewer sees everything at once, and the plan says the commit would be refused. An
// object of base that is missing from head because its document there did not decode is left
// out rather than shown as removed: what the commit does to it is unknown until it is fixed.
func Compute(base, head *manifest.Set, headErrs manifest.ErrorList) *Plan {
	pl := &planner{base: base, head: head}
	p := &Plan{}
	// An object whose HEAD document failed to decode is missing from head but not removed by
	// the commit, and saying "delete 3 pods" would be wrong: such an object is left out when an
	// error names it, or when its file has an error that names no object (a YAML syntax error
	// loses the whole file).
	brokenKeys, brokenFiles := map[manifest.Key]bool{}, map[string]bool{}
	for _, e := range headErrs {
		if e.Object.IsZero() {
			brokenFiles[e.Source.File] = true
		} else if head.Get(e.Object) == nil {
			brokenKeys[e.Object] = true
		}
	}
	for _, c := range manifest.Diff(base, head) {
		if c.Op == manifest.Removed && (brokenKeys[c.Key] || brokenFiles[c.Base.Source.File]) {
			continue
		}
		src := c.Base
		if c.Head != nil {
			src = c.Head
		}
		p.Changes = append(p.Changes, Change{
			Key:          c.Key,
			Op:           c.Op,
			Source:       src.Source,
			Fields:       c.Fields,
			Consequences: pl.consequences(c),
		})
		switch c.Op {
		case manifest.Added:
			p.Summary.Added++
		case manifest.Changed:
			p.Summary.Changed++
		case manifest.Removed:
			p.Summary.Removed++
		}
	}
	p.Errors = append(append(manifest.ErrorList{}, headErrs...), pl.errs...)
	p.Errors.Sort()
	if len(p.Errors) == 0 {
		p.Errors = nil
	}
	return p
}

// planner carries one Compute: both sets, the errors the plan itself finds, and the index of
// ConfigMap/Secret users in head, built on first need.
type planner struct {
	base, head *manifest.Set
	errs       manifest.ErrorList
	users      map[manifest.Key][]configUser
}

// consequenceFunc says what one change of one kind does. c.Op decides which of c.Base/c.Head is
// set; for Changed, the metadata-only case never reaches it.
type consequenceFunc func(pl *planner, c manifest.Change) []string

// rulesFor returns a kind's rules; a kind without rules gets generic words.
func rulesFor(kind string) consequenceFunc {
	switch kind {
	case "Deployment":
		return deploymentConsequences
	case "StatefulSet":
		return statefulSetConsequences
	case "DaemonSet":
		return daemonSetConsequences
	case "Pod":
		return podConsequences
	case "Job":
		return jobConsequences
	case "CronJob":
		return cronJobConsequences
	case "Service":
		return serviceConsequences
	case "ConfigMap", "Secret":
		return configConsequences
	case "Namespace":
		return namespaceConsequences
	case "HorizontalPodAutoscaler":
		return hpaConsequences
	}
	return genericConsequences
}

func (pl *planner) consequences(c manifest.Change) []string {
	if c.Op == manifest.Removed && annotation(c.Base, manifest.AnnotationPrune) == manifest.PruneDisabled {
		if ns := pl.namespaceRemoved(c.Key.Namespace); ns != nil {
			return []string{"deleted with " + ns.Key.String() + ", despite prune disabled"}
		}
		return []string{"kept: prune disabled; shoal stops managing it"}
	}
	var out []string
	if c.Op == manifest.Changed {
		out = annotationConsequences(c)
		if onlyUnder(c.Fields, "metadata") {
			if len(out) == 0 {
				out = append(out, "labels/annotations only: nothing restarts")
			}
			return out
		}
	}
	out = append(rulesFor(c.Key.Kind)(pl, c), out...)
	if len(out) == 0 {
		// Every kind function covers its kind's fields; this is the fallback for a field it
		// does not know, so a change is never shown without words.
		out = append(out, "settings changed")
	}
	return out
}

// namespaceRemoved returns the Namespace ns when this commit deletes it (it is in base, not in
// head, and its own pruning is not disabled), or nil.
func (pl *planner) namespaceRemoved(ns string) *manifest.Object {
	if ns == "" {
		return nil
	}
	k := manifest.Key{Kind: "Namespace", Name: ns}
	o := pl.base.Get(k)
	if o == nil || pl.head.Get(k) != nil || annotation(o, manifest.AnnotationPrune) == manifest.PruneDisabled {
		return nil
	}
	return o
}

func genericConsequences(_ *planner, c manifest.Change) []string {
	switch c.Op {
	case manifest.Added:
		return []string{"create it"}
	case manifest.Removed:
		return []string{"delete it"}
	}
	return []string{"update it"}
}

// annotationConsequences explains changes to shoal's own annotations.
func annotationConsequences(c manifest.Change) []string {
	var out []string
	was, is := annotation(c.Base, manifest.AnnotationPrune) == manifest.PruneDisabled, annotation(c.Head, manifest.AnnotationPrune) == manifest.PruneDisabled
	switch {
	case !was && is:
		out = append(out, "prune disabled: if it is removed from Git, shoal leaves it running")
	case was && !is:
		out = append(out, "prune enabled: if it is removed from Git, shoal deletes it")
	}
	was, is = optedOut(c.Base), optedOut(c.Head)
	switch {
	case !was && is:
		out = append(out, "no longer rolls when a ConfigMap or Secret it uses changes")
	case was && !is:
		out = append(out, "rolls again when a ConfigMap or Secret it uses changes")
	}
	return out
}

func annotation(o *manifest.Object, name string) string {
	if o == nil {
		return ""
	}
	return o.Meta().GetAnnotations()[name]
}

func optedOut(o *manifest.Object) bool {
	return annotation(o, manifest.AnnotationRolloutOnConfigChange) == "false"
}

// errorf records a change Kubernetes forbids as an error of the plan, at the field in head.
func (pl *planner) errorf(o *manifest.Object, field, format string, args ...any) string {
	msg := fmt.Sprintf(format, args...)
	pl.errs = append(pl.errs, &manifest.Error{
		Source:  o.At(field),
		Object:  o.Key,
		Field:   field,
		Message: msg,
	})
	return "error: " + field + ": " + msg
}

// immutable reports every changed field among paths as a plan error and returns the words for
// the change's consequences.
func (pl *planner) immutable(c manifest.Change, paths ...string) []string {
	var out []string
	for _, p := range paths {
		if changedUnder(c.Fields, p) {
			out = append(out, pl.errorf(c.Head, p, "cannot change; delete and recreate the %s", c.Key.Kind))
		}
	}
	return out
}

// under reports whether path is prefix itself or a field below it.
func under(path, prefix string) bool {
	if !strings.HasPrefix(path, prefix) {
		return false
	}
	rest := path[len(prefix):]
	return rest == "" || rest[0] == '.' || rest[0] == '['
}

// changedUnder reports whether any changed field is at or below one of prefixes.
func changedUnder(fields []manifest.FieldChange, prefixes ...string) bool {
	for _, f := range fields {
		for _, p := range prefixes {
			if under(f.Path, p) {
				return true
			}
		}
	}
	return false
}

// onlyUnder reports whether every changed field is at or below one of prefixes.
func onlyUnder(fields []manifest.FieldChange, prefixes ...string) bool {
	for _, f := range fields {
		ok := false
		for _, p := range prefixes {
			if under(f.Path, p) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

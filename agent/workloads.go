package agent

import (
	"context"
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/state"
)

// The workload controllers (Deployment, StatefulSet, DaemonSet, Job,
// CronJob and prune) are the reconciler package's; this file runs them as
// a leader loop and turns a controller-owned pod record back into the Pod
// its node runs. Bare pods (no owner kind) stay with the bare-Pod
// controller (barepods.go): it ignores owned records and the reconciler
// ignores unowned ones, so the two never act on the same pod.

// workloads is what the workload loop keeps while this node leads: the
// object sets it reconciles from (a Set is immutable, so one load per
// commit serves every step) and the template-hash cache.
type workloads struct {
	cache  reconciler.Cache
	commit string
	set    *manifest.Set
	prev   string // the commit pinned before commit, "" when none
	prevS  *manifest.Set
	// config is the content hashes of the ConfigMaps and Secrets the
	// templates at commit reference (confighash.go).
	config map[manifest.Key]string
}

// workloadsStep runs the reconciler on the pinned commit and applies its
// plan, in the order Plan.Commands gives. It asks to run again at the
// plan's NextAt; changes of pods, nodes and revisions wake it sooner.
func (a *Agent) workloadsStep(w *workloads) func(context.Context, *state.Snapshot) (time.Duration, error) {
	return func(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
		pinned := v.PinnedRevision()
		if pinned == nil {
			return 0, nil
		}
		if w.commit != pinned.Commit {
			l, err := a.src.load(ctx, pinned.Commit)
			if err != nil {
				return 0, err
			}
			if l.set == nil {
				return 0, fmt.Errorf("pinned commit %s holds no objects", pinned.Commit)
			}
			config, err := a.configHashes(ctx, pinned.Commit, l.set)
			if err != nil {
				return 0, err
			}
			w.commit, w.set, w.config = pinned.Commit, l.set, config
		}
		prev := previousPinned(v.Revisions(), pinned)
		if prev != w.prev {
			w.prev, w.prevS = prev, nil
			if prev != "" {
				// Only the prune annotation is read from it, and the pods of
				// an annotated object carry it as a label too: a commit that
				// cannot be read (gone from the remote) costs nothing else.
				if l, err := a.src.load(ctx, prev); err != nil {
					a.log.Warn("previous pinned commit unavailable: prune reads the pods' labels only", "commit", prev, "err", err)
				} else {
					w.prevS = l.set
				}
			}
		}
		now := a.now().UTC()
		plan, err := reconciler.Reconcile(reconciler.Input{
			Objects:  w.set,
			Previous: w.prevS,
			Commit:   pinned.Commit,
			PinnedAt: pinned.Time,
			State:    v,
			Now:      now,
			TimeZone: time.LoadLocation,
			Cache:    &w.cache,
			// Every node computes the same hashes: see confighash.go.
			ConfigHashes: w.config,
		})
		if err != nil {
			return 0, err
		}
		for _, c := range plan.Commands() {
			res, err := a.apply(ctx, c)
			if err != nil {
				return 0, err
			}
			for _, r := range res.Rejected {
				// A view older than the store (a name taken since): the
				// next step decides again.
				a.log.Info("workload command item rejected", "command", fmt.Sprintf("%T", c), "uid", r.UID, "reason", r.Reason)
			}
		}
		for _, e := range plan.Events {
			a.log.Info("workload event", "object", e.Key, "reason", e.Reason, "message", e.Message, "commit", e.Commit)
		}
		if plan.NextAt.IsZero() {
			return 0, nil
		}
		return max(plan.NextAt.Sub(now), time.Millisecond), nil
	}
}

// previousPinned returns the commit pinned before pinned in the revision
// history (refusals skipped), or "" when the history holds none.
func previousPinned(revs []*state.Revision, pinned *state.Revision) string {
	revs = append([]*state.Revision(nil), revs...)
	sort.Slice(revs, func(i, j int) bool { return revs[i].Seq > revs[j].Seq })
	for _, r := range revs {
		if r.Seq < pinned.Seq && !r.Refused && r.Commit != pinned.Commit {
			return r.Commit
		}
	}
	return ""
}

// ownerKinds are the controllers whose pods the node materialises from
// the owner's template.
var ownerKinds = map[string]bool{"Deployment": true, "StatefulSet": true, "DaemonSet": true, "Job": true, "CronJob": true}

// podManifest returns the Pod a record runs, from the object set at the
// record's commit: a bare pod's own manifest, or a controller-owned pod
// built from its owner's template. It is a lookup, not a decision: every
// choice (name, labels, revision, index) is already in the record.
func podManifest(set *manifest.Set, rec *state.Pod) (*corev1.Pod, error) {
	if set == nil {
		return nil, fmt.Errorf("commit %s holds no objects", rec.Commit)
	}
	if rec.Owner.Kind == "" {
		o := set.Get(manifest.Key{Kind: "Pod", Namespace: rec.Namespace, Name: rec.Name})
		if o == nil {
			return nil, fmt.Errorf("pod %s/%s is not in commit %s", rec.Namespace, rec.Name, rec.Commit)
		}
		p, ok := o.Obj.(*corev1.Pod)
		if !ok {
			return nil, fmt.Errorf("pod %s/%s at %s decoded as %T", rec.Namespace, rec.Name, rec.Commit, o.Obj)
		}
		return p, nil
	}
	if !ownerKinds[rec.Owner.Kind] {
		return nil, fmt.Errorf("pod %s/%s: unknown owner kind %q", rec.Namespace, rec.Name, rec.Owner.Kind)
	}
	key := manifest.Key{Kind: rec.Owner.Kind, Namespace: rec.Namespace, Name: rec.Owner.Name}
	o := set.Get(key)
	if o == nil {
		return nil, fmt.Errorf("pod %s/%s: owner %s/%s/%s is not in commit %s", rec.Namespace, rec.Name, key.Kind, key.Namespace, key.Name, rec.Commit)
	}
	t, err := podTemplate(o)
	if err != nil {
		return nil, fmt.Errorf("pod %s/%s: %w", rec.Namespace, rec.Name, err)
	}
	p := templatePod(t, rec.Namespace, rec.Name, rec.UID, rec.Labels)
	markFreshClaims(p, rec) // localvolumes.go
	switch obj := o.Obj.(type) {
	case *appsv1.StatefulSet:
		p.Spec.Hostname = rec.Name
		p.Spec.Subdomain = obj.Spec.ServiceName
		claimVolumes(&p.Spec, obj, rec.Name)
	case *batchv1.Job:
		if obj.Spec.CompletionMode != nil && *obj.Spec.CompletionMode == batchv1.IndexedCompletion {
			idx, ok := rec.Labels[reconciler.LabelJobCompletionIdx]
			if !ok {
				return nil, fmt.Errorf("pod %s/%s of Indexed Job %s has no %s label", rec.Namespace, rec.Name, obj.Name, reconciler.LabelJobCompletionIdx)
			}
			addEnv(&p.Spec, "JOB_COMPLETION_INDEX", idx)
		}
	}
	return p, nil
}

// claimVolumes gives a StatefulSet pod the volume of each of its claims,
// as Kubernetes' StatefulSet controller does: the volume named after the
// claim template (replacing one the template declares under that name)
// is the node-local volume of claim TEMPLATE-POD (reconciler.ClaimName),
// which outlives the pod on the node that holds it.
func claimVolumes(s *corev1.PodSpec, sts *appsv1.StatefulSet, pod string) {
	for _, t := range sts.Spec.VolumeClaimTemplates {
		v := corev1.Volume{Name: t.Name, VolumeSource: corev1.VolumeSource{
			PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: reconciler.ClaimName(t.Name, pod)},
		}}
		replaced := false
		for i := range s.Volumes {
			if s.Volumes[i].Name == t.Name {
				s.Volumes[i], replaced = v, true
			}
		}
		if !replaced {
			s.Volumes = append(s.Volumes, v)
		}
	}
}

// podTemplate returns the pod template of a workload object (a CronJob's
// is its job template's).
func podTemplate(o *manifest.Object) (*corev1.PodTemplateSpec, error) {
	if t := manifest.PodTemplate(o); t != nil {
		return t, nil
	}
	return nil, fmt.Errorf("%s/%s/%s decoded as %T, which has no pod template", o.Key.Kind, o.Key.Namespace, o.Key.Name, o.Obj)
}

// templatePod builds a Pod from a template: identity and labels from the
// record, annotations and spec from the template (copied: the set is
// shared).
func templatePod(t *corev1.PodTemplateSpec, namespace, name, uid string, labels map[string]string) *corev1.Pod {
	p := &corev1.Pod{
		TypeMeta: metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{
			Name:        name,
			Namespace:   namespace,
			UID:         types.UID(uid),
			Labels:      make(map[string]string, len(labels)),
			Annotations: make(map[string]string, len(t.Annotations)),
		},
		Spec: *t.Spec.DeepCopy(),
	}
	for k, v := range labels {
		p.Labels[k] = v
	}
	for k, v := range t.Annotations {
		p.Annotations[k] = v
	}
	return p
}

// addEnv sets name=value in every container and init container, as the
// Job controller does for JOB_COMPLETION_INDEX.
func addEnv(s *corev1.PodSpec, name, value string) {
	set := func(cs []corev1.Container) {
		for i := range cs {
			cs[i].Env = append(cs[i].Env, corev1.EnvVar{Name: name, Value: value})
		}
	}
	set(s.InitContainers)
	set(s.Containers)
}

package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/url"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/state"
)

// RolloutStatus is the answer to /v1/rollout: how far a Deployment,
// StatefulSet or DaemonSet is from running the pinned commit's template.
type RolloutStatus struct {
	Kind      string `json:"kind"`
	Namespace string `json:"namespace"`
	Name      string `json:"name"`
	// Commit is the pinned commit the template comes from.
	Commit string `json:"commit"`
	// Revision is the pod-template hash the pods should carry.
	Revision string `json:"revision"`
	// Desired is spec.replicas, or for a DaemonSet the pods it runs.
	Desired int `json:"desired"`
	// Updated counts the pods of Revision that should run, Ready those of
	// them that are ready, Old the pods of other revisions that should run,
	// Stopping the pods being stopped.
	Updated  int `json:"updated"`
	Ready    int `json:"ready"`
	Old      int `json:"old"`
	Stopping int `json:"stopping"`
	// Complete: every desired pod is of Revision and ready, and none of
	// another revision should run.
	Complete bool `json:"complete"`
	// Events are the workload's recorded events, oldest first.
	Events []*state.Event `json:"events,omitempty"`
}

// Message says where the rollout stands, as kubectl rollout status does.
func (s RolloutStatus) Message() string {
	switch {
	case s.Complete:
		return fmt.Sprintf("%s %q successfully rolled out (%d/%d ready at %s)", kindLower(s.Kind), s.Name, s.Ready, s.Desired, shortCommit(s.Commit))
	case s.Updated < s.Desired:
		return fmt.Sprintf("Waiting for %s %q rollout to finish: %d out of %d new replicas have been updated...", kindLower(s.Kind), s.Name, s.Updated, s.Desired)
	case s.Old > 0:
		return fmt.Sprintf("Waiting for %s %q rollout to finish: %d old replicas are pending termination...", kindLower(s.Kind), s.Name, s.Old)
	default:
		return fmt.Sprintf("Waiting for %s %q rollout to finish: %d of %d updated replicas are available...", kindLower(s.Kind), s.Name, s.Ready, s.Desired)
	}
}

func kindLower(k string) string {
	switch k {
	case "Deployment":
		return "deployment"
	case "StatefulSet":
		return "statefulset"
	case "DaemonSet":
		return "daemon set"
	}
	return k
}

func shortCommit(c string) string {
	if len(c) > 12 {
		return c[:12]
	}
	return c
}

// rollout computes the status of one workload from this node's replica
// and its clone of the pinned commit.
func (a *Agent) rollout(ctx context.Context, kind, namespace, name string) (RolloutStatus, int, error) {
	st := RolloutStatus{Kind: kind, Namespace: namespace, Name: name}
	v := a.store.Snapshot()
	pinned := v.PinnedRevision()
	if pinned == nil {
		return st, http.StatusServiceUnavailable, fmt.Errorf("no commit pinned yet")
	}
	st.Commit = pinned.Commit
	l, err := a.src.load(ctx, pinned.Commit)
	if err != nil {
		return st, http.StatusServiceUnavailable, err
	}
	o := l.set.Get(manifest.Key{Kind: kind, Namespace: namespace, Name: name})
	if o == nil {
		return st, http.StatusNotFound, fmt.Errorf("no %s %s/%s at the pinned commit %s", kind, namespace, name, shortCommit(pinned.Commit))
	}
	var tmpl *corev1.PodTemplateSpec
	st.Desired = -1
	switch w := o.Obj.(type) {
	case *appsv1.Deployment:
		tmpl, st.Desired = &w.Spec.Template, replicasOf(w.Spec.Replicas)
	case *appsv1.StatefulSet:
		tmpl, st.Desired = &w.Spec.Template, replicasOf(w.Spec.Replicas)
	case *appsv1.DaemonSet:
		tmpl = &w.Spec.Template
	default:
		return st, http.StatusBadRequest, fmt.Errorf("%s has no rollout: use Deployment, StatefulSet or DaemonSet", kind)
	}
	// The same hash the leader's controllers give the pods (config.go:
	// with the content hashes of the ConfigMaps and Secrets it uses).
	config, err := a.configHashes(ctx, pinned.Commit, l.set)
	if err != nil {
		return st, http.StatusServiceUnavailable, err
	}
	st.Revision = reconciler.TemplateHash(namespace, tmpl, config)
	for _, p := range v.PodsByOwner(namespace, kind, name) {
		switch {
		case p.Desired != state.DesiredRun:
			if !p.Status.Phase.Terminal() {
				st.Stopping++
			}
		case p.Status.Phase == state.PhaseLost || p.Status.Phase.Terminal():
		case p.TemplateHash == st.Revision:
			st.Updated++
			if p.Status.Ready {
				st.Ready++
			}
		default:
			st.Old++
		}
	}
	if st.Desired < 0 { // a DaemonSet: one pod per eligible node
		st.Desired = st.Updated + st.Old
	}
	st.Complete = st.Updated == st.Desired && st.Ready == st.Desired && st.Old == 0
	st.Events = v.Events(kind + "/" + namespace + "/" + name)
	return st, http.StatusOK, nil
}

func replicasOf(r *int32) int {
	if r == nil {
		return 1
	}
	return int(*r)
}

func (a *Agent) rolloutHandler(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	st, code, err := a.rollout(r.Context(), q.Get("kind"), q.Get("namespace"), q.Get("name"))
	if err != nil {
		http.Error(w, err.Error(), code)
		return
	}
	writeJSON(w, st)
}

// Rollout returns the rollout status of a Deployment, StatefulSet or
// DaemonSet.
func (c *Client) Rollout(ctx context.Context, kind, namespace, name string) (RolloutStatus, error) {
	var out RolloutStatus
	return out, c.get(ctx, "/v1/rollout", url.Values{"kind": {kind}, "namespace": {namespace}, "name": {name}}, &out)
}

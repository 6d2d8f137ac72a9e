package agent

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"sort"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// This file is the bare-Pod controller. The reconciler's controllers own the
// pods with an owner kind (workloads.go) and leave bare pods to the agent;
// this one handles only pods with no owner (Owner.Kind == ""): one record
// per `v1 Pod` at the pinned commit. Like a Kubernetes bare pod, a pod that
// was lost or finished is not replaced.

// BarePodPlan is what the bare-Pod controller wants written.
type BarePodPlan struct {
	// Create: records for Pods at the pinned commit that have none.
	Create []state.Pod
	// Delete: pods to stop and delete (gone from Git, or changed: a Pod's
	// spec cannot be updated in place, so it is replaced).
	Delete []string
	// Purge: records to remove now: deleting pods that never ran, have
	// stopped, or whose node is gone.
	Purge []string
}

// Empty reports whether the plan writes nothing.
func (p BarePodPlan) Empty() bool { return len(p.Create)+len(p.Delete)+len(p.Purge) == 0 }

// Commands are the plan's writes in the order the leader applies them:
// purges, deletions, then creations, each in batches.
func (p BarePodPlan) Commands(now time.Time) []state.Command {
	var out []state.Command
	for _, uids := range chunks(p.Purge) {
		out = append(out, &state.DeletePods{UIDs: uids})
	}
	for _, uids := range chunks(p.Delete) {
		ch := make([]state.DesiredChange, len(uids))
		for i, u := range uids {
			ch[i] = state.DesiredChange{UID: u, Desired: state.DesiredDelete}
		}
		out = append(out, &state.SetPodsDesired{Changes: ch})
	}
	for _, pods := range chunks(p.Create) {
		out = append(out, &state.CreatePods{Pods: pods, Time: now})
	}
	return out
}

// BarePodCommands is the bare-Pod controller on the Pods of set at commit,
// as the commands the leader writes (what `shoal plan --cluster` replays).
func BarePodCommands(set *manifest.Set, commit string, v *state.Snapshot, now time.Time) []state.Command {
	return PlanBarePods(barePods(set), commit, v, now).Commands(now)
}

// barePods returns the Pod objects of a set, in key order.
func barePods(set *manifest.Set) []*corev1.Pod {
	var out []*corev1.Pod
	for _, o := range set.Objects() {
		if p, ok := o.Obj.(*corev1.Pod); ok && o.Key.Kind == "Pod" {
			out = append(out, p)
		}
	}
	return out
}

// PlanBarePods compares the Pods at commit with the bare pod records of the
// snapshot. It is a pure function: same inputs, same plan.
func PlanBarePods(pods []*corev1.Pod, commit string, v *state.Snapshot, now time.Time) BarePodPlan {
	type want struct {
		pod  *corev1.Pod
		hash string
	}
	wanted := map[string]want{}
	for _, p := range pods {
		wanted[p.Namespace+"/"+p.Name] = want{p, podTemplateHash(p)}
	}
	var plan BarePodPlan
	named := map[string]bool{}
	for _, rec := range v.Pods() {
		if rec.Owner.Kind != "" {
			continue
		}
		named[rec.Key()] = true
		w, inGit := wanted[rec.Key()]
		unbound := rec.NodeName == ""
		if !unbound {
			if n := v.Node(rec.NodeName); n == nil || n.Status == state.NodeGone {
				unbound = true // nobody will report it stopped
			}
		}
		switch {
		case rec.Desired == state.DesiredDelete:
			if unbound || rec.Status.Phase.Terminal() {
				plan.Purge = append(plan.Purge, rec.UID)
			}
		case inGit && w.hash == rec.TemplateHash:
			// Up to date (also when lost or finished: bare pods are not
			// replaced).
		case unbound || rec.Status.Phase.Terminal():
			plan.Purge = append(plan.Purge, rec.UID)
		default:
			plan.Delete = append(plan.Delete, rec.UID)
		}
	}
	keys := make([]string, 0, len(wanted))
	for k := range wanted {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if named[k] {
			continue // created, or a changed one is being deleted first
		}
		w := wanted[k]
		plan.Create = append(plan.Create, podRecord(w.pod, w.hash, commit, now))
	}
	return plan
}

// podTemplateHash identifies what a Pod runs: its labels, annotations and
// spec. A changed hash means the pod is replaced.
func podTemplateHash(p *corev1.Pod) string {
	b, err := json.Marshal(struct {
		Labels      map[string]string `json:"l,omitempty"`
		Annotations map[string]string `json:"a,omitempty"`
		Spec        corev1.PodSpec    `json:"s"`
	}{p.Labels, p.Annotations, p.Spec})
	if err != nil {
		// corev1.PodSpec always marshals; keep a distinct hash anyway.
		b = []byte(err.Error())
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}

// podUID derives a pod's UID from what created it, so a leader that
// re-plans after a crash proposes the same record, never a second one.
func podUID(ns, name, hash, commit string) string {
	sum := sha256.Sum256([]byte(ns + "/" + name + "@" + commit + "#" + hash))
	h := hex.EncodeToString(sum[:16])
	return fmt.Sprintf("%s-%s-%s-%s-%s", h[0:8], h[8:12], h[12:16], h[16:20], h[20:32])
}

// podRecord is the state record of a new pod: identity, where it came from
// and what the scheduler needs.
func podRecord(p *corev1.Pod, hash, commit string, now time.Time) state.Pod {
	return state.Pod{
		UID:          podUID(p.Namespace, p.Name, hash, commit),
		Namespace:    p.Namespace,
		Name:         p.Name,
		Labels:       p.Labels,
		TemplateHash: hash,
		Commit:       commit,
		Created:      now,
		Spec:         schedulingSpec(&p.Spec),
		Desired:      state.DesiredRun,
	}
}

// schedulingSpec extracts what placement reads from a pod spec.
func schedulingSpec(s *corev1.PodSpec) state.PodSpec {
	var out state.PodSpec
	for _, c := range s.Containers {
		if q, ok := c.Resources.Requests[corev1.ResourceCPU]; ok {
			out.Requests.MilliCPU += q.MilliValue()
		}
		if q, ok := c.Resources.Requests[corev1.ResourceMemory]; ok {
			out.Requests.Memory += q.Value()
		}
		out.Images = append(out.Images, c.Image)
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				out.HostPorts = append(out.HostPorts, state.HostPort{Port: p.HostPort, Protocol: string(p.Protocol), IP: p.HostIP})
			}
		}
	}
	out.Requests.Pods = 1
	out.NodeSelector = s.NodeSelector
	out.Affinity = s.Affinity
	out.Tolerations = s.Tolerations
	out.TopologySpread = s.TopologySpreadConstraints
	return out
}

package reconciler

import (
	"github.com/shoal-dev/shoal/state"
)

// StatefulSet volumes. A claim template T of StatefulSet S gives pod S-N the claim T-S-N
// (ClaimName), a node-local volume that outlives the pod. The controller learns where each
// volume lives from the pods themselves: once a pod's node has reported it started (its
// volumes are set up before its containers), the plan records the pod's claims on that node
// (Plan.Volumes, the state store's RecordVolumes), and every later pod of the claim is pinned
// there (state.PodSpec.PinnedNode). A volume never moves; nothing removes its record yet.

// ClaimName is the claim of a StatefulSet pod's volume: the claim template's name and the
// pod's, as Kubernetes names PersistentVolumeClaims ("data-db-0").
func ClaimName(template, pod string) string { return template + "-" + pod }

// volumeNode returns the node holding a claim's volume: recorded in the store, or recorded by
// this plan (a pod stopped and recreated in one reconcile), or "".
func (r *run) volumeNode(namespace, claim string) string {
	if vs, ok := r.in.State.(VolumeSnapshot); ok {
		if n := vs.VolumeNode(namespace, claim); n != "" {
			return n
		}
	}
	for _, v := range r.plan.Volumes {
		if v.Namespace == namespace && v.Claim == claim {
			return v.Node
		}
	}
	return ""
}

// noteVolumes records the claims of a StatefulSet pod on its node once the node reported the
// pod started, unless they are recorded already (anywhere: a volume never moves; a pod
// started elsewhere despite its pin is a conflict the create step reports) or the node has no
// record any more.
func (x *sts) noteVolumes(p *state.Pod) {
	if p.NodeName == "" || p.Status.StartTime.IsZero() {
		return
	}
	if _, known := x.r.nodes[p.NodeName]; !known {
		return // the store would reject it: the node record is gone, and its volume with it
	}
	for _, t := range x.spec.VolumeClaimTemplates {
		claim := ClaimName(t.Name, p.Name)
		if x.r.volumeNode(x.key.Namespace, claim) != "" {
			continue
		}
		x.r.plan.Volumes = append(x.r.plan.Volumes, state.Volume{
			Namespace: x.key.Namespace, Claim: claim, Node: p.NodeName, Created: p.Status.StartTime,
		})
	}
}

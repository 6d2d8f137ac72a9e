package reconciler

import (
	"fmt"
	"sort"
	"time"

	appsv1 "k8s.io/api/apps/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// StatefulSet volumes. A claim template T of StatefulSet S gives pod S-N the claim T-S-N
// (ClaimName), a node-local volume that outlives the pod. The controller learns where each
// volume lives from the pods themselves: once a pod is bound to a node (which may make the
// volume and write to it before its report reaches the store), the plan records the pod's
// claims on that node (Plan.Volumes, the state store's RecordVolumes), with the owner, the
// pod and the set's persistentVolumeClaimRetentionPolicy, and every later pod of the claim is
// pinned there (state.PodSpec.PinnedNode). A volume never moves.
//
// Its end (Kubernetes' KEP-1847): with whenScaled: Delete, the volumes of ordinals scaled
// away are deleted once their pods' records are gone; with whenDeleted: Delete, those of a
// StatefulSet removed from Git (with its Namespace, or alone), read from the policy recorded
// on the volume since the set is no longer in the commit; a set annotated shoal.dev/prune:
// disabled keeps its volumes, read from the choice recorded on the volume (Keep) too, since a
// volume scaled away has no pod whose label would tell. Deleting is two steps: the plan
// marks the volume (Plan.DeleteVolumes), its node deletes the directory and removes the
// record; until the record is gone no pod of the claim is created, and the next one gets a
// new, empty volume: the pod is created unpinned, with the claim in its FreshClaims, and its
// node moves aside a directory an earlier incarnation of the claim left there (a node declared
// gone that comes back under its name still has its directories). A volume whose node is gone (status Gone, or no record) is forgotten
// (Plan.ForgetVolumes): its data went with the node, and the claim's next pod is placed
// anywhere. Records written before owners were recorded are retained until a pod of the
// claim starts and its owner is recorded.

// Volume event reasons.
const (
	ReasonClaimDeleted    = "ClaimDeleted"
	ReasonClaimForgotten  = "ClaimForgotten"
	ReasonWaitingForClaim = "WaitingForClaimDeletion"
)

// ClaimName is the claim of a StatefulSet pod's volume: the claim template's name and the
// pod's, as Kubernetes names PersistentVolumeClaims ("data-db-0").
func ClaimName(template, pod string) string { return template + "-" + pod }

// volumeKey is a volume record's key: namespace and claim.
type volumeKey struct{ ns, claim string }

// ownerKey names a StatefulSet: namespace and name.
type ownerKey struct{ ns, name string }

// volumes is what one reconcile knows of the volume records.
type volumes struct {
	byKey   map[volumeKey]*state.Volume
	byOwner map[ownerKey][]*state.Volume // records with an owner, by claim
	forgot  map[volumeKey]bool           // removed by this plan: their node is gone
}

// loadVolumes reads the volume records (when the snapshot has them) and forgets those whose
// node is gone. It runs before the controllers, so that a pod created in this plan is not
// pinned to a gone node.
func (r *run) loadVolumes() {
	r.vols = volumes{byKey: map[volumeKey]*state.Volume{}, byOwner: map[ownerKey][]*state.Volume{}, forgot: map[volumeKey]bool{}}
	vs, ok := r.in.State.(VolumeSnapshot)
	if !ok {
		return
	}
	for _, v := range vs.Volumes() {
		k := volumeKey{v.Namespace, v.Claim}
		r.vols.byKey[k] = v
		if v.Owner != "" {
			o := ownerKey{v.Namespace, v.Owner}
			r.vols.byOwner[o] = append(r.vols.byOwner[o], v)
		}
		if !r.nodeGone(v.Node) {
			continue
		}
		r.vols.forgot[k] = true
		r.plan.ForgetVolumes = append(r.plan.ForgetVolumes, state.VolumeRef{Namespace: v.Namespace, Claim: v.Claim, Node: v.Node})
		key := manifest.Key{Kind: "PersistentVolumeClaim", Namespace: v.Namespace, Name: v.Claim}
		if v.Owner != "" {
			key = manifest.Key{Kind: "StatefulSet", Namespace: v.Namespace, Name: v.Owner}
		}
		r.event(key, "Warning", ReasonClaimForgotten, fmt.Sprintf("forget claim %s: its node %s is gone, and its data with it; the claim's next pod gets a new, empty volume", v.Claim, v.Node))
	}
}

// volume returns the record of a claim, unless it is forgotten in this plan, or nil.
func (r *run) volume(namespace, claim string) *state.Volume {
	k := volumeKey{namespace, claim}
	if r.vols.forgot[k] {
		return nil
	}
	return r.vols.byKey[k]
}

// volumeNode returns the node holding a claim's volume: recorded in the store (and not
// forgotten by this plan), or recorded by this plan (a pod stopped and recreated in one
// reconcile), or "".
func (r *run) volumeNode(namespace, claim string) string {
	if vs, ok := r.in.State.(VolumeSnapshot); ok && !r.vols.forgot[volumeKey{namespace, claim}] {
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

// keepOnPrune reports whether the object asks for what it made to stay when it leaves Git
// (shoal.dev/prune: disabled).
func keepOnPrune(o *manifest.Object) bool {
	return o.Meta().GetAnnotations()[manifest.AnnotationPrune] == manifest.PruneDisabled
}

// startedOrNow is the creation time of the volume records of a pod's claims: the pod's start
// if known, else now.
func (r *run) startedOrNow(p *state.Pod) time.Time {
	if !p.Status.StartTime.IsZero() {
		return p.Status.StartTime
	}
	return r.in.Now
}

// retention is a StatefulSet's claim retention policy as the store records it.
func retention(s *appsv1.StatefulSetSpec) (whenDeleted, whenScaled state.Retention) {
	whenDeleted, whenScaled = state.Retain, state.Retain
	if rp := s.PersistentVolumeClaimRetentionPolicy; rp != nil {
		if rp.WhenDeleted == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			whenDeleted = state.DeleteOnRemove
		}
		if rp.WhenScaled == appsv1.DeletePersistentVolumeClaimRetentionPolicyType {
			whenScaled = state.DeleteOnRemove
		}
	}
	return whenDeleted, whenScaled
}

// noteVolumes records the claims of a StatefulSet pod on its node as soon as the pod is bound
// there (Kubernetes' WaitForFirstConsumer binds a claim when its pod is scheduled), not once
// the node reported it started: a node cut off after it started the pod and before its report
// landed holds the claim's data, and the claim's next pod must be pinned there, not made
// fresh. Nothing is recorded when the claims are recorded already (anywhere: a volume never
// moves; a pod started elsewhere despite its pin is a conflict the create step reports) or the
// node has no record any more or is gone. The record's creation time is the pod's start if
// known, else now. A record without an owner (written before owners were recorded) on the
// pod's node learns its owner and policy (an update: the store makes no record from it).
func (x *sts) noteVolumes(p *state.Pod) {
	if p.NodeName == "" {
		return
	}
	if x.r.nodeGone(p.NodeName) {
		return // the store would reject it, or forget it: the volume went with the node
	}
	created := x.r.startedOrNow(p)
	whenDeleted, whenScaled := retention(x.spec)
	for _, t := range x.spec.VolumeClaimTemplates {
		claim := ClaimName(t.Name, p.Name)
		rec := state.Volume{Namespace: x.key.Namespace, Claim: claim, Node: p.NodeName, Created: created,
			Owner: x.key.Name, Pod: p.Name, WhenDeleted: whenDeleted, WhenScaled: whenScaled, Keep: x.update.keep}
		if n := x.r.volumeNode(x.key.Namespace, claim); n != "" {
			if v := x.r.volume(x.key.Namespace, claim); v != nil && v.Owner == "" && v.Node == p.NodeName && v.Deleting.IsZero() {
				rec.Created = v.Created
				x.r.plan.UpdateVolumes = append(x.r.plan.UpdateVolumes, rec)
			}
			continue
		}
		x.r.plan.Volumes = append(x.r.plan.Volumes, rec)
	}
}

// noteOrphanVolumes is noteVolumes for a pod of a StatefulSet no longer in Git (its pods kept,
// or on their way out): the claim templates left with the set, but the pod names the claims
// it was created without a record of (FreshClaims), and those are the ones to record once it
// is bound. The set's retention policy left with it too: the record says Retain (the data is
// kept; the set back in Git records its policy), and Keep is the pod's prune label.
func (r *run) noteOrphanVolumes(p *state.Pod) {
	if p.NodeName == "" || len(p.Spec.FreshClaims) == 0 {
		return
	}
	if r.nodeGone(p.NodeName) {
		return
	}
	created := r.startedOrNow(p)
	for _, claim := range p.Spec.FreshClaims {
		if r.volumeNode(p.Namespace, claim) != "" {
			continue
		}
		r.plan.Volumes = append(r.plan.Volumes, state.Volume{Namespace: p.Namespace, Claim: claim, Node: p.NodeName, Created: created,
			Owner: p.Owner.Name, Pod: p.Name, WhenDeleted: state.Retain, WhenScaled: state.Retain, Keep: p.Labels[LabelPrune] == manifest.PruneDisabled})
	}
}

// claimBeingDeleted returns a claim of the pod at name whose volume is being deleted, or "".
// The pod must wait: its claim's next volume is a new one, made once the old one is gone.
func (x *sts) claimBeingDeleted(name string) (claim, node string) {
	for _, t := range x.spec.VolumeClaimTemplates {
		c := ClaimName(t.Name, name)
		if v := x.r.volume(x.key.Namespace, c); v != nil && !v.Deleting.IsZero() {
			return c, v.Node
		}
	}
	return "", ""
}

// waitForClaim records, once while the set waits, that a pod waits for its claim's volume to
// be deleted: it looks back through the set's latest events while they are such waits.
func (x *sts) waitForClaim(pod, claim, node string) {
	msg := fmt.Sprintf("pod %s waits for the volume of claim %s to be deleted on %s", pod, claim, node)
	evs := x.r.in.State.Events(eventKey(x.key))
	for i := len(evs) - 1; i >= 0 && evs[i].Reason == ReasonWaitingForClaim; i-- {
		if evs[i].Message == msg {
			return
		}
	}
	x.r.event(x.key, "Normal", ReasonWaitingForClaim, msg)
}

// retainVolumes applies whenScaled to the set's volumes, and keeps the policy and prune choice
// recorded on them in step with Git (so that they are known once the set has left Git). A
// volume of an ordinal out of range is deleted under whenScaled: Delete once no record of a
// pod that may mount it remains. A volume marked for deletion is left alone: its record goes
// with its directory, and an update must not race the node's removal.
func (x *sts) retainVolumes() {
	whenDeleted, whenScaled := retention(x.spec)
	for _, v := range x.r.vols.byOwner[ownerKey{x.key.Namespace, x.key.Name}] {
		if x.r.vols.forgot[volumeKey{v.Namespace, v.Claim}] || !v.Deleting.IsZero() {
			continue
		}
		if v.WhenDeleted != whenDeleted || v.WhenScaled != whenScaled || v.Keep != x.update.keep {
			x.r.plan.UpdateVolumes = append(x.r.plan.UpdateVolumes, state.Volume{Namespace: v.Namespace, Claim: v.Claim, Node: v.Node,
				Created: v.Created, Owner: v.Owner, Pod: v.Pod, WhenDeleted: whenDeleted, WhenScaled: whenScaled, Keep: x.update.keep})
		}
		if !whenScaled.Deletes() {
			continue
		}
		if ord, ok := ordinalOf(x.key.Name, v.Pod); !ok || ord >= x.start && ord < x.start+x.replicas {
			continue
		}
		if x.r.claimInUse(v) {
			continue
		}
		x.r.deleteVolume(x.key, v, "whenScaled")
	}
}

// retainOrphanVolumes applies whenDeleted to the volumes of StatefulSets no longer in the
// object set, from the policy recorded on each volume: with Delete, a volume is deleted once
// no record of its pod remains (prune stops the pods first). An object that asked for its
// pods to be kept (shoal.dev/prune: disabled, in the commit before its removal or as recorded
// on the volume) keeps its volumes too, and so does any volume a remaining pod record may
// mount.
func (r *run) retainOrphanVolumes() {
	owners := make([]ownerKey, 0, len(r.vols.byOwner))
	for o := range r.vols.byOwner {
		owners = append(owners, o)
	}
	sort.Slice(owners, func(i, j int) bool {
		if owners[i].ns != owners[j].ns {
			return owners[i].ns < owners[j].ns
		}
		return owners[i].name < owners[j].name
	})
	for _, o := range owners {
		key := manifest.Key{Kind: "StatefulSet", Namespace: o.ns, Name: o.name}
		if r.in.Objects.Get(key) != nil || r.keepOnRemoval(key) {
			continue
		}
		for _, v := range r.vols.byOwner[o] {
			if r.vols.forgot[volumeKey{v.Namespace, v.Claim}] || !v.Deleting.IsZero() || !v.WhenDeleted.Deletes() || v.Keep {
				continue
			}
			if r.claimInUse(v) {
				continue
			}
			r.deleteVolume(key, v, "whenDeleted")
		}
	}
}

// claimInUse reports whether a pod record that may mount the volume's claim remains after this
// plan: its own pod's, or that of any pod in its namespace named by a suffix of the claim
// after a '-' (ClaimMayBeOf). Two StatefulSets can make one claim name (template data-x of
// set web and template data of set x-web both make data-x-web-0; validation refuses it, but
// records made before it may remain), so the recorded pod alone is not enough.
func (r *run) claimInUse(v *state.Volume) bool {
	for _, p := range r.in.State.Pods() {
		if p.Namespace == v.Namespace && !r.deleted[p.UID] && (p.Name == v.Pod || ClaimMayBeOf(v.Claim, p.Name)) {
			return true
		}
	}
	return false
}

// ClaimMayBeOf reports whether claim may be a claim of the StatefulSet pod named pod: whether
// it is ClaimName(template, pod) for some template name. The node's volume loop uses it too:
// it is what can be known of a pod's claims without its manifest.
func ClaimMayBeOf(claim, pod string) bool {
	return pod != "" && len(claim) > len(pod)+1 && claim[len(claim)-len(pod)-1:] == "-"+pod
}

func (r *run) deleteVolume(owner manifest.Key, v *state.Volume, why string) {
	r.plan.DeleteVolumes = append(r.plan.DeleteVolumes, state.VolumeRef{Namespace: v.Namespace, Claim: v.Claim, Node: v.Node})
	r.event(owner, "Normal", ReasonClaimDeleted, fmt.Sprintf("delete claim %s of pod %s: its volume on %s is deleted (%s: Delete)", v.Claim, v.Pod, v.Node, why))
}

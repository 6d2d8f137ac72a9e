package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Volume records that a node holds the local persistent volume of a claim
// (a StatefulSet's "TEMPLATE-POD", e.g. "data-db-0"). The volume is a
// directory on that node only, so every later pod of the claim is pinned
// there (PodSpec.PinnedNode). The leader records it as soon as a pod of
// the claim is bound to the node, which may make the volume and write to
// it before its report reaches the store.
//
// Its end follows the StatefulSet's persistentVolumeClaimRetentionPolicy,
// recorded here with the owner because a StatefulSet removed from Git is
// no longer in the pinned commit: the leader marks it (DeleteVolumes), the
// node deletes the directory and removes the record (RemoveVolumes). A
// record whose node is gone is removed by the leader, the data with it.
// Records written before the owner and policy existed have neither: they
// are retained, as they always were, until a pod of the claim runs again
// and its owner is recorded.
type Volume struct {
	Namespace string    `json:"namespace"`
	Claim     string    `json:"claim"`
	Node      string    `json:"node"`
	Created   time.Time `json:"created,omitzero"`
	// Owner is the StatefulSet whose claim template made the claim, and Pod
	// the pod (NAME-ORDINAL) the claim belongs to; "" on old records.
	Owner string `json:"owner,omitempty"`
	Pod   string `json:"pod,omitempty"`
	// WhenDeleted and WhenScaled are the owner's retention policy as last
	// seen in Git; "" (old records) means Retain.
	WhenDeleted Retention `json:"whenDeleted,omitempty"`
	WhenScaled  Retention `json:"whenScaled,omitempty"`
	// Keep is the owner's shoal.dev/prune: disabled as last seen in Git: a
	// StatefulSet removed from Git with it keeps its volumes whatever
	// WhenDeleted says, like its pods, including volumes no pod holds any
	// more (an ordinal scaled away under whenScaled: Retain). False on old
	// records.
	Keep bool `json:"keep,omitempty"`
	// Deleting is when the leader asked for the volume to be deleted
	// (DeleteVolumes); zero while it is kept. A volume being deleted is
	// never used again: its claim's next pod waits for the record to go
	// and then gets a new, empty volume.
	Deleting time.Time `json:"deleting,omitzero"`
}

// Retention is a retention policy of a StatefulSet's claims (Kubernetes'
// PersistentVolumeClaimRetentionPolicyType).
type Retention string

const (
	Retain         Retention = "Retain"
	DeleteOnRemove Retention = "Delete"
)

// Deletes reports whether r is Delete; "" (an old record) is Retain.
func (r Retention) Deletes() bool { return r == DeleteOnRemove }

func (r Retention) valid() bool { return r == "" || r == Retain || r == DeleteOnRemove }

// VolumeRef names one volume record and the node the caller believes
// holds it: a command acting on a stale view is rejected, not misapplied.
type VolumeRef struct {
	Namespace string `json:"namespace"`
	Claim     string `json:"claim"`
	Node      string `json:"node"`
}

func (r *VolumeRef) validate() error {
	if err := checkID("volume namespace", r.Namespace); err != nil {
		return err
	}
	if err := checkID("volume claim", r.Claim); err != nil {
		return err
	}
	return checkID("volume node", r.Node)
}

func (v *Volume) validate() error {
	if err := (&VolumeRef{Namespace: v.Namespace, Claim: v.Claim, Node: v.Node}).validate(); err != nil {
		return err
	}
	if (v.Owner == "") != (v.Pod == "") {
		return fmt.Errorf("volume %s/%s: owner %q and pod %q must be set together", v.Namespace, v.Claim, v.Owner, v.Pod)
	}
	if v.Owner != "" {
		if err := checkID("volume owner", v.Owner); err != nil {
			return err
		}
		if err := checkID("volume pod", v.Pod); err != nil {
			return err
		}
	}
	for _, r := range []Retention{v.WhenDeleted, v.WhenScaled} {
		if !r.valid() {
			return fmt.Errorf("volume %s/%s: retention policy %q: want Retain or Delete", v.Namespace, v.Claim, r)
		}
	}
	if !v.Deleting.IsZero() {
		return fmt.Errorf("volume %s/%s: deleting is set by DeleteVolumes only", v.Namespace, v.Claim)
	}
	return nil
}

// checkFreshClaims rejects a new pod that lists a claim as fresh
// (PodSpec.FreshClaims) while the claim has a volume record: the leader
// decided from a view older than the record, and the pod's node would set
// the claim's live volume aside for a new, empty one. Pods that list no
// fresh claim (every pod of entries written before FreshClaims existed) are
// not checked, so those entries apply as they did. The pin of a claim with
// a record is not checked: the pod record does not name those claims.
func checkFreshClaims(w *writeTxn, p *Pod) (RejectReason, error) {
	for _, c := range p.Spec.FreshClaims {
		v, err := first[Volume](w.tx, TableVolumes, indexIDName, p.Namespace, c)
		if err != nil {
			return "", err
		}
		if v != nil {
			return RejectClaimRecorded, nil
		}
	}
	return "", nil
}

func volumesSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: string(TableVolumes),
		Indexes: map[string]*memdb.IndexSchema{
			indexIDName: {Name: indexIDName, Unique: true, Indexer: keyIndex[Volume]{func(v *Volume) (string, bool) {
				return key(v.Namespace, v.Claim), true
			}}},
		},
	}
}

// RecordVolumes records where claims' volumes live. A claim recorded on
// another node is rejected (RejectVolumeElsewhere, UID "NAMESPACE/CLAIM"):
// a volume never moves, the first record wins. An unknown node is rejected
// too. A claim recorded on the same node already keeps its node, creation
// time and deletion mark; an item that names an owner replaces the
// record's owner, pod, retention policy and Keep (the policy changed in
// Git, or an old record learns its owner), and one that names none is a
// no-op, as every item was before owners were recorded.
//
// Updates only change records that exist: the owner, pod, retention
// policy and Keep of the record on the node named, which keeps its
// creation time. A missing record is rejected (RejectVolumeNotFound), not
// made: a volume deleted since the leader's view was taken must not come
// back, unmarked, and pin its claim's next pod to a deleted directory. A
// record marked for deletion is left as it is. Log entries written before
// Updates existed have none, and apply as they always did.
type RecordVolumes struct {
	Volumes []Volume `json:"volumes"`
	Updates []Volume `json:"updates,omitempty"`
}

func (*RecordVolumes) CommandType() CommandType { return CmdRecordVolumes }

func (c *RecordVolumes) validate() error {
	for i := range c.Volumes {
		if err := c.Volumes[i].validate(); err != nil {
			return err
		}
	}
	for i := range c.Updates {
		if err := c.Updates[i].validate(); err != nil {
			return err
		}
		if c.Updates[i].Owner == "" {
			return fmt.Errorf("volume %s/%s: an update names the owner", c.Updates[i].Namespace, c.Updates[i].Claim)
		}
	}
	return nil
}

// sameOwner reports whether v carries u's owner, pod, retention policy and Keep.
func (v *Volume) sameOwner(u *Volume) bool {
	return v.Owner == u.Owner && v.Pod == u.Pod && v.WhenDeleted == u.WhenDeleted && v.WhenScaled == u.WhenScaled && v.Keep == u.Keep
}

// withOwner returns v with u's owner, pod, retention policy and Keep.
func (v Volume) withOwner(u *Volume) *Volume {
	v.Owner, v.Pod, v.WhenDeleted, v.WhenScaled, v.Keep = u.Owner, u.Pod, u.WhenDeleted, u.WhenScaled, u.Keep
	return &v
}

func applyRecordVolumes(w *writeTxn, c *RecordVolumes) (*Result, error) {
	res := &Result{}
	for i := range c.Volumes {
		v := c.Volumes[i]
		v.Created = utc(v.Created)
		id := v.Namespace + "/" + v.Claim
		old, err := first[Volume](w.tx, TableVolumes, indexIDName, v.Namespace, v.Claim)
		if err != nil {
			return nil, err
		}
		if old != nil {
			switch {
			case old.Node != v.Node:
				res.Rejected = append(res.Rejected, Rejection{UID: id, Node: v.Node, Reason: RejectVolumeElsewhere})
			case v.Owner != "" && !old.sameOwner(&v):
				if err := w.insert(TableVolumes, old.withOwner(&v)); err != nil {
					return nil, err
				}
				res.Applied++
			}
			continue
		}
		n, err := first[Node](w.tx, TableNodes, indexIDName, v.Node)
		if err != nil {
			return nil, err
		}
		if n == nil {
			res.Rejected = append(res.Rejected, Rejection{UID: id, Node: v.Node, Reason: RejectNodeNotFound})
			continue
		}
		if err := w.insert(TableVolumes, &v); err != nil {
			return nil, err
		}
		res.Applied++
	}
	for i := range c.Updates {
		u := &c.Updates[i]
		old, rej, err := volumeAt(w, VolumeRef{Namespace: u.Namespace, Claim: u.Claim, Node: u.Node})
		if err != nil {
			return nil, err
		}
		switch {
		case rej != nil:
			res.Rejected = append(res.Rejected, *rej)
		case !old.Deleting.IsZero(), old.sameOwner(u):
		default:
			if err := w.insert(TableVolumes, old.withOwner(u)); err != nil {
				return nil, err
			}
			res.Applied++
		}
	}
	return res, nil
}

// DeleteVolumes marks volumes for deletion: the node holding each deletes
// its directory and then removes the record (RemoveVolumes). It is the
// leader's decision, taken once no pod of the claim can run; the store
// checks what it can against a stale view: the record exists
// (RejectVolumeNotFound) on the node named (RejectVolumeElsewhere), and no
// record of the claim's pod is live (RejectVolumeInUse: one that is not
// Succeeded or Failed; a Lost pod may still run on its unreachable node).
// A volume marked already is left as it is.
type DeleteVolumes struct {
	Volumes []VolumeRef `json:"volumes"`
	Time    time.Time   `json:"time"`
}

func (*DeleteVolumes) CommandType() CommandType { return CmdDeleteVolumes }

func (c *DeleteVolumes) validate() error {
	if c.Time.IsZero() {
		return fmt.Errorf("no time")
	}
	return validateVolumeRefs(c.Volumes)
}

func applyDeleteVolumes(w *writeTxn, c *DeleteVolumes) (*Result, error) {
	res := &Result{}
	for _, ref := range c.Volumes {
		old, rej, err := volumeAt(w, ref)
		if err != nil {
			return nil, err
		}
		if rej != nil {
			res.Rejected = append(res.Rejected, *rej)
			continue
		}
		if !old.Deleting.IsZero() {
			continue
		}
		if old.Pod != "" {
			p, err := first[Pod](w.tx, TablePods, indexPodName, old.Namespace, old.Pod)
			if err != nil {
				return nil, err
			}
			if p != nil && p.Status.Phase != PhaseSucceeded && p.Status.Phase != PhaseFailed {
				res.Rejected = append(res.Rejected, Rejection{UID: old.Namespace + "/" + old.Claim, Node: ref.Node, Reason: RejectVolumeInUse})
				continue
			}
		}
		nv := *old
		nv.Deleting = utc(c.Time)
		if err := w.insert(TableVolumes, &nv); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// RemoveVolumes removes volume records: one marked for deletion, once its
// node deleted the directory (the node sends it), or one whose node is
// gone (status Gone, or no record), whose data is lost with the node (the
// leader sends it, so that the claim's next pod can be placed elsewhere
// with a new volume). Any other record is rejected (RejectVolumeKept), and
// so are a missing record (RejectVolumeNotFound) and one on another node
// than named (RejectVolumeElsewhere).
type RemoveVolumes struct {
	Volumes []VolumeRef `json:"volumes"`
}

func (*RemoveVolumes) CommandType() CommandType { return CmdRemoveVolumes }

func (c *RemoveVolumes) validate() error { return validateVolumeRefs(c.Volumes) }

func validateVolumeRefs(refs []VolumeRef) error {
	for i := range refs {
		if err := refs[i].validate(); err != nil {
			return err
		}
	}
	return nil
}

func applyRemoveVolumes(w *writeTxn, c *RemoveVolumes) (*Result, error) {
	res := &Result{}
	for _, ref := range c.Volumes {
		old, rej, err := volumeAt(w, ref)
		if err != nil {
			return nil, err
		}
		if rej != nil {
			res.Rejected = append(res.Rejected, *rej)
			continue
		}
		if old.Deleting.IsZero() {
			n, err := first[Node](w.tx, TableNodes, indexIDName, old.Node)
			if err != nil {
				return nil, err
			}
			if n != nil && n.Status != NodeGone {
				res.Rejected = append(res.Rejected, Rejection{UID: old.Namespace + "/" + old.Claim, Node: ref.Node, Reason: RejectVolumeKept})
				continue
			}
		}
		if err := w.delete(TableVolumes, old); err != nil {
			return nil, err
		}
		res.Applied++
	}
	return res, nil
}

// volumeAt reads the record ref names, or the rejection when there is none
// on ref's node.
func volumeAt(w *writeTxn, ref VolumeRef) (*Volume, *Rejection, error) {
	old, err := first[Volume](w.tx, TableVolumes, indexIDName, ref.Namespace, ref.Claim)
	if err != nil {
		return nil, nil, err
	}
	id := ref.Namespace + "/" + ref.Claim
	switch {
	case old == nil:
		return nil, &Rejection{UID: id, Node: ref.Node, Reason: RejectVolumeNotFound}, nil
	case old.Node != ref.Node:
		return nil, &Rejection{UID: id, Node: ref.Node, Reason: RejectVolumeElsewhere}, nil
	}
	return old, nil, nil
}

// Volume returns the record of claim in namespace, or nil.
func (v *Snapshot) Volume(namespace, claim string) *Volume {
	return must(first[Volume](v.tx, TableVolumes, indexIDName, namespace, claim))
}

// VolumeNode returns the node holding the local volume of claim in
// namespace, or "" when none is recorded. With it *Snapshot implements
// reconciler.VolumeSnapshot.
func (v *Snapshot) VolumeNode(namespace, claim string) string {
	if vol := v.Volume(namespace, claim); vol != nil {
		return vol.Node
	}
	return ""
}

// Volumes returns every recorded volume, by namespace and claim.
func (v *Snapshot) Volumes() []*Volume {
	return must(all[Volume](v.tx, TableVolumes, indexIDName))
}

// String is "NAMESPACE/CLAIM on NODE".
func (v *Volume) String() string { return fmt.Sprintf("%s/%s on %s", v.Namespace, v.Claim, v.Node) }

package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Volume records that a node holds the local persistent volume of a claim
// (a StatefulSet's "TEMPLATE-POD", e.g. "data-db-0"). The volume is a
// directory on that node only, so every later pod of the claim is pinned
// there (PodSpec.PinnedNode). The leader records it once the node reported
// a pod of the claim started (its volumes are set up before its
// containers); nothing removes it yet (see docs/controllers.md).
type Volume struct {
	Namespace string    `json:"namespace"`
	Claim     string    `json:"claim"`
	Node      string    `json:"node"`
	Created   time.Time `json:"created,omitzero"`
}

func (v *Volume) validate() error {
	if err := checkID("volume namespace", v.Namespace); err != nil {
		return err
	}
	if err := checkID("volume claim", v.Claim); err != nil {
		return err
	}
	return checkID("volume node", v.Node)
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
// the same node already is a no-op; a claim recorded on another node is
// rejected (RejectVolumeElsewhere, UID "NAMESPACE/CLAIM"): a volume never
// moves, the first record wins. An unknown node is rejected too.
type RecordVolumes struct {
	Volumes []Volume `json:"volumes"`
}

func (*RecordVolumes) CommandType() CommandType { return CmdRecordVolumes }

func (c *RecordVolumes) validate() error {
	for i := range c.Volumes {
		if err := c.Volumes[i].validate(); err != nil {
			return err
		}
	}
	return nil
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
			if old.Node != v.Node {
				res.Rejected = append(res.Rejected, Rejection{UID: id, Node: v.Node, Reason: RejectVolumeElsewhere})
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
	return res, nil
}

// VolumeNode returns the node holding the local volume of claim in
// namespace, or "" when none is recorded. With it *Snapshot implements
// reconciler.VolumeSnapshot.
func (v *Snapshot) VolumeNode(namespace, claim string) string {
	if vol := must(first[Volume](v.tx, TableVolumes, indexIDName, namespace, claim)); vol != nil {
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

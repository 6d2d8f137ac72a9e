package state

import (
	"fmt"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Revision is one entry of the pinning history: a commit the leader pinned
// (the cluster's desired state from then on) or refused, with why.
type Revision struct {
	Seq     uint64    `json:"seq"`
	Commit  string    `json:"commit"`
	Ref     string    `json:"ref,omitempty"`
	Time    time.Time `json:"time,omitzero"`
	Refused bool      `json:"refused,omitempty"`
	Reason  string    `json:"reason,omitempty"`
}

// DefaultRevisionHistory is how many revisions are kept when a command
// does not say. Part of EncodingVersion 1: changing it needs a new version.
const DefaultRevisionHistory = 50

const indexRevCommit = "commit"

func revisionsSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: string(TableRevisions),
		Indexes: map[string]*memdb.IndexSchema{
			indexIDName:    {Name: indexIDName, Unique: true, Indexer: seqIndex[Revision]{func(r *Revision) uint64 { return r.Seq }}},
			indexRevCommit: {Name: indexRevCommit, Indexer: keyIndex[Revision]{func(r *Revision) (string, bool) { return r.Commit, true }}},
		},
	}
}

// PinRevision makes Commit the cluster's desired state. Pinning the commit
// that is already pinned records nothing.
type PinRevision struct {
	Commit string    `json:"commit"`
	Ref    string    `json:"ref,omitempty"`
	Time   time.Time `json:"time,omitzero"`
	// Keep bounds the history; 0 means DefaultRevisionHistory.
	Keep int `json:"keep,omitempty"`
}

func (*PinRevision) CommandType() CommandType { return CmdPinRevision }

func (c *PinRevision) validate() error {
	if c.Keep < 0 {
		return fmt.Errorf("negative history bound %d", c.Keep)
	}
	return checkID("commit", c.Commit)
}

func applyPinRevision(w *writeTxn, c *PinRevision) (*Result, error) {
	cur, err := pinned(w.tx)
	if err != nil {
		return nil, err
	}
	if cur != nil && cur.Commit == c.Commit {
		return &Result{}, nil
	}
	return appendRevision(w, &Revision{Commit: c.Commit, Ref: c.Ref, Time: utc(c.Time)}, c.Keep)
}

// RefuseRevision records that Commit was refused as a whole, and why; the
// pinned commit stays pinned.
type RefuseRevision struct {
	Commit string    `json:"commit"`
	Ref    string    `json:"ref,omitempty"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time,omitzero"`
	Keep   int       `json:"keep,omitempty"`
}

func (*RefuseRevision) CommandType() CommandType { return CmdRefuseRevision }

func (c *RefuseRevision) validate() error {
	if c.Reason == "" {
		return fmt.Errorf("commit %s: refusal without a reason", c.Commit)
	}
	if c.Keep < 0 {
		return fmt.Errorf("negative history bound %d", c.Keep)
	}
	return checkID("commit", c.Commit)
}

func applyRefuseRevision(w *writeTxn, c *RefuseRevision) (*Result, error) {
	return appendRevision(w, &Revision{Commit: c.Commit, Ref: c.Ref, Time: utc(c.Time), Refused: true, Reason: truncate(c.Reason)}, c.Keep)
}

// appendRevision adds r and trims the oldest entries beyond keep, never the
// pinned one.
func appendRevision(w *writeTxn, r *Revision, keep int) (*Result, error) {
	if keep == 0 {
		keep = DefaultRevisionHistory
	}
	seq, err := w.nextSeq(metaRevSeq)
	if err != nil {
		return nil, err
	}
	r.Seq = seq
	if err := w.insert(TableRevisions, r); err != nil {
		return nil, err
	}
	revs, err := all[Revision](w.tx, TableRevisions, indexIDName)
	if err != nil {
		return nil, err
	}
	cur, err := pinned(w.tx)
	if err != nil {
		return nil, err
	}
	excess := len(revs) - keep
	for _, old := range revs {
		if excess <= 0 {
			break
		}
		if cur != nil && old.Seq == cur.Seq {
			continue
		}
		if err := w.delete(TableRevisions, old); err != nil {
			return nil, err
		}
		excess--
	}
	return &Result{Applied: 1}, nil
}

// pinned returns the newest revision that was not refused.
func pinned(tx *memdb.Txn) (*Revision, error) {
	it, err := tx.GetReverse(string(TableRevisions), indexIDName)
	if err != nil {
		return nil, fmt.Errorf("read revisions: %w", err)
	}
	for raw := it.Next(); raw != nil; raw = it.Next() {
		if r := raw.(*Revision); !r.Refused {
			return r, nil
		}
	}
	return nil, nil
}

// PinnedRevision returns the commit the cluster runs, or nil before the first pin.
func (v *Snapshot) PinnedRevision() *Revision {
	return must(pinned(v.tx))
}

// Revisions returns the pinning history, oldest first.
func (v *Snapshot) Revisions() []*Revision {
	return must(all[Revision](v.tx, TableRevisions, indexIDName))
}

// RevisionsOf returns the history entries of one commit, oldest first.
func (v *Snapshot) RevisionsOf(commit string) []*Revision {
	return must(all[Revision](v.tx, TableRevisions, indexRevCommit, commit))
}

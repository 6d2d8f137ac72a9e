package state

import (
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// oldRecordVolumes is RecordVolumes as it was encoded before volumes had owners, retention
// policies and deletion marks: raft logs and snapshots hold such entries.
type oldRecordVolumes struct {
	Volumes []struct {
		Namespace string    `json:"namespace"`
		Claim     string    `json:"claim"`
		Node      string    `json:"node"`
		Created   time.Time `json:"created,omitzero"`
	} `json:"volumes"`
}

func (*oldRecordVolumes) CommandType() CommandType { return CmdRecordVolumes }

// TestVolumeOldEncoding: a log entry written before owners existed still applies, its record
// has no owner and a "" policy, which is Retain, and it survives a snapshot.
func TestVolumeOldEncoding(t *testing.T) {
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.ApplyCommand(&UpsertNode{Node: Node{Name: "n1", Status: NodeReady}}); err != nil {
		t.Fatal(err)
	}
	old := &oldRecordVolumes{}
	old.Volumes = append(old.Volumes, struct {
		Namespace string    `json:"namespace"`
		Claim     string    `json:"claim"`
		Node      string    `json:"node"`
		Created   time.Time `json:"created,omitzero"`
	}{"shop", "data-db-0", "n1", time.Date(2026, 1, 1, 10, 0, 0, 0, time.UTC)})
	data, err := Encode(old)
	if err != nil {
		t.Fatal(err)
	}
	if r, err := resultOf(s.FSM().Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data})); err != nil || r.Applied != 1 {
		t.Fatalf("old record-volumes: %+v, %v", r, err)
	}
	s = restore(t, persist(t, s))
	v := s.Snapshot().Volume("shop", "data-db-0")
	if v == nil || v.Node != "n1" || v.Owner != "" || v.Pod != "" || !v.Deleting.IsZero() {
		t.Fatalf("old record after a snapshot: %+v", v)
	}
	if v.WhenDeleted.Deletes() || v.WhenScaled.Deletes() {
		t.Errorf("old record's policy %q/%q deletes; want Retain", v.WhenDeleted, v.WhenScaled)
	}
}

package state

import (
	"strings"
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
	if v.Keep {
		t.Errorf("old record is kept on prune; want not")
	}

	// An entry written before Keep and Updates existed that names an owner still updates the
	// record (its Keep is false, as every record's was then), and one for a new claim still
	// makes a record: items in Volumes apply as they always did.
	owned := &oldOwnedRecordVolumes{Volumes: []oldOwnedVolume{
		{Namespace: "shop", Claim: "data-db-0", Node: "n1", Owner: "db", Pod: "db-0", WhenDeleted: "Delete", WhenScaled: "Retain"},
		{Namespace: "shop", Claim: "data-db-1", Node: "n1", Owner: "db", Pod: "db-1", WhenDeleted: "Delete", WhenScaled: "Retain"},
	}}
	if data, err = Encode(owned); err != nil {
		t.Fatal(err)
	}
	if r, err := resultOf(s.FSM().Apply(&raft.Log{Index: 3, Type: raft.LogCommand, Data: data})); err != nil || r.Applied != 2 || len(r.Rejected) != 0 {
		t.Fatalf("old owned record-volumes: %+v, %v", r, err)
	}
	s = restore(t, persist(t, s))
	for _, claim := range []string{"data-db-0", "data-db-1"} {
		v := s.Snapshot().Volume("shop", claim)
		if v == nil || v.Owner != "db" || v.WhenDeleted != DeleteOnRemove || v.Keep || !v.Deleting.IsZero() {
			t.Errorf("%s after an old owned entry: %+v", claim, v)
		}
	}

	// New fields are omitted when unset, so a command that uses neither encodes as before.
	if data, err = Encode(&RecordVolumes{Volumes: []Volume{{Namespace: "shop", Claim: "data-db-0", Node: "n1", Owner: "db", Pod: "db-0"}}}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(data), "keep") || strings.Contains(string(data), "updates") {
		t.Errorf("record-volumes without Keep or Updates encodes them: %s", data)
	}
}

// oldOwnedVolume and oldOwnedRecordVolumes are RecordVolumes as encoded once volumes had
// owners and policies but before Keep and Updates.
type oldOwnedVolume struct {
	Namespace   string    `json:"namespace"`
	Claim       string    `json:"claim"`
	Node        string    `json:"node"`
	Created     time.Time `json:"created,omitzero"`
	Owner       string    `json:"owner,omitempty"`
	Pod         string    `json:"pod,omitempty"`
	WhenDeleted Retention `json:"whenDeleted,omitempty"`
	WhenScaled  Retention `json:"whenScaled,omitempty"`
}

type oldOwnedRecordVolumes struct {
	Volumes []oldOwnedVolume `json:"volumes"`
}

func (*oldOwnedRecordVolumes) CommandType() CommandType { return CmdRecordVolumes }

package state

import (
	"bytes"
	"context"
	"errors"
	"testing"
)

// fataler is what the helpers need of *testing.T and *rapid.T.
type fataler interface {
	Helper()
	Fatal(args ...any)
}

func mustStore(t fataler) *Store {
	t.Helper()
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func mustApply(t testing.TB, s *Store, c Command) *Result {
	t.Helper()
	r, err := s.ApplyCommand(c)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func TestSnapshotChangedTracksTables(t *testing.T) {
	s := mustStore(t)
	v := s.Snapshot()
	if v.Changed() || v.Changed(TablePods) {
		t.Fatal("fresh view reports a change")
	}
	mustApply(t, s, &UpsertNode{Node: Node{Name: "n1", Status: NodeReady}})
	if !v.Changed(TableNodes) || !v.Changed() {
		t.Fatal("node write not seen by a view watching nodes")
	}
	if v.Changed(TablePods, TableEvents) {
		t.Fatal("node write woke a view watching pods and events")
	}
	// The view itself did not move.
	if v.Node("n1") != nil || v.Index() != 0 {
		t.Fatal("view changed after the write")
	}
	v2 := s.Snapshot()
	mustApply(t, s, &CreatePods{Pods: []Pod{{UID: "u1", Namespace: "ns", Name: "p"}}})
	if !v2.Changed(TablePods) || v2.Changed(TableNodes) {
		t.Fatal("pod write: wrong tables reported")
	}
	// A failed command changes nothing, so it wakes nobody.
	v3 := s.Snapshot()
	if _, err := s.ApplyCommand(&SetNodeStatus{Name: "n9", Status: NodeReady}); !errors.Is(err, ErrConflict) {
		t.Fatalf("status of a missing node: %v, want ErrConflict", err)
	}
	if _, err := s.ApplyCommand(&SetNodeStatus{Name: "n1"}); !errors.Is(err, ErrInvalidCommand) {
		t.Fatalf("status without a status: %v, want ErrInvalidCommand", err)
	}
	if v3.Changed() {
		t.Fatal("failed command woke a waiter")
	}
}

func TestWaitReturnsAfterWriteAndOnRestore(t *testing.T) {
	s := mustStore(t)
	v := s.Snapshot()
	done := make(chan error)
	go func() { done <- v.Wait(context.Background(), TablePods) }()
	mustApply(t, s, &CreatePods{Pods: []Pod{{UID: "u1", Namespace: "ns", Name: "p"}}})
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	// Restore replaces the whole state: every waiter wakes, whatever it watches.
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	v = s.Snapshot()
	go func() { done <- v.Wait(context.Background(), TableRevisions) }()
	if err := s.Restore(&buf); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := s.Snapshot().Wait(ctx, TableNodes); err != context.Canceled {
		t.Fatalf("Wait on a canceled context: %v", err)
	}
}

func TestWatchDeliversLatestView(t *testing.T) {
	s := mustStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch := s.Watch(ctx, TablePods)
	if v := <-ch; v.TableIndex(TablePods) != 0 {
		t.Fatalf("first view at pods index %d", v.TableIndex(TablePods))
	}
	r := mustApply(t, s, &CreatePods{Pods: []Pod{{UID: "u1", Namespace: "ns", Name: "p"}}})
	for v := range ch {
		if v.TableIndex(TablePods) == r.Index {
			if v.Pod("u1") == nil {
				t.Fatal("view at the write's index lacks the pod")
			}
			break
		}
	}
	cancel()
	for range ch { // closed once ctx is done
	}
}

func TestRestoreRejectsBadSnapshots(t *testing.T) {
	s := mustStore(t)
	mustApply(t, s, &UpsertNode{Node: Node{Name: "n1", Status: NodeReady}})
	var buf bytes.Buffer
	if err := s.Snapshot().Persist(&buf); err != nil {
		t.Fatal(err)
	}
	good := buf.Bytes()
	before := s.Snapshot().DumpString()
	for name, b := range map[string][]byte{
		"empty":     nil,
		"truncated": good[:len(good)-3],
		"garbage":   []byte("definitely not a snapshot"),
	} {
		if err := s.Restore(bytes.NewReader(b)); err == nil {
			t.Errorf("%s snapshot restored", name)
		}
		if got := s.Snapshot().DumpString(); got != before {
			t.Errorf("%s snapshot changed the store:\n%s", name, got)
		}
	}
}

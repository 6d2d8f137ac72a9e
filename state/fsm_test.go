package state

import (
	"bytes"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
	"github.com/hashicorp/raft"
)

// newCommand returns an empty command of the type a script names.
func newCommand(name string) (Command, bool) {
	for _, c := range []Command{
		&UpsertNode{}, &SetNodeStatus{}, &DeleteNode{}, &PinRevision{}, &RefuseRevision{},
		&CreatePods{}, &BindPods{}, &UpdatePodStatus{}, &SetPodsDesired{}, &DeletePods{},
		&MarkPodsLost{}, &Allocate{}, &Release{}, &AppendEvents{}, &RecordVolumes{},
		&DeleteVolumes{}, &RemoveVolumes{},
	} {
		if c.CommandType().String() == name {
			return c, true
		}
	}
	return nil, false
}

// memSink is a raft.SnapshotSink into memory.
type memSink struct {
	bytes.Buffer
	closed, canceled bool
}

func (s *memSink) ID() string    { return "mem" }
func (s *memSink) Close() error  { s.closed = true; return nil }
func (s *memSink) Cancel() error { s.canceled = true; return nil }

var _ raft.SnapshotSink = (*memSink)(nil)

// persist runs the raft snapshot path: FSM.Snapshot, then Persist.
func persist(t testing.TB, s *Store) []byte {
	t.Helper()
	snap, err := s.FSM().Snapshot()
	if err != nil {
		t.Fatal(err)
	}
	defer snap.Release()
	var sink memSink
	if err := snap.Persist(&sink); err != nil {
		t.Fatal(err)
	}
	if !sink.closed || sink.canceled {
		t.Fatalf("sink closed=%v canceled=%v", sink.closed, sink.canceled)
	}
	return sink.Bytes()
}

// restore builds a new store from persisted bytes through FSM.Restore.
func restore(t testing.TB, b []byte) *Store {
	t.Helper()
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	if err := s.FSM().Restore(nopCloser{bytes.NewReader(b)}); err != nil {
		t.Fatal(err)
	}
	return s
}

type nopCloser struct{ *bytes.Reader }

func (nopCloser) Close() error { return nil }

func formatResponse(resp any) string {
	r, err := resultOf(resp)
	if err != nil {
		return "error: " + err.Error() + "\n"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "ok index=%d applied=%d\n", r.Index, r.Applied)
	for _, rj := range r.Rejected {
		fmt.Fprintf(&b, "rejected %s node=%s: %s\n", rj.UID, rj.Node, rj.Reason)
	}
	return b.String()
}

// TestFSM runs the scripts in testdata. Directives:
//
//	apply <command-name>      JSON body: the command; prints the response
//	apply-raw type=N version=V  the body's bytes follow the two envelope bytes
//	get <query> [args...]     a getter's result (see query)
//	dump [tables...]          the state, all tables (meta included) by default
//	snapshot-restore          persist, restore into a new store, check the
//	                          dumps and the persisted bytes are identical,
//	                          and continue with the restored store
//
// Rewrite the expected output with: go test ./state -run TestFSM -rewrite
func TestFSM(t *testing.T) {
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(strings.TrimSuffix(filepath.Base(path), ".txt"), func(t *testing.T) { runScript(t, path) })
	}
}

func runScript(t *testing.T, path string) {
	s, err := NewStore()
	if err != nil {
		t.Fatal(err)
	}
	var index uint64
	datadriven.RunTest(t, path, func(t *testing.T, d *datadriven.TestData) string {
		switch d.Cmd {
		case "apply":
			if len(d.CmdArgs) != 1 {
				d.Fatalf(t, "apply needs a command name")
			}
			c, ok := newCommand(d.CmdArgs[0].Key)
			if !ok {
				d.Fatalf(t, "unknown command %q", d.CmdArgs[0].Key)
			}
			dec := json.NewDecoder(strings.NewReader(d.Input))
			dec.DisallowUnknownFields()
			if err := dec.Decode(c); err != nil {
				d.Fatalf(t, "decode %s: %v", d.CmdArgs[0].Key, err)
			}
			data, err := Encode(c)
			if err != nil {
				d.Fatalf(t, "%v", err)
			}
			before := s.Snapshot().DumpString()
			index++
			resp := s.FSM().Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data})
			if _, err := resultOf(resp); err != nil {
				index-- // nothing was written under this index
				if after := s.Snapshot().DumpString(); after != before {
					t.Fatalf("failed apply changed the store:\n%s", after)
				}
			}
			return formatResponse(resp)
		case "apply-raw":
			var typ, version int
			d.ScanArgs(t, "type", &typ)
			d.ScanArgs(t, "version", &version)
			before := s.Snapshot().DumpString()
			data := append([]byte{byte(typ), byte(version)}, d.Input...)
			resp := s.FSM().Apply(&raft.Log{Index: index + 1, Type: raft.LogCommand, Data: data})
			if _, err := resultOf(resp); err == nil {
				index++
			} else if after := s.Snapshot().DumpString(); after != before {
				t.Fatalf("failed apply changed the store:\n%s", after)
			}
			return formatResponse(resp)
		case "get":
			return query(t, d, s.Snapshot())
		case "dump":
			var b strings.Builder
			for _, line := range strings.SplitAfter(s.Snapshot().DumpString(), "\n") {
				if line == "" {
					continue
				}
				keep := len(d.CmdArgs) == 0
				for _, a := range d.CmdArgs {
					keep = keep || strings.HasPrefix(line, a.Key+" ")
				}
				if keep {
					b.WriteString(line)
				}
			}
			return b.String()
		case "snapshot-restore":
			b := persist(t, s)
			r := restore(t, b)
			if got, want := r.Snapshot().DumpString(), s.Snapshot().DumpString(); got != want {
				t.Fatalf("restored dump differs:\n got %s\nwant %s", got, want)
			}
			if b2 := persist(t, r); !bytes.Equal(b, b2) {
				t.Fatalf("persisting the restored store gave different bytes (%d vs %d)", len(b2), len(b))
			}
			s = r
			return "restored " + strconv.Itoa(len(r.Snapshot().Nodes())) + " nodes, " +
				strconv.Itoa(len(r.Snapshot().Pods())) + " pods at index " +
				strconv.FormatUint(r.Snapshot().Index(), 10) + ": dump identical\n"
		}
		d.Fatalf(t, "unknown directive %q", d.Cmd)
		return ""
	})
}

// query runs one getter and prints pods as namespace/name@node, or the
// record as JSON.
func query(t *testing.T, d *datadriven.TestData, v *Snapshot) string {
	args := make([]string, len(d.CmdArgs)-1)
	for i, a := range d.CmdArgs[1:] {
		args[i] = a.Key
	}
	arg := func(i int) string {
		if i >= len(args) {
			d.Fatalf(t, "%s: missing argument %d", d.CmdArgs[0].Key, i)
		}
		return args[i]
	}
	pods := func(ps []*Pod) string {
		var b strings.Builder
		for _, p := range ps {
			fmt.Fprintf(&b, "%s %s node=%q desired=%s phase=%s\n", p.UID, p.Key(), p.NodeName, p.Desired, p.Status.Phase)
		}
		if b.Len() == 0 {
			return "none\n"
		}
		return b.String()
	}
	asJSON := func(x any) string {
		b, err := json.Marshal(x)
		if err != nil {
			t.Fatal(err)
		}
		return string(b) + "\n"
	}
	switch d.CmdArgs[0].Key {
	case "pod":
		return asJSON(v.Pod(arg(0)))
	case "pod-by-name":
		return asJSON(v.PodByName(arg(0), arg(1)))
	case "pods":
		return pods(v.Pods())
	case "pods-in-namespace":
		return pods(v.PodsInNamespace(arg(0)))
	case "pods-on-node":
		return pods(v.PodsOnNode(arg(0)))
	case "pods-by-owner":
		return pods(v.PodsByOwner(arg(0), arg(1), arg(2)))
	case "pods-in-phase":
		return pods(v.PodsInPhase(Phase(arg(0))))
	case "unplaced":
		return pods(v.UnplacedPods())
	case "node":
		return asJSON(v.Node(arg(0)))
	case "volume":
		return asJSON(v.Volume(arg(0), arg(1)))
	case "pinned":
		return asJSON(v.PinnedRevision())
	case "revisions-of":
		return asJSON(v.RevisionsOf(arg(0)))
	case "events":
		return asJSON(v.Events(arg(0)))
	case "allocation":
		return asJSON(v.Allocation(AllocKind(arg(0)), arg(1)))
	case "allocations":
		return asJSON(v.Allocations(AllocKind(arg(0))))
	case "allocations-of":
		return asJSON(v.AllocationsOf(AllocKind(arg(0)), arg(1)))
	case "table-index":
		return strconv.FormatUint(v.TableIndex(Table(arg(0))), 10) + "\n"
	}
	d.Fatalf(t, "unknown query %q", d.CmdArgs[0].Key)
	return ""
}

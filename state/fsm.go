package state

import (
	"bufio"
	"errors"
	"fmt"
	"io"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/go-msgpack/v2/codec"
	"github.com/hashicorp/raft"
)

// FSM adapts a Store to raft. raft calls Apply from one goroutine, Snapshot
// between applies, Persist concurrently with later applies, and Restore
// with nothing else running.
type FSM struct {
	store *Store
}

var (
	_ raft.FSM         = (*FSM)(nil)
	_ raft.FSMSnapshot = (*fsmSnapshot)(nil)
)

// FSM returns the raft adapter of the store.
func (s *Store) FSM() *FSM { return &FSM{store: s} }

// Apply applies one committed log entry. It returns *Result, or the error
// that left the store unchanged; the same entry gives the same response and
// the same state on every replica.
func (f *FSM) Apply(l *raft.Log) any {
	return f.store.apply(l.Index, l.Data)
}

// Snapshot grabs the current memdb root and does nothing else: raft holds
// its lock while this runs. Persist does the IO.
func (f *FSM) Snapshot() (raft.FSMSnapshot, error) {
	return &fsmSnapshot{tx: f.store.gen.Load().db.Txn(false)}, nil
}

// Restore replaces the whole state with a persisted snapshot. The new memdb
// is built aside and swapped in only once complete, so a bad snapshot
// leaves the store as it was.
func (f *FSM) Restore(rc io.ReadCloser) error {
	defer rc.Close()
	return f.store.Restore(rc)
}

// snapshot stream format (EncodingVersion 1), all msgpack:
//
//	header{Magic, Version, Index}
//	repeated: table tag (uint8), record
//	tagEnd (uint8), record count (uint64)
//
// Records are written table by table in id order, so the same state always
// persists to the same bytes.
const snapshotMagic = "shoal-state"

const restoreBatch = 2048

type snapshotHeader struct {
	Magic   string `json:"magic"`
	Version int    `json:"version"`
	Index   uint64 `json:"index"`
}

const (
	tagMeta uint8 = iota + 1
	tagNodes
	tagPods
	tagRevisions
	tagAllocations
	tagEvents
	tagVolumes
	tagEnd uint8 = 0xff
)

var tableTags = []struct {
	tag   uint8
	table Table
	alloc func() any
}{
	{tagMeta, tableMeta, func() any { return new(metaEntry) }},
	{tagNodes, TableNodes, func() any { return new(Node) }},
	{tagPods, TablePods, func() any { return new(Pod) }},
	{tagRevisions, TableRevisions, func() any { return new(Revision) }},
	{tagAllocations, TableAllocations, func() any { return new(Allocation) }},
	{tagEvents, TableEvents, func() any { return new(Event) }},
	{tagVolumes, TableVolumes, func() any { return new(Volume) }},
}

type fsmSnapshot struct {
	tx *memdb.Txn
}

// Persist streams the snapshot to the sink, and cancels the sink on error.
func (s *fsmSnapshot) Persist(sink raft.SnapshotSink) error {
	if err := writeSnapshot(sink, s.tx); err != nil {
		if cerr := sink.Cancel(); cerr != nil {
			err = errors.Join(err, fmt.Errorf("cancel snapshot sink: %w", cerr))
		}
		return err
	}
	if err := sink.Close(); err != nil {
		return fmt.Errorf("close snapshot sink: %w", err)
	}
	return nil
}

// Release drops the view; the memdb root it held is garbage once unreferenced.
func (s *fsmSnapshot) Release() { s.tx = nil }

// Persist writes the view in the snapshot format, for tools and tests
// that work without raft.
func (v *Snapshot) Persist(w io.Writer) error { return writeSnapshot(w, v.tx) }

func writeSnapshot(w io.Writer, tx *memdb.Txn) error {
	bw := bufio.NewWriterSize(w, 256<<10)
	enc := codec.NewEncoder(bw, msgpackHandle)
	index, err := readMeta(tx, metaApplied)
	if err != nil {
		return err
	}
	if err := enc.Encode(snapshotHeader{Magic: snapshotMagic, Version: EncodingVersion, Index: index}); err != nil {
		return fmt.Errorf("persist header: %w", err)
	}
	var count uint64
	for _, tt := range tableTags {
		it, err := tx.Get(string(tt.table), indexIDName)
		if err != nil {
			return fmt.Errorf("persist %s: %w", tt.table, err)
		}
		for raw := it.Next(); raw != nil; raw = it.Next() {
			if err := enc.Encode(tt.tag); err != nil {
				return fmt.Errorf("persist %s: %w", tt.table, err)
			}
			if err := enc.Encode(raw); err != nil {
				return fmt.Errorf("persist %s: %w", tt.table, err)
			}
			count++
		}
	}
	if err := enc.Encode(tagEnd); err != nil {
		return fmt.Errorf("persist trailer: %w", err)
	}
	if err := enc.Encode(count); err != nil {
		return fmt.Errorf("persist trailer: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("persist: %w", err)
	}
	return nil
}

// Restore replaces the store's state with a snapshot read from r (see
// FSM.Restore). Waiters on the old state wake up.
func (s *Store) Restore(r io.Reader) error {
	db, err := readSnapshot(r)
	if err != nil {
		return err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	old := s.gen.Swap(&generation{db: db, replaced: make(chan struct{})})
	close(old.replaced)
	return nil
}

func readSnapshot(r io.Reader) (*memdb.MemDB, error) {
	dec := codec.NewDecoder(bufio.NewReaderSize(r, 256<<10), msgpackHandle)
	var h snapshotHeader
	if err := dec.Decode(&h); err != nil {
		return nil, fmt.Errorf("restore header: %w", err)
	}
	if h.Magic != snapshotMagic {
		return nil, fmt.Errorf("restore: not a shoal state snapshot (magic %q)", h.Magic)
	}
	if h.Version != EncodingVersion {
		return nil, fmt.Errorf("restore: %w %d (this replica knows %d)", ErrVersion, h.Version, EncodingVersion)
	}
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("state schema: %w", err)
	}
	// Decoding and indexing each take about half the time: they run as a
	// two-stage pipeline. The new db is invisible until Restore swaps it in,
	// so it is filled one transaction per batch, which keeps
	// go-immutable-radix's per-transaction node cache effective (one
	// transaction for the whole snapshot copies the same nodes over and over).
	batches := make(chan []record, 4)
	stop := make(chan struct{})
	decoded := make(chan error, 1)
	go func() { decoded <- decodeRecords(dec, batches, stop) }()
	for batch := range batches {
		tx := db.Txn(true)
		for _, r := range batch {
			if err := tx.Insert(string(r.table), r.v); err != nil {
				tx.Abort()
				close(stop)
				for range batches { // let the decoder finish
				}
				<-decoded
				return nil, fmt.Errorf("restore %s record: %w", r.table, err)
			}
		}
		tx.Commit()
	}
	if err := <-decoded; err != nil {
		return nil, err
	}
	tx := db.Txn(true)
	defer tx.Abort()
	if err := initMeta(tx); err != nil {
		return nil, err
	}
	tx.Commit()
	return db, nil
}

type record struct {
	table Table
	v     any
}

// decodeRecords reads the records and trailer of a snapshot and sends them
// in batches; it closes out when done, and gives up when stop is closed.
func decodeRecords(dec *codec.Decoder, out chan<- []record, stop <-chan struct{}) error {
	defer close(out)
	batch := make([]record, 0, restoreBatch)
	send := func() bool {
		select {
		case out <- batch:
			batch = make([]record, 0, restoreBatch)
			return true
		case <-stop:
			return false
		}
	}
	var count uint64
	for {
		var tag uint8
		if err := dec.Decode(&tag); err != nil {
			return fmt.Errorf("restore after %d records: %w", count, err)
		}
		if tag == tagEnd {
			break
		}
		if int(tag) < 1 || int(tag) > len(tableTags) {
			return fmt.Errorf("restore record %d: unknown table tag %d", count, tag)
		}
		tt := tableTags[tag-1]
		rec := tt.alloc()
		if err := dec.Decode(rec); err != nil {
			return fmt.Errorf("restore record %d (%s): %w", count, tt.table, err)
		}
		batch = append(batch, record{tt.table, rec})
		count++
		if len(batch) == restoreBatch && !send() {
			return errors.New("restore stopped")
		}
	}
	var want uint64
	if err := dec.Decode(&want); err != nil {
		return fmt.Errorf("restore trailer: %w", err)
	}
	if want != count {
		return fmt.Errorf("restore: read %d records, snapshot says %d", count, want)
	}
	if len(batch) > 0 && !send() {
		return errors.New("restore stopped")
	}
	return nil
}

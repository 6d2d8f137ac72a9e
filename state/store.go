package state

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"

	"github.com/hashicorp/go-memdb"
)

// Store is one replica of the cluster state. Writes go through Apply (raft,
// via FSM) or ApplyCommand (tests, single-node simulation): both run the same
// code. Reads go through Snapshot.
type Store struct {
	// wmu serialises writers: raft never applies concurrently, but
	// ApplyCommand callers and Restore may.
	wmu      sync.Mutex
	gen      atomic.Pointer[generation]
	handlers map[CommandType]applyFunc
}

// generation is one memdb instance. Restore replaces the whole generation
// and closes replaced, which wakes every waiter of the old one.
type generation struct {
	db       *memdb.MemDB
	replaced chan struct{}
}

// NewStore returns an empty store.
func NewStore() (*Store, error) {
	db, err := newDB()
	if err != nil {
		return nil, err
	}
	s := &Store{handlers: commandTable()}
	s.gen.Store(&generation{db: db, replaced: make(chan struct{})})
	return s, nil
}

// newDB creates an empty memdb whose per-table index rows exist, so that a
// watch on a table that was never written still fires on its first write.
func newDB() (*memdb.MemDB, error) {
	db, err := memdb.NewMemDB(schema())
	if err != nil {
		return nil, fmt.Errorf("state schema: %w", err)
	}
	tx := db.Txn(true)
	defer tx.Abort()
	if err := initMeta(tx); err != nil {
		return nil, err
	}
	tx.Commit()
	return db, nil
}

func initMeta(tx *memdb.Txn) error {
	for _, k := range metaKeys() {
		raw, err := tx.First(metaTableName, indexIDName, k)
		if err != nil {
			return fmt.Errorf("init meta: %w", err)
		}
		if raw == nil {
			if err := writeMeta(tx, k, 0); err != nil {
				return err
			}
		}
	}
	return nil
}

func metaKeys() []string {
	keys := []string{metaApplied}
	for _, t := range userTables {
		keys = append(keys, metaIndexPfx+string(t))
	}
	return keys
}

// ApplyCommand applies c at the index after the last applied one, through
// the same encode/decode/apply path as a raft log entry. It returns the
// error Apply would have returned as its response.
func (s *Store) ApplyCommand(c Command) (*Result, error) {
	data, err := Encode(c)
	if err != nil {
		return nil, err
	}
	s.wmu.Lock()
	defer s.wmu.Unlock()
	index := s.Snapshot().Index() + 1
	return resultOf(s.applyLocked(index, data))
}

// resultOf unpacks an Apply response.
func resultOf(resp any) (*Result, error) {
	switch r := resp.(type) {
	case *Result:
		return r, nil
	case error:
		return nil, r
	}
	return nil, fmt.Errorf("state: unexpected apply response %T", resp)
}

func (s *Store) apply(index uint64, data []byte) any {
	s.wmu.Lock()
	defer s.wmu.Unlock()
	return s.applyLocked(index, data)
}

// applyLocked decodes the envelope, dispatches through the command table and
// commits, or aborts and returns the error: a failed command leaves the
// store exactly as it was.
func (s *Store) applyLocked(index uint64, data []byte) any {
	if len(data) < 2 {
		return fmt.Errorf("apply entry %d: %w: %d bytes", index, ErrInvalidCommand, len(data))
	}
	typ, version := CommandType(data[0]), data[1]
	if version != EncodingVersion {
		return fmt.Errorf("apply %s at %d: %w %d (this replica knows %d)", typ, index, ErrVersion, version, EncodingVersion)
	}
	h, ok := s.handlers[typ]
	if !ok {
		return fmt.Errorf("apply entry %d: %w %d", index, ErrUnknownCommand, data[0])
	}
	tx := s.gen.Load().db.Txn(true)
	w := &writeTxn{tx: tx, index: index, touched: map[Table]bool{}}
	res, err := h(w, data[2:])
	if err == nil {
		err = w.finish()
	}
	if err != nil {
		tx.Abort()
		return fmt.Errorf("apply %s at %d: %w", typ, index, err)
	}
	tx.Commit()
	res.Index = index
	return res
}

// Snapshot is a consistent read-only view of the store at one applied
// index. It stays valid (and unchanged) however long it is held; records it
// returns are shared and must not be modified (use their Copy methods).
type Snapshot struct {
	tx  *memdb.Txn
	gen *generation
}

// Snapshot returns a view of the current state.
func (s *Store) Snapshot() *Snapshot {
	g := s.gen.Load()
	return &Snapshot{tx: g.db.Txn(false), gen: g}
}

// Index is the raft index of the last command applied in this view.
func (v *Snapshot) Index() uint64 { return must(readMeta(v.tx, metaApplied)) }

// TableIndex is the index of the last command that changed table t.
func (v *Snapshot) TableIndex(t Table) uint64 { return must(readMeta(v.tx, metaIndexPfx+string(t))) }

// Wait blocks until one of the tables changed after this view was taken
// (any command at all when no table is given), the store was restored from
// a snapshot, or ctx is done, whose error it returns. Taking the view, reading
// it, then waiting on it never misses a change.
func (v *Snapshot) Wait(ctx context.Context, tables ...Table) error {
	ws := memdb.NewWatchSet()
	for _, ch := range v.watchChans(tables) {
		ws.Add(ch)
	}
	return ws.WatchCtx(ctx)
}

// Changed reports, without blocking, whether Wait would return at once.
func (v *Snapshot) Changed(tables ...Table) bool {
	for _, ch := range v.watchChans(tables) {
		select {
		case <-ch:
			return true
		default:
		}
	}
	return false
}

// watchChans returns the channels that close when the tables' modify
// indexes change after this view, plus the restore channel.
func (v *Snapshot) watchChans(tables []Table) []<-chan struct{} {
	keys := []string{metaApplied}
	if len(tables) > 0 {
		keys = keys[:0]
		for _, t := range tables {
			keys = append(keys, metaIndexPfx+string(t))
		}
	}
	chans := []<-chan struct{}{v.gen.replaced}
	for _, k := range keys {
		// The rows exist from NewStore on; a lookup error would be a
		// schema bug.
		ch, _ := must2(v.tx.FirstWatch(metaTableName, indexIDName, k))
		chans = append(chans, ch)
	}
	return chans
}

func must2[A, B any](a A, b B, err error) (A, B) {
	if err != nil {
		panic(fmt.Sprintf("state: %v", err))
	}
	return a, b
}

// Watch delivers a fresh view at once and then after every change to the
// tables, until ctx is done, when the channel is closed. A slow reader gets
// the latest view, not every one in between.
func (s *Store) Watch(ctx context.Context, tables ...Table) <-chan *Snapshot {
	ch := make(chan *Snapshot, 1)
	go func() {
		defer close(ch)
		for {
			v := s.Snapshot()
			select {
			case <-ch: // drop the view the reader has not taken yet
			default:
			}
			ch <- v
			if v.Wait(ctx, tables...) != nil {
				return
			}
		}
	}()
	return ch
}

// must turns an index error into a panic. Reads fail only if the schema and
// the getters disagree, which the package's tests exercise; it is not a
// condition a caller could handle.
func must[T any](v T, err error) T {
	if err != nil {
		panic(fmt.Sprintf("state: %v", err))
	}
	return v
}

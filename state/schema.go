package state

import (
	"encoding/binary"
	"fmt"
	"strings"

	"github.com/hashicorp/go-memdb"
)

// Table names a table of the store. Loops wait on tables (Snapshot.Wait),
// so the names are part of the package's API.
type Table string

const (
	TableNodes       Table = "nodes"
	TablePods        Table = "pods"
	TableRevisions   Table = "revisions"
	TableAllocations Table = "allocations"
	TableEvents      Table = "events"
	TableVolumes     Table = "volumes"

	// tableMeta holds the per-table modify indexes, the last applied index
	// and the sequence counters. It is internal: nothing outside the
	// package names it.
	tableMeta Table = "meta"
)

// userTables lists the tables whose modify indexes are tracked, in order.
var userTables = [...]Table{TableNodes, TablePods, TableRevisions, TableAllocations, TableEvents, TableVolumes}

// schema assembles the per-table schemas; each table's file owns its own.
func schema() *memdb.DBSchema {
	s := &memdb.DBSchema{Tables: map[string]*memdb.TableSchema{}}
	for _, ts := range []*memdb.TableSchema{
		metaSchema(), nodesSchema(), podsSchema(), revisionsSchema(), allocationsSchema(), eventsSchema(), volumesSchema(),
	} {
		s.Tables[ts.Name] = ts
	}
	return s
}

// keyIndex indexes records of type T by a string key built by fn. A key may
// be compound: fn joins its components with key(). fn returning ok=false
// leaves the record out of the index, which makes sparse indexes cheap (the
// unplaced-pods index holds only unplaced pods).
//
// Keys are terminated by a NUL byte so that a prefix lookup by complete
// components ("default") never matches a longer one ("default2"); commands
// reject identifiers that contain NUL.
type keyIndex[T any] struct {
	fn func(*T) (string, bool)
}

func (x keyIndex[T]) FromObject(raw any) (bool, []byte, error) {
	v, ok := raw.(*T)
	if !ok {
		return false, nil, fmt.Errorf("index: want %T, got %T", v, raw)
	}
	k, ok := x.fn(v)
	if !ok {
		return false, nil, nil
	}
	return true, append([]byte(k), 0), nil
}

func (x keyIndex[T]) FromArgs(args ...any) ([]byte, error) {
	return joinArgs(args)
}

// PrefixFromArgs matches every key whose leading components equal args.
func (x keyIndex[T]) PrefixFromArgs(args ...any) ([]byte, error) {
	return joinArgs(args)
}

func joinArgs(args []any) ([]byte, error) {
	if len(args) == 0 {
		return nil, fmt.Errorf("index: no arguments")
	}
	var b []byte
	for i, a := range args {
		s, ok := a.(string)
		if !ok {
			return nil, fmt.Errorf("index: argument %d: want string, got %T", i, a)
		}
		b = append(b, s...)
		b = append(b, 0)
	}
	return b, nil
}

// key joins the components of a compound key; keyIndex appends the final
// terminator.
func key(parts ...string) string { return strings.Join(parts, "\x00") }

// seqIndex indexes records by a uint64 sequence, big-endian so that the
// radix tree iterates in numeric order.
type seqIndex[T any] struct {
	fn func(*T) uint64
}

func (x seqIndex[T]) FromObject(raw any) (bool, []byte, error) {
	v, ok := raw.(*T)
	if !ok {
		return false, nil, fmt.Errorf("index: want %T, got %T", v, raw)
	}
	return true, binary.BigEndian.AppendUint64(nil, x.fn(v)), nil
}

func (x seqIndex[T]) FromArgs(args ...any) ([]byte, error) {
	if len(args) != 1 {
		return nil, fmt.Errorf("index: want one argument, got %d", len(args))
	}
	n, ok := args[0].(uint64)
	if !ok {
		return nil, fmt.Errorf("index: want uint64, got %T", args[0])
	}
	return binary.BigEndian.AppendUint64(nil, n), nil
}

// meta rows: per-table modify indexes and sequence counters.
type metaEntry struct {
	Key   string `json:"k"`
	Value uint64 `json:"v"`
}

const (
	metaApplied   = "applied"
	metaEventSeq  = "seq/events"
	metaRevSeq    = "seq/revisions"
	metaIndexPfx  = "index/"
	indexIDName   = "id"
	metaTableName = string(tableMeta)
)

func metaSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: metaTableName,
		Indexes: map[string]*memdb.IndexSchema{
			indexIDName: {Name: indexIDName, Unique: true, Indexer: keyIndex[metaEntry]{func(m *metaEntry) (string, bool) { return m.Key, true }}},
		},
	}
}

func readMeta(tx *memdb.Txn, k string) (uint64, error) {
	raw, err := tx.First(metaTableName, indexIDName, k)
	if err != nil {
		return 0, fmt.Errorf("read meta %q: %w", k, err)
	}
	if raw == nil {
		return 0, nil
	}
	return raw.(*metaEntry).Value, nil
}

func writeMeta(tx *memdb.Txn, k string, v uint64) error {
	if err := tx.Insert(metaTableName, &metaEntry{Key: k, Value: v}); err != nil {
		return fmt.Errorf("write meta %q: %w", k, err)
	}
	return nil
}

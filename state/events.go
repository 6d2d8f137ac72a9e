package state

import (
	"fmt"
	"sort"
	"time"

	"github.com/hashicorp/go-memdb"
)

// Event is one line of an object's history (scheduling failures, refused
// commits, lost pods), shown by `shoal describe`.
type Event struct {
	Seq     uint64    `json:"seq"`
	Key     string    `json:"key"` // the object: "Pod/ns/name", "Node/name", ...
	Type    string    `json:"type,omitempty"`
	Reason  string    `json:"reason"`
	Message string    `json:"message,omitempty"`
	Commit  string    `json:"commit,omitempty"`
	Time    time.Time `json:"time,omitzero"`
}

// EventLimits bound the events table. They travel in the command, so that
// every replica trims the same way whatever its binary's defaults.
type EventLimits struct {
	PerObject int `json:"perObject,omitempty"`
	Total     int `json:"total,omitempty"`
}

// The defaults apply when a command leaves a limit at zero. Part of
// EncodingVersion 1: changing them needs a new version.
const (
	DefaultEventsPerObject = 20
	DefaultEventsTotal     = 10000
)

// metaEventCount counts the events table, so that trimming to the total
// limit does not walk the table.
const metaEventCount = "count/events"

const indexEventKey = "key"

func eventsSchema() *memdb.TableSchema {
	return &memdb.TableSchema{
		Name: string(TableEvents),
		Indexes: map[string]*memdb.IndexSchema{
			indexIDName: {Name: indexIDName, Unique: true, Indexer: seqIndex[Event]{func(e *Event) uint64 { return e.Seq }}},
			// Non-unique: memdb appends the id, so one object's events
			// iterate in sequence order.
			indexEventKey: {Name: indexEventKey, Indexer: keyIndex[Event]{func(e *Event) (string, bool) { return e.Key, true }}},
		},
	}
}

// AppendEvents records events, then trims the oldest beyond the limits:
// first per object, then overall.
type AppendEvents struct {
	Events []Event     `json:"events"`
	Limits EventLimits `json:"limits,omitzero"`
}

func (*AppendEvents) CommandType() CommandType { return CmdAppendEvents }

func (c *AppendEvents) validate() error {
	if c.Limits.PerObject < 0 || c.Limits.Total < 0 {
		return fmt.Errorf("negative event limits %+v", c.Limits)
	}
	for i, e := range c.Events {
		if err := checkID("event key", e.Key); err != nil {
			return fmt.Errorf("event %d: %v", i, err)
		}
		if e.Reason == "" {
			return fmt.Errorf("event %d for %s: no reason", i, e.Key)
		}
	}
	return nil
}

func applyAppendEvents(w *writeTxn, c *AppendEvents) (*Result, error) {
	lim := c.Limits
	if lim.PerObject == 0 {
		lim.PerObject = DefaultEventsPerObject
	}
	if lim.Total == 0 {
		lim.Total = DefaultEventsTotal
	}
	count, err := readMeta(w.tx, metaEventCount)
	if err != nil {
		return nil, err
	}
	keys := map[string]bool{}
	for i := range c.Events {
		e := c.Events[i]
		seq, err := w.nextSeq(metaEventSeq)
		if err != nil {
			return nil, err
		}
		e.Seq = seq
		e.Time = utc(e.Time)
		e.Message = truncate(e.Message)
		if err := w.insert(TableEvents, &e); err != nil {
			return nil, err
		}
		keys[e.Key] = true
		count++
	}
	// Sorted, so that trimming is the same on every replica (it would be
	// anyway, since each key is trimmed on its own; sorting makes it obvious).
	sorted := make([]string, 0, len(keys))
	for k := range keys {
		sorted = append(sorted, k)
	}
	sort.Strings(sorted)
	for _, k := range sorted {
		evs, err := all[Event](w.tx, TableEvents, indexEventKey, k)
		if err != nil {
			return nil, err
		}
		for _, e := range evs[:max(0, len(evs)-lim.PerObject)] {
			if err := w.delete(TableEvents, e); err != nil {
				return nil, err
			}
			count--
		}
	}
	if excess := int(count) - lim.Total; excess > 0 {
		if err := trimOldest(w, excess); err != nil {
			return nil, err
		}
		count -= uint64(excess)
	}
	if err := writeMeta(w.tx, metaEventCount, count); err != nil {
		return nil, err
	}
	return &Result{Applied: len(c.Events)}, nil
}

// trimOldest deletes the n oldest events.
func trimOldest(w *writeTxn, n int) error {
	it, err := w.tx.Get(string(TableEvents), indexIDName)
	if err != nil {
		return fmt.Errorf("read events: %w", err)
	}
	// Collect first: deleting while iterating the same index is not allowed.
	oldest := make([]*Event, 0, n)
	for raw := it.Next(); raw != nil && len(oldest) < n; raw = it.Next() {
		oldest = append(oldest, raw.(*Event))
	}
	for _, e := range oldest {
		if err := w.delete(TableEvents, e); err != nil {
			return err
		}
	}
	return nil
}

// Events returns one object's events, oldest first.
func (v *Snapshot) Events(key string) []*Event {
	return must(all[Event](v.tx, TableEvents, indexEventKey, key))
}

// AllEvents returns every event, oldest first.
func (v *Snapshot) AllEvents() []*Event {
	return must(all[Event](v.tx, TableEvents, indexIDName))
}

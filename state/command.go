package state

import (
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/hashicorp/go-memdb"
	"github.com/hashicorp/go-msgpack/v2/codec"
)

// CommandType is the first byte of every raft log entry the FSM applies.
// Values are part of the replicated log format: never renumber, only add.
type CommandType uint8

const (
	CmdUpsertNode CommandType = iota + 1
	CmdSetNodeStatus
	CmdDeleteNode
	CmdPinRevision
	CmdRefuseRevision
	CmdCreatePods
	CmdBindPods
	CmdUpdatePodStatus
	CmdSetPodsDesired
	CmdDeletePods
	CmdMarkPodsLost
	CmdAllocate
	CmdRelease
	CmdAppendEvents
	CmdRecordVolumes
	CmdDeleteVolumes
	CmdRemoveVolumes
)

var commandNames = map[CommandType]string{
	CmdUpsertNode:      "upsert-node",
	CmdSetNodeStatus:   "set-node-status",
	CmdDeleteNode:      "delete-node",
	CmdPinRevision:     "pin-revision",
	CmdRefuseRevision:  "refuse-revision",
	CmdCreatePods:      "create-pods",
	CmdBindPods:        "bind-pods",
	CmdUpdatePodStatus: "update-pod-status",
	CmdSetPodsDesired:  "set-pods-desired",
	CmdDeletePods:      "delete-pods",
	CmdMarkPodsLost:    "mark-pods-lost",
	CmdAllocate:        "allocate",
	CmdRelease:         "release",
	CmdAppendEvents:    "append-events",
	CmdRecordVolumes:   "record-volumes",
	CmdDeleteVolumes:   "delete-volumes",
	CmdRemoveVolumes:   "remove-volumes",
}

func (t CommandType) String() string {
	if n, ok := commandNames[t]; ok {
		return n
	}
	return fmt.Sprintf("command(%d)", uint8(t))
}

// EncodingVersion is the second byte of every log entry and is written in
// snapshot headers. Bump it whenever a command's encoding or its meaning
// (including the defaults of the history limits) changes; a replica refuses
// entries of a version it does not know instead of guessing.
const EncodingVersion = 1

// Command is a decision the leader asks the store to record.
type Command interface {
	CommandType() CommandType
}

// Errors returned (wrapped) by Apply. An Apply that returns an error left
// the store unchanged.
var (
	ErrInvalidCommand = errors.New("invalid command")
	ErrUnknownCommand = errors.New("unknown command type")
	ErrVersion        = errors.New("unsupported encoding version")
	ErrConflict       = errors.New("conflict")
)

// Result is what a successful Apply returns (as the raft ApplyFuture's
// response). Items that failed their expected-state check are listed in
// Rejected; the others were applied.
type Result struct {
	Index    uint64      `json:"index"`
	Applied  int         `json:"applied"`
	Rejected []Rejection `json:"rejected,omitempty"`
}

// RejectReason says why one item of a batch was not applied.
type RejectReason string

const (
	RejectPodNotFound     RejectReason = "pod-not-found"
	RejectPodExists       RejectReason = "pod-exists"
	RejectNameTaken       RejectReason = "name-taken"
	RejectAlreadyBound    RejectReason = "already-bound"
	RejectNotRunnable     RejectReason = "pod-not-runnable"
	RejectNodeNotFound    RejectReason = "node-not-found"
	RejectNodeGone        RejectReason = "node-gone"
	RejectNotOnNode       RejectReason = "pod-not-on-node"
	RejectPodLost         RejectReason = "pod-lost"
	RejectAlreadyTerminal RejectReason = "already-terminal"
	RejectVolumeElsewhere RejectReason = "volume-elsewhere"
	RejectVolumeNotFound  RejectReason = "volume-not-found"
	RejectVolumeInUse     RejectReason = "volume-in-use"
	RejectVolumeKept      RejectReason = "volume-kept"
	RejectClaimRecorded   RejectReason = "claim-recorded"
)

// Rejection names the item (pod UID, and node where relevant) and the reason.
type Rejection struct {
	UID    string       `json:"uid"`
	Node   string       `json:"node,omitempty"`
	Reason RejectReason `json:"reason"`
}

// msgpackHandle is configured once and only read afterwards (the codec
// caches type information inside it). Canonical sorts map keys, so that the
// same value always encodes to the same bytes.
var msgpackHandle = func() *codec.MsgpackHandle {
	h := &codec.MsgpackHandle{}
	h.Canonical = true
	h.WriteExt = true
	return h
}()

// Encode turns a command into a log entry: type byte, version byte, msgpack body.
func Encode(c Command) ([]byte, error) {
	var body []byte
	if err := codec.NewEncoderBytes(&body, msgpackHandle).Encode(c); err != nil {
		return nil, fmt.Errorf("encode %s: %w", c.CommandType(), err)
	}
	out := make([]byte, 2+len(body))
	out[0] = byte(c.CommandType())
	out[1] = EncodingVersion
	copy(out[2:], body)
	return out, nil
}

func decodeBody(body []byte, v any) error {
	return codec.NewDecoderBytes(body, msgpackHandle).Decode(v)
}

// applyFunc applies one decoded command inside a write transaction.
type applyFunc func(w *writeTxn, body []byte) (*Result, error)

// validator is implemented by commands that can be checked before touching the store.
type validator interface{ validate() error }

// handle builds the applyFunc of one command type: decode, validate, apply.
func handle[C any, P interface {
	*C
	Command
}](apply func(*writeTxn, P) (*Result, error)) applyFunc {
	return func(w *writeTxn, body []byte) (*Result, error) {
		var c C
		p := P(&c)
		if err := decodeBody(body, p); err != nil {
			return nil, fmt.Errorf("%w: decode %s: %v", ErrInvalidCommand, p.CommandType(), err)
		}
		if v, ok := any(p).(validator); ok {
			if err := v.validate(); err != nil {
				return nil, fmt.Errorf("%w: %s: %v", ErrInvalidCommand, p.CommandType(), err)
			}
		}
		return apply(w, p)
	}
}

// commandTable is the dispatch table of the FSM. Each table's file owns the
// apply functions of its commands.
func commandTable() map[CommandType]applyFunc {
	return map[CommandType]applyFunc{
		CmdUpsertNode:      handle(applyUpsertNode),
		CmdSetNodeStatus:   handle(applySetNodeStatus),
		CmdDeleteNode:      handle(applyDeleteNode),
		CmdPinRevision:     handle(applyPinRevision),
		CmdRefuseRevision:  handle(applyRefuseRevision),
		CmdCreatePods:      handle(applyCreatePods),
		CmdBindPods:        handle(applyBindPods),
		CmdUpdatePodStatus: handle(applyUpdatePodStatus),
		CmdSetPodsDesired:  handle(applySetPodsDesired),
		CmdDeletePods:      handle(applyDeletePods),
		CmdMarkPodsLost:    handle(applyMarkPodsLost),
		CmdAllocate:        handle(applyAllocate),
		CmdRelease:         handle(applyRelease),
		CmdAppendEvents:    handle(applyAppendEvents),
		CmdRecordVolumes:   handle(applyRecordVolumes),
		CmdDeleteVolumes:   handle(applyDeleteVolumes),
		CmdRemoveVolumes:   handle(applyRemoveVolumes),
	}
}

// writeTxn is the write transaction of one Apply: the memdb txn, the log
// index being applied and the tables it touched, whose modify indexes are
// bumped on success.
type writeTxn struct {
	tx      *memdb.Txn
	index   uint64
	touched map[Table]bool
}

func (w *writeTxn) insert(t Table, obj any) error {
	if err := w.tx.Insert(string(t), obj); err != nil {
		return fmt.Errorf("insert into %s: %w", t, err)
	}
	w.touched[t] = true
	return nil
}

func (w *writeTxn) delete(t Table, obj any) error {
	if err := w.tx.Delete(string(t), obj); err != nil {
		return fmt.Errorf("delete from %s: %w", t, err)
	}
	w.touched[t] = true
	return nil
}

// first returns the record with the given id, or nil.
func first[T any](w *memdb.Txn, t Table, index string, args ...any) (*T, error) {
	raw, err := w.First(string(t), index, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s by %s: %w", t, index, err)
	}
	if raw == nil {
		return nil, nil
	}
	return raw.(*T), nil
}

// all collects the records an index lookup returns.
func all[T any](tx *memdb.Txn, t Table, index string, args ...any) ([]*T, error) {
	it, err := tx.Get(string(t), index, args...)
	if err != nil {
		return nil, fmt.Errorf("read %s by %s: %w", t, index, err)
	}
	var out []*T
	for raw := it.Next(); raw != nil; raw = it.Next() {
		out = append(out, raw.(*T))
	}
	return out, nil
}

// nextSeq returns the next value of a sequence counter kept in the meta table.
func (w *writeTxn) nextSeq(k string) (uint64, error) {
	n, err := readMeta(w.tx, k)
	if err != nil {
		return 0, err
	}
	n++
	return n, writeMeta(w.tx, k, n)
}

// finish records the applied index and the modify index of every table the
// command touched.
func (w *writeTxn) finish() error {
	for _, t := range userTables {
		if w.touched[t] {
			if err := writeMeta(w.tx, metaIndexPfx+string(t), w.index); err != nil {
				return err
			}
		}
	}
	return writeMeta(w.tx, metaApplied, w.index)
}

// Validation helpers shared by the commands.

// maxMessage bounds the free-text fields a command stores (status messages,
// event messages, refusal reasons). Longer text is cut at a rune boundary in
// Apply, deterministically.
const maxMessage = 1024

func truncate(s string) string {
	if len(s) <= maxMessage {
		return s
	}
	cut := maxMessage
	for cut > 0 && !utf8RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

func utf8RuneStart(b byte) bool { return b&0xC0 != 0x80 }

// checkID rejects empty identifiers and those that would break index keys.
func checkID(what, s string) error {
	if s == "" {
		return fmt.Errorf("%s is empty", what)
	}
	if strings.IndexByte(s, 0) >= 0 {
		return fmt.Errorf("%s %q contains a NUL byte", what, s)
	}
	return nil
}

// utc strips the location and monotonic reading so that a time encodes and
// prints the same on every replica and after a snapshot round trip.
func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC().Round(0)
}

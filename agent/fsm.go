package agent

import (
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/hashicorp/raft"

	"github.com/shoal-dev/shoal/cluster"
	"github.com/shoal-dev/shoal/state"
)

// resultFSM adapts state's FSM to cluster's contract: the response of Apply
// crosses the network, so it must be nil, []byte or error. The *state.Result
// is encoded as JSON here and decoded by applyCommand on the caller's side.
type resultFSM struct{ inner *state.FSM }

var _ raft.FSM = resultFSM{}

func (f resultFSM) Apply(l *raft.Log) any {
	switch r := f.inner.Apply(l).(type) {
	case nil:
		return nil
	case error:
		return r
	case *state.Result:
		b, err := json.Marshal(r)
		if err != nil {
			// Unreachable for a struct of plain fields; an error keeps the
			// contract and says what happened.
			return fmt.Errorf("encode result: %w", err)
		}
		return b
	default:
		return fmt.Errorf("state FSM returned %T", r)
	}
}

func (f resultFSM) Snapshot() (raft.FSMSnapshot, error) { return f.inner.Snapshot() }
func (f resultFSM) Restore(rc io.ReadCloser) error      { return f.inner.Restore(rc) }

// applier commits commands; *cluster.Node is one.
type applier interface {
	Apply(ctx context.Context, cmd []byte) (cluster.ApplyResult, error)
}

// applyCommand encodes c, commits it through the cluster and decodes the
// Result the FSM sent back.
func applyCommand(ctx context.Context, a applier, c state.Command) (*state.Result, error) {
	b, err := state.Encode(c)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.CommandType(), err)
	}
	res, err := a.Apply(ctx, b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", c.CommandType(), err)
	}
	out := &state.Result{Index: res.Index}
	switch r := res.Response.(type) {
	case nil:
	case []byte:
		if len(r) > 0 {
			if err := json.Unmarshal(r, out); err != nil {
				return nil, fmt.Errorf("%s: decode result: %w", c.CommandType(), err)
			}
		}
	default:
		return nil, fmt.Errorf("%s: committed at index %d with a response of type %T", c.CommandType(), res.Index, r)
	}
	return out, nil
}

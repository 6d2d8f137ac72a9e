package cluster

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/hashicorp/raft"
)

// ErrNoLeader is returned (wrapped) by Apply when no leader could be
// reached before the hold timeout or the context deadline.
var ErrNoLeader = errors.New("no cluster leader")

// FSMError is an error value returned by the FSM's Apply for a command. The
// command was committed; the FSM refused it. When the command was forwarded
// only the message crosses the network: Unwrap gives the original error
// only on the leader.
type FSMError struct {
	Msg string
	err error // the original error when applied on this node
}

func (e *FSMError) Error() string { return "state machine: " + e.Msg }
func (e *FSMError) Unwrap() error { return e.err }

// ApplyResult is the outcome of a committed command.
type ApplyResult struct {
	Index uint64 // raft index the command was committed at
	// Response is the FSM's response: the value itself when this node led,
	// else the leader's value through Config.ResponseCodec.
	Response any
}

// ResponseCodec carries FSM responses from the leader to the node that
// forwarded the command. Decode(Encode(v)) should give back a value of the
// same type, so callers see the same thing on every node.
type ResponseCodec interface {
	Encode(resp any) ([]byte, error)
	Decode(b []byte) (any, error)
}

var _ ResponseCodec = BytesCodec{}

// BytesCodec is the default ResponseCodec: it carries nil and []byte
// responses and refuses anything else.
type BytesCodec struct{}

func (BytesCodec) Encode(resp any) ([]byte, error) {
	switch v := resp.(type) {
	case nil:
		return nil, nil
	case []byte:
		return v, nil
	}
	return nil, fmt.Errorf("the FSM returned a %T, which BytesCodec cannot carry: set Config.ResponseCodec", resp)
}

func (BytesCodec) Decode(b []byte) (any, error) { return b, nil }

const defaultApplyTimeout = 10 * time.Second

// Apply commits cmd through raft from any node: the leader applies it, any
// other node forwards it to the leader. When there is no leader, or the
// leader changes before the command was sent, Apply waits for a new one for
// up to ApplyHoldTimeout (bounded by ctx). A command is sent at most once:
// an error after it may have reached the leader (e.g. leadership lost while
// committing) is returned, not retried, so the caller decides whether it is
// safe to repeat.
func (n *Node) Apply(ctx context.Context, cmd []byte) (ApplyResult, error) {
	deadline := time.Now().Add(defaultApplyTimeout)
	if dl, ok := ctx.Deadline(); ok {
		deadline = dl
	}
	hold := time.Now().Add(n.cfg.ApplyHoldTimeout)
	if hold.After(deadline) {
		hold = deadline
	}
	var last error
	for {
		changed := n.leaderChanged()
		res, err, retry := n.applyOnce(ctx, cmd, deadline)
		if !retry {
			return res, err
		}
		last = err
		if !time.Now().Before(hold) {
			return ApplyResult{}, fmt.Errorf("apply: %w (waited %s: %v)", ErrNoLeader, n.cfg.ApplyHoldTimeout, last)
		}
		t := time.NewTimer(time.Until(hold))
		select {
		case <-changed:
		case <-n.MembersWatch(): // the leader's RPC address may have become known
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return ApplyResult{}, fmt.Errorf("apply: %w (%v)", ctx.Err(), last)
		case <-n.ctx.Done():
			t.Stop()
			return ApplyResult{}, errors.New("apply: node shut down")
		}
		t.Stop()
	}
}

// applyOnce tries the current leader once. retry is true only when the
// command certainly was not applied.
func (n *Node) applyOnce(ctx context.Context, cmd []byte, deadline time.Time) (ApplyResult, error, bool) {
	if err := ctx.Err(); err != nil {
		return ApplyResult{}, err, false
	}
	if n.ctx.Err() != nil {
		return ApplyResult{}, errors.New("apply: node shut down"), false
	}
	if n.raft.State() == raft.Leader {
		out := n.leaderApply(cmd, time.Until(deadline))
		res := ApplyResult{Index: out.index, Response: out.resp}
		switch out.kind {
		case errNone:
			return res, nil, false
		case errNotLeader:
			return res, out.err, true
		case errFSM:
			return res, &FSMError{Msg: out.err.Error(), err: out.err}, false
		default:
			return res, fmt.Errorf("apply: %w", out.err), false
		}
	}
	_, id := n.raft.LeaderWithID()
	if id == "" {
		return ApplyResult{}, errors.New("no leader elected"), true
	}
	m, ok := n.member(string(id))
	if !ok || m.RPCAddr == "" {
		return ApplyResult{}, fmt.Errorf("leader %s is not in gossip yet", id), true
	}
	done := make(chan struct{})
	resp, err := n.rpc.call(m.RPCAddr, &rpcRequest{Op: opApply, Cmd: cmd, Timeout: time.Until(deadline)}, deadline,
		n.leaderGone(id, done))
	close(done)
	if err != nil {
		var ns errNotSent
		if errors.As(err, &ns) {
			return ApplyResult{}, fmt.Errorf("leader %s at %s: %w", id, m.RPCAddr, err), true
		}
		return ApplyResult{}, fmt.Errorf("apply via leader %s: %w", id, err), false
	}
	res := ApplyResult{Index: resp.Index}
	switch resp.Kind {
	case errNone:
		v, err := n.codec.Decode(resp.Response)
		if err != nil {
			return res, fmt.Errorf("apply via leader %s: committed at index %d, but its response does not decode: %w",
				id, resp.Index, err), false
		}
		res.Response = v
		return res, nil, false
	case errNotLeader:
		return res, errors.New(resp.Err), true
	case errFSM:
		return res, &FSMError{Msg: resp.Err}, false
	default:
		return res, fmt.Errorf("apply via leader %s: %s", id, resp.Err), false
	}
}

// applied is the outcome of raft.Apply on the leader.
type applied struct {
	index uint64
	resp  any // the FSM's response (errNone only)
	kind  rpcErrKind
	err   error
}

// leaderApply applies cmd on this node, which believes it leads.
func (n *Node) leaderApply(cmd []byte, timeout time.Duration) applied {
	f := n.raft.Apply(cmd, timeout)
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrNotLeader) {
			return applied{kind: errNotLeader, err: err}
		}
		return applied{kind: errOther, err: err}
	}
	if err, ok := f.Response().(error); ok {
		return applied{index: f.Index(), kind: errFSM, err: err}
	}
	return applied{index: f.Index(), resp: f.Response()}
}

// leaderGone returns a channel closed once raft names a leader other than
// id (or none), until done is closed.
func (n *Node) leaderGone(id raft.ServerID, done <-chan struct{}) <-chan struct{} {
	out := make(chan struct{})
	go func() {
		for {
			changed := n.leaderChanged()
			if _, cur := n.raft.LeaderWithID(); cur != id {
				close(out)
				return
			}
			select {
			case <-changed:
			case <-done:
				return
			case <-n.ctx.Done():
				return
			}
		}
	}()
	return out
}

package cluster

import (
	"crypto/tls"
	"encoding/gob"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
)

// The RPC port carries requests from any node to the leader: forwarded
// writes and the autopilot's health checks. A connection is TLS 1.3 with
// both ends authenticated by the key derived from the cluster key (see
// key.go), then a gob stream of request/response pairs, one at a time per
// connection; concurrency comes from a pool of connections.

type rpcOp uint8

const (
	opApply  rpcOp = 1 // apply a command; only the leader accepts it
	opStatus rpcOp = 2 // report this node's applied index
)

type rpcRequest struct {
	Op      rpcOp
	Cmd     []byte
	Timeout time.Duration
}

type rpcErrKind uint8

const (
	errNone      rpcErrKind = iota
	errNotLeader            // not applied: safe to send elsewhere
	errFSM                  // the FSM returned an error value
	errOther                // anything else, possibly applied (e.g. leadership lost mid-commit)
)

type rpcResponse struct {
	Index        uint64
	Response     []byte
	Err          string
	Kind         rpcErrKind
	AppliedIndex uint64
}

func (n *Node) serveRPC() {
	cfg := n.keys.tlsConfig(alpnRPC)
	var conns sync.WaitGroup
	var mu sync.Mutex
	open := map[net.Conn]struct{}{}
	defer func() {
		mu.Lock()
		for c := range open {
			c.Close()
		}
		mu.Unlock()
		conns.Wait()
	}()
	for {
		raw, err := n.rpcLn.Accept()
		if err != nil {
			if n.ctx.Err() == nil {
				n.log.Error("rpc accept", "err", err)
			}
			return
		}
		c := tls.Server(raw, cfg)
		mu.Lock()
		open[c] = struct{}{}
		mu.Unlock()
		conns.Add(1)
		go func() {
			defer conns.Done()
			n.handleRPCConn(c)
			c.Close()
			mu.Lock()
			delete(open, c)
			mu.Unlock()
		}()
	}
}

func (n *Node) handleRPCConn(c *tls.Conn) {
	c.SetDeadline(time.Now().Add(n.cfg.Gossip.TCPTimeout))
	if err := c.Handshake(); err != nil {
		n.log.Warn("rpc connection refused", "remote", c.RemoteAddr().String(), "err", err)
		return
	}
	c.SetDeadline(time.Time{})
	dec := gob.NewDecoder(c)
	enc := gob.NewEncoder(c)
	for {
		var req rpcRequest
		if err := dec.Decode(&req); err != nil {
			return
		}
		var resp rpcResponse
		switch req.Op {
		case opApply:
			resp = n.applyOnLeader(req.Cmd, req.Timeout)
		case opStatus:
			resp.AppliedIndex = n.raft.AppliedIndex()
		default:
			resp = rpcResponse{Kind: errOther, Err: fmt.Sprintf("unknown rpc op %d", req.Op)}
		}
		if err := enc.Encode(&resp); err != nil {
			return
		}
	}
}

// applyOnLeader serves a forwarded write.
func (n *Node) applyOnLeader(cmd []byte, timeout time.Duration) rpcResponse {
	if n.raft.State() != raft.Leader {
		return rpcResponse{Kind: errNotLeader, Err: raft.ErrNotLeader.Error()}
	}
	out := n.leaderApply(cmd, timeout)
	resp := rpcResponse{Index: out.index, Kind: out.kind}
	if out.err != nil {
		resp.Err = out.err.Error()
		return resp
	}
	b, err := n.codec.Encode(out.resp)
	if err != nil {
		resp.Kind = errOther
		resp.Err = fmt.Sprintf("committed at index %d, but the response cannot be sent back: %v", out.index, err)
		return resp
	}
	resp.Response = b
	return resp
}

// rpcPool keeps idle connections per address.
type rpcPool struct {
	n      *Node
	tls    *tls.Config
	mu     sync.Mutex
	idle   map[string][]*rpcConn
	closed bool
}

type rpcConn struct {
	c   net.Conn
	raw net.Conn // the TCP connection under TLS
	enc *gob.Encoder
	dec *gob.Decoder
}

func newRPCPool(n *Node) *rpcPool {
	return &rpcPool{n: n, tls: n.keys.tlsConfig(alpnRPC), idle: map[string][]*rpcConn{}}
}

func (p *rpcPool) get(addr string, timeout time.Duration) (*rpcConn, error) {
	p.mu.Lock()
	if p.closed {
		p.mu.Unlock()
		return nil, errors.New("node shut down")
	}
	for l := p.idle[addr]; len(l) > 0; l = p.idle[addr] {
		c := l[len(l)-1]
		p.idle[addr] = l[:len(l)-1]
		// A connection the other side closed while idle (it restarted or
		// shut down) is dropped here, so that a request is only written to
		// a connection that was open: a failure after the write is then a
		// real "maybe applied", not a stale socket.
		if peerClosed(c.raw) {
			c.c.Close()
			continue
		}
		p.mu.Unlock()
		return c, nil
	}
	p.mu.Unlock()
	var raw net.Conn
	c, err := p.n.cfg.fault.dial(p.n.cfg.NodeName, addr, func() (net.Conn, error) {
		c, err := dialTLS(addr, timeout, p.tls)
		if err == nil {
			raw = c.(*tls.Conn).NetConn()
		}
		return c, err
	})
	if err != nil {
		return nil, err
	}
	return &rpcConn{c: c, raw: raw, enc: gob.NewEncoder(c), dec: gob.NewDecoder(c)}, nil
}

func (p *rpcPool) put(addr string, c *rpcConn) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed || len(p.idle[addr]) >= 16 {
		c.c.Close()
		return
	}
	p.idle[addr] = append(p.idle[addr], c)
}

func (p *rpcPool) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for _, l := range p.idle {
		for _, c := range l {
			c.c.Close()
		}
	}
	p.idle = nil
}

// errNotSent marks a call that failed before the request could have reached
// the other side, so it is safe to retry.
type errNotSent struct{ err error }

func (e errNotSent) Error() string { return e.err.Error() }
func (e errNotSent) Unwrap() error { return e.err }

// call sends one request and waits for its response until deadline, or
// until abort is closed (the leader changed: a dead leader's machine may
// never answer, and waiting for the deadline would stall the caller).
func (p *rpcPool) call(addr string, req *rpcRequest, deadline time.Time, abort <-chan struct{}) (rpcResponse, error) {
	var resp rpcResponse
	c, err := p.get(addr, time.Until(deadline))
	if err != nil {
		return resp, errNotSent{err}
	}
	c.c.SetDeadline(deadline)
	aborted := make(chan struct{})
	if abort != nil {
		done := make(chan struct{})
		defer close(done)
		go func() {
			select {
			case <-abort:
				close(aborted)
				c.c.SetDeadline(time.Now())
			case <-done:
			}
		}()
	}
	fail := func(err error) (rpcResponse, error) {
		c.c.Close()
		select {
		case <-aborted:
			return resp, fmt.Errorf("rpc to %s: the leader changed before it answered; the request may or may not have been applied", addr)
		default:
			return resp, fmt.Errorf("rpc to %s: no answer (%w); the request may or may not have been applied", addr, err)
		}
	}
	if err := c.enc.Encode(req); err != nil {
		return fail(err)
	}
	if err := c.dec.Decode(&resp); err != nil {
		return fail(err)
	}
	c.c.SetDeadline(time.Time{})
	p.put(addr, c)
	return resp, nil
}

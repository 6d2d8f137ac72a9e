package cluster

import (
	"errors"
	"net"
	"sync"
)

// faultNet lets tests cut the network between in-process nodes. Every
// outgoing packet, dial and connection of a node consults it with the
// node's own name and the target address; a cut is symmetric, so blocking
// the sender's side on both ends cuts the link both ways. Cutting also closes
// the connections already open across the cut (raft and RPC pool them).
// Production nodes have a nil *faultNet, whose methods allow everything.
type faultNet struct {
	mu    sync.Mutex
	owner map[string]string // address -> node name
	cut   map[[2]string]bool
	conns map[*faultConn]struct{}
}

var errCut = errors.New("network cut (test partition)")

func newFaultNet() *faultNet {
	return &faultNet{owner: map[string]string{}, cut: map[[2]string]bool{}, conns: map[*faultConn]struct{}{}}
}

func (f *faultNet) register(node string, addrs ...string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, a := range addrs {
		f.owner[a] = node
	}
}

func (f *faultNet) blocked(from, toAddr string) bool {
	if f == nil {
		return false
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.cut[[2]string{from, f.owner[toAddr]}]
}

// partition cuts every link between a node of a and a node of b.
func (f *faultNet) partition(a, b []string) {
	f.mu.Lock()
	for _, x := range a {
		for _, y := range b {
			f.cut[[2]string{x, y}] = true
			f.cut[[2]string{y, x}] = true
		}
	}
	var doomed []*faultConn
	for c := range f.conns {
		if f.cut[[2]string{c.from, f.owner[c.to]}] {
			doomed = append(doomed, c)
		}
	}
	f.mu.Unlock()
	for _, c := range doomed {
		c.Close()
	}
}

func (f *faultNet) heal() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.cut = map[[2]string]bool{}
}

// dial wraps a dial so it fails across a cut and the connection is closed
// when a later cut separates its ends.
func (f *faultNet) dial(from, to string, dial func() (net.Conn, error)) (net.Conn, error) {
	if f.blocked(from, to) {
		return nil, errCut
	}
	c, err := dial()
	if err != nil || f == nil {
		return c, err
	}
	fc := &faultConn{Conn: c, f: f, from: from, to: to}
	f.mu.Lock()
	f.conns[fc] = struct{}{}
	f.mu.Unlock()
	return fc, nil
}

type faultConn struct {
	net.Conn
	f        *faultNet
	from, to string
	once     sync.Once
}

func (c *faultConn) Close() error {
	c.once.Do(func() {
		c.f.mu.Lock()
		delete(c.f.conns, c)
		c.f.mu.Unlock()
	})
	return c.Conn.Close()
}

package cluster

import (
	"crypto/tls"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
)

// tlsStreamLayer is raft's network: TLS 1.3 on the raft port, both ends
// authenticated with the key derived from the cluster key.
type tlsStreamLayer struct {
	ln        net.Listener // plain TCP; wrapped per connection
	advertise net.Addr
	tls       *tls.Config
	node      string
	fault     *faultNet

	handshakeTimeout time.Duration
}

var _ raft.StreamLayer = (*tlsStreamLayer)(nil)

func (s *tlsStreamLayer) Accept() (net.Conn, error) {
	c, err := s.ln.Accept()
	if err != nil {
		return nil, err
	}
	// The handshake runs on the first Read, in raft's per-connection
	// goroutine, so one slow peer cannot stall the accept loop, and under a
	// deadline, so a peer that never completes it does not hold the
	// connection open.
	return &handshakeConn{Conn: tls.Server(c, s.tls), timeout: s.handshakeTimeout}, nil
}

type handshakeConn struct {
	*tls.Conn
	timeout time.Duration
	once    sync.Once
	err     error
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	c.once.Do(func() {
		c.Conn.SetDeadline(time.Now().Add(c.timeout))
		c.err = c.Conn.Handshake()
		c.Conn.SetDeadline(time.Time{})
	})
	if c.err != nil {
		return 0, c.err
	}
	return c.Conn.Read(b)
}

func (s *tlsStreamLayer) Close() error   { return s.ln.Close() }
func (s *tlsStreamLayer) Addr() net.Addr { return s.advertise }

func (s *tlsStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	return s.fault.dial(s.node, string(address), func() (net.Conn, error) {
		return dialTLS(string(address), timeout, s.tls)
	})
}

func dialTLS(addr string, timeout time.Duration, cfg *tls.Config) (net.Conn, error) {
	d := &net.Dialer{Timeout: timeout}
	c, err := tls.DialWithDialer(d, "tcp", addr, cfg)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	return c, nil
}

// faultTransport wraps memberlist's transport so tests can cut gossip.
type faultTransport struct {
	*memberlist.NetTransport
	node  string
	fault *faultNet
}

func (t *faultTransport) WriteTo(b []byte, addr string) (time.Time, error) {
	if t.fault.blocked(t.node, addr) {
		return time.Now(), nil // dropped on the wire, as UDP would be
	}
	return t.NetTransport.WriteTo(b, addr)
}

func (t *faultTransport) DialTimeout(addr string, timeout time.Duration) (net.Conn, error) {
	return t.fault.dial(t.node, addr, func() (net.Conn, error) {
		return t.NetTransport.DialTimeout(addr, timeout)
	})
}

func (t *faultTransport) WriteToAddress(b []byte, a memberlist.Address) (time.Time, error) {
	if t.fault.blocked(t.node, a.Addr) {
		return time.Now(), nil
	}
	return t.NetTransport.WriteToAddress(b, a)
}

func (t *faultTransport) DialAddressTimeout(a memberlist.Address, timeout time.Duration) (net.Conn, error) {
	return t.fault.dial(t.node, a.Addr, func() (net.Conn, error) {
		return t.NetTransport.DialAddressTimeout(a, timeout)
	})
}

var _ memberlist.NodeAwareTransport = (*faultTransport)(nil)

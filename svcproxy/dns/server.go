package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync/atomic"
	"time"

	mdns "github.com/miekg/dns"

	"github.com/shoal-dev/shoal/svcproxy"
)

// Config configures a Server.
type Config struct {
	// Domain is the cluster domain; default "cluster.local".
	Domain string
	// Upstreams are "host:port" resolvers for every name outside Domain,
	// tried in order (see UpstreamsFromResolvConf). None: such names get
	// SERVFAIL.
	Upstreams []string
	// TTL of cluster answers, in seconds; default 5 (endpoints move).
	TTL uint32
	// UpstreamTimeout bounds one upstream exchange; default 2s.
	UpstreamTimeout time.Duration
	Log             *slog.Logger
}

// Validate checks cfg and fills in defaults.
func (c *Config) Validate() error {
	if c.Domain == "" {
		c.Domain = "cluster.local"
	}
	if _, ok := mdns.IsDomainName(c.Domain); !ok {
		return fmt.Errorf("cluster DNS: domain %q is not a domain name", c.Domain)
	}
	for _, u := range c.Upstreams {
		if _, _, err := net.SplitHostPort(u); err != nil {
			return fmt.Errorf("cluster DNS: upstream %q: want host:port: %w", u, err)
		}
	}
	if c.TTL == 0 {
		c.TTL = 5
	}
	if c.UpstreamTimeout <= 0 {
		c.UpstreamTimeout = 2 * time.Second
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Server answers cluster names from the Services it was last given and
// forwards everything else. It is a miekg/dns Handler; Serve runs it on a
// UDP and a TCP socket.
type Server struct {
	cfg  Config
	zone atomic.Pointer[zone]
	udp  *mdns.Client
	tcp  *mdns.Client
}

var _ mdns.Handler = (*Server)(nil)

// NewServer returns a Server with no Services yet.
func NewServer(cfg Config) (*Server, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg,
		udp: &mdns.Client{Net: "udp", Timeout: cfg.UpstreamTimeout},
		tcp: &mdns.Client{Net: "tcp", Timeout: cfg.UpstreamTimeout}}
	s.zone.Store(buildZone(cfg.Domain, nil))
	return s, nil
}

// Update replaces the Services the server answers for.
func (s *Server) Update(services []svcproxy.Service) {
	s.zone.Store(buildZone(s.cfg.Domain, services))
}

// ServeDNS implements mdns.Handler.
func (s *Server) ServeDNS(w mdns.ResponseWriter, req *mdns.Msg) {
	if len(req.Question) != 1 || req.Opcode != mdns.OpcodeQuery {
		m := new(mdns.Msg)
		m.SetRcode(req, mdns.RcodeNotImplemented)
		w.WriteMsg(m)
		return
	}
	q := req.Question[0]
	z := s.zone.Load()
	name := strings.ToLower(q.Name)
	if !z.inDomain(name) || q.Qclass != mdns.ClassINET {
		s.forward(w, req)
		return
	}
	m := new(mdns.Msg)
	m.SetReply(req)
	m.Authoritative = true
	e := z.names[name]
	if e == nil {
		m.Rcode = mdns.RcodeNameError
		m.Ns = []mdns.RR{s.soa(z)}
		w.WriteMsg(m)
		return
	}
	hdr := func(n string, t uint16) mdns.RR_Header {
		return mdns.RR_Header{Name: n, Rrtype: t, Class: mdns.ClassINET, Ttl: s.cfg.TTL}
	}
	switch q.Qtype {
	case mdns.TypeA, mdns.TypeANY:
		for _, ip := range e.a {
			m.Answer = append(m.Answer, &mdns.A{Hdr: hdr(q.Name, mdns.TypeA), A: ip})
		}
	case mdns.TypeSRV:
		for _, t := range e.srv {
			m.Answer = append(m.Answer, &mdns.SRV{Hdr: hdr(q.Name, mdns.TypeSRV), Priority: 0, Weight: 100 / uint16(len(e.srv)), Port: t.port, Target: t.target})
			for _, ip := range t.a {
				m.Extra = append(m.Extra, &mdns.A{Hdr: hdr(t.target, mdns.TypeA), A: ip})
			}
		}
	}
	if len(m.Answer) == 0 {
		m.Ns = []mdns.RR{s.soa(z)}
	}
	m.Truncate(maxSize(req, w))
	w.WriteMsg(m)
}

func (s *Server) soa(z *zone) mdns.RR {
	return &mdns.SOA{Hdr: mdns.RR_Header{Name: z.domain, Rrtype: mdns.TypeSOA, Class: mdns.ClassINET, Ttl: s.cfg.TTL},
		Ns: "ns.dns." + z.domain, Mbox: "hostmaster." + z.domain, Serial: 1, Refresh: 7200, Retry: 1800, Expire: 86400, Minttl: s.cfg.TTL}
}

func maxSize(req *mdns.Msg, w mdns.ResponseWriter) int {
	if _, tcp := w.RemoteAddr().(*net.TCPAddr); tcp {
		return mdns.MaxMsgSize
	}
	if o := req.IsEdns0(); o != nil {
		return int(o.UDPSize())
	}
	return mdns.MinMsgSize
}

// forward asks the upstreams in order and relays the first answer.
func (s *Server) forward(w mdns.ResponseWriter, req *mdns.Msg) {
	var lastErr error
	for _, up := range s.cfg.Upstreams {
		resp, _, err := s.udp.Exchange(req, up)
		if err == nil && resp.Truncated {
			resp, _, err = s.tcp.Exchange(req, up)
		}
		if err == nil {
			resp.Id = req.Id
			resp.Truncate(maxSize(req, w))
			w.WriteMsg(resp)
			return
		}
		lastErr = err
	}
	if len(s.cfg.Upstreams) > 0 {
		s.cfg.Log.Warn("cluster DNS: no upstream answered", "name", req.Question[0].Name, "err", lastErr)
	}
	m := new(mdns.Msg)
	m.SetRcode(req, mdns.RcodeServerFailure)
	w.WriteMsg(m)
}

// Serve answers on addr ("ip:port") over UDP and TCP until ctx ends.
// ready, if not nil, is called once both sockets listen, with the UDP
// address (useful with port 0).
func (s *Server) Serve(ctx context.Context, addr string, ready func(net.Addr)) error {
	pc, err := net.ListenPacket("udp", addr)
	if err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	ln, err := net.Listen("tcp", pc.LocalAddr().String())
	if err != nil {
		pc.Close()
		return fmt.Errorf("cluster DNS: %w", err)
	}
	udp := &mdns.Server{PacketConn: pc, Handler: s}
	tcp := &mdns.Server{Listener: ln, Handler: s}
	errc := make(chan error, 2)
	started := make(chan struct{}, 2)
	udp.NotifyStartedFunc = func() { started <- struct{}{} }
	tcp.NotifyStartedFunc = func() { started <- struct{}{} }
	go func() { errc <- udp.ActivateAndServe() }()
	go func() { errc <- tcp.ActivateAndServe() }()
	for range 2 {
		select {
		case <-started:
		case err := <-errc:
			udp.Shutdown()
			tcp.Shutdown()
			return fmt.Errorf("cluster DNS: %w", err)
		}
	}
	if ready != nil {
		ready(pc.LocalAddr())
	}
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	err = errors.Join(err, udp.ShutdownContext(context.WithoutCancel(ctx)), tcp.ShutdownContext(context.WithoutCancel(ctx)))
	if err != nil {
		return fmt.Errorf("cluster DNS: %w", err)
	}
	return ctx.Err()
}

// UpstreamsFromResolvConf reads the node's resolv.conf and returns its
// nameservers as host:port.
func UpstreamsFromResolvConf(path string) ([]string, error) {
	cc, err := mdns.ClientConfigFromFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster DNS: read %s: %w", path, err)
	}
	out := make([]string, 0, len(cc.Servers))
	for _, s := range cc.Servers {
		out = append(out, net.JoinHostPort(s, cc.Port))
	}
	return out, nil
}

// PodResolvConf is the resolv.conf a pod in namespace gets: this server
// first, Kubernetes' search path and ndots:5.
func PodResolvConf(nameserver, namespace, domain string) string {
	if domain == "" {
		domain = "cluster.local"
	}
	return fmt.Sprintf("search %s.svc.%s svc.%s %s\nnameserver %s\noptions ndots:5\n", namespace, domain, domain, domain, nameserver)
}

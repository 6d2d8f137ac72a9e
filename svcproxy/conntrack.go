package svcproxy

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// UDPFlow selects UDP conntrack entries. Zero fields match anything.
type UDPFlow struct {
	OrigDst     netip.Addr // the address the client sent to (a ClusterIP)
	OrigDstPort int32      // the port the client sent to (Service port or NodePort)
	ReplySrc    netip.Addr // the endpoint the flow was DNATed to
}

func (f UDPFlow) String() string {
	return fmt.Sprintf("udp dst=%v dport=%d endpoint=%v", f.OrigDst, f.OrigDstPort, f.ReplySrc)
}

// Conntrack deletes stale UDP flows. UDP has no connection to end, so
// without this a client keeps sending to an endpoint that is gone until the
// entry times out.
type Conntrack interface {
	ClearUDP(ctx context.Context, flows []UDPFlow) error
}

// NetlinkConntrack talks to the kernel over netlink (no conntrack binary
// needed), in the network namespace of the calling thread.
type NetlinkConntrack struct{}

var _ Conntrack = NetlinkConntrack{}

// ClearUDP implements Conntrack.
func (NetlinkConntrack) ClearUDP(_ context.Context, flows []UDPFlow) error {
	if len(flows) == 0 {
		return nil
	}
	filters := make([]netlink.CustomConntrackFilter, 0, len(flows))
	for _, f := range flows {
		cf := &netlink.ConntrackFilter{}
		if err := cf.AddProtocol(unix.IPPROTO_UDP); err != nil {
			return err
		}
		if f.OrigDst.IsValid() {
			if err := cf.AddIP(netlink.ConntrackOrigDstIP, net.IP(f.OrigDst.AsSlice())); err != nil {
				return err
			}
		}
		if f.OrigDstPort != 0 {
			if err := cf.AddPort(netlink.ConntrackOrigDstPort, uint16(f.OrigDstPort)); err != nil {
				return err
			}
		}
		if f.ReplySrc.IsValid() {
			if err := cf.AddIP(netlink.ConntrackReplySrcIP, net.IP(f.ReplySrc.AsSlice())); err != nil {
				return err
			}
		}
		filters = append(filters, cf)
	}
	if _, err := netlink.ConntrackDeleteFilters(netlink.ConntrackTable, unix.AF_INET, filters...); err != nil {
		return fmt.Errorf("conntrack: delete %d UDP filters: %w", len(filters), err)
	}
	return nil
}

// udpTracker remembers the UDP ports of the last applied ruleset, for both
// proxiers.
type udpTracker struct{ prev []UDPPort }

// clearStale clears the conntrack entries that the ruleset just applied,
// with UDP ports cur, made stale, and returns how many flows it cleared.
// It runs after the rules are in: a flow cleared before would be
// re-created towards the old endpoint. A failure is logged, not returned:
// the rules are right, and stale UDP flows expire by themselves (30-180
// s), so it is worth a warning, not a resync.
func (u *udpTracker) clearStale(ctx context.Context, ct Conntrack, cur []UDPPort, log *slog.Logger) int {
	flows := staleUDP(u.prev, cur)
	u.prev = cur
	if len(flows) == 0 {
		return 0
	}
	if err := ct.ClearUDP(ctx, flows); err != nil {
		log.Warn("svcproxy: clearing stale UDP conntrack entries", "flows", len(flows), "err", err)
	}
	return len(flows)
}

// staleUDP compares two renders' UDP ports and returns the flows to clear:
// flows to an endpoint that no longer serves the port, and any flow to a
// port that had no endpoint before (it may hold an entry that bypassed
// our DNAT).
func staleUDP(prev, cur []UDPPort) []UDPFlow {
	old := make(map[string]*UDPPort, len(prev))
	for i := range prev {
		old[prev[i].Key] = &prev[i]
	}
	var out []UDPFlow
	seen := make(map[string]bool, len(cur))
	for i := range cur {
		c := &cur[i]
		seen[c.Key] = true
		o := old[c.Key]
		if o == nil || len(o.Endpoints) == 0 {
			if len(c.Endpoints) > 0 {
				out = append(out, UDPFlow{OrigDst: c.ClusterIP, OrigDstPort: c.Port})
				if c.NodePort != 0 {
					out = append(out, UDPFlow{OrigDstPort: c.NodePort})
				}
			}
			continue
		}
		now := make(map[netip.Addr]bool, len(c.Endpoints))
		for _, e := range c.Endpoints {
			now[e] = true
		}
		for _, e := range o.Endpoints {
			if now[e] && o.ClusterIP == c.ClusterIP && o.Port == c.Port {
				continue
			}
			out = append(out, UDPFlow{OrigDst: o.ClusterIP, OrigDstPort: o.Port, ReplySrc: e})
			if o.NodePort != 0 {
				out = append(out, UDPFlow{OrigDstPort: o.NodePort, ReplySrc: e})
			}
		}
	}
	for i := range prev {
		if o := &prev[i]; !seen[o.Key] {
			for _, e := range o.Endpoints {
				out = append(out, UDPFlow{OrigDst: o.ClusterIP, OrigDstPort: o.Port, ReplySrc: e})
				if o.NodePort != 0 {
					out = append(out, UDPFlow{OrigDstPort: o.NodePort, ReplySrc: e})
				}
			}
		}
	}
	return out
}

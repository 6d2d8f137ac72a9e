package agent

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"time"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"

	"github.com/shoal-dev/shoal/state"
)

// RouteProtocol marks the routes the agent installs (the rtnetlink
// "protocol" of the route), so that it only ever removes its own.
const RouteProtocol netlink.RouteProtocol = 0x5c

// Route sends one node's pod CIDR to that node's address (host-gw).
type Route struct {
	Dst netip.Prefix
	Via netip.Addr
}

// PlanRoutes returns a route to every other node's pod CIDR through its
// address, in CIDR order. Nodes known dead, or without a CIDR or an
// address, get none.
func PlanRoutes(me string, v *state.Snapshot) []Route {
	var out []Route
	for _, n := range v.Nodes() {
		if n.Name == me || n.PodCIDR == "" || n.Status == state.NodeGone {
			continue
		}
		dst, err1 := netip.ParsePrefix(n.PodCIDR)
		via, err2 := netip.ParseAddr(n.Address)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, Route{Dst: dst, Via: via})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Dst.String() < out[j].Dst.String() })
	return out
}

// syncRoutes makes the routes marked RouteProtocol in the main table of h's
// network namespace exactly want: it replaces every wanted route and
// deletes only its own others. Routes of anyone else are never touched.
func syncRoutes(h *netlink.Handle, want []Route) error {
	have, err := h.RouteListFiltered(netlink.FAMILY_V4, &netlink.Route{Protocol: RouteProtocol, Table: unix.RT_TABLE_MAIN},
		netlink.RT_FILTER_PROTOCOL|netlink.RT_FILTER_TABLE)
	if err != nil {
		return fmt.Errorf("list routes: %w", err)
	}
	wanted := map[string]bool{}
	var errs []error
	for _, r := range want {
		wanted[r.Dst.String()] = true
		nr := &netlink.Route{
			Dst:      &net.IPNet{IP: r.Dst.Addr().AsSlice(), Mask: net.CIDRMask(r.Dst.Bits(), 32)},
			Gw:       r.Via.AsSlice(),
			Protocol: RouteProtocol,
			Table:    unix.RT_TABLE_MAIN,
		}
		if err := h.RouteReplace(nr); err != nil {
			errs = append(errs, fmt.Errorf("route %s via %s: %w", r.Dst, r.Via, err))
		}
	}
	for _, r := range have {
		if r.Dst == nil {
			continue
		}
		ones, _ := r.Dst.Mask.Size()
		addr, _ := netip.AddrFromSlice(r.Dst.IP.To4())
		if wanted[netip.PrefixFrom(addr, ones).String()] {
			continue
		}
		if err := h.RouteDel(&r); err != nil {
			errs = append(errs, fmt.Errorf("delete route %s: %w", r.Dst, err))
		}
	}
	return errors.Join(errs...)
}

// runRoutes keeps this node's routes to the other nodes' pod CIDRs in step
// with the state.
func (a *Agent) runRoutes(ctx context.Context) {
	h, err := netlink.NewHandle()
	if err != nil {
		a.log.Error("routes: no netlink handle: pods on other nodes are unreachable", "err", err)
		return
	}
	defer h.Close()
	a.runLoop(ctx, "routes", []state.Table{state.TableNodes}, nil, func(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
		want := PlanRoutes(a.cfg.NodeName, v)
		if err := syncRoutes(h, want); err != nil {
			return 0, err
		}
		a.log.Debug("routes in sync", "count", len(want))
		return 0, nil
	})
}

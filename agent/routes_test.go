package agent

import (
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/vishvananda/netlink"
	"github.com/vishvananda/netns"

	"github.com/shoal-dev/shoal/state"
)

// throwawayNetns creates a network namespace with a veth link d0 on
// 192.168.77.1/24 and returns a netlink handle in it.
func throwawayNetns(t *testing.T) (string, *netlink.Handle) {
	if os.Geteuid() != 0 {
		t.Skip("needs root to create a network namespace")
	}
	name := fmt.Sprintf("shoal-agent-test-%d", os.Getpid())
	ip := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v\n%s", strings.Join(args, " "), err, out)
		}
	}
	if out, err := exec.Command("ip", "netns", "add", name).CombinedOutput(); err != nil {
		t.Skipf("cannot create a network namespace: %v: %s", err, out)
	}
	t.Cleanup(func() { exec.Command("ip", "netns", "del", name).Run() })
	ip("-n", name, "link", "add", "d0", "type", "veth", "peer", "name", "d1")
	ip("-n", name, "addr", "add", "192.168.77.1/24", "dev", "d0")
	ip("-n", name, "link", "set", "d1", "up")
	ip("-n", name, "link", "set", "d0", "up")
	ns, err := netns.GetFromName(name)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ns.Close() })
	h, err := netlink.NewHandleAt(ns)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(h.Close)
	return name, h
}

// routesIn lists "dst via gw proto" of the namespace's IPv4 main table.
func routesIn(t *testing.T, ns string) string {
	out, err := exec.Command("ip", "-n", ns, "-4", "route", "show").CombinedOutput()
	if err != nil {
		t.Fatalf("ip route show: %v\n%s", err, out)
	}
	return string(out)
}

func TestSyncRoutesInANetns(t *testing.T) {
	ns, h := throwawayNetns(t)
	ip := func(args ...string) {
		if out, err := exec.Command("ip", append([]string{"-n", ns}, args...)...).CombinedOutput(); err != nil {
			t.Fatalf("ip %v: %v\n%s", args, err, out)
		}
	}
	ip("route", "add", "10.99.0.0/24", "via", "192.168.77.5")                 // someone else's
	ip("route", "add", "10.244.9.0/24", "via", "192.168.77.9", "proto", "92") // ours, stale
	ip("route", "add", "10.244.1.0/24", "via", "192.168.77.8", "proto", "92") // ours, wrong gateway

	s, _ := state.NewStore()
	for i, n := range []string{"n1", "n2", "n3"} {
		node := testNode(n)
		node.Address = fmt.Sprintf("192.168.77.%d", i+1)
		mustApply(t, s, &state.UpsertNode{Node: node})
		mustApply(t, s, &state.Allocate{Allocations: []state.Allocation{{Kind: state.AllocPodCIDR, Value: fmt.Sprintf("10.244.%d.0/24", i), Owner: n}}})
	}
	want := PlanRoutes("n1", s.Snapshot())
	if len(want) != 2 || want[0].Dst.String() != "10.244.1.0/24" || want[0].Via.String() != "192.168.77.2" {
		t.Fatalf("planned: %+v", want)
	}
	if err := syncRoutes(h, want); err != nil {
		t.Fatal(err)
	}
	got := routesIn(t, ns)
	for _, line := range []string{"10.244.1.0/24 via 192.168.77.2 dev d0 proto 92", "10.244.2.0/24 via 192.168.77.3 dev d0 proto 92", "10.99.0.0/24 via 192.168.77.5"} {
		if !strings.Contains(got, line) {
			t.Errorf("missing %q in\n%s", line, got)
		}
	}
	if strings.Contains(got, "10.244.9.0") || strings.Contains(got, "192.168.77.8") {
		t.Errorf("a stale route of ours survived:\n%s", got)
	}

	// n3 is known dead: its route goes; the foreign route stays.
	mustApply(t, s, &state.SetNodeStatus{Name: "n3", Status: state.NodeGone})
	if err := syncRoutes(h, PlanRoutes("n1", s.Snapshot())); err != nil {
		t.Fatal(err)
	}
	got = routesIn(t, ns)
	if strings.Contains(got, "10.244.2.0") || !strings.Contains(got, "10.244.1.0/24 via 192.168.77.2") || !strings.Contains(got, "10.99.0.0/24") {
		t.Errorf("after n3 is gone:\n%s", got)
	}
	// A gateway that is not on a connected network is an error, not a
	// silent skip.
	node := testNode("n4")
	node.Address = "172.31.0.4"
	mustApply(t, s, &state.UpsertNode{Node: node})
	mustApply(t, s, &state.Allocate{Allocations: []state.Allocation{{Kind: state.AllocPodCIDR, Value: "10.244.4.0/24", Owner: "n4"}}})
	if err := syncRoutes(h, PlanRoutes("n1", s.Snapshot())); err == nil || !strings.Contains(err.Error(), "10.244.4.0/24") {
		t.Errorf("unreachable gateway: %v", err)
	}
}

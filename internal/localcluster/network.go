package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strings"
)

// The network of a local cluster: a bridge in the host's namespace with
// the host's address on it, and per node a network namespace joined to the
// bridge by a veth pair whose node end is the node's eth0.

// ip runs the ip command and returns its error with its output.
func ip(ctx context.Context, args ...string) error {
	cmd := exec.CommandContext(ctx, "ip", args...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("ip %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return nil
}

func linkExists(name string) bool {
	_, err := os.Stat("/sys/class/net/" + name)
	return err == nil
}

func netnsExists(name string) bool {
	_, err := os.Stat("/run/netns/" + name)
	return err == nil
}

// createBridge makes the bridge with the host's address on it.
func createBridge(ctx context.Context, name string, host netip.Prefix) error {
	if linkExists(name) {
		return fmt.Errorf("interface %s exists already: another local cluster, or one not taken down (shoal down)", name)
	}
	for _, args := range [][]string{
		{"link", "add", name, "type", "bridge"},
		{"addr", "add", host.String(), "dev", name},
		{"link", "set", name, "up"},
	} {
		if err := ip(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// createNode makes the node's namespace and links it to the bridge, with
// addr on its eth0 and a default route through the host.
func createNode(ctx context.Context, bridge, netns, hostVeth string, addr netip.Prefix, gateway netip.Addr) error {
	if netnsExists(netns) {
		return fmt.Errorf("network namespace %s exists already: another local cluster, or one not taken down (shoal down)", netns)
	}
	peer := hostVeth + "p"
	steps := [][]string{
		{"netns", "add", netns},
		{"link", "add", hostVeth, "type", "veth", "peer", "name", peer},
		{"link", "set", hostVeth, "master", bridge},
		{"link", "set", hostVeth, "up"},
		{"link", "set", peer, "netns", netns},
		{"-n", netns, "link", "set", peer, "name", "eth0"},
		{"-n", netns, "addr", "add", addr.String(), "dev", "eth0"},
		{"-n", netns, "link", "set", "eth0", "up"},
		{"-n", netns, "link", "set", "lo", "up"},
		{"-n", netns, "route", "add", "default", "via", gateway.String()},
	}
	for _, args := range steps {
		if err := ip(ctx, args...); err != nil {
			return err
		}
	}
	return nil
}

// deleteNode removes the node's namespace (and with it everything in it:
// its eth0, pod bridge, routes and iptables rules) and the host end of its
// link. Missing pieces are not errors.
func deleteNode(ctx context.Context, netns, hostVeth string) error {
	var errs []string
	if hostVeth != "" && linkExists(hostVeth) {
		if err := ip(ctx, "link", "del", hostVeth); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if netns != "" && netnsExists(netns) {
		if err := ip(ctx, "netns", "del", netns); err != nil {
			errs = append(errs, err.Error())
		}
	}
	if len(errs) > 0 {
		return fmt.Errorf("%s", strings.Join(errs, "; "))
	}
	return nil
}

func deleteBridge(ctx context.Context, name string) error {
	if name == "" || !linkExists(name) {
		return nil
	}
	return ip(ctx, "link", "del", name)
}

package localcluster

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"path/filepath"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/runtime"
)

// NodeOptions say how AddNode starts a node. Up does not record its
// Options, so a node that must run like the others is given the same
// Images and AgentArgs again.
type NodeOptions struct {
	// Images are image archives imported into the node's containerd
	// before its agent starts (see Options.Images).
	Images []string
	// AgentArgs are extra `shoal agent` flags (see Options.AgentArgs).
	AgentArgs []string
	// Binary is the shoal executable the agent runs (default: this one).
	Binary string
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

// AddNode adds one node to the running local cluster in dir, as a machine
// joining a real cluster: its network namespace on the cluster's bridge at
// the next free address, its containerd, the images, and an agent that
// joins the other nodes by gossip (it adopts the running cluster; the
// leader adds it to raft, gives it a pod CIDR and schedules onto it). The
// node is in the Record before anything of it exists, so Down removes it
// with the rest; if AddNode fails, it removes what it made of the node
// and leaves the others running. It returns the updated Record; the new
// node is its last.
func AddNode(ctx context.Context, dir string, opts NodeOptions) (rec *Record, retErr error) {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return nil, err
	}
	if opts.Binary == "" {
		if opts.Binary, err = os.Executable(); err != nil {
			return nil, err
		}
	}
	out := opts.Out
	if out == nil {
		out = io.Discard
	}
	for _, img := range opts.Images {
		if _, err := os.Stat(img); err != nil {
			return nil, fmt.Errorf("image archive: %w", err)
		}
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	if rec, err = Load(dir); err != nil {
		return nil, err
	}
	if rec.Bridge == "" || len(rec.Nodes) == 0 {
		return nil, fmt.Errorf("the cluster in %s has no network or no nodes: a failed shoal up? shoal down --dir %s", dir, dir)
	}
	subnet, err := netip.ParsePrefix(rec.Subnet)
	if err != nil {
		return nil, fmt.Errorf("cluster record %s: subnet: %w", dir, err)
	}
	host, err := netip.ParseAddr(rec.HostAddr)
	if err != nil {
		return nil, fmt.Errorf("cluster record %s: host address: %w", dir, err)
	}

	// The next index no node has: node names, links and addresses follow it.
	i := 1
	for taken := true; taken; {
		taken = false
		for _, n := range rec.Nodes {
			if n.Name == fmt.Sprintf("node%d", i) {
				taken, i = true, i+1
				break
			}
		}
	}
	addr, ok := nodeAddr(subnet, i)
	if !ok {
		return nil, fmt.Errorf("subnet %s has no room for node %d", subnet, i)
	}
	if len(rec.Name)+len(fmt.Sprintf("-v%dp", i)) > 15 {
		return nil, fmt.Errorf("node %d: link name %s-v%dp is longer than 15 characters", i, rec.Name, i)
	}
	nr := newNodeRecord(rec.Name, dir, i, addr)
	name := nr.Name
	if n := len(runtime.SocketPath(nr.ContainerdDir)); n > 107 {
		return nil, fmt.Errorf("dir %s: too long for containerd's socket path (%d bytes over 107)", dir, n-107)
	}
	rec.Nodes = append(rec.Nodes, nr)
	n := &rec.Nodes[len(rec.Nodes)-1]
	if err := rec.save(); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := removeNode(context.WithoutCancel(ctx), rec, name); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("cleaning up node %s: %w", name, err))
			}
		}
	}()

	if err := createNode(ctx, rec.Bridge, n.NetNS, n.HostVeth, netip.PrefixFrom(addr, subnet.Bits()), host); err != nil {
		return rec, fmt.Errorf("node %s: %w", name, err)
	}
	fmt.Fprintf(out, "node      %s: network namespace %s at %s\n", name, n.NetNS, n.Addr)
	if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
		return rec, err
	}
	d, err := runtime.StartContainerd(ctx, runtime.DaemonConfig{Dir: n.ContainerdDir})
	if err != nil {
		return rec, fmt.Errorf("node %s: %w", name, err)
	}
	n.ContainerdPID = d.PID
	if err := rec.save(); err != nil {
		return rec, err
	}
	for _, img := range opts.Images {
		if err := importImage(ctx, d.Address, img); err != nil {
			return rec, fmt.Errorf("node %s: %w", name, err)
		}
	}
	fmt.Fprintf(out, "runtime   %s: containerd, %d images imported\n", name, len(opts.Images))
	// The join list is every other node; bootstrap-expect only matters to a
	// cluster still forming, and this one has formed: the node adopts it.
	if err := writeAgentConfig(rec, n, min(len(rec.Nodes)-1, agent.DefaultBootstrapExpect)); err != nil {
		return rec, err
	}
	pid, err := startAgent(opts.Binary, n, opts.AgentArgs)
	if err != nil {
		return rec, fmt.Errorf("node %s: %w", name, err)
	}
	n.AgentPID = pid
	if err := rec.save(); err != nil {
		return rec, err
	}
	fmt.Fprintf(out, "agent     %s started, joining %d nodes\n", name, len(rec.Nodes)-1)
	return rec, nil
}

// removeNode undoes a partial AddNode: the node's agent, containers,
// containerd, mounts, namespace and link, its directory and its entry in
// the Record. The entry stays if anything could not be removed, so Down
// tries again.
func removeNode(ctx context.Context, rec *Record, name string) error {
	idx := -1
	for i := range rec.Nodes {
		if rec.Nodes[i].Name == name {
			idx = i
		}
	}
	if idx < 0 {
		return nil
	}
	n := rec.Nodes[idx]
	var errs []error
	if err := stopProcess(n.AgentPID, "agent", agentStopGrace); err != nil {
		errs = append(errs, fmt.Errorf("agent: %w", err))
	}
	if err := removeContainers(ctx, n.ContainerdDir); err != nil {
		errs = append(errs, err)
	}
	if n.ContainerdPID > 0 {
		if err := (&runtime.Daemon{PID: n.ContainerdPID}).Stop(ctx); err != nil {
			errs = append(errs, fmt.Errorf("containerd: %w", err))
		}
	}
	nodeDir := filepath.Dir(n.ConfigFile)
	if err := runtime.UnmountUnder(nodeDir); err != nil {
		errs = append(errs, err)
	}
	if err := deleteNode(ctx, n.NetNS, n.HostVeth); err != nil {
		errs = append(errs, err)
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if err := os.RemoveAll(nodeDir); err != nil {
		return err
	}
	rec.Nodes = append(rec.Nodes[:idx], rec.Nodes[idx+1:]...)
	return rec.save()
}

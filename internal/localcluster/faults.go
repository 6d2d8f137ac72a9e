package localcluster

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/shoal-dev/shoal/runtime"
)

// Faults of a local cluster, for the end-to-end tests and benchmarks: a
// crashed agent, a dead machine, a node cut off from the network. Each
// leaves the Record such that Down still removes everything.

// node returns the record of the named node.
func (r *Record) node(name string) (*NodeRecord, error) {
	for i := range r.Nodes {
		if r.Nodes[i].Name == name {
			return &r.Nodes[i], nil
		}
	}
	return nil, fmt.Errorf("no node %q in the cluster in %s", name, r.Dir)
}

// KillAgent kills the node's agent with SIGKILL, as a crash would: it
// says goodbye to no one. Its containers keep running. It returns once
// the process is gone.
func (r *Record) KillAgent(name string) error {
	n, err := r.node(name)
	if err != nil {
		return err
	}
	if err := killWait(n.AgentPID, "agent"); err != nil {
		return fmt.Errorf("node %s agent: %w", name, err)
	}
	return nil
}

// KillNode stops the node as a machine losing its power would: the
// agent, every container process, the containerd shims and containerd
// itself get SIGKILL at once, with no chance to tell anyone. The node's
// network namespace stays, silent. RestartNode brings it back; Down
// removes it either way.
func (r *Record) KillNode(name string) error {
	n, err := r.node(name)
	if err != nil {
		return err
	}
	var errs []error
	if err := killWait(n.AgentPID, "agent"); err != nil {
		errs = append(errs, fmt.Errorf("agent: %w", err))
	}
	// Containers first, then their shims (which would otherwise report
	// the exits), then the daemon.
	shims := shimsOf(runtime.SocketPath(n.ContainerdDir))
	for _, pid := range descendants(shims) {
		if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
			errs = append(errs, fmt.Errorf("container process %d: %w", pid, err))
		}
	}
	var sockets []string
	for _, pid := range shims {
		sockets = append(sockets, shimSocket(shimArgs(pid)))
		if err := killWait(pid, "containerd-shim"); err != nil {
			errs = append(errs, fmt.Errorf("shim: %w", err))
		}
	}
	// A machine that boots again has an empty /run.
	removeShimSockets(sockets)
	if err := killWait(n.ContainerdPID, "containerd"); err != nil {
		errs = append(errs, fmt.Errorf("containerd: %w", err))
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("kill node %s: %w", name, err)
	}
	return nil
}

// RestartNode starts a killed node again, as a machine booting would:
// its containerd (which cleans up after the dead shims), then its agent
// with the same data dir and the extra agent flags. A running agent or
// containerd is left as it is.
func (r *Record) RestartNode(ctx context.Context, name, binary string, agentArgs []string) error {
	n, err := r.node(name)
	if err != nil {
		return err
	}
	if !isProcess(n.ContainerdPID, "containerd") {
		d, err := runtime.StartContainerd(ctx, runtime.DaemonConfig{Dir: n.ContainerdDir})
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		n.ContainerdPID = d.PID
		if err := r.save(); err != nil {
			return err
		}
	}
	if !isProcess(n.AgentPID, "agent") {
		pid, err := startAgent(binary, n, agentArgs)
		if err != nil {
			return fmt.Errorf("node %s: %w", name, err)
		}
		n.AgentPID = pid
		if err := r.save(); err != nil {
			return err
		}
	}
	return nil
}

// Partition cuts the node off the network: inside its namespace every
// packet in or out of eth0 is dropped (in the raw table, before
// connection tracking and before any rule the agent programs), so open
// connections go silent as with a pulled cable. Its processes run on and
// its loopback works.
func (r *Record) Partition(ctx context.Context, name string) error {
	return r.partitionRules(ctx, name, "-I")
}

// Heal undoes Partition.
func (r *Record) Heal(ctx context.Context, name string) error {
	return r.partitionRules(ctx, name, "-D")
}

func (r *Record) partitionRules(ctx context.Context, name, op string) error {
	n, err := r.node(name)
	if err != nil {
		return err
	}
	for _, rule := range [][]string{
		{"-t", "raw", op, "PREROUTING", "-i", "eth0", "-j", "DROP"},
		{"-t", "raw", op, "OUTPUT", "-o", "eth0", "-j", "DROP"},
	} {
		args := append([]string{"--net=/run/netns/" + n.NetNS, "--", "iptables", "-w"}, rule...)
		cmd := exec.CommandContext(ctx, "nsenter", args...)
		var out bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Run(); err != nil {
			return fmt.Errorf("node %s: iptables %s: %w: %s", name, strings.Join(rule, " "), err, strings.TrimSpace(out.String()))
		}
	}
	return nil
}

// killWait sends SIGKILL to pid if it is still the process named, and
// waits (up to 10 s) until it is gone.
func killWait(pid int, what string) error {
	if pid <= 0 || !isProcess(pid, what) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for isProcess(pid, what) {
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d (%s) still there 10 s after SIGKILL", pid, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// descendants returns every process below the given ones.
func descendants(roots []int) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	children := map[int][]int{}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		stat, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The fields after the command, which is in parentheses and may
		// hold spaces: state, then the parent's pid.
		i := bytes.LastIndexByte(stat, ')')
		if i < 0 {
			continue
		}
		f := strings.Fields(string(stat[i+1:]))
		if len(f) < 2 {
			continue
		}
		if ppid, err := strconv.Atoi(f[1]); err == nil {
			children[ppid] = append(children[ppid], pid)
		}
	}
	var out []int
	queue := append([]int(nil), roots...)
	for len(queue) > 0 {
		p := queue[0]
		queue = queue[1:]
		for _, c := range children[p] {
			out = append(out, c)
			queue = append(queue, c)
		}
	}
	return out
}

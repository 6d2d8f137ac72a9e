package localcluster

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/errdefs"

	"github.com/shoal-dev/shoal/runtime"
)

// agentStopGrace is how long an agent gets to exit after SIGTERM.
const agentStopGrace = 20 * time.Second

// Down removes everything Up made in dir: agents, containers and their
// shims, containerd daemons, mounts, network namespaces, links, the bridge
// and the directory itself. It goes on past failures and returns them all;
// the record stays until everything else is gone, so Down can be run again.
func Down(ctx context.Context, dir string, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return err
	}
	rec, err := Load(dir)
	if err != nil {
		return err
	}
	var errs []error
	for _, n := range rec.Nodes {
		if err := stopProcess(n.AgentPID, "agent", agentStopGrace); err != nil {
			errs = append(errs, fmt.Errorf("node %s agent: %w", n.Name, err))
		}
	}
	fmt.Fprintf(out, "agents    stopped\n")
	for _, n := range rec.Nodes {
		// A containerd that died (a crash, a node killed by a test) is
		// started again: it cleans up after its dead shims and is the one
		// that can delete its containers, their cgroups and snapshots.
		if n.ContainerdPID > 0 && !isProcess(n.ContainerdPID, "containerd") {
			n.ContainerdPID = 0 // never signal a pid that may be another process's now
			if _, err := os.Stat(n.ContainerdDir); err == nil {
				d, err := runtime.StartContainerd(ctx, runtime.DaemonConfig{Dir: n.ContainerdDir})
				if err != nil {
					errs = append(errs, fmt.Errorf("node %s: restart containerd to clean up: %w", n.Name, err))
				} else {
					n.ContainerdPID = d.PID
				}
			}
		}
		if err := removeContainers(ctx, n.ContainerdDir); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
		}
		if n.ContainerdPID > 0 {
			sctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			err := (&runtime.Daemon{PID: n.ContainerdPID}).Stop(sctx)
			cancel()
			if err != nil {
				errs = append(errs, fmt.Errorf("node %s containerd: %w", n.Name, err))
			}
		}
	}
	for _, n := range rec.Nodes {
		if k := reapShims(ctx, runtime.SocketPath(n.ContainerdDir)); k > 0 {
			fmt.Fprintf(out, "runtime   node %s: killed %d orphaned shims and their containers\n", n.Name, k)
		}
	}
	fmt.Fprintf(out, "runtime   containers removed, containerd stopped\n")
	if err := runtime.UnmountUnder(dir); err != nil {
		errs = append(errs, err)
	}
	for _, n := range rec.Nodes {
		if err := deleteNode(ctx, n.NetNS, n.HostVeth); err != nil {
			errs = append(errs, fmt.Errorf("node %s: %w", n.Name, err))
		}
	}
	if err := deleteBridge(ctx, rec.Bridge); err != nil {
		errs = append(errs, err)
	}
	fmt.Fprintf(out, "network   namespaces, links and bridge removed\n")
	if err := errors.Join(errs...); err != nil {
		return err
	}
	// The runtime's cgroup parent, and the runc state directory the
	// shims made for the namespace, if nothing else uses them.
	for _, dir := range cgroupDirs(runtimeCgroupParent) {
		_ = os.Remove(dir)
	}
	_ = os.Remove(filepath.Join("/run/containerd/runc", runtimeCgroupParent))
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	fmt.Fprintf(out, "files     %s removed\n", dir)
	return nil
}

// stopProcess sends SIGTERM to pid, if it is still the process named
// (its command line contains what), and SIGKILL after grace.
func stopProcess(pid int, what string, grace time.Duration) error {
	if pid <= 0 || !isProcess(pid, what) {
		return nil
	}
	if err := syscall.Kill(pid, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	deadline := time.Now().Add(grace)
	for time.Now().Before(deadline) {
		if !isProcess(pid, what) {
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	if err := syscall.Kill(pid, syscall.SIGKILL); err != nil && !errors.Is(err, syscall.ESRCH) {
		return err
	}
	return nil
}

// isProcess reports whether pid is alive (not a zombie) and its command
// line contains what.
func isProcess(pid int, what string) bool {
	stat, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/stat")
	if err != nil {
		return false
	}
	if i := strings.LastIndexByte(string(stat), ')'); i > 0 && i+2 < len(stat) && stat[i+2] == 'Z' {
		return false
	}
	cmdline, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	return err == nil && strings.Contains(string(cmdline), what)
}

// removeContainers kills and deletes every task and container of every
// namespace of the containerd in dir, if it answers.
func removeContainers(ctx context.Context, dir string) error {
	sock := runtime.SocketPath(dir)
	if _, err := os.Stat(sock); err != nil {
		return nil
	}
	client, err := containerd.New(sock, containerd.WithTimeout(5*time.Second))
	if err != nil {
		return nil // not answering: nothing it could remove
	}
	defer client.Close()
	nss, err := client.NamespaceService().List(ctx)
	if err != nil {
		return fmt.Errorf("containerd %s: %w", sock, err)
	}
	var errs []error
	for _, ns := range nss {
		nctx := namespacesWith(ctx, ns)
		ctrs, err := client.Containers(nctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, ctr := range ctrs {
			if task, err := ctr.Task(nctx, nil); err == nil {
				if _, err := task.Delete(nctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
					errs = append(errs, fmt.Errorf("delete task %s: %w", ctr.ID(), err))
				}
			}
			if err := ctr.Delete(nctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
				errs = append(errs, fmt.Errorf("delete container %s: %w", ctr.ID(), err))
			}
		}
	}
	return errors.Join(errs...)
}

// reapShims waits for the shims of the containerd at sock to exit, as
// they do once their task is deleted. A shim still there after 10 seconds
// is an orphan (its task was deleted by an agent interrupted halfway, so
// containerd never told it to go): the processes of its container's
// cgroup are killed, then the shim, and the cgroup removed. It returns how
// many it killed.
func reapShims(ctx context.Context, sock string) int {
	deadline := time.Now().Add(10 * time.Second)
	for len(shimsOf(sock)) > 0 && time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return 0
		case <-time.After(50 * time.Millisecond):
		}
	}
	killed := 0
	var sockets []string
	for _, pid := range shimsOf(sock) {
		args := shimArgs(pid)
		if id := shimContainerID(args); id != "" {
			killCgroup(runtimeCgroupParent + "/" + id)
		}
		sockets = append(sockets, shimSocket(args))
		if syscall.Kill(pid, syscall.SIGKILL) == nil {
			killed++
		}
	}
	removeShimSockets(sockets)
	return killed
}

// runtimeCgroupParent is where the runtime puts containers' cgroups: the
// agent's containerd namespace, shoal unless configured otherwise.
const runtimeCgroupParent = "shoal"

// shimContainerID is the container ID from a shim's command line
// ("-id ID"), as shimArgs reads it.
func shimContainerID(args []string) string { return argOf(args, "-id") }

// shimArgs reads a process's command line, split into its arguments; nil
// if it cannot be read (the process is gone).
func shimArgs(pid int) []string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cmdline")
	if err != nil {
		return nil
	}
	return strings.Split(string(b), "\x00")
}

// argOf is the value of a flag in a command line ("FLAG VALUE"), or "".
func argOf(args []string, flag string) string {
	for i, a := range args {
		if a == flag && i+1 < len(args) {
			return args[i+1]
		}
	}
	return ""
}

// shimSocketDir is where containerd's shims put their sockets, whatever
// the daemon's own state directory.
const shimSocketDir = "/run/containerd/s"

// shimSocket returns the path of a shim's socket, from its command line
// (as shimArgs reads it): shims name it by the SHA-256 of the daemon's
// address, the namespace and the container ID joined as a path. A shim
// that exits removes it; one killed leaves it for ever, as /run is only
// cleared when a machine boots.
func shimSocket(args []string) string {
	ns, id, addr := argOf(args, "-namespace"), shimContainerID(args), argOf(args, "-address")
	if ns == "" || id == "" || addr == "" {
		return ""
	}
	sum := sha256.Sum256([]byte(filepath.Join(addr, ns, id)))
	return filepath.Join(shimSocketDir, hex.EncodeToString(sum[:]))
}

// removeShimSockets removes the sockets of killed shims.
func removeShimSockets(paths []string) {
	for _, p := range paths {
		if p != "" {
			_ = os.Remove(p)
		}
	}
}

// cgroupDirs lists the directories of a cgroup path under every mounted
// hierarchy (cgroup v1 has one per controller, v2 one).
func cgroupDirs(path string) []string {
	if _, err := os.Stat("/sys/fs/cgroup/cgroup.controllers"); err == nil {
		return []string{filepath.Join("/sys/fs/cgroup", path)}
	}
	ents, err := os.ReadDir("/sys/fs/cgroup")
	if err != nil {
		return nil
	}
	var dirs []string
	for _, e := range ents {
		dirs = append(dirs, filepath.Join("/sys/fs/cgroup", e.Name(), path))
	}
	return dirs
}

// killCgroup kills every process of a cgroup and removes it.
func killCgroup(path string) {
	for _, dir := range cgroupDirs(path) {
		b, err := os.ReadFile(filepath.Join(dir, "cgroup.procs"))
		if err != nil {
			continue
		}
		for _, f := range strings.Fields(string(b)) {
			if pid, err := strconv.Atoi(f); err == nil {
				_ = syscall.Kill(pid, syscall.SIGKILL)
			}
		}
	}
	for _, dir := range cgroupDirs(path) {
		for i := 0; i < 100 && os.Remove(dir) != nil; i++ {
			if _, err := os.Stat(dir); err != nil {
				break
			}
			time.Sleep(10 * time.Millisecond) // the killed processes leave the cgroup
		}
	}
}

// shimsOf lists the live shim processes started by the containerd at sock.
func shimsOf(sock string) []int {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return nil
	}
	var pids []int
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		if isProcess(pid, "containerd-shim") && isProcess(pid, sock) {
			pids = append(pids, pid)
		}
	}
	return pids
}

func namespacesWith(ctx context.Context, ns string) context.Context {
	return namespaces.WithNamespace(ctx, ns)
}

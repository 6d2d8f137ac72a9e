package localcluster

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/runtime"
)

// Options say what cluster Up makes.
type Options struct {
	// Dir holds everything of the cluster: the record, the key, the nodes'
	// data and containerd directories, logs and a repository made by Up.
	Dir string
	// Name prefixes the bridge ("NAME-br"), the namespaces ("NAME-node1")
	// and the host links ("NAME-v1"); at most 8 characters so that
	// interface names fit.
	Name  string
	Nodes int
	// Repo is a Git URL, a local repository, or a plain directory that Up
	// turns into a repository of its own (under Dir) with one commit.
	Repo   string
	Branch string
	Path   string
	// Subnet is the nodes' network; the host takes its first address and
	// node i the address 10+i.
	Subnet netip.Prefix
	// Images are image archives (docker save / OCI layout tarballs)
	// imported into every node's containerd before the agents start, for
	// images no registry serves.
	Images []string
	// AgentArgs are extra `shoal agent` flags for every node.
	AgentArgs []string
	// Binary is the shoal executable the agents run (default: this one).
	Binary string
	// ExecHelper is a statically linked shoal binary for Secret values in
	// containers' environment (agent --exec-helper); empty lets each agent
	// use its own binary, which make build links statically.
	ExecHelper string
	// Out receives progress lines; nil discards them.
	Out io.Writer
}

// Defaults.
const (
	DefaultDir  = "/var/lib/shoal-up"
	DefaultName = "shoal"
)

// DefaultSubnet is the nodes' network unless told otherwise.
var DefaultSubnet = netip.MustParsePrefix("10.77.0.0/24")

func (o *Options) withDefaults() (Options, error) {
	c := *o
	if c.Dir == "" {
		c.Dir = DefaultDir
	}
	dir, err := filepath.Abs(c.Dir)
	if err != nil {
		return c, err
	}
	c.Dir = dir
	if c.Name == "" {
		c.Name = DefaultName
	}
	if !c.Subnet.IsValid() {
		c.Subnet = DefaultSubnet
	}
	if c.Binary == "" {
		if c.Binary, err = os.Executable(); err != nil {
			return c, err
		}
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	return c, nil
}

func (o *Options) validate() error {
	var errs []error
	if o.Nodes < 1 || o.Nodes > 200 {
		errs = append(errs, fmt.Errorf("nodes: %d, want 1 to 200", o.Nodes))
	}
	if len(o.Name) > 8 || o.Name == "" || strings.ContainsAny(o.Name, "/ \t") {
		errs = append(errs, fmt.Errorf("name %q: want 1 to 8 characters without / or spaces (it prefixes interface names)", o.Name))
	}
	if !o.Subnet.Addr().Is4() || o.Subnet.Bits() > 24 {
		errs = append(errs, fmt.Errorf("subnet %s: want an IPv4 prefix of /24 or wider", o.Subnet))
	}
	if o.Repo == "" {
		errs = append(errs, errors.New("repo: required (a directory, a local repository or a Git URL)"))
	}
	// The containerd socket path must fit a unix socket address.
	if n := len(filepath.Join(o.Dir, "node000", "ctd", "containerd.sock")); n > 107 {
		errs = append(errs, fmt.Errorf("dir %s: too long for containerd's socket path (%d bytes over 107)", o.Dir, n-107))
	}
	for _, img := range o.Images {
		if _, err := os.Stat(img); err != nil {
			errs = append(errs, fmt.Errorf("image archive: %w", err))
		}
	}
	return errors.Join(errs...)
}

// Preflight names every program or kernel feature Up needs that this
// machine lacks, with the Debian package that provides it.
func Preflight() error {
	var errs []error
	if os.Geteuid() != 0 {
		errs = append(errs, errors.New("must run as root: it creates network namespaces, a bridge and containers"))
	}
	for _, p := range []struct{ bin, pkg string }{
		{"ip", "iproute2"}, {"nsenter", "util-linux"}, {"containerd", "containerd"},
		{"runc", "runc"}, {"iptables", "iptables"},
	} {
		if _, err := exec.LookPath(p.bin); err != nil {
			errs = append(errs, fmt.Errorf("%s not found on PATH (apt-get install %s)", p.bin, p.pkg))
		}
	}
	if _, err := os.Stat("/usr/lib/cni/bridge"); err != nil {
		if _, err2 := os.Stat("/opt/cni/bin/bridge"); err2 != nil {
			errs = append(errs, errors.New("CNI plugins not found in /usr/lib/cni or /opt/cni/bin (apt-get install containernetworking-plugins)"))
		}
	}
	return errors.Join(errs...)
}

// Up makes the cluster and starts it, and returns once every agent runs;
// Wait follows it until it serves. On failure it removes what it made.
func Up(ctx context.Context, opts Options) (rec *Record, retErr error) {
	o, err := opts.withDefaults()
	if err != nil {
		return nil, err
	}
	if err := o.validate(); err != nil {
		return nil, err
	}
	if err := Preflight(); err != nil {
		return nil, err
	}
	if _, err := Load(o.Dir); err == nil {
		return nil, fmt.Errorf("a local cluster exists in %s already: shoal down --dir %s first", o.Dir, o.Dir)
	}
	if err := os.MkdirAll(o.Dir, 0o700); err != nil {
		return nil, err
	}
	host := netip.PrefixFrom(o.Subnet.Addr().Next(), o.Subnet.Bits())
	rec = &Record{Name: o.Name, Dir: o.Dir, Subnet: o.Subnet.String(), HostAddr: host.Addr().String(),
		Branch: o.Branch, Path: o.Path, KeyFile: filepath.Join(o.Dir, "cluster.key"), ExecHelper: o.ExecHelper}
	if err := rec.save(); err != nil {
		return nil, err
	}
	defer func() {
		if retErr != nil {
			if err := Down(context.WithoutCancel(ctx), o.Dir, o.Out); err != nil {
				retErr = errors.Join(retErr, fmt.Errorf("cleaning up: %w", err))
			}
		}
	}()

	if err := writeKey(rec.KeyFile); err != nil {
		return rec, err
	}
	if rec.Repo, rec.RepoCreated, err = prepareRepo(o.Repo, filepath.Join(o.Dir, "repo")); err != nil {
		return rec, err
	}
	if err := rec.save(); err != nil {
		return rec, err
	}

	rec.Bridge = o.Name + "-br"
	if err := rec.save(); err != nil {
		return rec, err
	}
	if err := createBridge(ctx, rec.Bridge, host); err != nil {
		return rec, err
	}
	fmt.Fprintf(o.Out, "network   bridge %s, host %s\n", rec.Bridge, host)

	for i := 1; i <= o.Nodes; i++ {
		addr, ok := nodeAddr(o.Subnet, i)
		if !ok {
			return rec, fmt.Errorf("subnet %s has no room for %d nodes", o.Subnet, o.Nodes)
		}
		n := newNodeRecord(o.Name, o.Dir, i, addr)
		rec.Nodes = append(rec.Nodes, n)
		if err := rec.save(); err != nil {
			return rec, err
		}
		if err := createNode(ctx, rec.Bridge, n.NetNS, n.HostVeth, netip.PrefixFrom(addr, o.Subnet.Bits()), host.Addr()); err != nil {
			return rec, fmt.Errorf("node %s: %w", n.Name, err)
		}
	}
	fmt.Fprintf(o.Out, "nodes     %d network namespaces, %s-node1 ... at %s ...\n", o.Nodes, o.Name, rec.Nodes[0].Addr)

	for i := range rec.Nodes {
		n := &rec.Nodes[i]
		if err := os.MkdirAll(n.DataDir, 0o700); err != nil {
			return rec, err
		}
		d, err := runtime.StartContainerd(ctx, runtime.DaemonConfig{Dir: n.ContainerdDir})
		if err != nil {
			return rec, fmt.Errorf("node %s: %w", n.Name, err)
		}
		n.ContainerdPID = d.PID
		if err := rec.save(); err != nil {
			return rec, err
		}
		for _, img := range o.Images {
			if err := importImage(ctx, d.Address, img); err != nil {
				return rec, fmt.Errorf("node %s: %w", n.Name, err)
			}
		}
	}
	fmt.Fprintf(o.Out, "runtime   %d containerd daemons", o.Nodes)
	if len(o.Images) > 0 {
		fmt.Fprintf(o.Out, ", %d images imported into each", len(o.Images))
	}
	fmt.Fprintln(o.Out)

	for i := range rec.Nodes {
		n := &rec.Nodes[i]
		if err := writeAgentConfig(rec, n, o.Nodes); err != nil {
			return rec, err
		}
		pid, err := startAgent(o.Binary, n, o.AgentArgs)
		if err != nil {
			return rec, fmt.Errorf("node %s: %w", n.Name, err)
		}
		n.AgentPID = pid
		if err := rec.save(); err != nil {
			return rec, err
		}
	}
	fmt.Fprintf(o.Out, "agents    %d started, following %s\n", o.Nodes, rec.Repo)
	return rec, nil
}

// nodeAddr is node i's address in subnet: the subnet's address plus 10+i.
// ok is false if that would pass .254.
func nodeAddr(subnet netip.Prefix, i int) (addr netip.Addr, ok bool) {
	a := subnet.Addr().As4()
	if int(a[3])+10+i > 254 {
		return netip.Addr{}, false
	}
	a[3] += byte(10 + i)
	return netip.AddrFrom4(a), true
}

// newNodeRecord is the record of node i of the cluster called cluster in
// dir, at addr: its name, namespace, link and files follow i. Up and
// AddNode both make their nodes with it, so the two cannot drift apart.
func newNodeRecord(cluster, dir string, i int, addr netip.Addr) NodeRecord {
	name := fmt.Sprintf("node%d", i)
	nodeDir := filepath.Join(dir, name)
	return NodeRecord{
		Name: name, NetNS: cluster + "-" + name, HostVeth: fmt.Sprintf("%s-v%d", cluster, i),
		Addr: addr.String(), DataDir: filepath.Join(nodeDir, "data"), ContainerdDir: filepath.Join(nodeDir, "ctd"),
		StatusAddr: netip.AddrPortFrom(addr, 7949).String(),
		ConfigFile: filepath.Join(nodeDir, "agent.yaml"), LogFile: filepath.Join(nodeDir, "agent.log"),
	}
}

// writeKey makes a random 32-byte cluster key, readable by root only.
func writeKey(path string) error {
	key := make([]byte, 32)
	if _, err := rand.Read(key); err != nil {
		return err
	}
	return os.WriteFile(path, []byte(base64.StdEncoding.EncodeToString(key)+"\n"), 0o600)
}

// prepareRepo returns what the agents follow: a URL or an existing
// repository as given, or a new repository at dst holding a plain
// directory's files in one commit.
func prepareRepo(src, dst string) (repo string, created bool, err error) {
	if strings.Contains(src, "://") || strings.HasPrefix(src, "git@") {
		return src, false, nil
	}
	abs, err := filepath.Abs(src)
	if err != nil {
		return "", false, err
	}
	fi, err := os.Stat(abs)
	if err != nil {
		return "", false, fmt.Errorf("repo: %w", err)
	}
	if !fi.IsDir() {
		return "", false, fmt.Errorf("repo %s: not a directory", src)
	}
	if _, err := git.PlainOpen(abs); err == nil {
		return abs, false, nil
	}
	r, err := git.PlainInitWithOptions(dst, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(gitsource.DefaultBranch)},
	})
	if err != nil {
		return "", false, fmt.Errorf("create repository %s: %w", dst, err)
	}
	if err := copyTree(abs, dst); err != nil {
		return "", false, err
	}
	wt, err := r.Worktree()
	if err != nil {
		return "", false, err
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		return "", false, fmt.Errorf("repository %s: add: %w", dst, err)
	}
	sig := &object.Signature{Name: "shoal up", Email: "shoal-up@localhost", When: time.Now()}
	if _, err := wt.Commit("shoal up: the manifests of "+abs, &git.CommitOptions{Author: sig}); err != nil {
		return "", false, fmt.Errorf("repository %s: commit: %w", dst, err)
	}
	return dst, true, nil
}

// copyTree copies the regular files and directories of src into dst,
// skipping .git.
func copyTree(src, dst string) error {
	return filepath.WalkDir(src, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return os.MkdirAll(filepath.Join(dst, rel), 0o755)
		}
		if !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(dst, rel), b, 0o644)
	})
}

func importImage(ctx context.Context, address, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := runtime.ImportImageArchive(ctx, address, "shoal", "", f); err != nil {
		return fmt.Errorf("import %s: %w", path, err)
	}
	return nil
}

// writeAgentConfig writes the node's `shoal agent --config` file.
func writeAgentConfig(rec *Record, n *NodeRecord, nodes int) error {
	var join []string
	for _, m := range rec.Nodes {
		if m.Name != n.Name {
			join = append(join, netip.AddrPortFrom(netip.MustParseAddr(m.Addr), agent.DefaultGossipPort).String())
		}
	}
	cfg := agent.Config{
		Repo: rec.Repo, Branch: rec.Branch, Path: rec.Path,
		DataDir: n.DataDir, NodeName: n.Name,
		BindAddr: n.Addr, AdvertiseAddr: n.Addr, Join: join,
		ClusterKeyFile: rec.KeyFile, BootstrapExpect: min(nodes, agent.DefaultBootstrapExpect),
		ContainerdSocket: runtime.SocketPath(n.ContainerdDir),
		StatusAddr:       n.StatusAddr,
		ExecHelper:       rec.ExecHelper,
	}
	b, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	return os.WriteFile(n.ConfigFile, b, 0o600)
}

// startAgent starts `shoal agent` in the node's network namespace, in a
// session of its own so that it outlives the caller, with its output in
// the node's log.
func startAgent(binary string, n *NodeRecord, extra []string) (int, error) {
	logf, err := os.OpenFile(n.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return 0, err
	}
	defer logf.Close()
	args := append([]string{"--net=/run/netns/" + n.NetNS, "--", binary, "agent", "--config", n.ConfigFile}, extra...)
	cmd := exec.Command("nsenter", args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = filepath.Dir(n.ConfigFile)
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return 0, fmt.Errorf("start agent: %w", err)
	}
	pid := cmd.Process.Pid
	// nsenter execs the agent in place, so pid is the agent's. Reap it if
	// it exits while we live; if we exit first it is re-parented.
	go cmd.Wait()
	return pid, nil
}

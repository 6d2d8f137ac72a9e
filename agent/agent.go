package agent

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	goruntime "runtime"
	"strconv"
	"strings"
	"sync"
	"time"

	"k8s.io/apimachinery/pkg/api/resource"

	"github.com/shoal-dev/shoal/cluster"
	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/scheduler"
	"github.com/shoal-dev/shoal/state"
)

// PodRuntime is what the pod loop needs from a node runtime; runtime.Fake
// and runtime.Containerd implement it.
type PodRuntime interface {
	RunPod(ctx context.Context, spec runtime.PodSpec) (runtime.PodStatus, error)
	StopPod(ctx context.Context, key runtime.PodKey, grace time.Duration) error
	RemovePod(ctx context.Context, key runtime.PodKey) error
	ListPods(ctx context.Context) ([]runtime.PodStatus, error)
	GC(ctx context.Context, wanted map[string]bool) (runtime.GCResult, error)
	RestartContainer(ctx context.Context, key runtime.PodKey, container string, backoff time.Duration) (runtime.PodStatus, error)
	StopContainer(ctx context.Context, key runtime.PodKey, container string, grace time.Duration) error
	Probe(ctx context.Context, key runtime.PodKey, container string, p runtime.Probe) runtime.ProbeResult
	RefreshVolumes(ctx context.Context, key runtime.PodKey) ([]string, error)
}

// Deps are what an agent takes from its caller rather than from Config:
// tests and simulations pass a runtime, a logger and cluster tuning.
type Deps struct {
	// Runtime, when set, is used instead of the one Config.Runtime names
	// (which is built once the node has its pod CIDR).
	Runtime PodRuntime
	// Logger; nil means slog.Default().
	Logger *slog.Logger
	// Capacity, when set, replaces what is read from the machine.
	Capacity *state.Resources
	// Cluster, when set, adjusts the cluster configuration before Start
	// (tests: ports 0 and faster timings).
	Cluster func(*cluster.Config)
	// Watch, when set, replaces the Git watcher's options.
	Watch *gitsource.WatchOptions
	// Now is the clock of the loops; nil means time.Now.
	Now func() time.Time
}

// Agent is one running node: its replica of the state, its place in the
// cluster, its clone of the repository, its pod loop and its status API.
type Agent struct {
	cfg   Config
	deps  Deps
	log   *slog.Logger
	now   func() time.Time
	key   []byte
	store *state.Store
	node  *cluster.Node
	cmds  applier // the node; tests of single steps substitute it
	src   *source
	repo  *gitsource.Repo
	sched *scheduler.Scheduler

	listener net.Listener
	http     *http.Server

	cancel context.CancelFunc
	wg     sync.WaitGroup

	probes *probeStates
	// stopSeen: when the pod loop first held back each draining pod's
	// stop (drain.go). Only the pod loop touches it.
	stopSeen map[string]time.Time
	// volCommits: the commit each pod's mounted ConfigMaps and Secrets were
	// last projected from (volumes.go). Only the pod loop touches it.
	volCommits *volumeCommits

	// vals resolves pods' ConfigMaps and Secrets and hashes them (values.go).
	vals *nodeValues

	rtMu    sync.Mutex
	rt      PodRuntime
	closeRT func() error

	stopOnce sync.Once
}

// Start validates cfg and brings the node up: state store, cluster, Git
// clone and watcher, leader loops, pod loop and status API. It returns once
// everything listens; the node joins the cluster's work in the background.
func Start(ctx context.Context, cfg Config, deps Deps) (*Agent, error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("agent config: %w", err)
	}
	base := deps.Logger
	if base == nil {
		base = slog.Default()
	}
	log := base.With("node", cfg.NodeName)
	key, err := cluster.LoadKeyFile(cfg.ClusterKeyFile)
	if err != nil {
		return nil, fmt.Errorf("cluster key: %w", err)
	}
	a := &Agent{cfg: cfg, deps: deps, log: log, key: key, now: deps.Now, sched: scheduler.New(scheduler.Config{}), probes: newProbeStates(),
		stopSeen: map[string]time.Time{}, volCommits: newVolumeCommits()}
	if a.now == nil {
		a.now = time.Now
	}
	if a.store, err = state.NewStore(); err != nil {
		return nil, err
	}
	gcfg, err := cfg.gitConfig(filepath.Join(cfg.DataDir, "git"))
	if err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	gcfg.Logger = log.With("component", "git")
	if a.repo, err = gitsource.Open(gcfg); err != nil {
		return nil, fmt.Errorf("git: %w", err)
	}
	a.src = newSource(a.repo, log.With("component", "git"))
	if a.vals, err = newNodeValues(a.src.tree, cfg.AgeKeyFile, key); err != nil {
		a.repo.Close()
		return nil, err
	}
	a.vals.log = log

	ccfg := cluster.Config{
		NodeName:        cfg.NodeName,
		DataDir:         filepath.Join(cfg.DataDir, "cluster"),
		BindAddr:        cfg.BindAddr,
		AdvertiseAddr:   cfg.AdvertiseAddr,
		GossipPort:      cfg.GossipPort,
		RaftPort:        cfg.RaftPort,
		RPCPort:         cfg.RPCPort,
		Join:            cfg.Join,
		Key:             key,
		BootstrapExpect: cfg.BootstrapExpect,
		Logger:          base.With("component", "cluster"), // cluster adds the node
	}
	if deps.Cluster != nil {
		deps.Cluster(&ccfg)
	}
	if err := os.MkdirAll(ccfg.DataDir, 0o700); err != nil {
		a.repo.Close()
		return nil, err
	}
	a.listener, err = net.Listen("tcp", cfg.StatusAddr)
	if err != nil {
		a.repo.Close()
		return nil, fmt.Errorf("status API: %w", err)
	}
	if a.node, err = cluster.Start(ctx, ccfg, resultFSM{a.store.FSM()}); err != nil {
		a.listener.Close()
		a.repo.Close()
		return nil, err
	}
	a.cmds = a.node
	a.rt = deps.Runtime

	runCtx, cancel := context.WithCancel(context.Background())
	a.cancel = cancel
	a.http = &http.Server{Handler: a.statusHandler(), ReadHeaderTimeout: 5 * time.Second}
	a.goLoop(func() {
		if err := a.http.Serve(a.listener); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("status API stopped", "err", err)
		}
	})
	wopts := gitsource.WatchOptions{}
	if deps.Watch != nil {
		wopts = *deps.Watch
	}
	a.goLoop(func() { a.src.watch(runCtx, wopts) })
	a.goLoop(func() { a.node.RunLeaderLoops(runCtx, a.leader) })
	a.goLoop(func() { a.nodeMain(runCtx) })
	if cfg.Runtime == RuntimeContainerd && !cfg.NoRoutes && deps.Runtime == nil {
		a.goLoop(func() { a.runRoutes(runCtx) })
	}
	log.Info("agent started", "gossip", a.node.GossipAddr(), "status", a.listener.Addr().String())
	return a, nil
}

func (a *Agent) goLoop(f func()) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		f()
	}()
}

// Run starts an agent and serves until ctx is done, then leaves the
// cluster gracefully. It is what `shoal agent` calls.
func Run(ctx context.Context, cfg Config, deps Deps) error {
	a, err := Start(ctx, cfg, deps)
	if err != nil {
		return err
	}
	<-ctx.Done()
	lctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := a.Leave(lctx); err != nil {
		// Everything is stopped by now; what failed is telling the
		// others (e.g. no peer to hand leadership to in a one-node
		// cluster). They will see the node fail instead.
		a.log.Warn("leaving the cluster was not announced cleanly", "err", err)
	}
	return nil
}

// Name returns the node name.
func (a *Agent) Name() string { return a.cfg.NodeName }

// StatusAddr returns the address the status API listens on.
func (a *Agent) StatusAddr() string { return a.listener.Addr().String() }

// GossipAddr returns the advertised gossip address, for others to join.
func (a *Agent) GossipAddr() string { return a.node.GossipAddr() }

// IsLeader reports whether this agent is the cluster leader.
func (a *Agent) IsLeader() bool { return a.node.IsLeader() }

// Store returns this node's replica of the state, for reading.
func (a *Agent) Store() *state.Store { return a.store }

// Shutdown stops the agent as a crash would: the others see it fail. Pods
// keep running in the runtime, to be adopted by the next agent.
func (a *Agent) Shutdown() error {
	var err error
	a.stopOnce.Do(func() { err = a.stop(func() error { return a.node.Shutdown() }) })
	return err
}

// Leave announces the departure, then stops like Shutdown.
func (a *Agent) Leave(ctx context.Context) error {
	var err error
	a.stopOnce.Do(func() { err = a.stop(func() error { return a.node.Leave(ctx) }) })
	return err
}

func (a *Agent) stop(stopNode func() error) error {
	a.cancel()
	errs := []error{stopNode()}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs = append(errs, a.http.Shutdown(sctx))
	a.wg.Wait()
	a.rtMu.Lock()
	if a.closeRT != nil {
		errs = append(errs, a.closeRT())
	}
	a.rtMu.Unlock()
	errs = append(errs, a.repo.Close())
	a.log.Info("agent stopped")
	return errors.Join(errs...)
}

// retry calls f until it succeeds or ctx is done, backing off between
// failures.
func (a *Agent) retry(ctx context.Context, what string, f func() error) error {
	wait := 100 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		a.log.Warn(what+" failed, retrying", "err", err, "in", wait)
		t := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
		wait = min(wait*2, 5*time.Second)
	}
}

// waitApplied blocks until the local replica has applied index, so what
// this node reads next includes everything committed up to it.
func (a *Agent) waitApplied(ctx context.Context, index uint64) error {
	for {
		v := a.store.Snapshot()
		if v.Index() >= index {
			return nil
		}
		if err := v.Wait(ctx); err != nil {
			return err
		}
	}
}

// apply commits a command through the cluster.
func (a *Agent) apply(ctx context.Context, c state.Command) (*state.Result, error) {
	return applyCommand(ctx, a.cmds, c)
}

// nodeRecord describes this machine for UpsertNode.
func (a *Agent) nodeRecord() (state.Node, error) {
	capacity := state.Resources{}
	if a.deps.Capacity != nil {
		capacity = *a.deps.Capacity
	} else {
		mem, err := machineMemory()
		if err != nil {
			return state.Node{}, err
		}
		capacity = state.Resources{MilliCPU: int64(goruntime.NumCPU()) * 1000, Memory: mem, Pods: a.cfg.MaxPods}
	}
	alloc := capacity
	if a.cfg.Reserve.CPU != "" {
		q := resource.MustParse(a.cfg.Reserve.CPU) // checked by Validate
		alloc.MilliCPU = max(0, alloc.MilliCPU-q.MilliValue())
	}
	if a.cfg.Reserve.Memory != "" {
		q := resource.MustParse(a.cfg.Reserve.Memory)
		alloc.Memory = max(0, alloc.Memory-q.Value())
	}
	labels := map[string]string{scheduler.HostnameKey: a.cfg.NodeName}
	for k, v := range a.cfg.Labels {
		labels[k] = v
	}
	addr, _, _ := net.SplitHostPort(a.node.GossipAddr())
	return state.Node{
		Name:          a.cfg.NodeName,
		Address:       addr,
		Labels:        labels,
		Taints:        a.cfg.Taints,
		Capacity:      capacity,
		Allocatable:   alloc,
		Status:        state.NodeReady,
		LastHeartbeat: a.now().UTC(),
	}, nil
}

// machineMemory reads MemTotal from /proc/meminfo, in bytes.
func machineMemory() (int64, error) {
	f, err := os.Open("/proc/meminfo")
	if err != nil {
		return 0, err
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) >= 2 && fields[0] == "MemTotal:" {
			kb, err := strconv.ParseInt(fields[1], 10, 64)
			if err != nil {
				return 0, fmt.Errorf("/proc/meminfo: %w", err)
			}
			return kb * 1024, nil
		}
	}
	return 0, errors.New("/proc/meminfo: no MemTotal")
}

// Cluster returns this agent's cluster node, for diagnostics and tests
// (its advertised addresses, raft state).
func (a *Agent) Cluster() *cluster.Node { return a.node }

package cluster

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	raftboltdb "github.com/hashicorp/raft-boltdb/v2"
	"go.etcd.io/bbolt"
)

const clusterIDFile = "cluster-id"

// Node is one member of the cluster: gossip, raft and the RPC server.
type Node struct {
	cfg   Config
	log   *slog.Logger
	keys  *keys
	codec ResponseCodec

	gossipAddr, raftAddr, rpcAddr string

	ml    *memberlist.Memberlist
	raft  *raft.Raft
	store *raftboltdb.BoltStore
	trans *raft.NetworkTransport
	rpcLn net.Listener
	rpc   *rpcPool

	mu          sync.Mutex
	meta        nodeMeta
	members     map[string]Member
	nonces      map[string]string
	expects     map[string]int
	proposals   map[string]string
	memberWatch chan struct{}

	lead leadership

	ctx      context.Context // cancelled by Shutdown
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	shutOnce sync.Once
}

// Start brings up a node: it checks the data dir, binds the gossip, raft and
// RPC ports, joins cfg.Join and starts raft. The FSM receives every
// committed command in order on every node. ctx bounds only the start-up.
func Start(ctx context.Context, cfg Config, fsm raft.FSM) (_ *Node, err error) {
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("cluster config: %w", err)
	}
	k, err := deriveKeys(cfg.Key)
	if err != nil {
		return nil, err
	}
	nonce := make([]byte, 8)
	rand.Read(nonce)
	n := &Node{
		cfg:         cfg,
		log:         cfg.Logger.With("node", cfg.NodeName),
		keys:        k,
		codec:       cfg.ResponseCodec,
		members:     map[string]Member{},
		nonces:      map[string]string{},
		expects:     map[string]int{},
		proposals:   map[string]string{},
		memberWatch: make(chan struct{}),
		meta:        nodeMeta{Version: 1, Nonce: hex.EncodeToString(nonce), Expect: cfg.BootstrapExpect},
	}
	n.lead.init()
	n.ctx, n.cancel = context.WithCancel(context.Background())
	defer func() {
		if err != nil {
			n.Shutdown()
		}
	}()

	raftDir := filepath.Join(cfg.DataDir, "raft")
	if err := os.MkdirAll(raftDir, 0o700); err != nil {
		return nil, fmt.Errorf("data dir: %w", err)
	}
	id, err := readClusterID(cfg.DataDir)
	if err != nil {
		return nil, err
	}
	n.meta.ClusterID = id

	// Stores first: they hold the data dir lock (bbolt's flock), so a second
	// agent on the same data dir fails here rather than corrupting it.
	n.store, err = raftboltdb.New(raftboltdb.Options{
		Path:        filepath.Join(raftDir, "raft.db"),
		BoltOptions: &bbolt.Options{Timeout: time.Second},
	})
	if err != nil {
		return nil, fmt.Errorf("open raft log %s (is another agent using this data dir?): %w", raftDir, err)
	}
	snaps, err := raft.NewFileSnapshotStoreWithLogger(raftDir, cfg.Snapshot.Retain, hclogFor(n.log, "raft-snapshots"))
	if err != nil {
		return nil, fmt.Errorf("raft snapshots: %w", err)
	}
	hasState, err := raft.HasExistingState(n.store, n.store, snaps)
	if err != nil {
		return nil, fmt.Errorf("raft state in %s: %w", raftDir, err)
	}
	if hasState && id == "" {
		return nil, fmt.Errorf("data dir %s has raft state but no %s file: restore the file or empty the data dir",
			cfg.DataDir, clusterIDFile)
	}

	// Listeners, so the metadata can carry the bound ports.
	raftLn, err := net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.RaftPort)))
	if err != nil {
		return nil, fmt.Errorf("raft port: %w", err)
	}
	n.raftAddr = net.JoinHostPort(cfg.AdvertiseAddr, strconv.Itoa(raftLn.Addr().(*net.TCPAddr).Port))
	stream := &tlsStreamLayer{ln: raftLn, tls: k.tlsConfig(alpnRaft), node: cfg.NodeName, fault: cfg.fault,
		handshakeTimeout: cfg.Gossip.TCPTimeout}
	stream.advertise, _ = net.ResolveTCPAddr("tcp", n.raftAddr)
	n.trans = raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
		Stream:  stream,
		MaxPool: 4,
		Timeout: 5 * time.Second,
		Logger:  hclogFor(n.log, "raft-net"),
	})
	n.rpcLn, err = net.Listen("tcp", net.JoinHostPort(cfg.BindAddr, strconv.Itoa(cfg.RPCPort)))
	if err != nil {
		return nil, fmt.Errorf("rpc port: %w", err)
	}
	n.rpcAddr = net.JoinHostPort(cfg.AdvertiseAddr, strconv.Itoa(n.rpcLn.Addr().(*net.TCPAddr).Port))
	n.rpc = newRPCPool(n)
	n.meta.RaftAddr, n.meta.RPCAddr = n.raftAddr, n.rpcAddr

	nt, err := memberlist.NewNetTransport(&memberlist.NetTransportConfig{
		BindAddrs: []string{cfg.BindAddr},
		BindPort:  cfg.GossipPort,
		Logger:    stdlogFor(n.log),
	})
	if err != nil {
		return nil, fmt.Errorf("gossip port: %w", err)
	}
	gport := nt.GetAutoBindPort()
	n.gossipAddr = net.JoinHostPort(cfg.AdvertiseAddr, strconv.Itoa(gport))
	if cfg.fault != nil {
		cfg.fault.register(cfg.NodeName, n.gossipAddr, n.raftAddr, n.rpcAddr)
	}
	n.ml, err = memberlist.Create(n.memberlistConfig(&faultTransport{NetTransport: nt, node: cfg.NodeName, fault: cfg.fault}, gport))
	if err != nil {
		nt.Shutdown()
		return nil, fmt.Errorf("gossip: %w", err)
	}
	if len(cfg.Join) > 0 {
		joined := make(chan error, 1)
		n.wg.Add(1)
		// Machines start in any order: while no member at the join
		// addresses answers at all, try again (like Consul's retry_join),
		// saying why each time. This node's gossip already listens, so the
		// others can reach it meanwhile. A member that answers and refuses
		// (another key, a name in use) fails Start at once.
		go func() {
			defer n.wg.Done()
			backoff := joinRetryMin
			for {
				_, err := n.ml.Join(cfg.Join)
				if err == nil {
					joined <- nil
					return
				}
				if !unreachable(err) {
					// Someone answered and refused us: trying again
					// changes nothing.
					joined <- fmt.Errorf("%w%s", flatten(err), joinHint(err))
					return
				}
				n.log.Warn("join failed; retrying", "join", strings.Join(cfg.Join, ","), "in", backoff,
					"err", flatten(err).Error()+joinHint(err))
				select {
				case <-ctx.Done():
					joined <- fmt.Errorf("%w (last attempt: %s%s)", ctx.Err(), flatten(err), joinHint(err))
					return
				case <-time.After(backoff):
				}
				backoff = min(2*backoff, joinRetryMax)
			}
		}()
		if err := <-joined; err != nil {
			return nil, fmt.Errorf("join %s: %w", strings.Join(cfg.Join, ","), err)
		}
	}

	rc := raft.DefaultConfig()
	rc.LocalID = raft.ServerID(cfg.NodeName)
	rc.Logger = hclogFor(n.log, "raft")
	rc.HeartbeatTimeout = cfg.Raft.HeartbeatTimeout
	rc.ElectionTimeout = cfg.Raft.ElectionTimeout
	rc.LeaderLeaseTimeout = cfg.Raft.LeaderLeaseTimeout
	rc.CommitTimeout = cfg.Raft.CommitTimeout
	rc.MaxAppendEntries = 512
	rc.NotifyCh = n.lead.notify
	rc.SnapshotThreshold = cfg.Snapshot.Threshold
	rc.SnapshotInterval = cfg.Snapshot.Interval
	rc.TrailingLogs = cfg.Snapshot.TrailingLogs
	n.raft, err = raft.NewRaft(rc, fsm, n.store, n.store, snaps, n.trans)
	if err != nil {
		return nil, fmt.Errorf("raft: %w", err)
	}
	obs := make(chan raft.Observation, 16)
	n.raft.RegisterObserver(raft.NewObserver(obs, false, func(o *raft.Observation) bool {
		_, ok := o.Data.(raft.LeaderObservation)
		return ok
	}))

	n.wg.Add(5)
	go func() { defer n.wg.Done(); n.lead.run(n) }()
	go func() { defer n.wg.Done(); n.reconnect() }()
	go func() { defer n.wg.Done(); n.watchLeader(obs) }()
	go func() { defer n.wg.Done(); n.serveRPC() }()
	go func() { defer n.wg.Done(); n.RunLeaderLoops(n.ctx, n.autopilot) }()
	if !hasState && id == "" {
		n.wg.Add(1)
		go func() { defer n.wg.Done(); n.form() }()
	}
	n.log.Info("cluster node started", "gossip", n.gossipAddr, "raft", n.raftAddr, "rpc", n.rpcAddr,
		"cluster_id", id, "existing_state", hasState)
	return n, nil
}

// flatten turns memberlist's multi-line multierror into one line.
func flatten(err error) error {
	me, ok := err.(interface{ WrappedErrors() []error })
	if !ok || len(me.WrappedErrors()) == 0 {
		return err
	}
	return errors.Join(me.WrappedErrors()...)
}

// The wait between join attempts grows from joinRetryMin to joinRetryMax.
const (
	joinRetryMin = 500 * time.Millisecond
	joinRetryMax = 10 * time.Second
)

// unreachable reports whether every join address failed for want of a
// listener (refused, unreachable, timed out), as when the other machines
// are not up yet. memberlist flattens the causes into text, so this reads
// it.
func unreachable(err error) bool {
	errs := []error{err}
	if me, ok := err.(interface{ WrappedErrors() []error }); ok && len(me.WrappedErrors()) > 0 {
		errs = me.WrappedErrors()
	}
	for _, e := range errs {
		s := e.Error()
		if !strings.Contains(s, "connection refused") && !strings.Contains(s, "no route to host") &&
			!strings.Contains(s, "network is unreachable") && !strings.Contains(s, "i/o timeout") {
			return false
		}
	}
	return true
}

func joinHint(err error) string {
	s := err.Error()
	if strings.Contains(s, "decrypt") || strings.Contains(s, "EOF") || strings.Contains(s, "connection reset") {
		return " (the members at the join address could not read our gossip or we theirs: is this node's cluster key the same as theirs?)"
	}
	return ""
}

func readClusterID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, clusterIDFile))
	if errors.Is(err, os.ErrNotExist) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("data dir: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// setClusterID records the cluster this data dir belongs to, then tells
// gossip. It is written before raft has any state, so a data dir with raft
// state always names its cluster.
func (n *Node) setClusterID(id string) error {
	path := filepath.Join(n.cfg.DataDir, clusterIDFile)
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(id+"\n"), 0o600); err != nil {
		return fmt.Errorf("write cluster id: %w", err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("write cluster id: %w", err)
	}
	n.mu.Lock()
	n.meta.ClusterID = id
	n.mu.Unlock()
	// The update is queued for gossip (and carried by every push/pull)
	// whether or not its broadcast completes within the wait, so a short
	// wait is enough and keeps Shutdown from stalling behind it.
	if err := n.ml.UpdateNode(n.cfg.Gossip.ProbeInterval); err != nil {
		n.log.Debug("gossip cluster id", "err", err)
	}
	n.log.Info("cluster id recorded", "cluster_id", id)
	return nil
}

// ClusterID is the ID of the cluster this node belongs to, or "" before it
// bootstrapped or joined one.
func (n *Node) ClusterID() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.meta.ClusterID
}

// Name returns the node name.
func (n *Node) Name() string { return n.cfg.NodeName }

// GossipAddr, RaftAddr and RPCAddr return the advertised addresses.
func (n *Node) GossipAddr() string { return n.gossipAddr }
func (n *Node) RaftAddr() string   { return n.raftAddr }
func (n *Node) RPCAddr() string    { return n.rpcAddr }

// IsLeader reports whether this node is the raft leader.
func (n *Node) IsLeader() bool { return n.raft != nil && n.raft.State() == raft.Leader }

// Leader returns the leader's node name, or "" when there is none known.
func (n *Node) Leader() string {
	_, id := n.raft.LeaderWithID()
	return string(id)
}

// Raft exposes the raft instance for reads of its state (configuration,
// stats, applied index). Writes go through Apply.
func (n *Node) Raft() *raft.Raft { return n.raft }

// Leave announces this node's departure to gossip (the leader then removes
// it from raft at once), hands leadership over if it holds it, and shuts
// down.
func (n *Node) Leave(ctx context.Context) error {
	var errs []error
	if n.IsLeader() {
		if err := n.raft.LeadershipTransfer().Error(); err != nil {
			errs = append(errs, fmt.Errorf("leadership transfer: %w", err))
		}
	}
	timeout := 2 * time.Second
	if dl, ok := ctx.Deadline(); ok {
		timeout = time.Until(dl) / 2
	}
	n.mu.Lock()
	n.meta.Leaving = true
	n.mu.Unlock()
	if err := n.ml.UpdateNode(timeout); err != nil {
		errs = append(errs, fmt.Errorf("gossip leave intent: %w", err))
	}
	if err := n.ml.Leave(timeout); err != nil {
		errs = append(errs, fmt.Errorf("gossip leave: %w", err))
	}
	errs = append(errs, n.Shutdown())
	return errors.Join(errs...)
}

// Shutdown stops the node without telling the others, as a crash would:
// they see it fail. It waits for every goroutine the node started.
func (n *Node) Shutdown() error {
	var errs []error
	n.shutOnce.Do(func() {
		n.cancel()
		// Gossip first: the others' failure detection starts when this
		// node stops answering probes, not after raft has wound down.
		if n.ml != nil {
			if err := n.ml.Shutdown(); err != nil {
				errs = append(errs, fmt.Errorf("gossip: %w", err))
			}
		}
		if n.rpcLn != nil {
			n.rpcLn.Close() // no new forwarded writes while raft winds down
		}
		if n.raft != nil {
			if err := n.raft.Shutdown().Error(); err != nil {
				errs = append(errs, fmt.Errorf("raft: %w", err))
			}
		}
		if n.trans != nil {
			n.trans.Close()
		}
		if n.rpc != nil {
			n.rpc.close()
		}
		n.lead.stop()
		n.wg.Wait()
		if n.store != nil {
			if err := n.store.Close(); err != nil {
				errs = append(errs, fmt.Errorf("raft log: %w", err))
			}
		}
		n.log.Info("cluster node stopped")
	})
	return errors.Join(errs...)
}

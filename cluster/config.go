package cluster

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strings"
	"time"
)

// KeySize is the size of the cluster key in bytes.
const KeySize = 32

// Config configures one node. Zero durations and counts take the defaults
// documented on each field (see WithDefaults).
type Config struct {
	// NodeName identifies the node in gossip and raft; unique in the cluster.
	NodeName string
	// DataDir holds the cluster ID, the raft log, stable store and snapshots.
	DataDir string

	// BindAddr is the IP to listen on; AdvertiseAddr the IP other nodes use
	// to reach this one (default: BindAddr, which must then not be a
	// wildcard address).
	BindAddr      string
	AdvertiseAddr string
	// Ports; 0 picks a free port (useful for tests; the bound port is what
	// is advertised).
	GossipPort int
	RaftPort   int
	RPCPort    int

	// Join lists gossip addresses (host:port) of existing members.
	Join []string

	// Key is the 32-byte cluster key (see LoadKeyFile).
	Key []byte

	// BootstrapExpect is the number of nodes that form a new cluster
	// (default 3). Must not exceed MaxVoters.
	BootstrapExpect int
	// MaxVoters is the number of raft voters (default 5).
	MaxVoters int

	// Logger receives structured logs (default: slog.Default()).
	Logger *slog.Logger

	Gossip   GossipTiming
	Raft     RaftTiming
	Snapshot SnapshotPolicy

	// DeadServerGrace is how long a failed member stays in the raft
	// configuration before the leader removes it (default 5s). A member that
	// left gracefully is removed at once.
	DeadServerGrace time.Duration
	// ReconcileInterval is how often the leader re-checks membership even
	// without gossip events (default 1s).
	ReconcileInterval time.Duration
	// MaxTrailingLogs is how far behind the leader a non-voter may be and
	// still be promoted (default 1000 entries).
	MaxTrailingLogs uint64
	// ApplyHoldTimeout bounds how long Apply waits for a leader to appear
	// when there is none (default 5s; a context deadline also bounds it).
	ApplyHoldTimeout time.Duration

	// ResponseCodec carries the FSM's Apply responses back to a node that
	// forwarded the command (default BytesCodec: nil and []byte only).
	ResponseCodec ResponseCodec

	// fault, when set by tests, lets them cut the network between nodes.
	fault *faultNet
}

// GossipTiming tunes memberlist. The defaults are for a LAN and make a
// crashed node be seen as failed by every other member within about a second.
type GossipTiming struct {
	ProbeInterval  time.Duration // default 200ms
	ProbeTimeout   time.Duration // default 100ms
	GossipInterval time.Duration // default 100ms
	SuspicionMult  int           // default 2
	TCPTimeout     time.Duration // default 2s
	// DeadTime is how long memberlist keeps gossiping to a failed member,
	// so that it rejoins by itself when it comes back (default 30s).
	DeadTime time.Duration
	// ReconnectInterval is how often a node tries to re-join one member
	// that failed less than an hour ago, which heals partitions that
	// outlast DeadTime (default 5s).
	ReconnectInterval time.Duration
}

// RaftTiming tunes raft. The defaults elect a new leader within about a
// second on loopback.
type RaftTiming struct {
	HeartbeatTimeout   time.Duration // default 500ms
	ElectionTimeout    time.Duration // default 500ms
	LeaderLeaseTimeout time.Duration // default 250ms
	CommitTimeout      time.Duration // default 5ms
}

// SnapshotPolicy says when raft compacts its log into an FSM snapshot
// (kept as files under DataDir/raft/snapshots).
type SnapshotPolicy struct {
	// Threshold is the number of new log entries that triggers a snapshot
	// (default 8192).
	Threshold uint64
	// Interval is how often raft checks the threshold (default 30s).
	Interval time.Duration
	// TrailingLogs is how many entries stay in the log after a snapshot,
	// so a briefly absent follower catches up without a snapshot transfer
	// (default 10240).
	TrailingLogs uint64
	// Retain is how many snapshot files are kept (default 2).
	Retain int
}

// WithDefaults returns a copy of c with zero fields set to their defaults.
func (c Config) WithDefaults() Config {
	if c.AdvertiseAddr == "" {
		c.AdvertiseAddr = c.BindAddr
	}
	if c.BootstrapExpect == 0 {
		c.BootstrapExpect = 3
	}
	if c.MaxVoters == 0 {
		c.MaxVoters = 5
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	if c.ResponseCodec == nil {
		c.ResponseCodec = BytesCodec{}
	}
	g := &c.Gossip
	setDur(&g.ProbeInterval, 200*time.Millisecond)
	setDur(&g.ProbeTimeout, 100*time.Millisecond)
	setDur(&g.GossipInterval, 100*time.Millisecond)
	setDur(&g.TCPTimeout, 2*time.Second)
	setDur(&g.DeadTime, 30*time.Second)
	setDur(&g.ReconnectInterval, 5*time.Second)
	if g.SuspicionMult == 0 {
		g.SuspicionMult = 2
	}
	r := &c.Raft
	setDur(&r.HeartbeatTimeout, 500*time.Millisecond)
	setDur(&r.ElectionTimeout, 500*time.Millisecond)
	setDur(&r.LeaderLeaseTimeout, 250*time.Millisecond)
	setDur(&r.CommitTimeout, 5*time.Millisecond)
	sp := &c.Snapshot
	if sp.Threshold == 0 {
		sp.Threshold = 8192
	}
	setDur(&sp.Interval, 30*time.Second)
	if sp.TrailingLogs == 0 {
		sp.TrailingLogs = 10240
	}
	if sp.Retain == 0 {
		sp.Retain = 2
	}
	setDur(&c.DeadServerGrace, 5*time.Second)
	setDur(&c.ReconcileInterval, time.Second)
	setDur(&c.ApplyHoldTimeout, 5*time.Second)
	if c.MaxTrailingLogs == 0 {
		c.MaxTrailingLogs = 1000
	}
	return c
}

func setDur(d *time.Duration, def time.Duration) {
	if *d == 0 {
		*d = def
	}
}

// Validate reports every problem with the configuration (after defaults).
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	if c.NodeName == "" {
		bad("node name: required")
	} else if strings.ContainsAny(c.NodeName, " \t\n/\\") || len(c.NodeName) > 128 {
		bad("node name %q: must be at most 128 characters without spaces or slashes", c.NodeName)
	}
	if c.DataDir == "" {
		bad("data dir: required")
	}
	if ip := net.ParseIP(c.BindAddr); ip == nil {
		bad("bind address %q: not an IP address", c.BindAddr)
	}
	if ip := net.ParseIP(c.AdvertiseAddr); ip == nil {
		bad("advertise address %q: not an IP address", c.AdvertiseAddr)
	} else if ip.IsUnspecified() {
		bad("advertise address %q: other nodes cannot reach a wildcard address; set the advertise address", c.AdvertiseAddr)
	}
	for name, p := range map[string]int{"gossip": c.GossipPort, "raft": c.RaftPort, "rpc": c.RPCPort} {
		if p < 0 || p > 65535 {
			bad("%s port %d: out of range", name, p)
		}
	}
	if c.GossipPort != 0 && (c.GossipPort == c.RaftPort || c.GossipPort == c.RPCPort) ||
		c.RaftPort != 0 && c.RaftPort == c.RPCPort {
		bad("ports: gossip %d, raft %d and rpc %d must differ", c.GossipPort, c.RaftPort, c.RPCPort)
	}
	for _, j := range c.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad("join address %q: want host:port: %v", j, err)
		}
	}
	if len(c.Key) != KeySize {
		bad("cluster key: %d bytes, want %d", len(c.Key), KeySize)
	}
	if c.MaxVoters < 1 {
		bad("max voters %d: must be at least 1", c.MaxVoters)
	}
	if c.BootstrapExpect < 1 || c.BootstrapExpect > c.MaxVoters {
		bad("bootstrap-expect %d: must be between 1 and max voters (%d)", c.BootstrapExpect, c.MaxVoters)
	}
	if c.Raft.LeaderLeaseTimeout > c.Raft.HeartbeatTimeout {
		bad("raft leader lease timeout %s: must not exceed the heartbeat timeout %s", c.Raft.LeaderLeaseTimeout, c.Raft.HeartbeatTimeout)
	}
	if c.Gossip.ProbeTimeout >= c.Gossip.ProbeInterval {
		bad("gossip probe timeout %s: must be shorter than the probe interval %s", c.Gossip.ProbeTimeout, c.Gossip.ProbeInterval)
	}
	if c.Gossip.SuspicionMult < 1 {
		bad("gossip suspicion multiplier %d: must be at least 1", c.Gossip.SuspicionMult)
	}
	return errors.Join(errs...)
}

// LoadKeyFile reads a cluster key: either 32 raw bytes or their standard
// base64 encoding (surrounding whitespace ignored). It refuses a key file
// that other users can read.
func LoadKeyFile(path string) ([]byte, error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, fmt.Errorf("cluster key file: %w", err)
	}
	if fi.Mode().Perm()&0o077 != 0 {
		return nil, fmt.Errorf("cluster key file %s: mode %v lets other users read it; chmod 600 it", path, fi.Mode().Perm())
	}
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("cluster key file: %w", err)
	}
	if len(b) == KeySize {
		return b, nil
	}
	s := strings.TrimSpace(string(b))
	k, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(k) != KeySize {
		return nil, fmt.Errorf("cluster key file %s: want %d raw bytes or their base64 encoding", path, KeySize)
	}
	return k, nil
}

package cluster

import (
	"cmp"
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net"
	"slices"
	"strconv"
	"time"

	"github.com/hashicorp/memberlist"
)

// MemberStatus is what gossip says about a member.
type MemberStatus int

const (
	MemberAlive  MemberStatus = iota // answering gossip
	MemberFailed                     // stopped answering: crashed or cut off
	MemberLeft                       // announced its departure
)

func (s MemberStatus) String() string {
	switch s {
	case MemberAlive:
		return "alive"
	case MemberFailed:
		return "failed"
	case MemberLeft:
		return "left"
	}
	return "unknown"
}

// Member is one node as gossip sees it.
type Member struct {
	Name       string
	GossipAddr string // host:port
	RaftAddr   string
	RPCAddr    string
	ClusterID  string // empty until the node bootstrapped or joined a cluster
	Status     MemberStatus
	// Since is when this node last saw Status change.
	Since time.Time
}

// nodeMeta is gossiped with every alive message (memberlist limits it to
// 512 bytes).
type nodeMeta struct {
	Version   int    `json:"v"`
	ClusterID string `json:"c,omitempty"`
	RaftAddr  string `json:"r"`
	RPCAddr   string `json:"p"`
	Nonce     string `json:"n"` // random per process; feeds the bootstrap cluster ID
	Expect    int    `json:"e"`
	// Proposal is the cluster ID this node would bootstrap, from its view of the fresh members;
	// a node bootstraps only once every chosen member proposes the same one (see form).
	Proposal string `json:"b,omitempty"`
	// Leaving is set just before a graceful leave. memberlist's leave
	// callback does not say whether a node left or failed, so the
	// departing node says so itself first, as serf's leave intent does.
	Leaving bool `json:"l,omitempty"`
}

// gossipDelegate receives memberlist's callbacks. The callbacks only record
// state and signal; they never call back into memberlist (that deadlocks).
type gossipDelegate struct{ n *Node }

var (
	_ memberlist.Delegate      = gossipDelegate{}
	_ memberlist.EventDelegate = gossipDelegate{}
	_ memberlist.MergeDelegate = gossipDelegate{}
	_ memberlist.AliveDelegate = gossipDelegate{}
)

func (d gossipDelegate) NodeMeta(limit int) []byte {
	d.n.mu.Lock()
	m := d.n.meta
	d.n.mu.Unlock()
	b, _ := json.Marshal(m)
	if len(b) > limit {
		d.n.log.Error("gossip metadata exceeds memberlist's limit", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}

func (gossipDelegate) NotifyMsg([]byte)                           {}
func (gossipDelegate) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (gossipDelegate) LocalState(join bool) []byte                { return nil }
func (gossipDelegate) MergeRemoteState(buf []byte, join bool)     {}

func (d gossipDelegate) NotifyJoin(n *memberlist.Node)   { d.n.updateMember(n, MemberAlive) }
func (d gossipDelegate) NotifyUpdate(n *memberlist.Node) { d.n.updateMember(n, MemberAlive) }
func (d gossipDelegate) NotifyLeave(n *memberlist.Node) {
	st := MemberFailed
	if meta, err := decodeMeta(n.Meta); err == nil && meta.Leaving {
		st = MemberLeft
	}
	d.n.updateMember(n, st)
}

// NotifyMerge runs when this node exchanges full state with another, which
// is what Join does: a refusal here makes Join fail with this error.
func (d gossipDelegate) NotifyMerge(peers []*memberlist.Node) error {
	self := d.n.cfg.NodeName
	ownID := d.n.ClusterID()
	for _, p := range peers {
		meta, err := decodeMeta(p.Meta)
		if err != nil {
			return fmt.Errorf("member %s: %w", p.Name, err)
		}
		if p.Name == self && p.Address() != d.n.gossipAddr && p.State == memberlist.StateAlive {
			return fmt.Errorf("node name %q is already used by the live member at %s: pick another --node-name",
				self, p.Address())
		}
		if ownID != "" && meta.ClusterID != "" && meta.ClusterID != ownID {
			return fmt.Errorf("data dir %s belongs to cluster %s, but member %s (%s) is in cluster %s: "+
				"use an empty data dir to join this cluster", d.n.cfg.DataDir, ownID, p.Name, p.Address(), meta.ClusterID)
		}
	}
	return nil
}

// NotifyAlive keeps members of another cluster out of our member list.
func (d gossipDelegate) NotifyAlive(p *memberlist.Node) error {
	meta, err := decodeMeta(p.Meta)
	if err != nil {
		return fmt.Errorf("member %s: %w", p.Name, err)
	}
	if own := d.n.ClusterID(); own != "" && meta.ClusterID != "" && meta.ClusterID != own {
		return fmt.Errorf("member %s (%s) is in cluster %s, not %s", p.Name, p.Address(), meta.ClusterID, own)
	}
	return nil
}

func decodeMeta(b []byte) (nodeMeta, error) {
	var m nodeMeta
	if len(b) == 0 {
		return m, fmt.Errorf("no gossip metadata: not a shoal agent")
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("gossip metadata: %w", err)
	}
	if m.Version != 1 {
		return m, fmt.Errorf("gossip metadata version %d, want 1", m.Version)
	}
	return m, nil
}

func (n *Node) updateMember(mn *memberlist.Node, st MemberStatus) {
	meta, err := decodeMeta(mn.Meta)
	if err != nil {
		n.log.Warn("ignoring gossip member", "member", mn.Name, "err", err)
		return
	}
	m := Member{
		Name:       mn.Name,
		GossipAddr: net.JoinHostPort(mn.Addr.String(), strconv.Itoa(int(mn.Port))),
		RaftAddr:   meta.RaftAddr,
		RPCAddr:    meta.RPCAddr,
		ClusterID:  meta.ClusterID,
		Status:     st,
		Since:      time.Now(),
	}
	n.mu.Lock()
	old, ok := n.members[m.Name]
	if ok && old.Status == st {
		m.Since = old.Since
	}
	if !ok || old.Status != st {
		n.log.Info("member "+st.String(), "member", m.Name, "gossip", m.GossipAddr, "raft", m.RaftAddr)
	}
	n.members[m.Name] = m
	n.nonces[m.Name] = meta.Nonce
	n.expects[m.Name] = meta.Expect
	n.proposals[m.Name] = meta.Proposal
	close(n.memberWatch)
	n.memberWatch = make(chan struct{})
	n.mu.Unlock()
}

// Members returns every member gossip has seen, this node included, sorted
// by name. Failed and left members stay in the list with their status.
func (n *Node) Members() []Member {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([]Member, 0, len(n.members))
	for _, m := range n.members {
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Member) int { return cmp.Compare(a.Name, b.Name) })
	return out
}

// MembersWatch returns a channel closed at the next membership change
// (join, failure, departure, metadata update). Call it before Members to
// not miss a change: ch := n.MembersWatch(); ms := n.Members(); <-ch.
func (n *Node) MembersWatch() <-chan struct{} {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.memberWatch
}

func (n *Node) member(name string) (Member, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	m, ok := n.members[name]
	return m, ok
}

func (n *Node) memberlistConfig(t memberlist.Transport, gossipPort int) *memberlist.Config {
	c := memberlist.DefaultLANConfig()
	c.Name = n.cfg.NodeName
	c.BindAddr = n.cfg.BindAddr
	c.BindPort = gossipPort
	c.AdvertiseAddr = n.cfg.AdvertiseAddr
	c.AdvertisePort = gossipPort
	c.Transport = t
	c.SecretKey = n.keys.gossip
	c.GossipVerifyIncoming = true
	c.GossipVerifyOutgoing = true
	g := n.cfg.Gossip
	c.ProbeInterval = g.ProbeInterval
	c.ProbeTimeout = g.ProbeTimeout
	c.GossipInterval = g.GossipInterval
	c.SuspicionMult = g.SuspicionMult
	c.TCPTimeout = g.TCPTimeout
	c.PushPullInterval = 15 * time.Second
	c.GossipToTheDeadTime = g.DeadTime
	// A restarted node may come back on a new address under its old name
	// once the old incarnation has been dead this long.
	c.DeadNodeReclaimTime = 10 * time.Second
	d := gossipDelegate{n}
	c.Delegate = d
	c.Events = d
	c.Merge = d
	c.Alive = d
	c.Logger = stdlogFor(n.log)
	return c
}

// reconnectWindow bounds how long after a failure a node keeps trying to
// re-join a member; after that the member must come back by itself.
const reconnectWindow = time.Hour

// reconnect heals partitions that last longer than memberlist's DeadTime
// (after which neither side gossips to the other any more): every
// ReconnectInterval it tries to join one recently failed member, as serf's
// reconnect loop does.
func (n *Node) reconnect() {
	t := time.NewTicker(n.cfg.Gossip.ReconnectInterval)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case <-t.C:
		}
		var failed []Member
		for _, m := range n.Members() {
			if m.Status == MemberFailed && time.Since(m.Since) < reconnectWindow {
				failed = append(failed, m)
			}
		}
		if len(failed) == 0 {
			continue
		}
		m := failed[rand.IntN(len(failed))]
		if _, err := n.ml.Join([]string{m.GossipAddr}); err != nil {
			n.log.Debug("reconnect failed", "member", m.Name, "gossip", m.GossipAddr, "err", err)
		} else {
			n.log.Info("reconnected to member", "member", m.Name)
		}
	}
}

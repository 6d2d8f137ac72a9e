package cluster

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// leaderLoops runs RunLeaderLoops on every node and counts, per node, how
// many leader epochs started and how many are running now.
type leaderLoops struct {
	mu      sync.Mutex
	started map[string]int
	running map[string]int
	applied map[string]int // writes the node's FSM had applied when its loops last started
}

func runLeaderLoops(t *testing.T, nodes []*testNode) *leaderLoops {
	ll := &leaderLoops{started: map[string]int{}, running: map[string]int{}, applied: map[string]int{}}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	for _, n := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.RunLeaderLoops(ctx, func(lctx context.Context) {
				n.fsm.mu.Lock()
				total := n.fsm.total
				n.fsm.mu.Unlock()
				ll.mu.Lock()
				ll.started[n.name]++
				ll.running[n.name]++
				ll.applied[n.name] = total
				ll.mu.Unlock()
				<-lctx.Done()
				ll.mu.Lock()
				ll.running[n.name]--
				ll.mu.Unlock()
			})
		}()
	}
	return ll
}

func (ll *leaderLoops) get(name string) (started, running int) {
	ll.mu.Lock()
	defer ll.mu.Unlock()
	return ll.started[name], ll.running[name]
}

func TestFormElectAndForward(t *testing.T) {
	for _, size := range []int{3, 5} {
		t.Run(fmt.Sprintf("%d nodes", size), func(t *testing.T) {
			c := newTestCluster(t, nil)
			c.startNodes(size)
			nodes := c.alive()
			ll := runLeaderLoops(t, nodes)
			l := c.leader()
			c.waitFor("every node in raft as a voter", func() bool {
				v, nv := servers(t, l)
				return len(v) == size && len(nv) == 0
			})
			id := nodes[0].ClusterID()
			for _, n := range nodes {
				if n.ClusterID() == "" || n.ClusterID() != id {
					t.Fatalf("%s has cluster id %q, %s has %q", n.name, n.ClusterID(), nodes[0].name, id)
				}
			}
			c.waitFor("the leader's loops to start", func() bool {
				_, r := ll.get(l.name)
				return r == 1
			})

			var ids []string
			for _, n := range nodes {
				for i := range 5 {
					cmd := fmt.Sprintf("%s-%d", n.name, i)
					res := apply(t, n, cmd)
					if b, _ := res.Response.([]byte); string(b) != "applied 1" || res.Index == 0 {
						t.Fatalf("apply on %s: response %q index %d", n.name, res.Response, res.Index)
					}
					ids = append(ids, cmd)
				}
			}
			c.waitFor("every write on every node", func() bool { return c.allApplied(nodes, ids) })

			// An FSM error crosses the forwarding path as an FSMError.
			_, err := c.follower().Apply(context.Background(), []byte("fail:x"))
			var fe *FSMError
			if !errors.As(err, &fe) || !strings.Contains(fe.Msg, "refused fail:x") {
				t.Fatalf("forwarded FSM error: got %v, want FSMError", err)
			}

			// A response BytesCodec cannot carry: committed, and said so.
			_, err = c.follower().Apply(context.Background(), []byte("struct:x"))
			if err == nil || !strings.Contains(err.Error(), "committed at index") ||
				!strings.Contains(err.Error(), "set Config.ResponseCodec") {
				t.Fatalf("forwarded struct response without a codec: got %v", err)
			}

			for _, n := range nodes {
				if s, _ := ll.get(n.name); n != l && s != 0 {
					t.Errorf("leader loops ran on follower %s", n.name)
				}
				if ms := n.Members(); len(ms) != size {
					t.Errorf("%s sees %d members, want %d", n.name, len(ms), size)
				}
			}
		})
	}
}

// writer applies commands with unique ids from one node until stopped and
// records which were acknowledged and which failed.
type writer struct {
	mu      sync.Mutex
	acked   []string
	failed  []string
	stopped atomic.Bool
	done    chan struct{}
}

func startWriter(t *testing.T, n *testNode, prefix string) *writer {
	w := &writer{done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for i := 0; !w.stopped.Load(); i++ {
			id := fmt.Sprintf("%s-%d", prefix, i)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			_, err := n.Apply(ctx, []byte(id))
			cancel()
			w.mu.Lock()
			if err != nil {
				t.Logf("write %s: %v", id, err)
				w.failed = append(w.failed, id)
			} else {
				w.acked = append(w.acked, id)
			}
			w.mu.Unlock()
		}
	}()
	return w
}

func (w *writer) counts() (acked, failed int) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return len(w.acked), len(w.failed)
}

func (w *writer) stop() (acked, failed []string) {
	w.stopped.Store(true)
	<-w.done
	return w.acked, w.failed
}

func TestLeaderKilled(t *testing.T) {
	c := newTestCluster(t, nil)
	c.startNodes(3)
	ll := runLeaderLoops(t, c.alive())
	old := c.leader()
	w := startWriter(t, c.follower(), "w")
	c.waitFor("writes before the kill", func() bool { a, _ := w.counts(); return a >= 20 })

	if err := old.Shutdown(); err != nil {
		t.Fatalf("shutdown leader: %v", err)
	}
	before, _ := w.counts()
	rest := c.alive()
	l := c.leader(rest...)
	if l == old {
		t.Fatal("the killed node is still the leader")
	}
	c.waitFor("the new leader's loops to start", func() bool { _, r := ll.get(l.name); return r == 1 })
	if _, r := ll.get(old.name); r != 0 {
		t.Fatalf("the killed leader's loops still run")
	}
	c.waitFor("writes after the kill", func() bool { a, _ := w.counts(); return a >= before+20 })
	acked, failed := w.stop()
	c.waitFor("every acknowledged write on both survivors", func() bool { return c.allApplied(rest, acked) })
	for _, n := range rest {
		for _, id := range failed {
			if n.fsm.count(id) > 1 {
				t.Errorf("%s applied failed write %s %d times", n.name, id, n.fsm.count(id))
			}
		}
	}
	t.Logf("%d writes acknowledged, %d failed during the hand-off", len(acked), len(failed))
}

func TestVoterReplacedByNonVoter(t *testing.T) {
	c := newTestCluster(t, func(cfg *Config) { cfg.DeadServerGrace = time.Second })
	c.startNodes(6)
	l := c.leader()
	c.waitFor("5 voters and 1 non-voter", func() bool {
		v, nv := servers(t, l)
		return len(v) == 5 && len(nv) == 1
	})
	_, nv := servers(t, l)
	spare := nv[0]
	var victim *testNode
	for _, n := range c.alive() {
		if n != l && n.name != spare {
			victim = n
			break
		}
	}
	victim.Shutdown()
	c.waitFor(fmt.Sprintf("%s removed and %s promoted", victim.name, spare), func() bool {
		v, nv := servers(t, l)
		return len(v) == 5 && len(nv) == 0 && !slices.Contains(v, victim.name) && slices.Contains(v, spare)
	})
	for _, n := range c.alive() {
		c.waitFor(n.name+" sees "+victim.name+" failed", func() bool {
			m, ok := n.member(victim.name)
			return ok && m.Status == MemberFailed
		})
	}
	apply(t, c.node(spare), "after-promotion")
	c.waitFor("the write everywhere", func() bool { return c.allApplied(c.alive(), []string{"after-promotion"}) })
}

func TestPartitionedLeader(t *testing.T) {
	c := newTestCluster(t, func(cfg *Config) {
		cfg.DeadServerGrace = time.Minute // keep the cut node in raft: it must catch up by replication
		cfg.ApplyHoldTimeout = time.Second
		// Stop gossiping to the dead almost at once, so the sides find
		// each other again through the reconnect loop.
		cfg.Gossip.DeadTime = 100 * time.Millisecond
		cfg.Gossip.ReconnectInterval = 200 * time.Millisecond
	})
	c.startNodes(3)
	old := c.leader()
	var pre []string
	for i := range 5 {
		pre = append(pre, fmt.Sprintf("pre-%d", i))
		apply(t, old, pre[i])
	}
	var rest []*testNode
	var restNames []string
	for _, n := range c.alive() {
		if n != old {
			rest = append(rest, n)
			restNames = append(restNames, n.name)
		}
	}
	c.fault.partition([]string{old.name}, restNames)

	// The cut leader cannot commit: its write fails and is never applied.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	_, err := old.Apply(ctx, []byte("minority"))
	cancel()
	if err == nil {
		t.Fatal("a write on the cut-off leader was acknowledged")
	}
	t.Logf("write on the cut-off leader: %v", err)
	c.waitFor("the cut-off node to step down", func() bool { return !old.IsLeader() })
	_, err = old.Apply(context.Background(), []byte("minority-2"))
	if !errors.Is(err, ErrNoLeader) {
		t.Fatalf("write on the cut-off follower: got %v, want ErrNoLeader", err)
	}

	c.leader(rest...)
	var post []string
	for i := range 5 {
		post = append(post, fmt.Sprintf("post-%d", i))
		apply(t, rest[i%2], post[i])
	}
	c.waitFor("majority writes on the majority", func() bool { return c.allApplied(rest, append(pre, post...)) })

	for _, n := range rest {
		c.waitFor(n.name+" to see the cut node failed", func() bool {
			m, _ := n.member(old.name)
			return m.Status == MemberFailed
		})
	}
	c.fault.heal()
	c.waitFor("gossip to heal", func() bool {
		for _, n := range c.alive() {
			for _, m := range n.Members() {
				if m.Status != MemberAlive {
					return false
				}
			}
		}
		return true
	})
	c.leader() // all three agree on one leader again
	all := append(pre, post...)
	c.waitFor("the healed node to catch up", func() bool { return c.allApplied(c.alive(), all) })
	apply(t, old, "after-heal")
	c.waitFor("the write from the healed node everywhere", func() bool {
		return c.allApplied(c.alive(), []string{"after-heal"})
	})
	for _, n := range c.alive() {
		if n.fsm.count("minority") != 0 || n.fsm.count("minority-2") != 0 {
			t.Errorf("%s applied a write the minority never committed", n.name)
		}
	}
}

func TestRestartRejoins(t *testing.T) {
	for _, tc := range []struct {
		name    string
		grace   time.Duration
		removed bool // wait for the leader to drop the stopped node first
	}{
		{"kept in raft", time.Minute, false},
		{"removed then added back", 300 * time.Millisecond, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := newTestCluster(t, func(cfg *Config) { cfg.DeadServerGrace = tc.grace })
			c.startNodes(3)
			l := c.leader()
			f := c.follower()
			apply(t, f, "before")
			c.waitFor("first write everywhere", func() bool { return c.allApplied(c.alive(), []string{"before"}) })
			f.Shutdown()
			if tc.removed {
				c.waitFor(f.name+" removed from raft", func() bool {
					v, nv := servers(t, l)
					return len(v) == 2 && len(nv) == 0
				})
			}
			var during []string
			for i := range 10 {
				during = append(during, fmt.Sprintf("during-%d", i))
				apply(t, l, during[i])
			}
			f2 := c.restart(f)
			if f2.ClusterID() != l.ClusterID() {
				t.Fatalf("restarted node has cluster id %q, want %q", f2.ClusterID(), l.ClusterID())
			}
			c.waitFor(f.name+" a voter again", func() bool {
				v, _ := servers(t, l)
				return len(v) == 3 && slices.Contains(v, f.name)
			})
			want := append([]string{"before"}, during...)
			c.waitFor("the restarted node to catch up", func() bool { return c.allApplied(c.alive(), want) })
			apply(t, f2, "after-restart")
			c.waitFor("the restarted node's write everywhere", func() bool {
				return c.allApplied(c.alive(), []string{"after-restart"})
			})
		})
	}
}

func TestRefusedJoins(t *testing.T) {
	c := newTestCluster(t, func(cfg *Config) { cfg.BootstrapExpect = 1 })
	c.startNodes(1)
	a := c.leader()

	t.Run("wrong key", func(t *testing.T) {
		_, err := c.start("intruder", t.TempDir(), []string{a.GossipAddr()}, func(cfg *Config) {
			cfg.Key = []byte("ffffffffffffffffffffffffffffffff")
		})
		if err == nil || !strings.Contains(err.Error(), "cluster key") {
			t.Fatalf("join with the wrong key: got %v, want an error about the cluster key", err)
		}
		t.Logf("refused: %v", err)
		if _, ok := a.member("intruder"); ok {
			t.Fatal("the node with the wrong key became a member")
		}
	})

	t.Run("duplicate name", func(t *testing.T) {
		_, err := c.start(a.name, t.TempDir(), []string{a.GossipAddr()}, nil)
		if err == nil || !strings.Contains(err.Error(), "already used") {
			t.Fatalf("join under a live member's name: got %v, want a refusal", err)
		}
		t.Logf("refused: %v", err)
		if m, _ := a.member(a.name); m.GossipAddr != a.GossipAddr() {
			t.Fatalf("the impostor replaced %s in gossip: %+v", a.name, m)
		}
	})

	t.Run("raft and rpc ports with another key", func(t *testing.T) {
		other, err := deriveKeys([]byte("ffffffffffffffffffffffffffffffff"))
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range []struct{ addr, alpn string }{{a.RaftAddr(), alpnRaft}, {a.RPCAddr(), alpnRPC}} {
			c, err := dialTLS(p.addr, 5*time.Second, other.tlsConfig(p.alpn))
			if err == nil {
				c.Close()
			}
			if !errors.Is(err, ErrWrongKey) {
				t.Fatalf("%s with another key: got %v, want ErrWrongKey", p.alpn, err)
			}
		}
	})

	t.Run("data dir in use", func(t *testing.T) {
		_, err := c.start("twin", a.dir, nil, nil)
		if err == nil || !strings.Contains(err.Error(), "another agent using this data dir") {
			t.Fatalf("start on a running node's data dir: got %v, want a refusal", err)
		}
		t.Logf("refused: %v", err)
	})

	t.Run("data dir of another cluster", func(t *testing.T) {
		other := newTestCluster(t, func(cfg *Config) { cfg.BootstrapExpect = 1 })
		other.startNodes(1)
		b := other.leader()
		dir, otherID := b.dir, b.ClusterID()
		b.Shutdown()
		_, err := c.start("b1", dir, []string{a.GossipAddr()}, nil)
		if err == nil || !strings.Contains(err.Error(), "belongs to cluster "+otherID) {
			t.Fatalf("join with another cluster's data dir: got %v, want a refusal naming cluster %s", err, otherID)
		}
		t.Logf("refused: %v", err)
		if _, ok := a.member("b1"); ok {
			t.Fatal("the node with another cluster's data dir became a member")
		}
	})
}

func TestLeaveRemovesAtOnce(t *testing.T) {
	c := newTestCluster(t, func(cfg *Config) { cfg.DeadServerGrace = time.Hour })
	c.startNodes(4)
	l := c.leader()
	c.waitFor("4 voters", func() bool { v, _ := servers(t, l); return len(v) == 4 })
	f := c.follower()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := f.Leave(ctx); err != nil {
		t.Fatalf("leave: %v", err)
	}
	// With an hour of grace only the "left" status can explain a removal.
	c.waitFor(f.name+" removed after leaving", func() bool {
		v, nv := servers(t, l)
		return len(v) == 3 && len(nv) == 0 && !slices.Contains(v, f.name)
	})
	m, _ := l.member(f.name)
	if m.Status != MemberLeft {
		t.Fatalf("%s status %v, want left", f.name, m.Status)
	}

	// The leader leaving hands leadership over first; the new leader
	// removes it at once too.
	if err := l.Leave(ctx); err != nil {
		t.Fatalf("leader leave: %v", err)
	}
	l2 := c.leader()
	c.waitFor(l.name+" removed after leaving", func() bool {
		v, nv := servers(t, l2)
		return len(v) == 2 && len(nv) == 0 && !slices.Contains(v, l.name)
	})
	apply(t, c.follower(), "after-leaves")
}

// TestSnapshotCatchUp makes the log compact itself so a node that joins
// later must be brought up to date by a snapshot transfer, restoring the
// FSM from a snapshot file rather than replaying every entry.
func TestSnapshotCatchUp(t *testing.T) {
	c := newTestCluster(t, func(cfg *Config) {
		cfg.Snapshot = SnapshotPolicy{Threshold: 32, Interval: 100 * time.Millisecond, TrailingLogs: 8}
	})
	c.startNodes(3)
	l := c.leader()
	var ids []string
	for i := range 200 {
		ids = append(ids, fmt.Sprintf("s-%d", i))
		apply(t, l, ids[i])
	}
	c.waitFor("the leader to compact its log", func() bool {
		first, err := l.store.FirstIndex()
		return err == nil && first > 1
	})
	late, err := c.start("late", t.TempDir(), c.cfgJoin(), nil)
	if err != nil {
		t.Fatal(err)
	}
	c.waitFor("the late node to hold every write", func() bool { return c.allApplied([]*testNode{late}, ids) })
	late.fsm.mu.Lock()
	restores := late.fsm.restores
	late.fsm.mu.Unlock()
	if restores == 0 {
		t.Fatal("the late node caught up without restoring a snapshot")
	}
}

func TestResponseCodec(t *testing.T) {
	c := newTestCluster(t, func(cfg *Config) { cfg.ResponseCodec = testCodec{} })
	c.startNodes(3)
	l := c.leader()
	for _, n := range []*testNode{l, c.follower()} {
		res := apply(t, n, "struct:"+n.name)
		r, ok := res.Response.(*testResp)
		if !ok || r.ID != n.name {
			t.Fatalf("apply on %s: response %#v, want &testResp{ID: %q}", n.name, res.Response, n.name)
		}
	}
}

// TestLeaderLoopsFollowLeadership moves leadership between live nodes: the
// loops stop on the node that lost it (its process still running) and
// start, after the barrier, on the one that gained it.
func TestLeaderLoopsFollowLeadership(t *testing.T) {
	c := newTestCluster(t, nil)
	c.startNodes(3)
	ll := runLeaderLoops(t, c.alive())
	for round := range 3 {
		old := c.leader()
		c.waitFor(old.name+"'s loops to run", func() bool { _, r := ll.get(old.name); return r == 1 })
		apply(t, old, fmt.Sprintf("round-%d", round))
		if err := old.Raft().LeadershipTransfer().Error(); err != nil {
			t.Fatalf("leadership transfer: %v", err)
		}
		l := c.leader()
		if l == old {
			t.Fatalf("round %d: %s still leads after the transfer", round, old.name)
		}
		c.waitFor(old.name+"'s loops to stop and "+l.name+"'s to start", func() bool {
			_, ro := ll.get(old.name)
			_, rn := ll.get(l.name)
			return ro == 0 && rn == 1
		})
		// The barrier ran before the loops: when they started, the new
		// leader had applied every write committed under the old one.
		ll.mu.Lock()
		applied := ll.applied[l.name]
		ll.mu.Unlock()
		if applied < round+1 {
			t.Fatalf("round %d: %s's loops started with %d writes applied, want %d", round, l.name, applied, round+1)
		}
	}
	for _, n := range c.alive() {
		s, _ := ll.get(n.name)
		t.Logf("%s led %d times", n.name, s)
	}
}

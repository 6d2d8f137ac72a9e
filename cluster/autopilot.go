package cluster

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
)

// autopilot is the leader's membership loop. It keeps the raft
// configuration in line with gossip:
//
//  1. a server that left gossip is removed at once; one that failed (or
//     vanished from gossip) is removed after DeadServerGrace, but never so
//     many voters at once that the remaining ones are not a majority;
//  2. while there are fewer than MaxVoters voters, alive non-voters that
//     are caught up are promoted, in the order they were added;
//  3. alive members of this cluster that raft does not know are added: as
//     voters while there are fewer than MaxVoters, else as non-voters. A
//     node that comes back on a new address is re-added under its ID.
//
// Every step is a raft configuration change committed by a quorum, so a
// new leader simply recomputes from gossip and the configuration: the loop
// is safe to stop and restart anywhere.
func (n *Node) autopilot(ctx context.Context) {
	t := time.NewTicker(n.cfg.ReconcileInterval)
	defer t.Stop()
	missing := map[raft.ServerID]time.Time{} // servers absent from gossip, since
	for {
		watch := n.MembersWatch()
		if err := n.reconcile(ctx, missing); err != nil && ctx.Err() == nil {
			n.log.Warn("autopilot", "err", err)
		}
		select {
		case <-ctx.Done():
			return
		case <-watch:
		case <-t.C:
		}
	}
}

func (n *Node) reconcile(ctx context.Context, missing map[raft.ServerID]time.Time) error {
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return err
	}
	servers := f.Configuration().Servers
	own := n.ClusterID()
	now := time.Now()
	timeout := n.cfg.Raft.ElectionTimeout * 4

	voters := 0
	var dead []raft.Server
	for _, s := range servers {
		if s.Suffrage == raft.Voter {
			voters++
		}
		if s.ID == raft.ServerID(n.cfg.NodeName) {
			continue
		}
		m, ok := n.member(string(s.ID))
		switch {
		case !ok:
			if _, seen := missing[s.ID]; !seen {
				missing[s.ID] = now
			}
			if now.Sub(missing[s.ID]) >= n.cfg.DeadServerGrace {
				dead = append(dead, s)
			}
		case m.Status == MemberLeft:
			delete(missing, s.ID)
			dead = append(dead, s)
		case m.Status == MemberFailed && now.Sub(m.Since) >= n.cfg.DeadServerGrace:
			delete(missing, s.ID)
			dead = append(dead, s)
		default:
			delete(missing, s.ID)
		}
	}

	// 1. Remove the dead, keeping a majority of the current voters.
	deadVoters := 0
	for _, s := range dead {
		if s.Suffrage == raft.Voter {
			deadVoters++
		}
	}
	for _, s := range dead {
		if ctx.Err() != nil {
			return nil
		}
		if s.Suffrage == raft.Voter && (voters-deadVoters)*2 <= voters {
			n.log.Warn("not removing failed voter: too few voters left alive", "server", s.ID,
				"voters", voters, "failed", deadVoters)
			continue
		}
		if err := n.raft.RemoveServer(s.ID, 0, timeout).Error(); err != nil {
			return err
		}
		n.log.Info("removed server from raft", "server", s.ID, "voter", s.Suffrage == raft.Voter)
		if s.Suffrage == raft.Voter {
			voters--
		}
	}
	if len(dead) > 0 {
		f = n.raft.GetConfiguration()
		if err := f.Error(); err != nil {
			return err
		}
		servers = f.Configuration().Servers
	}

	// 2. Promote caught-up non-voters in the order they joined.
	known := map[raft.ServerID]raft.Server{}
	for _, s := range servers {
		known[s.ID] = s
	}
	for _, s := range servers {
		if voters >= n.cfg.MaxVoters || ctx.Err() != nil {
			break
		}
		if s.Suffrage != raft.Nonvoter {
			continue
		}
		m, ok := n.member(string(s.ID))
		if !ok || m.Status != MemberAlive || !n.caughtUp(m) {
			continue
		}
		if err := n.raft.AddVoter(s.ID, s.Address, 0, timeout).Error(); err != nil {
			return err
		}
		voters++
		n.log.Info("promoted non-voter to voter", "server", s.ID)
	}

	// 3. Add members raft does not know (or knows at an old address).
	for _, m := range n.Members() {
		if ctx.Err() != nil {
			return nil
		}
		if m.Status != MemberAlive || m.ClusterID != own || m.RaftAddr == "" {
			continue
		}
		id := raft.ServerID(m.Name)
		s, ok := known[id]
		if ok && s.Address == raft.ServerAddress(m.RaftAddr) {
			continue
		}
		addr := raft.ServerAddress(m.RaftAddr)
		if (ok && s.Suffrage == raft.Voter) || (!ok && voters < n.cfg.MaxVoters) {
			if err := n.raft.AddVoter(id, addr, 0, timeout).Error(); err != nil {
				return err
			}
			if !ok {
				voters++
			}
			n.log.Info("added voter", "server", id, "address", addr)
		} else {
			if err := n.raft.AddNonvoter(id, addr, 0, timeout).Error(); err != nil {
				return err
			}
			n.log.Info("added non-voter", "server", id, "address", addr)
		}
	}
	return nil
}

// caughtUp asks a non-voter over RPC how far it has applied; it is ready to
// vote once it trails the leader's last index by at most MaxTrailingLogs.
func (n *Node) caughtUp(m Member) bool {
	if m.RPCAddr == "" {
		return false
	}
	resp, err := n.rpc.call(m.RPCAddr, &rpcRequest{Op: opStatus}, time.Now().Add(n.cfg.Gossip.TCPTimeout), nil)
	if err != nil {
		n.log.Debug("non-voter health check", "server", m.Name, "err", err)
		return false
	}
	last := n.raft.LastIndex()
	return resp.AppliedIndex+n.cfg.MaxTrailingLogs >= last
}

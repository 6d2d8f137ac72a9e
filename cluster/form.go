package cluster

import (
	"cmp"
	"slices"

	"github.com/hashicorp/raft"
)

// form runs on a node with an empty data dir until it belongs to a
// cluster, either by bootstrapping a new one or by adopting the ID of the
// cluster it joined (the leader's autopilot then adds it to raft).
//
// Bootstrap is consul's bootstrap-expect: once BootstrapExpect alive
// members that have no cluster yet and the same BootstrapExpect are in
// gossip, each of the BootstrapExpect smallest names builds the same raft
// configuration and derives the same cluster ID from the members' names and
// boot nonces. The others wait to be added.
//
// Views differ while gossip spreads: with five fresh nodes and
// BootstrapExpect 3, one node may choose n1-n3 while another, not yet
// seeing n1, chooses n2-n4. So choosing is not enough: each chosen node
// gossips the ID it would bootstrap (its proposal), and bootstraps only once
// every chosen member proposes the same ID. A node that has bootstrapped
// stops changing its proposal and gossips the cluster ID, which the rest
// adopt, so two different chosen sets cannot both become unanimous unless
// they are disjoint (more than twice BootstrapExpect fresh nodes started
// at once without a common join list, as in consul).
func (n *Node) form() {
	for {
		watch := n.MembersWatch()
		done, err := n.tryForm()
		if err != nil {
			n.log.Error("cluster formation", "err", err)
		}
		if done {
			return
		}
		select {
		case <-watch:
		case <-n.ctx.Done():
			return
		}
	}
}

func (n *Node) tryForm() (bool, error) {
	if n.ClusterID() != "" {
		return true, nil
	}
	n.mu.Lock()
	var ids []string
	var cands []bootMember
	for _, m := range n.members {
		if m.Status != MemberAlive {
			continue
		}
		if m.ClusterID != "" {
			if !slices.Contains(ids, m.ClusterID) {
				ids = append(ids, m.ClusterID)
			}
			continue
		}
		if n.expects[m.Name] == n.cfg.BootstrapExpect {
			cands = append(cands, bootMember{name: m.Name, nonce: n.nonces[m.Name]})
		} else {
			n.log.Warn("member has a different bootstrap-expect; not bootstrapping with it",
				"member", m.Name, "its_expect", n.expects[m.Name], "ours", n.cfg.BootstrapExpect)
		}
	}
	n.mu.Unlock()

	switch {
	case len(ids) == 1:
		// An existing cluster: adopt its ID; its leader adds us to raft.
		return true, n.setClusterID(ids[0])
	case len(ids) > 1:
		n.log.Error("members of several clusters are in gossip; not joining any", "cluster_ids", ids)
		return false, nil
	case len(cands) < n.cfg.BootstrapExpect:
		n.log.Info("waiting for nodes to bootstrap", "seen", len(cands), "expect", n.cfg.BootstrapExpect)
		return false, nil
	}
	slices.SortFunc(cands, func(a, b bootMember) int { return cmp.Compare(a.name, b.name) })
	chosen := cands[:n.cfg.BootstrapExpect]
	if !slices.ContainsFunc(chosen, func(b bootMember) bool { return b.name == n.cfg.NodeName }) {
		return false, nil // one of the chosen will bootstrap and gossip the ID
	}
	id := clusterIDFor(n.cfg.Key, chosen)
	if !n.agreed(chosen, id) {
		return false, nil
	}
	var conf raft.Configuration
	for _, b := range chosen {
		m, _ := n.member(b.name)
		conf.Servers = append(conf.Servers, raft.Server{
			Suffrage: raft.Voter, ID: raft.ServerID(b.name), Address: raft.ServerAddress(m.RaftAddr),
		})
	}
	if err := n.setClusterID(id); err != nil {
		return false, err
	}
	if err := n.raft.BootstrapCluster(conf).Error(); err != nil && err != raft.ErrCantBootstrap {
		return true, err
	}
	n.log.Info("bootstrapped raft", "cluster_id", id, "voters", len(conf.Servers))
	return true, nil
}

// agreed publishes id as this node's proposal and reports whether every chosen member gossips
// the same one. A changed proposal is gossiped and answered by the next membership update.
func (n *Node) agreed(chosen []bootMember, id string) bool {
	n.mu.Lock()
	changed := n.meta.Proposal != id
	n.meta.Proposal = id
	unanimous := true
	for _, b := range chosen {
		if b.name != n.cfg.NodeName && n.proposals[b.name] != id {
			unanimous = false
		}
	}
	n.mu.Unlock()
	if changed {
		n.log.Info("proposing to bootstrap", "cluster_id", id, "voters", len(chosen))
		if err := n.ml.UpdateNode(n.cfg.Gossip.ProbeInterval); err != nil {
			n.log.Debug("gossip bootstrap proposal", "err", err)
		}
	}
	return unanimous
}

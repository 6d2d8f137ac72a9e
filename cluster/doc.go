// Package cluster turns a set of agents into one cluster: hashicorp/memberlist
// gossip for membership and failure detection, hashicorp/raft for consensus,
// forwarding of writes to the leader, and the hand-off of leader-only loops.
//
// It knows nothing about manifests or the state schema: the caller hands
// Start a raft.FSM and writes opaque command bytes with Node.Apply.
//
// # Contract
//
//   - Start(ctx, cfg, fsm) validates cfg, checks the data dir's cluster ID,
//     opens the raft log (raft-boltdb/v2) and snapshots under cfg.DataDir,
//     binds the gossip, raft and RPC ports, and joins cfg.Join. It returns
//     an error (and holds no resources) when the key is wrong, the node name
//     is already in use by a live member, or the data dir belongs to another
//     cluster.
//   - A fresh cluster forms once BootstrapExpect nodes with the same
//     BootstrapExpect see each other in gossip: each of them builds the same
//     raft configuration (the BootstrapExpect smallest node names) and the
//     same cluster ID, so no node is special.
//   - The leader runs an autopilot loop: nodes seen alive in gossip are added
//     to raft (voters while there are fewer than MaxVoters, non-voters after
//     that); a member that left is removed at once, a failed one after
//     DeadServerGrace, and a caught-up non-voter is promoted in its place.
//   - Node.Apply works on every node: the leader applies, any other node
//     forwards over the RPC port (TLS 1.3, mutually authenticated with a key
//     derived from the cluster key). The FSM's Apply must return nil, []byte
//     or error, because the response crosses the network.
//   - Node.RunLeaderLoops runs a function while this node is the leader, only
//     after a raft barrier, and cancels its context when leadership is lost.
//   - Node.Members and Node.MembersWatch give a level-triggered view of
//     gossip membership for the node-health loop.
//   - Shutdown stops everything without telling anyone (as a crash would);
//     Leave announces the departure first.
package cluster

// Package svcproxy programs this node's packet filter so that every
// Service's ClusterIP and NodePorts load-balance over its ready endpoints.
// It has two backends with the same behaviour: nftables (NFTProxier) and
// iptables (Proxier). The agent picks one (docs/svcproxy.md, "Backends").
//
// What it owns: with nftables, the table "ip shoal" (NFTTable) and
// everything in it; with iptables, every chain whose name starts with
// "SHOAL-" in the nat and filter tables and six jump rules from the
// built-in chains into them (nat PREROUTING, OUTPUT, POSTROUTING; filter
// INPUT, FORWARD, OUTPUT). With both, the UDP conntrack entries of Services
// whose endpoints went away. It never writes or deletes anything else.
//
// The pieces, in the order data flows:
//
//	[]Service ──Render (pure)──▶ Ruleset ──Proxier.Sync──▶ iptables-restore --noflush (one per table)
//	                                          ├─ go-iptables: jumps, canary check
//	                                          └─ netlink: stale UDP conntrack entries
//
//	[]Service ──RenderNFT (pure)──▶ NFTRuleset ──NFTProxier.Sync──▶ NFTRunner.Apply: one nftables transaction
//	                                          ├─ NetlinkNFT (google/nftables): canary, listing
//	                                          └─ netlink: stale UDP conntrack entries
//
// In detail:
//   - Render turns the Services (the agent's view of the state store,
//     defined in types.go) and the node's Config into the complete desired
//     chains, as iptables-restore lines. It reads nothing else and is
//     deterministic.
//   - Proxier.Sync applies the difference between that and what it applied
//     last (only changed chains are rewritten); the first sync, any sync
//     after a failure, a sync that finds the canary chain gone, and one per
//     FullSyncPeriod rewrite everything and delete stale SHOAL- chains.
//   - Proxier.Run calls Sync on Update (at most once per MinSyncInterval),
//     every SyncPeriod, and soon after a failure.
//
// The nftables backend keeps the same contract: RenderNFT is pure,
// NFTProxier.Sync writes only what changed (set elements, in the common
// case; see nft_render.go for the layout) and falls back to a full rewrite
// of the table on the same occasions.
//
// What the caller (the agent) does: build a Runner with NewIPTables and a
// Proxier with NewProxier, or an NFTProxier with NewNFTProxier and
// NewNetlinkNFT (ProbeNFTables says whether the kernel takes it), start
// Run, and call Update with the full list of Services each time the state
// store changes. Run and Sync must run in the network namespace to program
// (the host's, on a real node). The node needs net.ipv4.ip_forward=1,
// and for pods reaching Services that land on the same bridge,
// br_netfilter with bridge-nf-call-iptables=1 and hairpin mode on the
// bridge ports (the runtime's CNI configuration).
//
// The rule layout, and why it is not kube-proxy's, is in docs/svcproxy.md.
package svcproxy

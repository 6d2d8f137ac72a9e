// Package state is the cluster's replicated in-memory state store: a
// go-memdb database behind a hashicorp/raft FSM. It records the leader's
// decisions (nodes, pods and their bindings, the pinned commit, network
// allocations, events) and makes none of its own.
//
// What it owns: the schema (one file per table, with that table's commands
// and getters), the command encoding, the FSM (Apply, Snapshot,
// Persist/Release, Restore) and change notification.
//
// What the caller does:
//   - The leader builds a Command, encodes it with Encode and submits the
//     bytes to raft. Every replica's FSM.Apply decodes and applies it; the
//     ApplyFuture's response is a *Result (with the items that failed their
//     expected-state check in Rejected) or an error, in which case the store
//     is unchanged. Tests and the single-node simulation call
//     Store.ApplyCommand, which runs the same code.
//   - Readers take a Snapshot (a consistent view at one index), read it with
//     typed getters, and may block on Snapshot.Wait(ctx, tables...) until
//     those tables change; Store.Watch wraps that in a channel. Records
//     returned are shared: never modify them in place.
//
// Determinism: Apply reads no clock, no randomness and no map order; every
// time stored comes from the command. Limits that trim history (events,
// revisions) travel in the command or are fixed for an EncodingVersion.
//
// Manifests never enter the store, only what the leader extracted from them
// for scheduling; secrets never do, at most a content hash (Pod.ConfigHash).
package state

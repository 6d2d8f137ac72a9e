// Package scheduler places pods on nodes. It is a pure function of its
// inputs: a Snapshot of nodes and the pods already bound to them, plus the
// pods to place, in; bindings and reasons for what could not fit, out. It
// starts no goroutine, reads no clock and does no IO, so the leader can run
// it, a dry-run (`shoal plan`) can run it, and a test can replay it.
//
// # Contract
//
//   - The caller adapts its state to the small input types of this package
//     (Node, Pod, Snapshot). Nothing here knows about the state store.
//   - Schedule never mutates the Snapshot. It builds a ClusterState (running
//     per-node totals) once per call and places pods one at a time into it,
//     highest priority first, then in the order given. A caller that keeps a
//     ClusterState between calls uses ScheduleState instead and pays for the
//     build once.
//   - Each pod is placed independently: one that cannot fit is returned in
//     Result.Unplaced with counted reasons and blocks nothing after it.
//   - Placement is deterministic: the candidate sample and tie-breaks are
//     drawn from a generator seeded with the pod's ID, so the same snapshot
//     and pods give the same bindings.
//   - Bindings are proposals. Before committing them the leader re-checks
//     them against its newest state with Verify (optimistic concurrency, as
//     nomad's plan applier does) and drops or retries the rejected ones.
//
// See README.md for the pipeline and docs/scheduler.md for the rules,
// the candidate bound and the measured figures.
package scheduler

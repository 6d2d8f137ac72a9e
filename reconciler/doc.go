// Package reconciler holds shoal's workload controllers as pure functions: the objects at the
// pinned commit, a read-only view of the state store and the time now go in; a Plan of pod
// creates, desired-state changes, record deletions, events and per-object status comes out.
//
// Contract:
//   - Reconcile reads no clock, starts no goroutine and does no IO. The same Input gives the
//     same Plan, byte for byte: pod names and UIDs are derived from the object, the template
//     hash and Now, never from randomness.
//   - The caller (the leader) turns the Plan into state commands with Plan.Commands, in the
//     order given (record deletions, desired changes, creates, events), submits them, and runs
//     Reconcile again on every change to the pods or nodes tables, on every newly pinned commit
//     and at Plan.NextAt, the earliest time at which the passage of time alone changes a
//     decision (minReadySeconds elapsing, a progress deadline expiring).
//   - A Plan is computed from one snapshot. Rejections by the store (a name taken since) are
//     harmless: the next reconcile sees the new state and decides again.
//
// Controllers: Deployment (deployment.go), StatefulSet (statefulset.go), DaemonSet
// (daemonset.go), Job (job.go) and CronJob (cronjob.go), then prune (prune.go) for workloads
// that left Git. Template hashes are in hash.go, what pod records carry in podspec.go.
//
// Each controller derives everything it needs from the pod records it owns (state.Pod.Owner,
// TemplateHash, Commit, Status); nothing is remembered between calls, so a new leader carries
// on where the old one stopped. What state would have to add to lift the remaining limits is
// listed in docs/controllers.md.
package reconciler

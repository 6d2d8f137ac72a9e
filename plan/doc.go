// Package plan says what deploying one revision of a repository will do relative to another:
// the logic behind `shoal plan`.
//
// Compute takes two validated object sets (base, the revision running now, and head, the one
// under review) and head's validation errors, diffs them with manifest.Diff, and attaches to
// every change the consequences a user cares about in plain words: "scale up 3 → 5", "rolling
// update of 5 pods, maxSurge 2, maxUnavailable 1", "its ClusterIP is released", "workloads that
// use it roll: Deployment shop/web". It is a pure function of its arguments: no IO, no clock, no
// cluster. What it cannot know (which node a pod lands on, the ClusterIP the leader will pick)
// it says it does not know rather than guess.
//
// Consequences follow Kubernetes' semantics for the formats shoal accepts, plus shoal's two
// annotations: `shoal.dev/prune: disabled` (a removed object is left running, unmanaged) and
// `shoal.dev/rollout-on-config-change: "false"` (a workload does not roll when a ConfigMap or
// Secret it uses changes). A change Kubernetes forbids (a StatefulSet's volumeClaimTemplates,
// a workload's selector) is reported as an error of the plan, beside head's validation errors,
// because a cluster refuses such a commit.
//
// The renderers (WriteText, WriteJSON, WriteMarkdown) only format a Plan; they decide nothing.
// No renderer ever prints a Secret value: the diff never holds one.
//
// Simulate is the optional scheduling dry run (`shoal plan --cluster`): it rebuilds a live
// cluster's nodes and pods in a local state store (RebuildStore) and runs the leader's workload
// controllers, bare-Pod controller and scheduler for head over it; its ClusterPlan is attached
// to the Plan as Cluster. It too is pure: the caller reads the cluster and the clock.
//
// ExitCode folds a plan into `shoal plan`'s status: 1 when head is invalid (errors win), 3 when
// the dry run leaves a pod that fits nowhere, 2 when something changes, 0 when nothing does.
package plan

// Package agent wires one node of a shoal cluster: the replicated state
// store behind the cluster's raft, the node's clone of the repository, the
// leader's loops, the node's pod loop (the kubelet's job) and the read-only
// status API. It holds no placement or controller logic of its own beyond
// the bare-Pod controller below; decisions are pure functions of a state
// snapshot (reconciler.Reconcile, PlanBarePods, PlanPodCIDRs,
// PlanNodeHealth, PlanPodSync, PodStatusUpdates, and the scheduler), and
// the loops only execute them.
//
// # Order of work
//
// Start validates the Config, opens the Git clone (gitsource.Open) and the
// state store, starts the cluster node with an adapter FSM (state's FSM
// answers *state.Result; cluster needs nil, []byte or error, so the result
// crosses the network as JSON and applyCommand decodes it), and then runs:
//
//   - the Git watcher, on every node: the newest verified commit (or the
//     reason verification refused it) is what the leader's pinning loop
//     reads;
//   - the leader loops, from cluster.RunLeaderLoops: pinning, pod-CIDR
//     allocation, Service address allocation (PlanServiceAllocations:
//     ClusterIPs and NodePorts), the bare-Pod controller, the workload
//     controllers (reconciler.Reconcile with the ConfigMap and Secret
//     content hashes of the pinned commit, its Plan.Commands applied in
//     order, run again at Plan.NextAt), scheduling and node health. Each
//     step reads a fresh snapshot and writes its decision, and runs again
//     when the tables it reads change; none keeps memory between steps, so
//     a new leader resumes from the replicated state;
//   - the node loop: register the node (UpsertNode), wait until the local
//     replica has applied that write (so it holds everything committed
//     before), wait for the node's pod CIDR, build the runtime, adopt what
//     it already runs (runtime GC with the pods bound here), then converge
//     the runtime on the pods bound here, restart containers under their
//     restartPolicy (runtime.PlanRestarts), run their probes
//     (runtime.PlanProbes) and report their status in batches;
//   - with the containerd runtime, the routes to the other nodes' pod CIDRs
//     (host-gw, netlink, marked RouteProtocol so only ours are removed),
//     and the Service proxy (svcproxy: nftables, or iptables where the
//     kernel lacks it) and cluster DNS on the pod
//     bridge's gateway address, both fed BuildServiceView on every change;
//   - ConfigMap and Secret values for the runtime (nodeValues): read at the
//     pod's commit, or, for pods updated in place, at the commit their
//     mounted files were last updated from; imagePullSecrets at the pinned
//     commit; Secrets decrypted in memory with the node's age key;
//   - the status API (HTTP JSON, loopback by default, the bearer token from
//     StatusToken elsewhere).
//
// # Bare pods and workloads
//
// PlanBarePods handles `v1 Pod` objects, which the reconciler leaves to the
// agent: one record per Pod at the pinned commit, deleted when the Pod
// leaves Git, replaced (deleted, then created) when its spec changes. Like
// a Kubernetes bare pod, a lost or finished one is not replaced. Pods with
// an owner kind are the reconciler's, and the reconciler touches no pod
// without one, so the two loops never act on the same pod. The node builds
// an owned pod's Pod from its owner's template at the pod's commit
// (podManifest).
//
// # Deletion
//
// The leader sets a pod's desired state to delete; the owning node stops it
// and reports it terminal; the leader then deletes the record, and the node
// removes the pod from its runtime once the record is gone. A pod that was
// never bound, or whose node is gone, is deleted at once.
package agent

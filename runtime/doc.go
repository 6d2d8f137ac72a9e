// Package runtime runs the pods bound to one node: the kubelet's job,
// behind a small Runtime interface with two implementations.
//
//   - Containerd runs pods on a real containerd (the containerd v2 Go
//     client, against containerd 1.6 or later) with CNI networking.
//   - Fake runs them in memory, deterministically, for unit tests and
//     large simulations.
//
// The package knows nothing of the cluster: the agent decides which pods
// should run here and calls RunPod, StopPod, RemovePod and GC to converge,
// then reports PodStatus back.
//
// # Contract
//
// Pods are identified by UID (PodKey carries namespace and name for
// messages and labels). Build a PodSpec with FromPod: it refuses, field by
// field, what the runtime does not implement yet, so that no manifest runs
// differently from what it says.
//
//   - RunPod is idempotent per UID. For a new pod it builds the sandbox
//     (network namespace, CNI address, hosts/hostname/resolv.conf), then
//     pulls and starts each container. A sandbox failure returns an error
//     and leaves nothing behind; a container failure is recorded on the
//     container (Waiting with ErrImagePull, ErrImageNeverPull,
//     InvalidImageName or CreateContainerError and a message) and does not
//     fail the call. For a known pod it starts only containers that an
//     interrupted earlier call left unstarted, and never restarts a
//     container; failed containers are not retried (restarts and back-off
//     are not built yet).
//   - StopPod sends SIGTERM to every running container, SIGKILL after the
//     grace period, and keeps the exit codes; RemovePod then deletes every
//     trace of the pod. RemovePod alone does both.
//   - GC(wanted) is how an agent adopts after a restart: pods in wanted are
//     kept exactly as they run, every other pod is removed, and containers
//     or network namespaces with no pod record (left by a crash) are
//     deleted. wanted must include pods being started concurrently.
//   - Calls for one pod are serialised; calls for different pods run in
//     parallel.
//
// # What a Containerd node owns
//
// Everything lives in one containerd namespace (Config.Namespace) and one
// data directory (Config.DataDir), so several nodes can share one
// containerd:
//
//	DataDir/pods/UID/pod.json        the pod record, written before each step
//	DataDir/pods/UID/{hosts,hostname,resolv.conf}
//	DataDir/pods/UID/logs/NAME.log   stdout+stderr, written by the shim
//	DataDir/netns/UID                the pod's network namespace (bind mount)
//	DataDir/cni/networks/NETWORK/    host-local allocations
//	DataDir/cni/cache/               libcni's result cache
//
// Containers carry the labels LabelPodNamespace, LabelPodName, LabelPodUID
// and LabelContainer. Their IDs are derived from UID and container name.
//
// StartContainerd starts a private containerd (root, state and socket
// under one directory) that outlives the caller, or reuses the one already
// answering there.
package runtime

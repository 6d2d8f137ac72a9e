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
// Restarts and probes are decided by pure functions of a status, the
// pod's spec and now (PlanRestarts, DecideRestart, PlanProbes,
// ObserveProbe, ProbedStatus); the runtime only executes the decisions
// (RestartContainer, StopContainer, Probe). The agent's pod loop, per pod
// and per sync:
//
//	st := rt.PodStatus(key)
//	rp := PlanRestarts(spec.RestartPolicy, st, backoff, now)
//	for each rp.Restart: rt.RestartContainer(key, name, backoff)
//	pp := PlanProbes(spec, rp.Status, states, now); keep pp.States
//	for each pp.Run: res := rt.Probe(...); states, v = ObserveProbe(...)
//	    if v.Stop: rt.StopContainer(key, name, v.Grace)
//	report ProbedStatus(spec, rp.Status, states); sync again at the
//	earlier of rp.Wake and pp.Wake, or when a container's state changes
//
// # Contract
//
// Pods are identified by UID (PodKey carries namespace and name for
// messages and labels). Build a PodSpec with FromPod: it refuses, field by
// field, what the runtime does not implement yet, so that no manifest runs
// differently from what it says.
//
//   - RunPod is idempotent per UID. For a new pod it builds the sandbox
//     (network namespace, CNI address, hosts/hostname/resolv.conf, the
//     volumes), then pulls and starts the first init container, or every
//     container if there are none. A sandbox failure (a volume that cannot
//     be set up included) returns an error and leaves nothing behind; a
//     container failure is recorded on the container (Waiting with
//     ErrImagePull, ErrImageNeverPull, InvalidImageName,
//     CreateContainerError or CreateContainerConfigError and a message)
//     and does not fail the call. For a known pod it starts what is due
//     and was never attempted (the next init container once the previous
//     one exited 0, the containers once all did, or what an interrupted
//     call left), and never restarts a container: restarts and retries
//     are RestartContainer's, on PlanRestarts' word (which also asks for
//     those first starts, so the agent need not call RunPod again).
//   - StopPod runs preStop hooks, sends SIGTERM to every running
//     container, SIGKILL after the grace period, and keeps the exit codes
//     (and the stopped tasks, whose exit status stays readable); the pod
//     never runs anything again. RemovePod then deletes every trace of the
//     pod. RemovePod alone does both.
//   - GC(wanted) is how an agent adopts after a restart: pods in wanted are
//     kept exactly as they run, every other pod is removed, and containers
//     or network namespaces with no pod record (left by a crash) are
//     deleted. wanted must include pods being started concurrently.
//   - RefreshVolumes re-reads a running pod's configMap and secret volumes
//     through Config.Values (with the caller's context: the agent passes
//     the commit to read) and swaps the ones whose content changed
//     atomically (..data, as the kubelet's AtomicWriter); the caller
//     decides which pods (those that do not roll on a config change).
//   - A pod's imagePullSecrets are read through Config.Values when a
//     container is created and given to EnsureImage for that pull only.
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
//	DataDir/pods/UID/logs/NAME.log   stdout+stderr of every run (see output.go)
//	                                 (NAME.log.N: copies made by RotateLogs)
//	DataDir/pods/UID/volumes/NAME    emptyDir, configMap, downwardAPI; tmpfs for
//	                                 emptyDir medium Memory and secret; configMap
//	                                 and secret as ..data -> ..TIMESTAMP/ + links
//	DataDir/volumes/local/NS/CLAIM   local persistent volumes (outlive the pod)
//	DataDir/fifo/                    FIFOs of running tasks and exec probes
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

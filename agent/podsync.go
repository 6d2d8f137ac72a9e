package agent

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/types"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// The node's pod loop: the kubelet's job. Each round reads the pods bound
// to this node and what the runtime holds, decides (PlanPodSync, pure),
// executes against the runtime, and reports the statuses that changed in
// one batch (PodStatusUpdates, pure).

// PodOp is what the pod loop does to one pod.
type PodOp int

const (
	// OpRun starts a pod bound here that the runtime does not hold.
	OpRun PodOp = iota + 1
	// OpStop stops a pod the leader wants stopped or deleted; its record
	// stays until the leader deletes it.
	OpStop
	// OpRemove removes a pod that is not (or no longer) this node's.
	OpRemove
)

func (o PodOp) String() string {
	switch o {
	case OpRun:
		return "run"
	case OpStop:
		return "stop"
	case OpRemove:
		return "remove"
	}
	return fmt.Sprintf("PodOp(%d)", int(o))
}

// PodAction is one step of a round.
type PodAction struct {
	Op  PodOp
	Key runtime.PodKey
	// Pod is the record, for OpRun.
	Pod *state.Pod
}

// PlanPodSync compares the pods bound to node in v with the runtime's pods.
func PlanPodSync(node string, v *state.Snapshot, actual []runtime.PodStatus) []PodAction {
	held := make(map[string]runtime.PodStatus, len(actual))
	for _, st := range actual {
		held[st.Key.UID] = st
	}
	var acts []PodAction
	mine := map[string]bool{}
	for _, rec := range v.PodsOnNode(node) {
		key := runtime.PodKey{Namespace: rec.Namespace, Name: rec.Name, UID: rec.UID}
		st, present := held[rec.UID]
		if rec.Status.Phase == state.PhaseLost {
			continue // replaced elsewhere: remove below if held
		}
		mine[rec.UID] = true
		switch rec.Desired {
		case state.DesiredRun:
			if !present && !rec.Status.Phase.Terminal() {
				acts = append(acts, PodAction{Op: OpRun, Key: key, Pod: rec})
			}
		default:
			if present && active(st) {
				acts = append(acts, PodAction{Op: OpStop, Key: key})
			}
		}
	}
	for _, st := range actual {
		if !mine[st.Key.UID] {
			acts = append(acts, PodAction{Op: OpRemove, Key: st.Key})
		}
	}
	return acts
}

// active reports whether any container of the pod has not terminated.
func active(st runtime.PodStatus) bool {
	for _, c := range st.Containers {
		if c.State != runtime.StateTerminated {
			return true
		}
	}
	return false
}

// ReleasedPods returns the StatefulSet pods lost with this node that its
// runtime no longer holds. The reconciler keeps such a record, and so its
// name, while the node might still run it (an unreachable node is not a
// dead one); only the node itself can say that it does not, once it is
// back and has removed the pod. Deleting the record then frees the name,
// and the StatefulSet creates the pod again. Other lost records stay: a
// Deployment's are deleted by the reconciler at once, and a lost bare pod
// is not replaced.
func ReleasedPods(node string, v *state.Snapshot, actual []runtime.PodStatus) []string {
	held := make(map[string]bool, len(actual))
	for _, st := range actual {
		held[st.Key.UID] = true
	}
	var out []string
	for _, rec := range v.PodsOnNode(node) {
		if rec.Status.Phase == state.PhaseLost && rec.Owner.Kind == "StatefulSet" && !held[rec.UID] {
			out = append(out, rec.UID)
		}
	}
	return out
}

// wantedPods is the set of pods this node keeps on adoption: every pod
// bound here that was not lost.
func wantedPods(node string, v *state.Snapshot) map[string]bool {
	wanted := map[string]bool{}
	for _, rec := range v.PodsOnNode(node) {
		if rec.Status.Phase != state.PhaseLost {
			wanted[rec.UID] = true
		}
	}
	return wanted
}

// PodStatusUpdates returns the statuses that differ from what the state
// records: from the runtime, or from failed holding what a failed start
// reported.
func PodStatusUpdates(node string, v *state.Snapshot, actual []runtime.PodStatus, failed map[string]state.PodStatus) []state.PodStatusUpdate {
	held := make(map[string]runtime.PodStatus, len(actual))
	for _, st := range actual {
		held[st.Key.UID] = st
	}
	var out []state.PodStatusUpdate
	for _, rec := range v.PodsOnNode(node) {
		if rec.Status.Phase == state.PhaseLost {
			continue
		}
		var s state.PodStatus
		if f, ok := failed[rec.UID]; ok {
			s = f
		} else if st, ok := held[rec.UID]; ok {
			s = statusFromRuntime(rec, st)
		} else if rec.Desired != state.DesiredRun && !rec.Status.Phase.Terminal() {
			s = state.PodStatus{Phase: state.PhaseFailed, Reason: "NotRunning", Message: "stopped before it ran on " + node}
		} else {
			continue
		}
		if !statusEqual(s, rec.Status) {
			out = append(out, state.PodStatusUpdate{UID: rec.UID, Status: s})
		}
	}
	return out
}

// statusFromRuntime turns the runtime's view into the reported status.
func statusFromRuntime(rec *state.Pod, st runtime.PodStatus) state.PodStatus {
	s := state.PodStatus{PodIP: st.PodIP, StartTime: utc(st.StartedAt)}
	switch st.Phase {
	case corev1.PodPending:
		s.Phase = state.PhasePending
	case corev1.PodRunning:
		s.Phase = state.PhaseRunning
	case corev1.PodSucceeded:
		s.Phase = state.PhaseSucceeded
	case corev1.PodFailed:
		s.Phase = state.PhaseFailed
	default:
		s.Phase = state.PhaseUnknown
	}
	allRunning := len(st.Containers) > 0
	exitedOK := true
	for _, c := range st.Containers {
		cs := state.ContainerStatus{
			Name:      c.Name,
			State:     strings.ToLower(string(c.State)),
			Ready:     c.Ready,
			Restarts:  c.RestartCount,
			ExitCode:  c.ExitCode,
			Reason:    c.Reason,
			Message:   c.Message,
			StartedAt: utc(c.StartedAt),
		}
		if c.State != runtime.StateRunning {
			allRunning = false
		}
		if c.State != runtime.StateTerminated || c.ExitCode != 0 {
			exitedOK = false
		}
		if c.State == runtime.StateWaiting && s.Reason == "" {
			s.Reason, s.Message = c.Reason, c.Message
		}
		s.Containers = append(s.Containers, cs)
	}
	if rec.Desired != state.DesiredRun && !active(st) {
		// Stopped on the leader's word: the runtime would call a stopped
		// restartPolicy=Always pod Running, as it is about to restart.
		s.Phase, s.Reason, s.Message = state.PhaseFailed, "Stopped", ""
		if exitedOK {
			s.Phase = state.PhaseSucceeded
		}
	}
	s.Ready = s.Phase == state.PhaseRunning && allRunning && st.Ready
	return s
}

func utc(t time.Time) time.Time {
	if t.IsZero() {
		return time.Time{}
	}
	return t.UTC()
}

func statusEqual(a, b state.PodStatus) bool {
	if a.Phase != b.Phase || a.PodIP != b.PodIP || a.Ready != b.Ready || a.Reason != b.Reason ||
		a.Message != b.Message || !a.StartTime.Equal(b.StartTime) || len(a.Containers) != len(b.Containers) {
		return false
	}
	for i := range a.Containers {
		x, y := a.Containers[i], b.Containers[i]
		if x.Name != y.Name || x.State != y.State || x.Ready != y.Ready || x.Restarts != y.Restarts ||
			x.ExitCode != y.ExitCode || x.Reason != y.Reason || x.Message != y.Message || !x.StartedAt.Equal(y.StartedAt) {
			return false
		}
	}
	return true
}

// runtimeSpec converts a Pod manifest into the runtime's spec for the
// record uid.
func runtimeSpec(p *corev1.Pod, uid string, opts runtime.PodOptions) (runtime.PodSpec, error) {
	c := p.DeepCopy()
	c.UID = types.UID(uid)
	return runtime.FromPod(c, opts)
}

// podOptions is what FromPod needs to know about this node, for a pod in
// namespace (its cluster DNS search path).
func (a *Agent) podOptions(namespace string) runtime.PodOptions {
	opts := runtime.PodOptions{NodeName: a.cfg.NodeName, ClusterDomain: a.cfg.ClusterDomain}
	if n := a.store.Snapshot().Node(a.cfg.NodeName); n != nil {
		opts.ClusterDNS = a.podDNS(n.PodCIDR, namespace)
		opts.NodeAllocatable = corev1.ResourceList{
			corev1.ResourceCPU:    *resource.NewMilliQuantity(n.Allocatable.MilliCPU, resource.DecimalSI),
			corev1.ResourceMemory: *resource.NewQuantity(n.Allocatable.Memory, resource.BinarySI),
		}
	}
	return opts
}

// RestartPlans decides, for every pod bound to node that should run, which
// containers to restart now under its restartPolicy (policies, by UID; a pod
// missing there is left alone), and the status to report: a container in
// back-off shows CrashLoopBackOff. Wake is the earliest back-off expiry.
func RestartPlans(node string, v *state.Snapshot, actual []runtime.PodStatus, policies map[string]corev1.RestartPolicy, now time.Time) (map[string]runtime.RestartPlan, time.Time) {
	plans := map[string]runtime.RestartPlan{}
	var wake time.Time
	for _, st := range actual {
		rec := v.Pod(st.Key.UID)
		if rec == nil || rec.NodeName != node || rec.Desired != state.DesiredRun || rec.Status.Phase == state.PhaseLost {
			continue
		}
		policy, ok := policies[rec.UID]
		if !ok {
			continue
		}
		plan := runtime.PlanRestarts(policy, st, runtime.Backoff{}, now)
		plans[rec.UID] = plan
		if !plan.Wake.IsZero() && (wake.IsZero() || plan.Wake.Before(wake)) {
			wake = plan.Wake
		}
	}
	return plans, wake
}

// execHelper is the static binary for Secret values in containers'
// environment: the configured one, else this agent's own when it is
// static. Without one, such containers fail with a message saying so.
func (a *Agent) execHelper() string {
	path := a.cfg.ExecHelper
	if path == "" {
		exe, err := os.Executable()
		if err != nil {
			return ""
		}
		if runtime.CheckExecHelper(exe) != nil {
			a.log.Warn("this agent's binary is dynamically linked: containers given a Secret's value in their environment cannot start (build with CGO_ENABLED=0, or give --exec-helper)")
			return ""
		}
		return exe
	}
	if err := runtime.CheckExecHelper(path); err != nil {
		a.log.Error("exec helper unusable: containers given a Secret's value in their environment cannot start", "err", err)
		return ""
	}
	return path
}

// TaintRuntimeUnavailable is on a node while its container runtime cannot
// be started; pods without a toleration for it are not placed there.
const TaintRuntimeUnavailable = "node.shoal.dev/runtime-unavailable"

// registerNode writes this node's record again, with or without the
// runtime-unavailable taint.
func (a *Agent) registerNode(ctx context.Context, runtimeDown bool) error {
	return a.retry(ctx, "update the node record", func() error {
		rec, err := a.nodeRecord()
		if err != nil {
			return err
		}
		if runtimeDown {
			rec.Taints = append(slices.Clone(rec.Taints), corev1.Taint{Key: TaintRuntimeUnavailable, Effect: corev1.TaintEffectNoSchedule})
		}
		_, err = a.apply(ctx, &state.UpsertNode{Node: rec})
		return err
	})
}

// nodeMain registers this node, waits for its pod CIDR, adopts what the
// runtime already runs and then runs the pod loop.
func (a *Agent) nodeMain(ctx context.Context) {
	var index uint64
	err := a.retry(ctx, "register node", func() error {
		rec, err := a.nodeRecord()
		if err != nil {
			return err
		}
		res, err := a.apply(ctx, &state.UpsertNode{Node: rec})
		if err != nil {
			return err
		}
		index = res.Index
		return nil
	})
	if err != nil {
		return
	}
	// Everything committed before our registration is now in the local
	// replica once it reaches its index: adoption must not judge on a
	// replica still replaying its log.
	if err := a.waitApplied(ctx, index); err != nil {
		return
	}
	a.log.Info("node registered", "index", index)
	rt, err := a.nodeRuntime(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		// Like a kubelet whose container runtime is down: say so on the
		// node (a NoSchedule taint, so nothing new lands here) and keep
		// trying; the taint goes once the runtime runs.
		a.log.Error("node runtime unavailable: this node takes no new pods until it starts; retrying", "err", err)
		if err := a.registerNode(ctx, true); err != nil {
			return
		}
		if err := a.retry(ctx, "start the node runtime", func() error {
			var err error
			rt, err = a.nodeRuntime(ctx)
			return err
		}); err != nil {
			return
		}
		if err := a.registerNode(ctx, false); err != nil {
			return
		}
		a.log.Info("node runtime started")
	}
	a.goLoop(func() { a.runServices(ctx) }) // services.go, services_node.go
	// Claims' volumes marked for deletion (localvolumes.go).
	a.goLoop(func() { a.runLocalVolumes(ctx, rt) })
	err = a.retry(ctx, "adopt pods", func() error {
		res, err := rt.GC(ctx, wantedPods(a.cfg.NodeName, a.store.Snapshot()))
		if err != nil {
			return err
		}
		for _, k := range res.AdoptedPods {
			a.log.Info("pod adopted", "pod", k.Namespace+"/"+k.Name, "uid", k.UID)
		}
		for _, k := range res.RemovedPods {
			a.log.Info("pod removed: not wanted here", "pod", k.Namespace+"/"+k.Name, "uid", k.UID)
		}
		return nil
	})
	if err != nil {
		return
	}
	// Revisions too: a new pinned commit updates the mounted ConfigMaps and
	// Secrets of pods that do not roll (volumes.go).
	a.runLoop(ctx, "pod-sync", []state.Table{state.TablePods, state.TableNodes, state.TableRevisions}, nil,
		func(ctx context.Context, v *state.Snapshot) (time.Duration, error) {
			return a.podSyncStep(ctx, rt, v)
		})
}

// nodeRuntime returns the runtime given in Deps, or builds the one the
// config names once the leader gave this node its pod CIDR.
func (a *Agent) nodeRuntime(ctx context.Context) (PodRuntime, error) {
	a.rtMu.Lock()
	rt := a.rt
	a.rtMu.Unlock()
	if rt != nil {
		return rt, nil
	}
	var cidr netip.Prefix
	for {
		v := a.store.Snapshot()
		if n := v.Node(a.cfg.NodeName); n != nil && n.PodCIDR != "" {
			p, err := netip.ParsePrefix(n.PodCIDR)
			if err != nil {
				return nil, fmt.Errorf("pod CIDR %q: %w", n.PodCIDR, err)
			}
			cidr = p
			break
		}
		if err := v.Wait(ctx, state.TableNodes); err != nil {
			return nil, err
		}
	}
	a.log.Info("pod CIDR assigned", "cidr", cidr.String())
	var closeRT func() error
	switch a.cfg.Runtime {
	case RuntimeFake:
		rt = runtime.NewFake(runtime.FakeConfig{PodCIDR: cidr})
	default:
		addr := a.cfg.ContainerdSocket
		if addr == "" {
			d, err := runtime.StartContainerd(ctx, runtime.DaemonConfig{Dir: filepath.Join(a.cfg.DataDir, "containerd")})
			if err != nil {
				return nil, err
			}
			addr = d.Address
		}
		c, err := runtime.NewContainerd(ctx, runtime.Config{
			Address:       addr,
			Namespace:     a.cfg.ContainerdNamespace,
			DataDir:       filepath.Join(a.cfg.DataDir, "runtime"),
			PodCIDR:       cidr,
			Logger:        a.log.With("component", "runtime"),
			ClusterDomain: a.cfg.ClusterDomain,
			Values:        a.vals,
			ExecHelper:    a.execHelper(),
		})
		if err != nil {
			return nil, err
		}
		rt, closeRT = c, c.Close
	}
	a.rtMu.Lock()
	a.rt, a.closeRT = rt, closeRT
	a.rtMu.Unlock()
	return rt, nil
}

// podSpecs builds the runtime spec of each held pod that should run, from
// its manifest at the pod's commit; a pod whose manifest cannot be read now
// is left out (neither restarted nor probed this round).
func (a *Agent) podSpecs(ctx context.Context, v *state.Snapshot, actual []runtime.PodStatus) map[string]runtime.PodSpec {
	out := map[string]runtime.PodSpec{}
	for _, st := range actual {
		rec := v.Pod(st.Key.UID)
		if rec == nil || rec.NodeName != a.cfg.NodeName || rec.Desired != state.DesiredRun || rec.Status.Phase == state.PhaseLost {
			continue
		}
		obj, err := a.src.podFor(ctx, rec)
		if err == nil {
			var spec runtime.PodSpec
			if spec, err = runtimeSpec(obj, rec.UID, a.podOptions(obj.Namespace)); err == nil {
				out[rec.UID] = spec
				continue
			}
		}
		a.log.Warn("pod manifest unavailable: no restarts or probes this round", "pod", rec.Key(), "err", err)
	}
	return out
}

// podSyncStep is one round of the pod loop; it returns when the next round
// is due at the latest.
func (a *Agent) podSyncStep(ctx context.Context, rt PodRuntime, v *state.Snapshot) (time.Duration, error) {
	a.vals.retain(liveCommits(a.cfg.NodeName, v, a.volCommits.done)) // wipe decrypted Secrets no pod here needs
	actual, err := rt.ListPods(ctx)
	if err != nil {
		return 0, fmt.Errorf("list pods: %w", err)
	}
	acts, drainWake := GateStops(v, PlanPodSync(a.cfg.NodeName, v, actual), a.stopSeen, a.now(), time.Duration(a.cfg.EndpointDrain))
	var (
		mu     sync.Mutex
		failed = map[string]state.PodStatus{}
		wg     sync.WaitGroup
		sem    = make(chan struct{}, 4)
	)
	for _, act := range acts {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if s, bad := a.execute(ctx, rt, v, act); bad {
				mu.Lock()
				failed[act.Key.UID] = s
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	for _, act := range acts {
		if act.Op == OpRun {
			a.volCommits.forget(act.Key.UID) // set up from its record's commit (volumes.go)
		}
	}
	if len(acts) > 0 {
		if actual, err = rt.ListPods(ctx); err != nil {
			return 0, fmt.Errorf("list pods: %w", err)
		}
	}

	// Restarts under each pod's restartPolicy, then probes, then the
	// statuses as Kubernetes shows them (CrashLoopBackOff while backing
	// off, Ready from the readiness probes).
	specs := a.podSpecs(ctx, v, actual)
	a.refreshVolumes(ctx, rt, v, actual, specs) // volumes.go
	policies := make(map[string]corev1.RestartPolicy, len(specs))
	for uid, spec := range specs {
		policies[uid] = spec.RestartPolicy
	}
	now := a.now()
	plans, _ := RestartPlans(a.cfg.NodeName, v, actual, policies, now)
	restarted := false
	for uid, plan := range plans {
		for _, r := range plan.Restart {
			key := plan.Status.Key
			vctx := podCtx(ctx, v, podValuesCommit(v.Pod(uid), a.volCommits.done)) // values.go
			if _, err := rt.RestartContainer(vctx, key, r.Name, r.Backoff); err != nil {
				a.log.Warn("container restart failed", "pod", key.Namespace+"/"+key.Name, "uid", uid, "container", r.Name, "err", err)
				continue
			}
			a.log.Info("container restarted", "pod", key.Namespace+"/"+key.Name, "uid", uid, "container", r.Name, "backoff", r.Backoff)
			restarted = true
		}
	}
	if restarted {
		if actual, err = rt.ListPods(ctx); err != nil {
			return 0, fmt.Errorf("list pods: %w", err)
		}
	}
	plans, wake := RestartPlans(a.cfg.NodeName, v, actual, policies, now)
	statuses := make(map[string]runtime.PodStatus, len(plans))
	for uid, plan := range plans {
		statuses[uid] = plan.Status
	}
	probed, probeWake, stopped := a.runProbes(ctx, rt, specs, statuses, now)
	for i, st := range actual {
		if p, ok := probed[st.Key.UID]; ok {
			actual[i] = p
		} else if p, ok := statuses[st.Key.UID]; ok {
			actual[i] = p
		}
	}
	next := time.Duration(a.cfg.Resync)
	for _, w := range []time.Time{wake, probeWake, drainWake} {
		if !w.IsZero() {
			next = min(next, max(w.Sub(now), time.Millisecond))
		}
	}
	if stopped {
		next = time.Millisecond // a probe stopped a container: restart it now
	}

	updates := PodStatusUpdates(a.cfg.NodeName, v, actual, failed)
	for _, us := range chunks(updates) {
		res, err := a.apply(ctx, &state.UpdatePodStatus{Node: a.cfg.NodeName, Updates: us})
		if err != nil {
			return 0, err
		}
		for _, r := range res.Rejected {
			a.log.Debug("status report rejected", "uid", r.UID, "reason", r.Reason)
		}
	}
	if released := ReleasedPods(a.cfg.NodeName, v, actual); len(released) > 0 {
		a.log.Info("lost StatefulSet pods released: removed from this node", "count", len(released))
		if _, err := a.apply(ctx, &state.DeletePods{UIDs: released}); err != nil {
			return 0, err
		}
	}
	return next, nil
}

// execute carries out one action. A pod that could not be started returns
// the status to report instead of the runtime's.
func (a *Agent) execute(ctx context.Context, rt PodRuntime, v *state.Snapshot, act PodAction) (state.PodStatus, bool) {
	log := a.log.With("pod", act.Key.Namespace+"/"+act.Key.Name, "uid", act.Key.UID)
	switch act.Op {
	case OpRun:
		obj, err := a.src.podFor(ctx, act.Pod)
		if err != nil {
			log.Warn("pod manifest unavailable", "err", err)
			return state.PodStatus{Phase: state.PhasePending, Reason: "ManifestUnavailable", Message: err.Error()}, true
		}
		spec, err := runtimeSpec(obj, act.Pod.UID, a.podOptions(obj.Namespace))
		if err != nil {
			log.Warn("pod cannot run", "err", err)
			return state.PodStatus{Phase: state.PhaseFailed, Reason: "UnsupportedPod", Message: err.Error()}, true
		}
		if _, err := rt.RunPod(podCtx(ctx, v, act.Pod.Commit), spec); err != nil {
			log.Warn("pod sandbox failed", "err", err)
			return state.PodStatus{Phase: state.PhasePending, Reason: runFailureReason(err), Message: err.Error()}, true
		}
		log.Info("pod started")
	case OpStop:
		if err := rt.StopPod(ctx, act.Key, -1); err != nil {
			log.Warn("pod stop failed", "err", err)
		} else {
			log.Info("pod stopped")
		}
	case OpRemove:
		if err := rt.RemovePod(ctx, act.Key); err != nil {
			log.Warn("pod removal failed", "err", err)
		} else {
			log.Info("pod removed")
		}
	}
	return state.PodStatus{}, false
}

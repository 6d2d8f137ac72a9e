package runtime

import (
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Restarts are decided here, by pure functions of a pod's status, its
// restartPolicy, the back-off settings and now; the runtime only executes
// them (RestartContainer). The agent's pod loop, on every sync of a pod:
//
//	st, _ := rt.PodStatus(ctx, key)
//	plan := runtime.PlanRestarts(spec.RestartPolicy, st, backoff, now)
//	for _, r := range plan.Restart { rt.RestartContainer(ctx, key, r.Name, r.Backoff) }
//	report plan.Status; sync the pod again at plan.Wake (if not zero)
//
// The back-off follows the kubelet: a container that exits is restarted at
// once the first time, then after 10s, 20s, 40s... up to 5 minutes, each
// wait counted from when it exited; a run that lasted 10 minutes resets
// the back-off. The state the decision needs (restart count, the back-off
// that the next quick exit will wait, the previous run) is kept by the
// runtime on the container and reported in ContainerStatus, so the
// decision survives an agent restart.

// Backoff configures crash back-off. The zero value means Kubernetes'
// settings (DefaultBackoff).
type Backoff struct {
	// Initial is the wait before the second restart (10s).
	Initial time.Duration
	// Max caps the doubling (5m).
	Max time.Duration
	// Reset: a run at least this long starts the back-off over (10m).
	Reset time.Duration
}

// DefaultBackoff is Kubernetes' crash back-off.
func DefaultBackoff() Backoff {
	return Backoff{Initial: 10 * time.Second, Max: 5 * time.Minute, Reset: 10 * time.Minute}
}

func (b Backoff) withDefaults() Backoff {
	d := DefaultBackoff()
	if b.Initial <= 0 {
		b.Initial = d.Initial
	}
	if b.Max <= 0 {
		b.Max = d.Max
	}
	if b.Max < b.Initial {
		b.Max = b.Initial
	}
	if b.Reset <= 0 {
		b.Reset = d.Reset
	}
	return b
}

// RestartAction is what to do with one container now.
type RestartAction int

const (
	// Leave the container as it is: running, waiting to be created, or
	// terminated for good under its restartPolicy.
	Leave RestartAction = iota
	// RestartNow: call RestartContainer with the decision's Backoff.
	RestartNow
	// RestartLater: the container is in back-off until At
	// (CrashLoopBackOff).
	RestartLater
)

func (a RestartAction) String() string {
	switch a {
	case Leave:
		return "Leave"
	case RestartNow:
		return "RestartNow"
	case RestartLater:
		return "RestartLater"
	}
	return fmt.Sprintf("RestartAction(%d)", int(a))
}

// ReasonCrashLoopBackOff is the Waiting reason of a container in back-off.
const ReasonCrashLoopBackOff = "CrashLoopBackOff"

// RestartDecision is the decision for one container.
type RestartDecision struct {
	Action RestartAction
	// At is when a RestartLater container becomes due.
	At time.Time
	// Backoff, for RestartNow, is what RestartContainer records: the wait
	// before the restart after this one, should the new run end quickly.
	// For RestartLater it is the wait being served.
	Backoff time.Duration
	// Reason and Message explain RestartLater, as Kubernetes words them.
	Reason, Message string
}

// DecideRestart decides what to do with one container of a pod with the
// given restartPolicy ("" means Always) at now. A Terminated container is
// restarted as the policy says: Never leaves it, OnFailure restarts it
// only after a non-zero exit, Always after any exit. A container that
// could not be created or started (Waiting with ErrImagePull,
// ErrImageNeverPull, CreateContainerError or CreateContainerConfigError)
// never ran, so it is retried whatever the policy, with the same back-off
// counted from the failure; a pull failure waiting for its retry is
// reported as ImagePullBackOff. An invalid image name is not retried.
func DecideRestart(policy corev1.RestartPolicy, c ContainerStatus, b Backoff, now time.Time) RestartDecision {
	b = b.withDefaults()
	if c.State == StateWaiting {
		return decideRetry(c, b, now)
	}
	if c.State != StateTerminated {
		return RestartDecision{Action: Leave}
	}
	switch policy {
	case corev1.RestartPolicyNever:
		return RestartDecision{Action: Leave}
	case corev1.RestartPolicyOnFailure:
		if c.ExitCode == 0 {
			return RestartDecision{Action: Leave}
		}
	}
	wait := c.Backoff
	if !c.StartedAt.IsZero() && !c.FinishedAt.IsZero() && c.FinishedAt.Sub(c.StartedAt) >= b.Reset {
		// It ran long enough: a new crash loop, if any, starts over.
		wait = 0
	}
	if wait <= 0 {
		return RestartDecision{Action: RestartNow, Backoff: b.Initial}
	}
	wait = min(wait, b.Max)
	due := c.FinishedAt.Add(wait)
	if now.Before(due) {
		return RestartDecision{
			Action: RestartLater, At: due, Backoff: wait, Reason: ReasonCrashLoopBackOff,
			Message: fmt.Sprintf("back-off %s restarting failed container=%s", wait, c.Name),
		}
	}
	return RestartDecision{Action: RestartNow, Backoff: min(2*wait, b.Max)}
}

// ReasonImagePullBackOff is the Waiting reason of a container whose image
// pull failed and waits to be retried.
const ReasonImagePullBackOff = "ImagePullBackOff"

// decideRetry decides about a container that failed to be created or
// started.
func decideRetry(c ContainerStatus, b Backoff, now time.Time) RestartDecision {
	switch c.Reason {
	case ReasonErrImagePull, ReasonErrImageNeverPull, ReasonCreateContainerError, ReasonCreateContainerConfigError:
	default:
		return RestartDecision{Action: Leave}
	}
	wait := min(c.Backoff, b.Max)
	if wait <= 0 {
		return RestartDecision{Action: RestartNow, Backoff: b.Initial}
	}
	due := c.FailedAt.Add(wait)
	if now.Before(due) {
		d := RestartDecision{Action: RestartLater, At: due, Backoff: wait, Reason: c.Reason,
			Message: fmt.Sprintf("back-off %s retrying: %s", wait, c.Message)}
		if c.Reason == ReasonErrImagePull {
			d.Reason, d.Message = ReasonImagePullBackOff, fmt.Sprintf("Back-off pulling image %q: %s", c.Image, c.Message)
		}
		return d
	}
	return RestartDecision{Action: RestartNow, Backoff: min(2*wait, b.Max)}
}

// ContainerRestart asks for one container to be restarted (or started).
type ContainerRestart struct {
	Name string
	// Backoff is passed to RestartContainer.
	Backoff time.Duration
	// FirstStart: the container never ran and is due now (the next init
	// container after one succeeded, or the containers once every init
	// container did). RestartContainer on it starts whatever is due, as
	// RunPod does for a known pod.
	FirstStart bool
}

// RestartPlan is what the pod loop does with one pod at one instant.
type RestartPlan struct {
	// Restart lists the containers to restart now, init containers
	// first, in spec order.
	Restart []ContainerRestart
	// Wake is the earliest time a container in back-off becomes due; the
	// pod must be synced again then. Zero when nothing waits.
	Wake time.Time
	// Status is the pod's status as Kubernetes reports it: a container in
	// back-off is Waiting with CrashLoopBackOff and its last run in
	// LastTermination, and the phase follows the restartPolicy.
	Status PodStatus
}

// PlanRestarts applies DecideRestart to every container of a pod.
func PlanRestarts(policy corev1.RestartPolicy, st PodStatus, b Backoff, now time.Time) RestartPlan {
	plan := RestartPlan{Status: st}
	plan.Status.InitContainers = append([]ContainerStatus(nil), st.InitContainers...)
	plan.Status.Containers = append([]ContainerStatus(nil), st.Containers...)
	if st.Stopped {
		return plan
	}
	for _, list := range []struct {
		cs     []ContainerStatus
		policy corev1.RestartPolicy
	}{{plan.Status.InitContainers, initPolicy(policy)}, {plan.Status.Containers, policy}} {
		for i, c := range list.cs {
			d := DecideRestart(list.policy, c, b, now)
			switch d.Action {
			case RestartNow:
				plan.Restart = append(plan.Restart, ContainerRestart{Name: c.Name, Backoff: d.Backoff})
			case RestartLater:
				if plan.Wake.IsZero() || d.At.Before(plan.Wake) {
					plan.Wake = d.At
				}
				w := ContainerStatus{
					Name: c.Name, Image: c.Image, ImageRef: c.ImageRef, ID: c.ID,
					State: StateWaiting, Reason: d.Reason, Message: d.Message,
					RestartCount: c.RestartCount, Backoff: c.Backoff, FailedAt: c.FailedAt,
					LastTermination: c.LastTermination,
				}
				if c.State == StateTerminated {
					w.LastTermination = c.terminated()
				}
				list.cs[i] = w
			}
		}
	}
	if name, ok := nextFirstStart(plan.Status); ok {
		plan.Restart = append(plan.Restart, ContainerRestart{Name: name, FirstStart: true})
	}
	plan.Status.Phase = podPhase(policy, false, plan.Status.InitContainers, plan.Status.Containers)
	plan.Status.Ready = podReady(plan.Status)
	return plan
}

// nextFirstStart finds a container that never ran and is due: the first
// init container not yet succeeded if it was never attempted, else (all
// init containers succeeded) the first container never attempted.
func nextFirstStart(st PodStatus) (string, bool) {
	for _, c := range st.InitContainers {
		if c.State == StateTerminated && c.ExitCode == 0 {
			continue
		}
		return c.Name, neverAttempted(c)
	}
	for _, c := range st.Containers {
		if neverAttempted(c) {
			return c.Name, true
		}
	}
	return "", false
}

// neverAttempted: no container was created, no attempt failed, and there
// was no earlier run.
func neverAttempted(c ContainerStatus) bool {
	return c.State == StateWaiting && c.ID == "" && c.FailedAt.IsZero() && c.LastTermination == nil &&
		(c.Reason == ReasonContainerCreating || c.Reason == ReasonPodInitializing)
}

// Termination is how one run of a container ended.
type Termination struct {
	ID                    string
	ExitCode              int32
	Reason, Message       string
	StartedAt, FinishedAt time.Time
}

// terminated returns the Termination of a Terminated status.
func (c ContainerStatus) terminated() *Termination {
	return &Termination{ID: c.ID, ExitCode: c.ExitCode, Reason: c.Reason, Message: c.Message,
		StartedAt: c.StartedAt, FinishedAt: c.FinishedAt}
}

// podPhase is the phase of a pod with init containers that may have been
// stopped: a stopped pod's containers never run again, whatever its
// restartPolicy. Until every init container has succeeded the pod is
// Pending, or Failed if one failed and will not be retried.
func podPhase(policy corev1.RestartPolicy, stopped bool, init, cs []ContainerStatus) PodPhase {
	if stopped {
		policy = corev1.RestartPolicyNever
	}
	initDone, initFailed := true, false
	for _, c := range init {
		if c.State != StateTerminated || c.ExitCode != 0 {
			initDone = false
		}
		if c.State == StateTerminated && c.ExitCode != 0 ||
			c.State == StateWaiting && c.LastTermination != nil && c.LastTermination.ExitCode != 0 {
			initFailed = true
		}
	}
	switch {
	case !initDone && (stopped || initFailed && policy == corev1.RestartPolicyNever):
		return corev1.PodFailed
	case !initDone:
		return corev1.PodPending
	}
	return derivePhase(policy, cs)
}

// initPolicy is the restart policy of init containers: a failed one is
// retried unless the pod's policy is Never; a successful one never runs
// again.
func initPolicy(policy corev1.RestartPolicy) corev1.RestartPolicy {
	if policy == corev1.RestartPolicyNever {
		return policy
	}
	return corev1.RestartPolicyOnFailure
}

// derivePhase computes a pod phase from its container states as the
// kubelet does: Pending while a container waits to be created, Running
// while one runs or will be restarted, and Succeeded or Failed once every
// container has terminated for good under the restartPolicy ("" means
// Always). A container waiting in back-off (it has a LastTermination)
// counts as terminated, not as waiting to be created.
func derivePhase(policy corev1.RestartPolicy, cs []ContainerStatus) PodPhase {
	if len(cs) == 0 {
		return corev1.PodPending
	}
	waiting, running, stopped, succeeded := 0, 0, 0, 0
	for _, c := range cs {
		switch {
		case c.State == StateRunning:
			running++
		case c.State == StateTerminated:
			stopped++
			if c.ExitCode == 0 {
				succeeded++
			}
		case c.LastTermination != nil:
			stopped++
			if c.LastTermination.ExitCode == 0 {
				succeeded++
			}
		default:
			waiting++
		}
	}
	switch {
	case waiting > 0:
		return corev1.PodPending
	case running > 0:
		return corev1.PodRunning
	case policy == corev1.RestartPolicyAlways || policy == "":
		// Every container will be restarted.
		return corev1.PodRunning
	case stopped == succeeded:
		return corev1.PodSucceeded
	case policy == corev1.RestartPolicyNever:
		return corev1.PodFailed
	default:
		// OnFailure: the failed ones will be restarted.
		return corev1.PodRunning
	}
}

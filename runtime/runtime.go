package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Runtime runs the pods bound to one node. Every method is safe for
// concurrent use; calls for different pods may run in parallel, calls for
// the same pod are serialised by the implementation.
type Runtime interface {
	// EnsureImage makes ref available locally according to policy and
	// returns the normalised reference. A pull uses the credentials of
	// secrets (a pod's imagePullSecrets, in order) that match the image's
	// registry, trying each until one pulls; with none that match it is
	// anonymous. A pull failure wraps ErrImagePull and names the secrets
	// tried, never a credential; a missing image under PullNever wraps
	// ErrImageNeverPull. An image already present is not pulled again
	// (unless PullAlways), whatever the secrets, as with the kubelet.
	EnsureImage(ctx context.Context, ref string, policy corev1.PullPolicy, secrets ...PullSecret) (string, error)

	// RunPod creates the pod's sandbox (with its volumes) and starts its
	// first init container, or its containers when it has none. It is
	// idempotent per UID: for a pod that already exists (also one adopted
	// from an earlier process) it only starts what is due and was never
	// attempted (the next init container, the containers after the last
	// one), never restarts anything, and returns the current status.
	// A container that cannot be started does not fail the call: its
	// state is Waiting with a reason (ErrImagePull, CreateContainerError,
	// CreateContainerConfigError...). An error is returned only when the
	// sandbox itself could not be built (a volume included); then nothing
	// of the pod is left behind.
	RunPod(ctx context.Context, spec PodSpec) (PodStatus, error)

	// StopPod stops every running container of the pod: preStop hook,
	// SIGTERM, then SIGKILL after grace (a negative grace means the pod's
	// own terminationGracePeriodSeconds). The final container states are
	// kept and reported by PodStatus until RemovePod; the pod is Stopped:
	// nothing of it starts again. Stopping a stopped pod is a no-op.
	StopPod(ctx context.Context, key PodKey, grace time.Duration) error

	// RemovePod stops the pod (with its own grace period) if needed and
	// removes everything the runtime made for it: containers, snapshots,
	// network namespace, CNI allocation, volumes (tmpfs unmounted), files
	// and logs; local persistent volumes and hostPaths stay. Removing an
	// unknown pod is not an error.
	RemovePod(ctx context.Context, key PodKey) error

	// PodStatus reports the pod's current status, or ErrPodNotFound.
	PodStatus(ctx context.Context, key PodKey) (PodStatus, error)

	// ListPods reports every pod the runtime holds, sorted by key.
	ListPods(ctx context.Context) ([]PodStatus, error)

	// Logs opens the log of one container of a pod.
	Logs(ctx context.Context, key PodKey, container string, opts LogOptions) (io.ReadCloser, error)

	// StopContainer stops one running container of the pod (preStop hook,
	// SIGTERM, SIGKILL after grace; a negative grace means the pod's own) and keeps
	// its exit state, leaving the pod's other containers and its sandbox
	// as they are. The container is then Terminated, and PlanRestarts
	// decides, under the restartPolicy, whether it runs again. This is
	// what a failed liveness or startup probe does. Stopping a container
	// that does not run is a no-op.
	StopContainer(ctx context.Context, key PodKey, container string, grace time.Duration) error

	// RestartContainer runs one container of the pod again, in place, in
	// the pod's existing sandbox. For a container that never ran (a
	// FirstStart of PlanRestarts) it starts whatever is due, as RunPod
	// does for a known pod, and returns. Otherwise a running container is
	// first stopped (preStop hook, the pod's grace period), then the
	// container is recreated from
	// its image with a fresh root filesystem and started. Its exit state
	// becomes LastTermination, RestartCount grows by one (not when the
	// container never ran, e.g. after CreateContainerError) and backoff is
	// recorded as the container's Backoff for the next decision (see
	// PlanRestarts, which says when to call this and with what backoff).
	// A failure to start is recorded on the container, as in RunPod.
	RestartContainer(ctx context.Context, key PodKey, container string, backoff time.Duration) (PodStatus, error)

	// Probe runs one probe of a running container once, within the
	// probe's Timeout: an HTTP GET or TCP connection to the pod IP (or the
	// probe's Host) from the caller's network namespace, or an exec in
	// the container. It never returns an error: whatever goes wrong is a
	// failed result with a message. When to probe is PlanProbes' job.
	Probe(ctx context.Context, key PodKey, container string, p Probe) ProbeResult

	// Stats reports the CPU time and memory of the pod's running
	// containers, for autoscaling and status.
	Stats(ctx context.Context, key PodKey) (PodStats, error)

	// RefreshVolumes resolves the pod's configMap and secret volumes
	// again (through Config.Values, with the caller's context) and
	// replaces, atomically, the content of those that changed, as the
	// kubelet does for a running pod: a new timestamped directory, the
	// ..data symlink swapped with rename(2), the old directory removed.
	// subPath mounts keep what they were created with. It returns the
	// volumes whose content changed. A volume that cannot be resolved
	// keeps its content and is named in the error; the others are still
	// updated. A stopped pod is left alone; a pod whose volumes RunPod has
	// not finished setting up is an error (ask again after RunPod).
	RefreshVolumes(ctx context.Context, key PodKey) ([]string, error)

	// GC removes every pod whose UID is not in wanted, and any container or
	// sandbox of this node that belongs to no known pod (left by a crash).
	// Pods in wanted are adopted as they are, never restarted.
	GC(ctx context.Context, wanted map[string]bool) (GCResult, error)
}

// PodKey identifies a pod. The UID is the identity; namespace and name are
// carried for logs, labels and messages.
type PodKey struct {
	Namespace string
	Name      string
	UID       string
}

func (k PodKey) String() string { return k.Namespace + "/" + k.Name + " (" + k.UID + ")" }

// Less orders keys by namespace, name, then UID.
func (k PodKey) Less(o PodKey) bool {
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	if k.Name != o.Name {
		return k.Name < o.Name
	}
	return k.UID < o.UID
}

// LogOptions selects what Logs returns.
type LogOptions struct {
	// Follow keeps the reader open after the end of the file, returning new
	// output as it is written, until the context ends or the reader is
	// closed.
	Follow bool
}

// GCResult says what GC removed.
type GCResult struct {
	RemovedPods      []PodKey // pods that were not wanted
	OrphanContainers []string // containerd container IDs with no pod record
	OrphanSandboxes  []string // pod directories or netns files with no usable record
	AdoptedPods      []PodKey // wanted pods found running and kept
}

// Pod phases, as in Kubernetes.
type PodPhase = corev1.PodPhase

// ContainerState is one of Waiting, Running or Terminated.
type ContainerState string

const (
	StateWaiting    ContainerState = "Waiting"
	StateRunning    ContainerState = "Running"
	StateTerminated ContainerState = "Terminated"
)

// Reasons recorded on container states, as Kubernetes names them.
const (
	ReasonContainerCreating    = "ContainerCreating"
	ReasonPodInitializing      = "PodInitializing"
	ReasonErrImagePull         = "ErrImagePull"
	ReasonErrImageNeverPull    = "ErrImageNeverPull"
	ReasonInvalidImageName     = "InvalidImageName"
	ReasonCreateContainerError = "CreateContainerError"
	ReasonCompleted            = "Completed"
	ReasonError                = "Error"
	ReasonOOMKilled            = "OOMKilled"
)

// PodStatus is what the runtime knows about one pod.
type PodStatus struct {
	Key       PodKey
	Phase     PodPhase
	PodIP     string    // empty until the sandbox has an address
	StartedAt time.Time // when the sandbox was created
	// Stopped is set once StopPod ran: the containers are terminated for
	// good, the phase is Succeeded or Failed whatever the restartPolicy,
	// and PlanRestarts restarts nothing.
	Stopped bool
	// Ready is the pod's Ready condition: every container is Ready. The
	// runtime's own statuses know only probe-less readiness; PlanProbes
	// sets it from the readiness probes.
	Ready bool
	// InitContainers are reported in spec order; they run one at a time,
	// before Containers.
	InitContainers []ContainerStatus
	Containers     []ContainerStatus
}

// Container returns the status of the named container (init or not).
func (s PodStatus) Container(name string) (ContainerStatus, bool) {
	for _, c := range append(append([]ContainerStatus(nil), s.InitContainers...), s.Containers...) {
		if c.Name == name {
			return c, true
		}
	}
	return ContainerStatus{}, false
}

// ContainerStatus is the state of one container.
type ContainerStatus struct {
	Name  string
	Image string // the reference as written in the pod
	// ImageRef is the normalised reference the container was created from.
	ImageRef string
	// ID is the runtime's container ID; empty when none was created.
	ID    string
	State ContainerState
	// Reason and Message explain a Waiting or Terminated state.
	Reason  string
	Message string
	// ExitCode is set when Terminated.
	ExitCode   int32
	PID        uint32 // main process, when Running
	StartedAt  time.Time
	FinishedAt time.Time

	// FailedAt is when the last attempt to create or start the container
	// failed (Waiting with ErrImagePull, CreateContainerError...).
	FailedAt time.Time

	// RestartCount counts the times RestartContainer ran the container
	// again after it had run.
	RestartCount int32
	// LastTermination is how the previous run ended; nil before the first
	// restart.
	LastTermination *Termination
	// Started: running, and its startup probe succeeded (or it has none).
	Started bool
	// Ready: started, and its readiness probe passes (or it has none).
	Ready bool

	// Backoff is how long the container waits before its next restart if
	// the current run ends before Backoff.Reset; 0 until the first restart
	// (the first restart is immediate). Kept for DecideRestart.
	Backoff time.Duration
}

// terminatedReason names a terminated state the way Kubernetes does.
func terminatedReason(code int32, oom bool) string {
	switch {
	case oom:
		return ReasonOOMKilled
	case code == 0:
		return ReasonCompleted
	default:
		return ReasonError
	}
}

var (
	// ErrPodNotFound is returned for a pod the runtime does not hold.
	ErrPodNotFound = errors.New("pod not found")
	// ErrImagePull wraps every failure to pull an image.
	ErrImagePull = errors.New(ReasonErrImagePull)
	// ErrImageNeverPull is returned when policy Never meets a missing image.
	ErrImageNeverPull = errors.New(ReasonErrImageNeverPull)
	// ErrInvalidImageName is returned for a reference that does not parse.
	ErrInvalidImageName = errors.New(ReasonInvalidImageName)
)

// imageErrorReason maps an EnsureImage error to a Waiting reason.
func imageErrorReason(err error) string {
	switch {
	case errors.Is(err, ErrImageNeverPull):
		return ReasonErrImageNeverPull
	case errors.Is(err, ErrInvalidImageName):
		return ReasonInvalidImageName
	default:
		return ReasonErrImagePull
	}
}

func podErr(key PodKey, op string, err error) error {
	return fmt.Errorf("%s pod %s/%s: %w", op, key.Namespace, key.Name, err)
}

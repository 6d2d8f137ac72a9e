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
	// returns the normalised reference. A pull failure wraps ErrImagePull,
	// a missing image under PullNever wraps ErrImageNeverPull.
	EnsureImage(ctx context.Context, ref string, policy corev1.PullPolicy) (string, error)

	// RunPod creates the pod's sandbox and starts its containers. It is
	// idempotent per UID: a pod that already exists (also one adopted from
	// an earlier process) is left alone and its current status returned.
	// A container that cannot be started does not fail the call: its
	// state is Waiting with a reason (ErrImagePull, CreateContainerError).
	// An error is returned only when the sandbox itself could not be built;
	// then nothing of the pod is left behind.
	RunPod(ctx context.Context, spec PodSpec) (PodStatus, error)

	// StopPod stops every running container of the pod: SIGTERM, then
	// SIGKILL after grace (a negative grace means the pod's own
	// terminationGracePeriodSeconds). The final container states are kept
	// and reported by PodStatus until RemovePod. Stopping a stopped pod is
	// a no-op.
	StopPod(ctx context.Context, key PodKey, grace time.Duration) error

	// RemovePod stops the pod (with its own grace period) if needed and
	// removes everything the runtime made for it: containers, snapshots,
	// network namespace, CNI allocation, files and logs. Removing an
	// unknown pod is not an error.
	RemovePod(ctx context.Context, key PodKey) error

	// PodStatus reports the pod's current status, or ErrPodNotFound.
	PodStatus(ctx context.Context, key PodKey) (PodStatus, error)

	// ListPods reports every pod the runtime holds, sorted by key.
	ListPods(ctx context.Context) ([]PodStatus, error)

	// Logs opens the log of one container of a pod.
	Logs(ctx context.Context, key PodKey, container string, opts LogOptions) (io.ReadCloser, error)

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
	Key        PodKey
	Phase      PodPhase
	PodIP      string    // empty until the sandbox has an address
	StartedAt  time.Time // when the sandbox was created
	Containers []ContainerStatus
}

// Container returns the status of the named container.
func (s PodStatus) Container(name string) (ContainerStatus, bool) {
	for _, c := range s.Containers {
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
}

// derivePhase computes a pod phase from its container states. Restarts are
// not implemented yet, so every restartPolicy is treated as Never: a pod
// whose containers all terminated is Succeeded if all exited 0, else Failed.
func derivePhase(cs []ContainerStatus) PodPhase {
	if len(cs) == 0 {
		return corev1.PodPending
	}
	running, terminated, failed := 0, 0, 0
	for _, c := range cs {
		switch c.State {
		case StateRunning:
			running++
		case StateTerminated:
			terminated++
			if c.ExitCode != 0 {
				failed++
			}
		}
	}
	switch {
	case terminated == len(cs) && failed == 0:
		return corev1.PodSucceeded
	case terminated == len(cs):
		return corev1.PodFailed
	case running+terminated == len(cs):
		return corev1.PodRunning
	default:
		return corev1.PodPending
	}
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

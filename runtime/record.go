package runtime

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"time"
)

// podRecord is the runtime's own memory of a pod, written to
// DataDir/pods/<uid>/pod.json before anything is created for the pod and
// after every step, so that a new process can adopt or clean up whatever a
// previous one left, wherever it stopped.
type podRecord struct {
	Spec      PodSpec   `json:"spec"`
	CreatedAt time.Time `json:"createdAt"`
	// NetNS is the pinned namespace file, once created.
	NetNS string `json:"netns,omitempty"`
	// NetworkAdded is set before CNI ADD runs, so that a crash mid-ADD
	// still gets a DEL.
	NetworkAdded bool   `json:"networkAdded,omitempty"`
	IP           string `json:"ip,omitempty"`
	// VolumesReady is set once every volume is set up.
	VolumesReady bool `json:"volumesReady,omitempty"`
	// Stopped is set by StopPod: nothing of the pod runs again.
	Stopped bool `json:"stopped,omitempty"`
	// Containers by name.
	Containers map[string]*containerRecord `json:"containers"`
}

type containerRecord struct {
	// ID is the containerd container ID; set before the container is
	// created.
	ID        string    `json:"id"`
	ImageRef  string    `json:"imageRef,omitempty"`
	StartedAt time.Time `json:"startedAt,omitzero"`
	// Waiting holds why the container could not be created or started.
	WaitingReason  string    `json:"waitingReason,omitempty"`
	WaitingMessage string    `json:"waitingMessage,omitempty"`
	FailedAt       time.Time `json:"failedAt,omitzero"`
	// Final is the state recorded when StopPod deleted the task.
	Final *ContainerStatus `json:"final,omitempty"`

	// Restart state, carried over when RestartContainer recreates the
	// container.
	RestartCount int32         `json:"restartCount,omitempty"`
	Backoff      time.Duration `json:"backoff,omitempty"`
	Last         *Termination  `json:"last,omitempty"`
}

func (c *Containerd) podDir(uid string) string    { return filepath.Join(c.cfg.DataDir, "pods", uid) }
func (c *Containerd) netnsPath(uid string) string { return filepath.Join(c.cfg.DataDir, "netns", uid) }
func (c *Containerd) logPath(uid, container string) string {
	return filepath.Join(c.podDir(uid), "logs", container+".log")
}

// containerID derives a containerd ID (at most 76 characters of a limited
// alphabet) from the pod UID and the container name.
func containerID(uid, name string) string {
	sum := sha256.Sum256([]byte(uid + "/" + name))
	return "shoal-" + hex.EncodeToString(sum[:12])
}

func (c *Containerd) saveRecord(r *podRecord) error {
	dir := c.podDir(r.Spec.Key.UID)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(dir, "pod.json.tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return fmt.Errorf("write pod record: %w", err)
	}
	if err := os.Rename(tmp, filepath.Join(dir, "pod.json")); err != nil {
		return fmt.Errorf("write pod record: %w", err)
	}
	return nil
}

func (c *Containerd) loadRecord(uid string) (*podRecord, error) {
	b, err := os.ReadFile(filepath.Join(c.podDir(uid), "pod.json"))
	if err != nil {
		return nil, err
	}
	var r podRecord
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("pod record %s: %w", uid, err)
	}
	if r.Containers == nil {
		r.Containers = map[string]*containerRecord{}
	}
	return &r, nil
}

// recordUIDs lists the pod directories on disk.
func (c *Containerd) recordUIDs() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(c.cfg.DataDir, "pods"))
	if err != nil {
		if os.IsNotExist(err) {
			return nil, nil
		}
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

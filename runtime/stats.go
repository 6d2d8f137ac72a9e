package runtime

import (
	"context"
	"fmt"
	"os"
	"time"

	v1stats "github.com/containerd/cgroups/v3/cgroup1/stats"
	v2stats "github.com/containerd/cgroups/v3/cgroup2/stats"
	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/typeurl/v2"
)

// PodStats is the resource use of a pod's running containers.
type PodStats struct {
	Key        PodKey
	Containers []ContainerStats
}

// ContainerStats is one running container's resource use, read from its
// cgroup through containerd's task metrics (cgroup v1 or v2).
type ContainerStats struct {
	Name string
	// Timestamp is when the figures were read.
	Timestamp time.Time
	// CPU is the CPU time used since the container (this run) started;
	// a rate is the difference of two readings over their timestamps.
	CPU time.Duration
	// MemoryUsage is the cgroup's memory use in bytes, page cache included.
	MemoryUsage uint64
	// MemoryWorkingSet is MemoryUsage less the inactive file cache: what
	// the kubelet reports and what autoscaling should use.
	MemoryWorkingSet uint64
}

// Stats reports the resource use of the pod's running containers (init
// containers included while they run), in spec order.
func (c *Containerd) Stats(ctx context.Context, key PodKey) (PodStats, error) {
	ctx = c.ctx(ctx)
	defer c.lock(key.UID)()
	r, err := c.loadRecord(key.UID)
	if err != nil {
		if os.IsNotExist(err) {
			return PodStats{}, podErr(key, "stats", ErrPodNotFound)
		}
		return PodStats{}, podErr(key, "stats", err)
	}
	out := PodStats{Key: key}
	for _, cs := range r.Spec.allContainers() {
		cr := r.Containers[cs.Name]
		if cr == nil || cr.StartedAt.IsZero() || cr.Final != nil {
			continue
		}
		st, ok, err := c.containerStats(ctx, cs.Name, cr.ID)
		if err != nil {
			return PodStats{}, podErr(key, "stats", err)
		}
		if ok {
			out.Containers = append(out.Containers, st)
		}
	}
	return out, nil
}

// containerStats reads one container's metrics; ok is false when it does
// not run.
func (c *Containerd) containerStats(ctx context.Context, name, id string) (ContainerStats, bool, error) {
	ctr, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return ContainerStats{}, false, nil
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return ContainerStats{}, false, nil
	}
	if ts, err := task.Status(ctx); err != nil || ts.Status != containerd.Running {
		return ContainerStats{}, false, nil
	}
	m, err := task.Metrics(ctx)
	if err != nil {
		return ContainerStats{}, false, fmt.Errorf("container %s metrics: %w", name, err)
	}
	v, err := typeurl.UnmarshalAny(m.Data)
	if err != nil {
		return ContainerStats{}, false, fmt.Errorf("container %s metrics: %w", name, err)
	}
	out := ContainerStats{Name: name, Timestamp: m.Timestamp.AsTime()}
	var inactive uint64
	switch s := v.(type) {
	case *v1stats.Metrics:
		if s.CPU != nil && s.CPU.Usage != nil {
			out.CPU = time.Duration(s.CPU.Usage.Total)
		}
		if s.Memory != nil {
			if s.Memory.Usage != nil {
				out.MemoryUsage = s.Memory.Usage.Usage
			}
			inactive = s.Memory.TotalInactiveFile
		}
	case *v2stats.Metrics:
		if s.CPU != nil {
			out.CPU = time.Duration(s.CPU.UsageUsec) * time.Microsecond
		}
		if s.Memory != nil {
			out.MemoryUsage, inactive = s.Memory.Usage, s.Memory.InactiveFile
		}
	default:
		return ContainerStats{}, false, fmt.Errorf("container %s metrics: unknown type %T", name, v)
	}
	if out.MemoryUsage > inactive {
		out.MemoryWorkingSet = out.MemoryUsage - inactive
	}
	return out, true, nil
}

package runtime

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/containerd/errdefs"
)

// loadContainer loads the record of a pod and finds one container in it.
func (c *Containerd) loadContainer(key PodKey, op, name string) (*podRecord, ContainerSpec, error) {
	r, err := c.loadRecord(key.UID)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, ContainerSpec{}, podErr(key, op, ErrPodNotFound)
		}
		return nil, ContainerSpec{}, podErr(key, op, err)
	}
	if cs, ok := r.Spec.container(name); ok {
		return r, cs, nil
	}
	return nil, ContainerSpec{}, podErr(key, op, fmt.Errorf("no container %q", name))
}

// StopContainer implements Runtime.
func (c *Containerd) StopContainer(ctx context.Context, key PodKey, name string, grace time.Duration) error {
	ctx = c.ctx(ctx)
	defer c.lock(key.UID)()
	r, _, err := c.loadContainer(key, "stop container", name)
	if err != nil {
		return err
	}
	if grace < 0 {
		grace = r.Spec.TerminationGracePeriod
	}
	cr := r.Containers[name]
	if cr == nil || cr.Final != nil || cr.WaitingReason != "" {
		return nil
	}
	final, err := c.stopContainer(ctx, cr.ID, grace, c.preStopFor(r, name))
	if err != nil {
		return podErr(key, "stop container "+name, err)
	}
	if final == nil {
		return nil
	}
	cr.Final = final
	if err := c.saveRecord(r); err != nil {
		return podErr(key, "stop container "+name, err)
	}
	return nil
}

// RestartContainer implements Runtime.
func (c *Containerd) RestartContainer(ctx context.Context, key PodKey, name string, backoff time.Duration) (PodStatus, error) {
	ctx = c.ctx(ctx)
	// Like RunPod, this creates a container: GC must not see it half made.
	c.gcMu.RLock()
	defer c.gcMu.RUnlock()
	defer c.lock(key.UID)()
	r, cs, err := c.loadContainer(key, "restart container", name)
	if err != nil {
		return PodStatus{}, err
	}
	if r.Stopped {
		return PodStatus{}, podErr(key, "restart container "+name, fmt.Errorf("the pod was stopped"))
	}
	if r.IP == "" {
		return PodStatus{}, podErr(key, "restart container "+name, fmt.Errorf("the sandbox is not ready: call RunPod"))
	}
	cr := r.Containers[name]
	if !attempted(cr) {
		// A first start (after init containers, or after an interrupted
		// RunPod): start whatever is due, as RunPod does.
		c.startMissing(ctx, r)
		return c.status(ctx, r), nil
	}

	// How the current run ended, stopping it if it still runs.
	last := cr.Last
	count := cr.RestartCount
	final := cr.Final
	if final == nil && cr.WaitingReason == "" {
		final, err = c.stopContainer(ctx, cr.ID, r.Spec.TerminationGracePeriod, c.preStopFor(r, name))
		if err != nil {
			return PodStatus{}, podErr(key, "restart container "+name, err)
		}
	}
	if final != nil && !cr.StartedAt.IsZero() {
		last = &Termination{ID: cr.ID, ExitCode: final.ExitCode, Reason: final.Reason, Message: final.Message,
			StartedAt: cr.StartedAt, FinishedAt: final.FinishedAt}
		count++
	}
	if ctr, err := c.client.LoadContainer(ctx, cr.ID); err == nil {
		if err := c.deleteContainer(ctx, ctr); err != nil {
			return PodStatus{}, podErr(key, "restart container "+name, err)
		}
	} else if !errdefs.IsNotFound(err) {
		return PodStatus{}, podErr(key, "restart container "+name, err)
	}
	// The container's previous state is gone from containerd: record it
	// before creating the new one, so that a crash in between still
	// reports the restart.
	r.Containers[name] = &containerRecord{ID: cr.ID, RestartCount: count, Backoff: backoff, Last: last}
	if err := c.saveRecord(r); err != nil {
		return PodStatus{}, podErr(key, "restart container "+name, err)
	}
	c.log.Info("restarting container", "pod", key.Namespace+"/"+key.Name, "container", name,
		"restartCount", count, "backoff", backoff)
	if err := c.startContainer(ctx, r, cs); err != nil {
		c.log.Warn("container not restarted", "pod", key.Namespace+"/"+key.Name, "container", name, "err", err)
	}
	return c.status(ctx, r), nil
}

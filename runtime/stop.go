package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/errdefs"
)

// StopPod implements Runtime.
func (c *Containerd) StopPod(ctx context.Context, key PodKey, grace time.Duration) error {
	ctx = c.ctx(ctx)
	defer c.lock(key.UID)()
	r, err := c.loadRecord(key.UID)
	if err != nil {
		if os.IsNotExist(err) {
			return podErr(key, "stop", ErrPodNotFound)
		}
		return podErr(key, "stop", err)
	}
	if grace < 0 {
		grace = r.Spec.TerminationGracePeriod
	}
	if err := c.stopLocked(ctx, r, grace); err != nil {
		return podErr(key, "stop", err)
	}
	return nil
}

// stopLocked stops all containers in parallel, each with the same grace,
// and records their final states.
func (c *Containerd) stopLocked(ctx context.Context, r *podRecord, grace time.Duration) error {
	type result struct {
		name  string
		final *ContainerStatus
		err   error
	}
	r.Stopped = true
	results := make(chan result, len(r.Containers))
	n := 0
	for name, cr := range r.Containers {
		if cr.Final != nil || cr.WaitingReason != "" {
			continue
		}
		n++
		go func() {
			f, err := c.stopContainer(ctx, cr.ID, grace, c.preStopFor(r, name))
			results <- result{name, f, err}
		}()
	}
	var errs []error
	for range n {
		res := <-results
		if res.err != nil {
			errs = append(errs, fmt.Errorf("container %s: %w", res.name, res.err))
			continue
		}
		if res.final != nil {
			r.Containers[res.name].Final = res.final
		}
	}
	errs = append(errs, c.saveRecord(r))
	return errors.Join(errs...)
}

// stopContainer runs preStop (when not nil) within grace, sends SIGTERM,
// waits for what remains of grace (at least 2s after a preStop hook),
// then SIGKILL. It returns the final state, or nil when there was no task.
// The stopped task is kept, not deleted, so its exit status stays
// readable; deleting the container (RemovePod, RestartContainer, GC)
// deletes the task. It returns once the container's output is in its log
// (see output.go).
func (c *Containerd) stopContainer(ctx context.Context, id string, grace time.Duration, preStop func(context.Context, time.Duration)) (*ContainerStatus, error) {
	ctr, err := c.client.LoadContainer(ctx, id)
	if errdefs.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	// Wait must be registered before the signal so the exit is not missed.
	exitc, err := task.Wait(ctx)
	if err != nil {
		return nil, fmt.Errorf("wait: %w", err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return nil, fmt.Errorf("status: %w", err)
	}
	start := time.Now()
	exited := st.Status == containerd.Stopped
	code, exitTime := st.ExitStatus, st.ExitTime
	record := func(es containerd.ExitStatus) { code, exitTime, exited = es.ExitCode(), es.ExitTime(), true }
	if !exited && preStop != nil {
		preStop(ctx, grace)
		grace = max(grace-time.Since(start), minGraceAfterPreStop)
		select {
		case es := <-exitc:
			record(es)
		default:
		}
	}
	if !exited {
		if err := task.Kill(ctx, syscall.SIGTERM); err != nil && !errdefs.IsNotFound(err) {
			return nil, fmt.Errorf("SIGTERM: %w", err)
		}
		timer := time.NewTimer(grace)
		select {
		case es := <-exitc:
			record(es)
		case <-timer.C:
			c.log.Info("grace period over, killing", "container", id, "grace", grace)
			if err := task.Kill(ctx, syscall.SIGKILL, containerd.WithKillAll); err != nil && !errdefs.IsNotFound(err) {
				timer.Stop()
				return nil, fmt.Errorf("SIGKILL: %w", err)
			}
			select {
			case es := <-exitc:
				record(es)
			case <-ctx.Done():
				timer.Stop()
				return nil, ctx.Err()
			}
		case <-ctx.Done():
			timer.Stop()
			return nil, ctx.Err()
		}
		timer.Stop()
	}
	c.drainOutput(id, outputDrainWait)
	c.log.Info("container stopped", "container", id, "took", time.Since(start))
	// The cgroup lives until the task is deleted: ask about OOM kills now.
	final := &ContainerStatus{ID: id, State: StateTerminated, ExitCode: int32(code), FinishedAt: exitTime}
	final.Reason = terminatedReason(final.ExitCode, oomKilled(c.cgroupPath(id)))
	return final, nil
}

// RemovePod implements Runtime.
func (c *Containerd) RemovePod(ctx context.Context, key PodKey) error {
	ctx = c.ctx(ctx)
	defer c.lock(key.UID)()
	r, err := c.loadRecord(key.UID)
	if os.IsNotExist(err) {
		return nil
	} else if err != nil {
		return podErr(key, "remove", err)
	}
	if err := c.stopLocked(ctx, r, r.Spec.TerminationGracePeriod); err != nil {
		return podErr(key, "remove", err)
	}
	if err := c.removeLocked(ctx, r); err != nil {
		return podErr(key, "remove", err)
	}
	c.log.Info("pod removed", "pod", key.Namespace+"/"+key.Name, "uid", key.UID)
	return nil
}

// removeLocked deletes everything recorded for the pod, last the record
// itself, so that a failure leaves a record GC can retry from.
func (c *Containerd) removeLocked(ctx context.Context, r *podRecord) error {
	key := r.Spec.Key
	var errs []error
	for _, cs := range r.Spec.allContainers() {
		id := containerID(key.UID, cs.Name)
		ctr, err := c.client.LoadContainer(ctx, id)
		if errdefs.IsNotFound(err) {
			continue
		} else if err != nil {
			errs = append(errs, err)
			continue
		}
		errs = append(errs, c.deleteContainer(ctx, ctr))
	}
	if r.NetworkAdded {
		errs = append(errs, c.net.del(ctx, key.UID, r.NetNS, allPorts(r.Spec)))
	}
	if r.NetNS != "" {
		errs = append(errs, removeNetNS(r.NetNS))
	}
	errs = append(errs, UnmountUnder(c.podDir(key.UID)))
	if err := errors.Join(errs...); err != nil {
		return err
	}
	c.forgetVolumes(key.UID)
	return os.RemoveAll(c.podDir(key.UID))
}

// GC implements Runtime.
func (c *Containerd) GC(ctx context.Context, wanted map[string]bool) (GCResult, error) {
	ctx = c.ctx(ctx)
	c.gcMu.Lock()
	defer c.gcMu.Unlock()
	var res GCResult
	var errs []error
	uids, err := c.recordUIDs()
	if err != nil {
		return res, fmt.Errorf("gc: %w", err)
	}
	known := map[string]bool{}
	for _, uid := range uids {
		unlock := c.lock(uid)
		r, err := c.loadRecord(uid)
		switch {
		case os.IsNotExist(err) && !dirExists(c.podDir(uid)):
			// Removed meanwhile.
		case err != nil:
			// A directory without a readable record: only files of ours can
			// be in it; the netns and containers are swept below.
			if rerr := UnmountUnder(c.podDir(uid)); rerr != nil {
				errs = append(errs, rerr)
			} else if rerr := os.RemoveAll(c.podDir(uid)); rerr != nil {
				errs = append(errs, rerr)
			}
			res.OrphanSandboxes = append(res.OrphanSandboxes, c.podDir(uid))
		case wanted[uid]:
			known[uid] = true
			res.AdoptedPods = append(res.AdoptedPods, r.Spec.Key)
		default:
			if err := c.stopLocked(ctx, r, r.Spec.TerminationGracePeriod); err != nil {
				errs = append(errs, podErr(r.Spec.Key, "gc stop", err))
			} else if err := c.removeLocked(ctx, r); err != nil {
				known[uid] = true // still recorded; retried next time
				errs = append(errs, podErr(r.Spec.Key, "gc remove", err))
			} else {
				res.RemovedPods = append(res.RemovedPods, r.Spec.Key)
			}
		}
		unlock()
	}

	// Containers of this namespace that carry our labels but no record.
	ctrs, err := c.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelPodUID))
	if err != nil {
		errs = append(errs, fmt.Errorf("gc list containers: %w", err))
	}
	for _, ctr := range ctrs {
		labels, err := ctr.Labels(ctx)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if known[labels[LabelPodUID]] {
			continue
		}
		if err := c.deleteContainer(ctx, ctr); err != nil {
			errs = append(errs, err)
			continue
		}
		res.OrphanContainers = append(res.OrphanContainers, ctr.ID())
	}

	// Pinned namespaces with no record: release their CNI allocation too.
	ents, err := os.ReadDir(filepath.Join(c.cfg.DataDir, "netns"))
	if err != nil {
		errs = append(errs, err)
	}
	for _, e := range ents {
		uid := e.Name()
		if known[uid] {
			continue
		}
		path := filepath.Join(c.cfg.DataDir, "netns", uid)
		if err := c.net.del(ctx, uid, path, nil); err != nil {
			errs = append(errs, err)
		}
		if err := removeNetNS(path); err != nil {
			errs = append(errs, err)
			continue
		}
		res.OrphanSandboxes = append(res.OrphanSandboxes, path)
	}
	sortKeys(res.AdoptedPods)
	sortKeys(res.RemovedPods)
	sort.Strings(res.OrphanContainers)
	sort.Strings(res.OrphanSandboxes)
	return res, errors.Join(errs...)
}

func dirExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && st.IsDir()
}

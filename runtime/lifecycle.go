package runtime

import (
	"context"
	"errors"
	"fmt"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// Lifecycle hooks, as Kubernetes runs them:
//
//   - postStart runs right after the container's process started, and
//     RunPod (or RestartContainer) waits for it (at most the pod's grace
//     period, 30s at least); if it fails the container is stopped
//     (SIGTERM, grace period, SIGKILL; no preStop) and its Terminated
//     state's message starts with FailedPostStartHook. The restart policy
//     then decides.
//   - preStop runs before SIGTERM whenever a running container is stopped
//     (StopPod, RemovePod, GC, StopContainer, RestartContainer), within the
//     grace period; SIGTERM follows with what remains of the grace period,
//     at least 2 seconds. A failing preStop hook is logged and the stop
//     goes on.

// LifecycleHandler is one hook: exactly one of Exec, HTTPGet and Sleep.
type LifecycleHandler struct {
	Exec    *ExecProbe    `json:",omitempty"`
	HTTPGet *HTTPGetProbe `json:",omitempty"`
	Sleep   time.Duration `json:",omitempty"`
}

// ReasonFailedPostStartHook is the message prefix of a container stopped
// because its postStart hook failed.
const ReasonFailedPostStartHook = "FailedPostStartHook"

// minGraceAfterPreStop is what SIGTERM still gets when a preStop hook used
// the whole grace period (the kubelet's rule).
const minGraceAfterPreStop = 2 * time.Second

// lifecycleFrom converts a container's lifecycle; unsupported parts are
// reported through no.
func lifecycleFrom(p string, l *corev1.Lifecycle, c corev1.Container, no func(string)) (post, pre *LifecycleHandler, err error) {
	if l == nil {
		return nil, nil, nil
	}
	if l.StopSignal != nil {
		no(p + ".lifecycle.stopSignal")
	}
	conv := func(hp string, h *corev1.LifecycleHandler) (*LifecycleHandler, error) {
		if h == nil {
			return nil, nil
		}
		out := &LifecycleHandler{}
		n := 0
		if h.Exec != nil {
			n++
			if len(h.Exec.Command) == 0 {
				return nil, fmt.Errorf("%s.exec.command is empty", hp)
			}
			out.Exec = &ExecProbe{Command: append([]string(nil), h.Exec.Command...)}
		}
		if h.HTTPGet != nil {
			n++
			// Reuse the probe conversion for port names, scheme and path.
			pr, err := probeFrom(&corev1.Probe{ProbeHandler: corev1.ProbeHandler{HTTPGet: h.HTTPGet}}, hp, ProbeReadiness, c, no)
			if err != nil {
				return nil, err
			}
			out.HTTPGet = pr.HTTPGet
		}
		if h.Sleep != nil {
			n++
			if h.Sleep.Seconds < 0 {
				return nil, fmt.Errorf("%s.sleep.seconds must not be negative", hp)
			}
			out.Sleep = time.Duration(h.Sleep.Seconds) * time.Second
		}
		if h.TCPSocket != nil {
			n++
			no(hp + ".tcpSocket")
		}
		if n != 1 {
			return nil, fmt.Errorf("%s must have exactly one of exec, httpGet, sleep (has %d)", hp, n)
		}
		return out, nil
	}
	if post, err = conv(p+".lifecycle.postStart", l.PostStart); err != nil {
		return nil, nil, err
	}
	if pre, err = conv(p+".lifecycle.preStop", l.PreStop); err != nil {
		return nil, nil, err
	}
	return post, pre, nil
}

// runHook runs one hook against a container, bounded by timeout.
func (c *Containerd) runHook(ctx context.Context, podIP, id string, h *LifecycleHandler, timeout time.Duration) error {
	switch {
	case h.Exec != nil:
		res := c.execProbe(ctx, id, h.Exec.Command, timeout)
		if !res.Success {
			return errors.New(res.Message)
		}
		return nil
	case h.HTTPGet != nil:
		res := httpProbe(ctx, podIP, h.HTTPGet, timeout)
		if !res.Success {
			return errors.New(res.Message)
		}
		return nil
	default:
		t := time.NewTimer(min(h.Sleep, timeout))
		defer t.Stop()
		select {
		case <-t.C:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// preStopFor returns the preStop hook of a container of the pod, as
// stopContainer runs it, or nil.
func (c *Containerd) preStopFor(r *podRecord, name string) func(context.Context, time.Duration) {
	cs, ok := r.Spec.container(name)
	if !ok || cs.PreStop == nil {
		return nil
	}
	key, id := r.Spec.Key, containerID(r.Spec.Key.UID, name)
	return func(ctx context.Context, timeout time.Duration) {
		if err := c.runHook(ctx, r.IP, id, cs.PreStop, timeout); err != nil {
			c.log.Warn("preStop hook failed", "pod", key.Namespace+"/"+key.Name, "container", name, "err", err)
		}
	}
}

package runtime

import (
	"context"
	"fmt"
	"io"
	"os"
	"sync"
	"time"
)

// Logs implements Runtime. The log is the file the container's shim writes
// stdout and stderr to (interleaved, unstructured); it survives agent
// restarts because the shim, not the agent, writes it.
func (c *Containerd) Logs(ctx context.Context, key PodKey, container string, opts LogOptions) (io.ReadCloser, error) {
	r, err := c.loadRecord(key.UID)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, podErr(key, "logs", ErrPodNotFound)
		}
		return nil, podErr(key, "logs", err)
	}
	known := false
	for _, cs := range r.Spec.Containers {
		known = known || cs.Name == container
	}
	if !known {
		return nil, fmt.Errorf("logs %s: no container %q", key, container)
	}
	f, err := os.Open(c.logPath(key.UID, container))
	if os.IsNotExist(err) {
		return nil, fmt.Errorf("logs %s container %s: no log yet: the container has not started", key, container)
	} else if err != nil {
		return nil, podErr(key, "logs", err)
	}
	if !opts.Follow {
		return f, nil
	}
	return newFollower(ctx, f, 200*time.Millisecond), nil
}

// follower reads a growing file: at the end it waits for more until its
// context ends or it is closed.
type follower struct {
	f      *os.File
	ctx    context.Context
	cancel context.CancelFunc
	every  time.Duration
	once   sync.Once
}

func newFollower(ctx context.Context, f *os.File, every time.Duration) *follower {
	ctx, cancel := context.WithCancel(ctx)
	return &follower{f: f, ctx: ctx, cancel: cancel, every: every}
}

func (r *follower) Read(p []byte) (int, error) {
	for {
		n, err := r.f.Read(p)
		if n > 0 || (err != nil && err != io.EOF) {
			return n, err
		}
		t := time.NewTimer(r.every)
		select {
		case <-r.ctx.Done():
			t.Stop()
			return 0, io.EOF
		case <-t.C:
		}
	}
}

func (r *follower) Close() error {
	var err error
	r.once.Do(func() {
		r.cancel()
		err = r.f.Close()
	})
	return err
}

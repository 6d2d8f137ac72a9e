package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Logs implements Runtime. The log is the file the runtime's output
// copier appends stdout and stderr to (interleaved, unstructured; see
// output.go); it survives agent restarts, and copying resumes after one.
func (c *Containerd) Logs(ctx context.Context, key PodKey, container string, opts LogOptions) (io.ReadCloser, error) {
	r, err := c.loadRecord(key.UID)
	if err != nil {
		if os.IsNotExist(err) {
			return nil, podErr(key, "logs", ErrPodNotFound)
		}
		return nil, podErr(key, "logs", err)
	}
	known := false
	_, known = r.Spec.container(container)
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
		// RotateLogs truncates the file in place: start over from its
		// beginning once it is shorter than what was read.
		if fi, serr := r.f.Stat(); serr == nil {
			if off, oerr := r.f.Seek(0, io.SeekCurrent); oerr == nil && fi.Size() < off {
				if _, err := r.f.Seek(0, io.SeekStart); err != nil {
					return 0, err
				}
				continue
			}
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

// RotateLogs rotates every container log of the node larger than maxSize
// bytes: its content moves to NAME.log.1 (older copies shift to .2, ...,
// the oldest beyond keep is deleted) and NAME.log is truncated in place.
// The shim keeps writing to the same file, which it opened for appending,
// so new output starts again at the beginning. Output written between the
// copy and the truncation is lost, as with logrotate's copytruncate. The
// agent calls it periodically; it returns the logs it rotated.
func (c *Containerd) RotateLogs(maxSize int64, keep int) ([]string, error) {
	if maxSize <= 0 || keep < 1 {
		return nil, fmt.Errorf("rotate logs: maxSize must be positive and keep at least 1")
	}
	uids, err := c.recordUIDs()
	if err != nil {
		return nil, fmt.Errorf("rotate logs: %w", err)
	}
	var rotated []string
	var errs []error
	for _, uid := range uids {
		unlock := c.lock(uid)
		logs, _ := filepath.Glob(filepath.Join(c.podDir(uid), "logs", "*.log"))
		for _, p := range logs {
			ok, err := rotateLog(p, maxSize, keep)
			if err != nil {
				errs = append(errs, err)
			}
			if ok {
				rotated = append(rotated, p)
			}
		}
		unlock()
	}
	return rotated, errors.Join(errs...)
}

// rotateLog rotates one file if it is larger than maxSize.
func rotateLog(p string, maxSize int64, keep int) (bool, error) {
	st, err := os.Stat(p)
	if err != nil || st.Size() <= maxSize {
		return false, nil
	}
	src, err := os.Open(p)
	if err != nil {
		return false, fmt.Errorf("rotate %s: %w", p, err)
	}
	defer src.Close()
	tmp := p + ".tmp"
	dst, err := os.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_TRUNC, 0o640)
	if err != nil {
		return false, fmt.Errorf("rotate %s: %w", p, err)
	}
	_, cerr := io.Copy(dst, io.LimitReader(src, st.Size()))
	if err := errors.Join(cerr, dst.Close()); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("rotate %s: %w", p, err)
	}
	if err := os.Truncate(p, 0); err != nil {
		os.Remove(tmp)
		return false, fmt.Errorf("rotate %s: %w", p, err)
	}
	os.Remove(fmt.Sprintf("%s.%d", p, keep))
	for i := keep - 1; i >= 1; i-- {
		if err := os.Rename(fmt.Sprintf("%s.%d", p, i), fmt.Sprintf("%s.%d", p, i+1)); err != nil && !os.IsNotExist(err) {
			return true, fmt.Errorf("rotate %s: %w", p, err)
		}
	}
	if err := os.Rename(tmp, p+".1"); err != nil {
		return true, fmt.Errorf("rotate %s: %w", p, err)
	}
	return true, nil
}

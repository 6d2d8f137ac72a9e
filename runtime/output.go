package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
	"github.com/containerd/errdefs"
)

// Container output is copied by the runtime, not by containerd's shim.
//
// The shim can write a log file itself (cio.LogFile), but it copies
// stdout and stderr in two goroutines that share the file, and the stdout
// goroutine closes the file outright when it reaches end of file. When a
// program writes to stderr just before it exits, the stderr goroutine can
// find the file closed and the last lines are lost ("error copying stderr"
// in containerd's log) — the very lines that say why a container stopped.
// Seen on containerd 1.6.20 under load; the code is the same in 2.2.
//
// So each task gets FIFOs (under DataDir/fifo), and a copier in this
// process (fifoCopier) appends both streams to the container's log through one
// mutex-guarded writer. The shim keeps its end of the FIFOs open, so when
// the agent restarts, NewContainerd attaches to the FIFOs of every task
// that still exists and copying resumes where it stopped. While no agent
// runs, output waits in the FIFO (64 KiB) and then the writing program
// blocks, as under dockerd with live-restore.

// outputDrainWait bounds how long a stop waits for the copier to reach the
// end of a container's output after the process exited.
const outputDrainWait = 10 * time.Second

// outputs tracks the copier of every task this process has attached to,
// by container ID.
type outputs struct {
	mu sync.Mutex
	m  map[string]*output
}

// output is the copier of one task: both streams into one log file.
type output struct {
	io   cio.IO
	sink *logSink
	done chan struct{} // closed when both streams reached end of file
	// detached: this process stops copying but the task lives on; its
	// FIFOs stay for the next process to attach to. Guarded by outputs.mu.
	detached bool
}

// logSink serialises the two streams' writes to the log file, so lines
// written whole by the program stay whole in the log.
type logSink struct {
	mu sync.Mutex
	f  *os.File
}

func openLogSink(path string) (*logSink, error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o640)
	if err != nil {
		return nil, fmt.Errorf("open log: %w", err)
	}
	return &logSink{f: f}, nil
}

func (s *logSink) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Write(p)
}

func (s *logSink) Close() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.f.Close()
}

// newTaskWithOutput creates the task of ctr with its output copied to the
// log at logPath.
func (c *Containerd) newTaskWithOutput(ctx context.Context, ctr containerd.Container, logPath string) (containerd.Task, error) {
	sink, err := openLogSink(logPath)
	if err != nil {
		return nil, err
	}
	task, err := ctr.NewTask(ctx, func(id string) (cio.IO, error) {
		set, err := cio.NewFIFOSetInDir(c.fifoDir(), id, false)
		if err != nil {
			return nil, err
		}
		cp, err := c.copyOutput(id, set, sink)
		if err != nil {
			set.Close() // removes the new FIFOs' directory
			return nil, err
		}
		return cp, nil
	})
	if err != nil {
		sink.Close()
		return nil, err
	}
	c.track(ctr.ID(), task.IO(), sink, nil)
	return task, nil
}

// attachOutputs resumes copying for every task of ours that still runs,
// after a restart of this process, and removes the FIFO directories no
// task uses any more. It runs before this process creates any task or
// exec.
//
// A task that exited while no copier ran has no output left to copy: when
// its output ends the shim closes its ends of the FIFOs, and the kernel
// drops what no reader took. Such a task is not attached to (its FIFO's
// open would wait for a writer that never comes); nor is one whose state
// containerd cannot tell (UNKNOWN: a shim that does not answer), whose
// output then waits in its FIFO, and the program blocks once that is full,
// until the container is replaced.
func (c *Containerd) attachOutputs(ctx context.Context) error {
	ctrs, err := c.client.Containers(ctx, fmt.Sprintf("labels.%q", LabelPodUID))
	if err != nil {
		return fmt.Errorf("list containers: %w", err)
	}
	var errs []error
	inUse := map[string]bool{}
	sweep := true
	for _, ctr := range ctrs {
		labels, err := ctr.Labels(ctx)
		if err != nil {
			sweep = false
			errs = append(errs, err)
			continue
		}
		uid, name := labels[LabelPodUID], labels[LabelContainer]
		if uid == "" || name == "" || !dirExists(c.podDir(uid)) {
			continue // GC's to remove
		}
		dir, err := c.attachOutput(ctx, ctr, c.logPath(uid, name))
		switch {
		case errors.Is(err, errTaskStateUnknown):
			sweep = false
			c.log.Warn("container state unknown; its output is not copied to its log until it is replaced", "container", ctr.ID())
		case err != nil:
			sweep = false
			errs = append(errs, fmt.Errorf("container %s: %w", ctr.ID(), err))
		case dir != "":
			inUse[dir] = true
		}
	}
	if !sweep {
		// A task not accounted for may still own a directory.
		return errors.Join(errs...)
	}
	// What is left under the FIFO directory belongs to tasks that are
	// gone or exited, and to execs of an earlier process.
	entries, err := os.ReadDir(c.fifoDir())
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		errs = append(errs, err)
	}
	for _, e := range entries {
		if dir := filepath.Join(c.fifoDir(), e.Name()); !inUse[dir] {
			if err := os.RemoveAll(dir); err != nil {
				errs = append(errs, err)
			}
		}
	}
	return errors.Join(errs...)
}

// errTaskStateUnknown: containerd cannot tell a task's state (its shim
// does not answer), so its output cannot be attached to.
var errTaskStateUnknown = errors.New("task state unknown")

// attachOutput resumes copying the output of ctr's task into the log at
// logPath if the task is running, and returns the FIFO directory it uses
// ("" if none).
func (c *Containerd) attachOutput(ctx context.Context, ctr containerd.Container, logPath string) (string, error) {
	task, err := ctr.Task(ctx, nil)
	if errdefs.IsNotFound(err) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("load task: %w", err)
	}
	st, err := task.Status(ctx)
	if err != nil {
		return "", fmt.Errorf("task status: %w", err)
	}
	switch st.Status {
	case containerd.Stopped:
		return "", nil
	case containerd.Unknown:
		return "", errTaskStateUnknown
	}
	sink, err := openLogSink(logPath)
	if err != nil {
		return "", err
	}
	var fifoDir string
	task, err = ctr.Task(ctx, func(set *cio.FIFOSet) (cio.IO, error) {
		fifoDir = filepath.Dir(set.Stdout)
		return c.copyOutput(ctr.ID(), set, sink)
	})
	switch {
	case errdefs.IsNotFound(err):
		sink.Close()
		return "", nil
	case err != nil:
		sink.Close()
		return "", fmt.Errorf("attach to output: %w", err)
	case task.IO() == nil:
		// containerd skipped the attach: the task's state went UNKNOWN
		// between the two loads.
		sink.Close()
		return "", errTaskStateUnknown
	}
	// An attached FIFO set has no closer of its own: remove its directory
	// when done, if it is one of ours.
	if fifoDir == "" || !strings.HasPrefix(fifoDir, c.fifoDir()+string(filepath.Separator)) {
		c.track(ctr.ID(), task.IO(), sink, nil)
		return "", nil
	}
	c.track(ctr.ID(), task.IO(), sink, func() { os.RemoveAll(fifoDir) })
	return fifoDir, nil
}

// copyOutput starts copying the stdout and stderr FIFOs of set (no stdin)
// into sink.
func (c *Containerd) copyOutput(id string, set *cio.FIFOSet, sink *logSink) (cio.IO, error) {
	set.Stdin = ""
	return newFIFOCopier(set, sink, func(err error) {
		c.log.Warn("container output not copied to its log; it is dropped until this stops", "container", id, "err", err)
	})
}

// track starts watching a copier: when both streams end it closes the
// FIFOs and the log and forgets the copier.
func (c *Containerd) track(id string, io cio.IO, sink *logSink, cleanup func()) {
	o := &output{io: io, sink: sink, done: make(chan struct{})}
	c.outputs.mu.Lock()
	c.outputs.m[id] = o
	c.outputs.mu.Unlock()
	go func() {
		io.Wait()
		c.outputs.mu.Lock()
		detached := o.detached
		// A container deleted and created again under the same ID may
		// already have its next copier here.
		if c.outputs.m[id] == o {
			delete(c.outputs.m, id)
		}
		c.outputs.mu.Unlock()
		if !detached {
			io.Close() // removes the FIFOs it created
			if cleanup != nil {
				cleanup()
			}
		}
		sink.Close()
		close(o.done)
	}()
}

// waitOutput waits, at most d, until the copier of container id has
// written everything the container's processes wrote, and returns the
// copier still running after d (nil when done or none).
func (c *Containerd) waitOutput(id string, d time.Duration) *output {
	c.outputs.mu.Lock()
	o := c.outputs.m[id]
	c.outputs.mu.Unlock()
	if o == nil {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-o.done:
		return nil
	case <-t.C:
		return o
	}
}

// drainOutput is waitOutput after a task exited: a copier still open then
// (a child process holding the output) is logged and left running.
func (c *Containerd) drainOutput(id string, d time.Duration) {
	if c.waitOutput(id, d) != nil {
		c.log.Warn("container output still open after exit; its log may be incomplete", "container", id)
	}
}

// releaseOutput stops copying for a container whose task is gone: after
// the task is deleted the shim has closed its FIFO ends and the copier
// ends by itself; cancel it if it has not within d.
func (c *Containerd) releaseOutput(id string, d time.Duration) {
	if o := c.waitOutput(id, d); o != nil {
		o.io.Cancel()
		<-o.done
	}
}

// detachOutputs stops every copier of this process and leaves the FIFOs
// in place. Containers keep running; a later NewContainerd attaches again.
func (c *Containerd) detachOutputs() {
	c.outputs.mu.Lock()
	all := make([]*output, 0, len(c.outputs.m))
	for _, o := range c.outputs.m {
		o.detached = true
		all = append(all, o)
	}
	c.outputs.mu.Unlock()
	for _, o := range all {
		o.io.Cancel()
		<-o.done
	}
}

func (c *Containerd) fifoDir() string { return filepath.Join(c.cfg.DataDir, "fifo") }

package runtime

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"sync/atomic"
	"syscall"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// fifoCopier is the cio.IO of a task whose stdout and stderr FIFOs this
// process copies into the container's log.
//
// containerd's own copier (cio.WithStreams) gives each stream a goroutine
// that holds a 32 KiB buffer for the life of the task, blocked in read: on
// a node of 50 containers that is 3.2 MiB of heap doing nothing, half of
// an agent's live heap, and twice that in RSS once the garbage collector's
// headroom is counted. This copier waits for output in Go's network poller
// holding no buffer, and takes one from a pool each time the FIFO becomes
// readable, giving it back when the FIFO is empty: an idle container costs
// its parked goroutines, and the pool holds what flows at once (sync.Pool
// lets its buffers go over the next garbage collections).
//
// Its contract is cio's: Cancel stops copying (it also abandons a FIFO the
// shim never opened), Wait returns when both streams have ended, Close
// stops copying, closes the read ends and removes the FIFOs the set owns.
type fifoCopier struct {
	direct *cio.DirectIO
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopped is set by Cancel and Close. A drain reading a FIFO that
	// never runs dry checks it after every read: closing the file alone
	// would wait for the drain to return (os.File.Close waits for a
	// RawConn.Read in progress).
	stopped atomic.Bool
}

// outputBuffers lends the copiers their read buffers.
var outputBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// newFIFOCopier opens the read ends of set's stdout and stderr (set has no
// stdin) and copies both into w until their writers close them. w must be
// safe for concurrent writes.
//
// onErr, if not nil, hears of what goes wrong: the first failed write to w
// of a run of failures (output is read and dropped while writes fail, so
// the container never blocks on a full FIFO; the next successful write
// ends the run), and a read error, which ends that stream's copying.
//
// When it fails, newFIFOCopier closes what it opened but leaves set's
// FIFOs: whether they go is the caller's decision (a task being created
// has none to keep; a task being attached to after a restart does).
func newFIFOCopier(set *cio.FIFOSet, w io.Writer, onErr func(error)) (*fifoCopier, error) {
	ctx, cancel := context.WithCancel(context.Background())
	direct, err := cio.NewDirectIO(ctx, set)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &fifoCopier{direct: direct, cancel: cancel}
	type stream struct {
		name string
		r    io.Closer
		raw  syscall.RawConn
	}
	var streams []stream
	for _, s := range []struct {
		name string
		r    io.ReadCloser
	}{{"stdout", direct.Stdout}, {"stderr", direct.Stderr}} {
		if s.r == nil {
			continue
		}
		var raw syscall.RawConn
		sc, ok := s.r.(syscall.Conn)
		if !ok { // containerd/fifo's FIFOs all are
			err = fmt.Errorf("container %s FIFO (%T) has no file descriptor", s.name, s.r)
		} else if raw, err = sc.SyscallConn(); err != nil {
			err = fmt.Errorf("container %s FIFO: %w", s.name, err)
		}
		if err != nil {
			c.Cancel()
			return nil, err
		}
		streams = append(streams, stream{s.name, s.r, raw})
	}
	report := func(error) {}
	if onErr != nil {
		report = onErr
	}
	var writeMu sync.Mutex
	writeFailing := false
	write := func(p []byte) {
		_, err := w.Write(p)
		writeMu.Lock()
		defer writeMu.Unlock()
		if err != nil && !writeFailing {
			report(fmt.Errorf("write log: %w", err))
		}
		writeFailing = err != nil
	}
	for _, st := range streams {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			if err := c.drain(st.raw, write); err != nil {
				report(fmt.Errorf("read %s: %w", st.name, err))
			}
			st.r.Close() // as cio does: the read end goes at end of file
		}()
	}
	return c, nil
}

// drain copies one FIFO to write until it reaches end of file, or the
// copier is stopped. It returns the error that ended it otherwise.
func (c *fifoCopier) drain(raw syscall.RawConn, write func([]byte)) error {
	var readErr error
	// Read calls the function again each time the FIFO becomes readable
	// while it returns false, and returns when it returns true or the file
	// is closed. The poller is edge-triggered: the function must read
	// until EAGAIN before it returns false, or data left in the FIFO waits
	// for the next write.
	err := raw.Read(func(fd uintptr) bool {
		bp := outputBuffers.Get().(*[]byte)
		defer outputBuffers.Put(bp)
		for !c.stopped.Load() {
			n, err := syscall.Read(int(fd), *bp)
			switch {
			case n > 0:
				write((*bp)[:n])
			case errors.Is(err, syscall.EINTR):
			case errors.Is(err, syscall.EAGAIN):
				return false // wait in the poller, without the buffer
			default:
				readErr = err // nil at end of file (n == 0)
				return true
			}
		}
		return true
	})
	if c.stopped.Load() {
		return nil // closed or cancelled: not an error
	}
	return errors.Join(err, readErr)
}

// Config returns the FIFO paths the shim writes to.
func (c *fifoCopier) Config() cio.Config { return c.direct.Config() }

// Cancel stops copying: it abandons a FIFO still waiting for its writer
// and closes the read ends, which ends both drains once the read in
// progress, if any, has been written to the log. (Closing a FIFO of
// containerd/fifo twice is harmless.)
func (c *fifoCopier) Cancel() {
	c.stopped.Store(true)
	c.cancel()
	for _, r := range []io.Closer{c.direct.Stdout, c.direct.Stderr} {
		if r != nil {
			r.Close()
		}
	}
}

// Wait returns when both streams have ended.
func (c *fifoCopier) Wait() { c.wg.Wait() }

// Close stops copying, closes the read ends and removes the FIFOs if the
// set owns them.
func (c *fifoCopier) Close() error {
	c.stopped.Store(true)
	c.cancel()
	return c.direct.Close()
}

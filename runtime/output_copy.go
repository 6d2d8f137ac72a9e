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
// holding no buffer, and borrows one from a pool only while the FIFO has
// data: an idle container costs two parked goroutines.
//
// Its contract is cio's: Cancel stops copying (it also abandons a FIFO the
// shim never opened), Wait returns when both streams have ended, Close
// closes the read ends and removes the FIFOs the set owns.
type fifoCopier struct {
	direct *cio.DirectIO
	cancel context.CancelFunc
	wg     sync.WaitGroup
	// stopped is set by Cancel. A drain reading a FIFO that never runs
	// dry checks it after every read: closing the file alone would wait
	// for the drain to return (os.File.Close waits for a RawConn.Read).
	stopped atomic.Bool
}

// outputBuffers lends the copiers their read buffers. A buffer is held only
// while a read returns data, so the pool stays as small as the output that
// is flowing at once.
var outputBuffers = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

// newFIFOCopier opens the read ends of set's stdout and stderr (set has no
// stdin) and copies both into w until their writers close them. w must be
// safe for concurrent writes. onWriteErr, if not nil, is called once with
// the first error writing to w; output after it is read and dropped so the
// container never blocks on a full FIFO.
func newFIFOCopier(set *cio.FIFOSet, w io.Writer, onWriteErr func(error)) (*fifoCopier, error) {
	ctx, cancel := context.WithCancel(context.Background())
	direct, err := cio.NewDirectIO(ctx, set)
	if err != nil {
		cancel()
		return nil, err
	}
	c := &fifoCopier{direct: direct, cancel: cancel}
	type stream struct {
		r   io.Closer
		raw syscall.RawConn
	}
	var streams []stream
	for _, r := range []io.ReadCloser{direct.Stdout, direct.Stderr} {
		if r == nil {
			continue
		}
		sc, ok := r.(syscall.Conn)
		if !ok { // containerd/fifo's FIFOs all are
			direct.Close()
			cancel()
			return nil, fmt.Errorf("container output FIFO %T has no file descriptor", r)
		}
		raw, err := sc.SyscallConn()
		if err != nil {
			direct.Close()
			cancel()
			return nil, fmt.Errorf("container output FIFO: %w", err)
		}
		streams = append(streams, stream{r, raw})
	}
	var once sync.Once
	report := func(err error) {
		if onWriteErr != nil {
			once.Do(func() { onWriteErr(err) })
		}
	}
	for _, st := range streams {
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			c.drain(st.raw, w, report)
			st.r.Close() // as cio does: the read end goes at end of file
		}()
	}
	return c, nil
}

// drain copies one FIFO into w until it reaches end of file, is closed,
// or the copier is cancelled. Write errors go to report; reading goes on
// regardless.
func (c *fifoCopier) drain(raw syscall.RawConn, w io.Writer, report func(error)) {
	writeErr := false
	// Read calls the function again each time the FIFO becomes readable
	// while it returns false, and returns when it returns true or the file
	// is closed. The poller is edge-triggered: the function must read
	// until EAGAIN before it returns false, or data left in the FIFO waits
	// for the next write.
	_ = raw.Read(func(fd uintptr) bool {
		bp := outputBuffers.Get().(*[]byte)
		defer outputBuffers.Put(bp)
		for !c.stopped.Load() {
			n, err := syscall.Read(int(fd), *bp)
			switch {
			case n > 0:
				if !writeErr {
					if _, werr := w.Write((*bp)[:n]); werr != nil {
						writeErr = true
						report(werr)
					}
				}
			case errors.Is(err, syscall.EINTR):
			case errors.Is(err, syscall.EAGAIN):
				return false // wait in the poller, without the buffer
			default:
				return true // end of file (n == 0) or a read error
			}
		}
		return true
	})
}

// Config returns the FIFO paths the shim writes to.
func (c *fifoCopier) Config() cio.Config { return c.direct.Config() }

// Cancel stops copying: it abandons a FIFO still waiting for its writer
// and closes the read ends, which ends both drains. (Closing a FIFO of
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

// Close closes the read ends and removes the FIFOs if the set owns them.
func (c *fifoCopier) Close() error {
	c.cancel()
	return c.direct.Close()
}

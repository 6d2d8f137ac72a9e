package runtime

import (
	"context"
	"errors"
	"io"
	"sync"
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
	var once sync.Once
	report := func(err error) {
		if onWriteErr != nil {
			once.Do(func() { onWriteErr(err) })
		}
	}
	for _, r := range []io.ReadCloser{direct.Stdout, direct.Stderr} {
		if r == nil {
			continue
		}
		c.wg.Add(1)
		go func() {
			defer c.wg.Done()
			drainFIFO(r, w, report)
			r.Close() // as cio does: the read end goes at end of file
		}()
	}
	return c, nil
}

// drainFIFO copies r into w until r reaches end of file or is closed.
// Write errors go to report; reading goes on regardless.
func drainFIFO(r io.Reader, w io.Writer, report func(error)) {
	sc, ok := r.(syscall.Conn)
	if !ok {
		drainBlocking(r, w, report)
		return
	}
	raw, err := sc.SyscallConn()
	if err != nil {
		return // closed before it opened: cancelled
	}
	writeErr := false
	// Read calls the function again each time the FIFO becomes readable
	// while it returns false, and returns when it returns true or the file
	// is closed.
	_ = raw.Read(func(fd uintptr) bool {
		bp := outputBuffers.Get().(*[]byte)
		defer outputBuffers.Put(bp)
		for {
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
	})
}

// drainBlocking is drainFIFO for a reader that offers no file descriptor.
func drainBlocking(r io.Reader, w io.Writer, report func(error)) {
	bp := outputBuffers.Get().(*[]byte)
	defer outputBuffers.Put(bp)
	writeErr := false
	for {
		n, err := r.Read(*bp)
		if n > 0 && !writeErr {
			if _, werr := w.Write((*bp)[:n]); werr != nil {
				writeErr = true
				report(werr)
			}
		}
		if err != nil {
			return
		}
	}
}

// Config returns the FIFO paths the shim writes to.
func (c *fifoCopier) Config() cio.Config { return c.direct.Config() }

// Cancel stops copying: it abandons a FIFO still waiting for its writer
// and closes the read ends, which ends both drains. (Closing a FIFO of
// containerd/fifo twice is harmless.)
func (c *fifoCopier) Cancel() {
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

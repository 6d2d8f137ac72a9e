package runtime

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/containerd/containerd/v2/pkg/cio"
)

// lockedBuffer is a log sink for tests, safe for the two drains.
type lockedBuffer struct {
	mu       sync.Mutex
	buf      bytes.Buffer
	err      error // returned by every Write when set
	attempts int   // calls of Write
	// slow makes every Write sleep a millisecond first, so a writer that
	// never pauses keeps the FIFO full.
	slow bool
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	if b.slow {
		time.Sleep(time.Millisecond)
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	b.attempts++
	if b.err != nil {
		return 0, b.err
	}
	return b.buf.Write(p)
}

func (b *lockedBuffer) setErr(err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.err = err
}

// waitFor yields until cond, called under the buffer's lock, holds.
func (b *lockedBuffer) waitFor(cond func(*lockedBuffer) bool) {
	for {
		b.mu.Lock()
		ok := cond(b)
		b.mu.Unlock()
		if ok {
			return
		}
		runtime.Gosched()
	}
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// errorLog collects what a copier reports.
type errorLog struct {
	mu   sync.Mutex
	errs []error
}

func (l *errorLog) add(err error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errs = append(l.errs, err)
}

func (l *errorLog) all() []error {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]error(nil), l.errs...)
}

// newTestFIFOs makes a FIFO set (no stdin) in a temporary directory.
func newTestFIFOs(t *testing.T) *cio.FIFOSet {
	t.Helper()
	set, err := cio.NewFIFOSetInDir(t.TempDir(), "c1", false)
	if err != nil {
		t.Fatal(err)
	}
	set.Stdin = ""
	return set
}

// openWriter opens the write end of a FIFO, as the shim does.
func openWriter(t *testing.T, path string) *os.File {
	t.Helper()
	f, err := os.OpenFile(path, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func TestFIFOCopierCopiesBothStreamsToTheEnd(t *testing.T) {
	set := newTestFIFOs(t)
	var sink lockedBuffer
	c, err := newFIFOCopier(set, &sink, func(err error) { t.Errorf("write error: %v", err) })
	if err != nil {
		t.Fatal(err)
	}
	out, errw := openWriter(t, set.Stdout), openWriter(t, set.Stderr)
	// More than a FIFO holds (64 KiB) and more than one buffer, so the
	// writer blocks until the copier drains it across several wake-ups.
	big := strings.Repeat("0123456789abcdef", 16<<10) // 256 KiB
	if _, err := out.WriteString(big); err != nil {
		t.Fatal(err)
	}
	if _, err := errw.WriteString("last words\n"); err != nil {
		t.Fatal(err)
	}
	out.Close()
	errw.Close()
	c.Wait()
	got := sink.String()
	if len(got) != len(big)+len("last words\n") || !strings.Contains(got, "last words\n") ||
		!strings.Contains(strings.Replace(got, "last words\n", "", 1), big) {
		t.Fatalf("log has %d bytes, want the %d of stdout and stderr's line", len(got), len(big)+11)
	}
	dir := filepath.Dir(set.Stdout)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(dir); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Close left the FIFO directory %s: %v", dir, err)
	}
}

// A container whose shim never opened its FIFOs must not keep a copier
// waiting for ever: Cancel ends it.
func TestFIFOCopierCancelBeforeTheWriterOpens(t *testing.T) {
	set := newTestFIFOs(t)
	c, err := newFIFOCopier(set, &lockedBuffer{}, nil)
	if err != nil {
		t.Fatal(err)
	}
	c.Cancel()
	c.Wait()
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
}

// Cancel stops a copier whose writer is still open (the agent detaching
// from a running container) and leaves the FIFOs in place.
func TestFIFOCopierCancelWhileTheWriterIsOpen(t *testing.T) {
	set := newTestFIFOs(t)
	var sink lockedBuffer
	c, err := newFIFOCopier(set, &sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, errw := openWriter(t, set.Stdout), openWriter(t, set.Stderr)
	defer out.Close()
	defer errw.Close()
	if _, err := out.WriteString("before\n"); err != nil {
		t.Fatal(err)
	}
	c.Cancel()
	c.Wait()
	if _, err := os.Stat(set.Stdout); err != nil {
		t.Errorf("Cancel removed the FIFO: %v", err)
	}
}

// When the log cannot be written, the copier says so once and goes on
// reading, so the container does not block on a full FIFO.
func TestFIFOCopierKeepsDrainingAfterAWriteError(t *testing.T) {
	set := newTestFIFOs(t)
	sink := &lockedBuffer{err: errors.New("no space left on device")}
	var reported errorLog
	c, err := newFIFOCopier(set, sink, reported.add)
	if err != nil {
		t.Fatal(err)
	}
	out, errw := openWriter(t, set.Stdout), openWriter(t, set.Stderr)
	// Four times what the FIFO holds: this write returns only if the
	// copier keeps reading.
	if _, err := out.Write(make([]byte, 256<<10)); err != nil {
		t.Fatal(err)
	}
	if _, err := errw.WriteString("x\n"); err != nil {
		t.Fatal(err)
	}
	out.Close()
	errw.Close()
	c.Wait()
	c.Close()
	if errs := reported.all(); len(errs) != 1 {
		t.Fatalf("reported %d write errors, want exactly 1: %v", len(errs), errs)
	}
}

// Cancel must stop a copier whose container writes without pause, so the
// FIFO never runs dry: the drain stops between two reads.
func TestFIFOCopierCancelWhileOutputFlows(t *testing.T) {
	set := newTestFIFOs(t)
	sink := &lockedBuffer{slow: true}
	c, err := newFIFOCopier(set, sink, nil)
	if err != nil {
		t.Fatal(err)
	}
	out, errw := openWriter(t, set.Stdout), openWriter(t, set.Stderr)
	defer errw.Close()
	writerDone := make(chan struct{})
	go func() {
		defer close(writerDone)
		chunk := make([]byte, 64<<10)
		for {
			if _, err := out.Write(chunk); err != nil {
				return // the read end is gone
			}
		}
	}()
	for {
		sink.mu.Lock()
		n := sink.buf.Len()
		sink.mu.Unlock()
		if n >= 1<<20 {
			break
		}
		runtime.Gosched()
	}
	cancelled := make(chan struct{})
	go func() {
		c.Cancel()
		c.Wait()
		close(cancelled)
	}()
	select {
	case <-cancelled:
	case <-time.After(30 * time.Second): // a deadlock, not a slow machine
		t.Fatal("Cancel did not stop a copier whose output never pauses")
	}
	out.Close()
	<-writerDone
}

// Output is dropped only while writes fail: a run of failures is reported
// once, and writing resumes when the log can take it again.
func TestFIFOCopierResumesWritingAfterFailures(t *testing.T) {
	set := newTestFIFOs(t)
	full := errors.New("no space left on device")
	sink := &lockedBuffer{err: full}
	var reported errorLog
	c, err := newFIFOCopier(set, sink, reported.add)
	if err != nil {
		t.Fatal(err)
	}
	out, errw := openWriter(t, set.Stdout), openWriter(t, set.Stderr)
	write := func(s string, wantAttempts int) {
		t.Helper()
		if _, err := out.WriteString(s); err != nil {
			t.Fatal(err)
		}
		sink.waitFor(func(b *lockedBuffer) bool { return b.attempts >= wantAttempts })
	}
	write("lost 1\n", 1)
	sink.setErr(nil)
	write("kept\n", 2)
	sink.setErr(full)
	write("lost 2\n", 3)
	out.Close()
	errw.Close()
	c.Wait()
	c.Close()
	if got := sink.String(); got != "kept\n" {
		t.Errorf("log = %q, want only what was written while the log could take it", got)
	}
	if errs := reported.all(); len(errs) != 2 {
		t.Errorf("reported %d errors, want one per run of failures (2): %v", len(errs), errs)
	}
}

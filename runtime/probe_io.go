package runtime

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"encoding/hex"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/pkg/cio"
)

// maxProbeOutput bounds what an exec probe's output or an HTTP body
// contributes to a message, as the kubelet bounds it (10 KiB).
const maxProbeOutput = 10 << 10

// Probe implements Runtime.
func (c *Containerd) Probe(ctx context.Context, key PodKey, name string, p Probe) ProbeResult {
	ctx = c.ctx(ctx)
	r, err := c.loadRecord(key.UID)
	if err != nil {
		return ProbeResult{Message: podErr(key, "probe", err).Error()}
	}
	timeout := p.Timeout
	if timeout <= 0 {
		timeout = time.Second
	}
	switch {
	case p.Exec != nil:
		cr := r.Containers[name]
		if cr == nil || cr.StartedAt.IsZero() || cr.Final != nil {
			return ProbeResult{Message: fmt.Sprintf("container %s is not running", name)}
		}
		return c.execProbe(ctx, cr.ID, p.Exec.Command, timeout)
	case p.HTTPGet != nil:
		return httpProbe(ctx, r.IP, p.HTTPGet, timeout)
	case p.TCPSocket != nil:
		return tcpProbe(ctx, r.IP, p.TCPSocket, timeout)
	}
	return ProbeResult{Message: "probe has no handler"}
}

// execProbe runs cmd in the container as an extra process (same
// namespaces, user and environment as the container's process). Exit code
// 0 is success; a command still running after timeout is killed and
// fails.
func (c *Containerd) execProbe(ctx context.Context, id string, cmd []string, timeout time.Duration) ProbeResult {
	fail := func(format string, a ...any) ProbeResult { return ProbeResult{Message: fmt.Sprintf(format, a...)} }
	ctr, err := c.client.LoadContainer(ctx, id)
	if err != nil {
		return fail("exec probe: %v", err)
	}
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		return fail("exec probe: container is not running: %v", err)
	}
	spec, err := ctr.Spec(ctx)
	if err != nil || spec.Process == nil {
		return fail("exec probe: container spec: %v", err)
	}
	pspec := *spec.Process
	pspec.Args = execArgs(spec.Process.Args, cmd)
	pspec.Terminal = false
	var rnd [8]byte
	rand.Read(rnd[:])
	execID := "probe-" + hex.EncodeToString(rnd[:])
	out := &boundedBuffer{max: maxProbeOutput}
	// The FIFOs live under the data dir, not containerd's /run default.
	fifos := filepath.Join(c.cfg.DataDir, "fifo")
	proc, err := task.Exec(ctx, execID, &pspec, cio.NewCreator(cio.WithStreams(nil, out, out), cio.WithFIFODir(fifos)))
	if err != nil {
		return fail("exec probe %q: %v", strings.Join(cmd, " "), err)
	}
	// Delete even if the caller gave up: an exec left behind holds FIFOs
	// and shim state.
	defer proc.Delete(context.WithoutCancel(ctx), containerd.WithProcessKill)
	exitc, err := proc.Wait(ctx)
	if err != nil {
		return fail("exec probe: wait: %v", err)
	}
	if err := proc.Start(ctx); err != nil {
		return fail("exec probe %q: start: %v", strings.Join(cmd, " "), err)
	}
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	select {
	case es := <-exitc:
		proc.IO().Wait()
		code, _, err := es.Result()
		if err != nil {
			return fail("exec probe: %v", err)
		}
		if code != 0 {
			return fail("command %q exited with %d: %s", strings.Join(cmd, " "), code, out.String())
		}
		return ProbeResult{Success: true, Message: out.String()}
	case <-timer.C:
		proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		<-exitc
		return fail("command %q timed out after %s", strings.Join(cmd, " "), timeout)
	case <-ctx.Done():
		proc.Kill(context.WithoutCancel(ctx), syscall.SIGKILL)
		<-exitc
		return fail("exec probe: %v", ctx.Err())
	}
}

// httpProbe sends one GET. Redirects are not followed: a 3xx is a
// success, as it is for the kubelet when the redirect leaves the host.
func httpProbe(ctx context.Context, podIP string, h *HTTPGetProbe, timeout time.Duration) ProbeResult {
	host := h.Host
	if host == "" {
		host = podIP
	}
	if host == "" {
		return ProbeResult{Message: "HTTP probe: the pod has no IP"}
	}
	url := strings.ToLower(h.Scheme) + "://" + net.JoinHostPort(host, strconv.Itoa(int(h.Port))) + h.Path
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return ProbeResult{Message: fmt.Sprintf("HTTP probe: %v", err)}
	}
	req.Header.Set("User-Agent", "shoal-probe/1")
	req.Header.Set("Accept", "*/*")
	for _, hd := range h.Headers {
		if strings.EqualFold(hd.Name, "Host") {
			req.Host = hd.Value
			continue
		}
		req.Header.Add(hd.Name, hd.Value)
	}
	client := &http.Client{
		Transport: &http.Transport{
			Proxy:             nil,
			DisableKeepAlives: true,
			TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // probes do not verify, as the kubelet's do not
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	resp, err := client.Do(req)
	if err != nil {
		if ctx.Err() != nil {
			return ProbeResult{Message: fmt.Sprintf("Get %q: timed out after %s", url, timeout)}
		}
		return ProbeResult{Message: err.Error()}
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, maxProbeOutput))
	if resp.StatusCode >= 200 && resp.StatusCode < 400 {
		return ProbeResult{Success: true}
	}
	return ProbeResult{Message: fmt.Sprintf("HTTP probe failed with statuscode: %d: %s", resp.StatusCode, strings.TrimSpace(string(body)))}
}

// tcpProbe opens and closes one TCP connection.
func tcpProbe(ctx context.Context, podIP string, t *TCPSocketProbe, timeout time.Duration) ProbeResult {
	host := t.Host
	if host == "" {
		host = podIP
	}
	if host == "" {
		return ProbeResult{Message: "TCP probe: the pod has no IP"}
	}
	d := net.Dialer{Timeout: timeout}
	conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(host, strconv.Itoa(int(t.Port))))
	if err != nil {
		return ProbeResult{Message: err.Error()}
	}
	conn.Close()
	return ProbeResult{Success: true}
}

// boundedBuffer keeps the first max bytes written to it; stdout and
// stderr are copied into it from two goroutines.
type boundedBuffer struct {
	mu  sync.Mutex
	max int
	b   []byte
}

func (w *boundedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if room := w.max - len(w.b); room > 0 {
		w.b = append(w.b, p[:min(room, len(p))]...)
	}
	return len(p), nil
}

func (w *boundedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(string(w.b))
}

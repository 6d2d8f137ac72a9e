package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
)

// DaemonConfig says where a private containerd lives.
type DaemonConfig struct {
	// Dir holds root/, state/, containerd.sock, config.toml,
	// containerd.pid and containerd.log. The socket path must stay under
	// the 107-byte limit of unix sockets, so keep Dir short.
	Dir string
	// Binary is the containerd executable (default: "containerd" on PATH).
	Binary string
}

// Daemon is a private containerd started (or found running) by
// StartContainerd.
type Daemon struct {
	Address string // the socket, for Config.Address
	Dir     string
	PID     int
	// Reused is true when a daemon was already answering on the socket.
	Reused bool

	exited chan struct{} // closed when a daemon we started exits
}

// SocketPath returns the socket a private containerd in dir listens on.
func SocketPath(dir string) string { return filepath.Join(dir, "containerd.sock") }

// StartContainerd returns the containerd answering on Dir's socket, or
// starts one from the system binary with its root, state and socket under
// Dir. The daemon runs in its own session, so it outlives the caller: an
// agent restart finds and reuses it, and the containers keep running.
func StartContainerd(ctx context.Context, cfg DaemonConfig) (*Daemon, error) {
	if !filepath.IsAbs(cfg.Dir) {
		return nil, fmt.Errorf("containerd dir %q must be absolute", cfg.Dir)
	}
	sock := SocketPath(cfg.Dir)
	if len(sock) > 107 {
		return nil, fmt.Errorf("containerd socket path %s is longer than 107 bytes; use a shorter dir", sock)
	}
	d := &Daemon{Address: sock, Dir: cfg.Dir}
	if serving(ctx, sock) {
		d.Reused = true
		if b, err := os.ReadFile(filepath.Join(cfg.Dir, "containerd.pid")); err == nil {
			d.PID, _ = strconv.Atoi(strings.TrimSpace(string(b)))
		}
		return d, nil
	}
	bin := cfg.Binary
	if bin == "" {
		p, err := exec.LookPath("containerd")
		if err != nil {
			return nil, fmt.Errorf("containerd binary not found on PATH: %w", err)
		}
		bin = p
	}
	root, state := filepath.Join(cfg.Dir, "root"), filepath.Join(cfg.Dir, "state")
	for _, p := range []string{root, state} {
		if err := os.MkdirAll(p, 0o711); err != nil {
			return nil, err
		}
	}
	// A socket file left by a dead daemon would make the new one fail.
	if err := os.Remove(sock); err != nil && !os.IsNotExist(err) {
		return nil, err
	}
	conf := fmt.Sprintf(`version = 2
root = %q
state = %q
disabled_plugins = ["io.containerd.grpc.v1.cri"]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""

[plugins."io.containerd.internal.v1.opt"]
  path = %q
`, root, state, sock, sock+".ttrpc", filepath.Join(root, "opt"))
	confPath := filepath.Join(cfg.Dir, "config.toml")
	if err := os.WriteFile(confPath, []byte(conf), 0o644); err != nil {
		return nil, err
	}
	logf, err := os.OpenFile(filepath.Join(cfg.Dir, "containerd.log"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	cmd := exec.Command(bin, "--config", confPath)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.Dir = cfg.Dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start containerd: %w", err)
	}
	d.PID = cmd.Process.Pid
	d.exited = make(chan struct{})
	go func() {
		// Reap it if it exits while we live; if we exit first it is
		// re-parented and keeps running.
		cmd.Wait()
		close(d.exited)
	}()
	if err := os.WriteFile(filepath.Join(cfg.Dir, "containerd.pid"), []byte(strconv.Itoa(d.PID)), 0o644); err != nil {
		return nil, err
	}
	for {
		if serving(ctx, sock) {
			return d, nil
		}
		select {
		case <-d.exited:
			return nil, fmt.Errorf("containerd exited at start; see %s", filepath.Join(cfg.Dir, "containerd.log"))
		case <-ctx.Done():
			cmd.Process.Kill()
			return nil, fmt.Errorf("containerd did not answer on %s: %w", sock, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

func serving(ctx context.Context, sock string) bool {
	if _, err := os.Stat(sock); err != nil {
		return false
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	c, err := containerd.New(sock, containerd.WithTimeout(2*time.Second))
	if err != nil {
		return false
	}
	defer c.Close()
	ok, err := c.IsServing(ctx)
	return err == nil && ok
}

// Stop terminates the daemon and waits for it to exit. Containers'
// shims are separate processes and are not stopped: remove pods first.
func (d *Daemon) Stop(ctx context.Context) error {
	if d.PID <= 0 {
		return errors.New("containerd pid unknown")
	}
	if err := syscall.Kill(d.PID, syscall.SIGTERM); err != nil {
		if errors.Is(err, syscall.ESRCH) {
			return nil
		}
		return err
	}
	for {
		if d.exited != nil {
			select {
			case <-d.exited:
				return nil
			case <-ctx.Done():
				return fmt.Errorf("containerd %d did not exit: %w", d.PID, ctx.Err())
			}
		}
		if processGone(d.PID) {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("containerd %d did not exit: %w", d.PID, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// processGone reports whether pid has exited. A zombie counts as exited:
// a daemon started by an earlier process is reaped by whoever adopted it,
// not by us.
func processGone(pid int) bool {
	if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
		return true
	}
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return os.IsNotExist(err)
	}
	// The state follows the command name, which is in parentheses.
	if i := strings.LastIndexByte(string(b), ')'); i >= 0 && i+2 < len(b) {
		return b[i+2] == 'Z'
	}
	return false
}

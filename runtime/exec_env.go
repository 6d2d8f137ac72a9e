package runtime

import (
	"context"
	"debug/elf"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Secret values in a container's environment or command line never reach
// disk. A container's OCI spec is kept by containerd in its metadata
// database and written to the task's bundle, both on disk; so for a
// container that needs a Secret's value there, the spec runs the exec
// helper instead: a static shoal binary bind-mounted at ExecHelperPath,
// which reads the real command line and environment from a file on a
// tmpfs of the pod's (bind-mounted at ExecEnvDir) and execs the process.
// The spec keeps the variables that hold no Secret, so what containerd
// shows is still useful.
//
// Exec probes and lifecycle hooks of such a container run through the
// helper too (execArgs), so they see the environment the container's
// process sees, as the kubelet's do.

// In the container.
const (
	ExecHelperPath = "/.shoal/exec"
	ExecEnvDir     = "/.shoal/env"
	execEnvFile    = "process.json"
)

// ExecEnvArg is the helper's command: `shoal ExecEnvArg FILE`.
const ExecEnvArg = "__exec-env"

// ExecProcess is what the helper execs.
type ExecProcess struct {
	Args []string `json:"args"`
	Env  []string `json:"env"`
}

// execEnv prepares the helper for a container: a tmpfs for its process
// file, the two mounts, and the spec option that writes the file from the
// finished spec and points the spec at the helper.
func (c *Containerd) execEnv(r *podRecord, container string, secret map[string]bool) ([]specs.Mount, oci.SpecOpts, error) {
	if c.cfg.ExecHelper == "" {
		return nil, nil, errors.New("the environment or command line holds a Secret's value, and this node has no exec helper " +
			"(a statically linked shoal binary, agent flag --exec-helper) to keep it off disk; mount the Secret as a volume, or configure the helper")
	}
	dir := filepath.Join(c.podDir(r.Spec.Key.UID), "exec", container)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, err
	}
	if err := secretTmpfs(dir, 1<<20); err != nil {
		return nil, nil, err
	}
	mounts := []specs.Mount{
		{Destination: ExecHelperPath, Type: "bind", Source: c.cfg.ExecHelper, Options: []string{"rbind", "ro"}},
		{Destination: ExecEnvDir, Type: "bind", Source: dir, Options: []string{"rbind", "ro"}},
	}
	opt := func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
		if s.Process == nil || len(s.Process.Args) == 0 {
			return nil // requireArgs has said why
		}
		b, err := json.Marshal(ExecProcess{Args: s.Process.Args, Env: s.Process.Env})
		if err != nil {
			return err
		}
		if err := os.WriteFile(filepath.Join(dir, execEnvFile), b, 0o444); err != nil {
			return err
		}
		var kept []string
		for _, kv := range s.Process.Env {
			name, _, _ := strings.Cut(kv, "=")
			if !secret[name] {
				kept = append(kept, kv)
			}
		}
		s.Process.Env = kept
		s.Process.Args = []string{ExecHelperPath, ExecEnvArg, ExecEnvDir + "/" + execEnvFile}
		return nil
	}
	return mounts, opt, nil
}

// execArgs is the command line of an exec probe or hook: cmd itself, or,
// when the container's process is the exec helper, the helper running cmd
// with the environment in the container's process file.
func execArgs(process []string, cmd []string) []string {
	if len(process) != 3 || process[0] != ExecHelperPath || process[1] != ExecEnvArg {
		return cmd
	}
	return append([]string{ExecHelperPath, ExecEnvArg, process[2], "--"}, cmd...)
}

// CheckExecHelper says whether path can serve as ExecHelper: a statically
// linked executable (images need not have a C library).
func CheckExecHelper(path string) error {
	f, err := elf.Open(path)
	if err != nil {
		return fmt.Errorf("exec helper %s: %w", path, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return fmt.Errorf("exec helper %s is dynamically linked: build shoal with CGO_ENABLED=0 for it", path)
		}
	}
	return nil
}

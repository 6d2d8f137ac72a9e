package main

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/runtime"
)

// newExecEnvCommand is the exec helper the runtime runs inside a container
// whose environment or command line holds a Secret's value: it reads the
// real process from a file on a tmpfs and execs it (runtime/exec_env.go).
// With "-- COMMAND [ARG...]" it execs that command with the file's
// environment instead: how exec probes and hooks see the variables the
// container's process sees. It is not for people: hidden.
func newExecEnvCommand() *cobra.Command {
	return &cobra.Command{
		Use:    runtime.ExecEnvArg + " FILE [-- COMMAND [ARG...]]",
		Hidden: true,
		// The command's own flags are not ours.
		DisableFlagParsing: true,
		RunE: func(cmd *cobra.Command, args []string) error {
			switch {
			case len(args) == 1:
				return execEnv(args[0], nil)
			case len(args) > 2 && args[1] == "--":
				return execEnv(args[0], args[2:])
			}
			return fmt.Errorf("usage: %s", cmd.Use)
		},
	}
}

// execEnv execs the process in file, or command with file's environment.
func execEnv(file string, command []string) error {
	b, err := os.ReadFile(file)
	if err != nil {
		return err
	}
	var p runtime.ExecProcess
	if err := json.Unmarshal(b, &p); err != nil {
		return fmt.Errorf("%s: %w", file, err)
	}
	if command != nil {
		p.Args = command
	}
	if len(p.Args) == 0 {
		return fmt.Errorf("%s: no command", file)
	}
	path, err := lookPath(p.Args[0], p.Env)
	if err != nil {
		return err
	}
	return syscall.Exec(path, p.Args, p.Env)
}

// lookPath finds a command as execve(2) callers do, on the PATH of the
// environment it will run with.
func lookPath(name string, env []string) (string, error) {
	if strings.Contains(name, "/") {
		return name, nil
	}
	path := "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
	for _, kv := range env {
		if v, ok := strings.CutPrefix(kv, "PATH="); ok {
			path = v
		}
	}
	for _, dir := range filepath.SplitList(path) {
		if dir == "" {
			dir = "."
		}
		p := filepath.Join(dir, name)
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s: not found on PATH %s", name, path)
}

// Command shoal is the one binary of a shoal cluster: the agent that runs on every machine and the
// command-line tools that read a repository or a cluster. This package parses flags and prints;
// the logic lives in the packages it calls.
package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	// CronJob time zones are checked against an embedded zone database so that every node, and
	// `shoal validate` on a laptop, gives the same verdict whatever the machine has installed.
	_ "time/tzdata"

	"github.com/spf13/cobra"
)

// exitError carries a process exit code through cobra without printing anything more: the
// command has already said what it needed to.
type exitError struct{ code int }

func (e exitError) Error() string { return fmt.Sprintf("exit status %d", e.code) }

func main() {
	os.Exit(run(os.Args[1:], os.Stdout, os.Stderr))
}

// run executes the command line and returns the process exit code. It is main without the
// process, so tests can call it.
func run(args []string, stdout, stderr io.Writer) int {
	root := newRootCommand()
	root.SetArgs(args)
	root.SetOut(stdout)
	root.SetErr(stderr)
	err := root.Execute()
	var ee exitError
	switch {
	case err == nil:
		return 0
	case errors.As(err, &ee):
		return ee.code
	default:
		fmt.Fprintln(stderr, "error:", err)
		return 1
	}
}

func newRootCommand() *cobra.Command {
	root := &cobra.Command{
		Use:   "shoal",
		Short: "shoal runs containers on a cluster of machines from a Git repository",
		Long: `shoal runs containers on a cluster of machines from a Git repository of
Kubernetes-style YAML. There is no API server: the only way to change the cluster is a commit.`,
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(
		newValidateCommand(),
		newPlanCommand(),
		newSecretCommand(),
		newAgentCommand(),
		newStatusCommand(),
		newGetCommand(),
		newImageCommand(),
		newUpCommand(),
		newDownCommand(),
		newRolloutCommand(),
		newLogsCommand(),
		newExecEnvCommand(),
		newNodeCommand(),
		newVersionCommand(),
	)
	return root
}

package main

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

func newRolloutCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "rollout",
		Short: "Follow the rollout of a Deployment, StatefulSet or DaemonSet",
	}
	cmd.AddCommand(newRolloutStatusCommand())
	return cmd
}

// rolloutKinds maps what users type to the workload kinds with a rollout.
var rolloutKinds = map[string]string{
	"deployment": "Deployment", "deployments": "Deployment", "deploy": "Deployment",
	"statefulset": "StatefulSet", "statefulsets": "StatefulSet", "sts": "StatefulSet",
	"daemonset": "DaemonSet", "daemonsets": "DaemonSet", "ds": "DaemonSet",
}

func newRolloutStatusCommand() *cobra.Command {
	var (
		srv       serverFlags
		namespace string
		watch     bool
		timeout   time.Duration
	)
	cmd := &cobra.Command{
		Use:   "status KIND/NAME [-n NS]",
		Short: "Show a workload's rollout and, by default, wait until it completes",
		Long: `Show how far a Deployment, StatefulSet or DaemonSet is from running the template of the
commit the cluster runs: pods updated, ready, old and stopping, as kubectl rollout status does.
With --watch (the default) it prints each change and returns once the rollout is complete
(exit 0), or fails after --timeout (exit 1). The workload's recorded events follow the first
line, so a stuck rollout says why.`,
		Example: `  shoal rollout status deployment/web -n hello
  shoal rollout status sts/db -n shop --watch=false`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			kindName := strings.SplitN(args[0], "/", 2)
			if len(kindName) != 2 || kindName[1] == "" {
				return fmt.Errorf("%q: want KIND/NAME, such as deployment/web", args[0])
			}
			kind, ok := rolloutKinds[strings.ToLower(kindName[0])]
			if !ok {
				return fmt.Errorf("%q has no rollout: use deployment, statefulset or daemonset", kindName[0])
			}
			c, err := srv.client()
			if err != nil {
				return err
			}
			ctx := cmd.Context()
			ctx, cancel := context.WithTimeout(ctx, timeout)
			defer cancel()
			out := cmd.OutOrStdout()
			last, shown, first := "", 0, true
			for {
				st, err := c.Rollout(ctx, kind, namespace, kindName[1])
				if err != nil {
					if ctx.Err() != nil {
						return fmt.Errorf("rollout not complete within %s: %s", timeout, last)
					}
					return err
				}
				// The latest three events at first, then each new one.
				from := min(shown, len(st.Events))
				if first {
					from = max(0, len(st.Events)-3)
				}
				for _, e := range st.Events[from:] {
					fmt.Fprintf(out, "  event %s: %s\n", e.Reason, e.Message)
				}
				shown, first = len(st.Events), false
				if msg := st.Message(); msg != last {
					fmt.Fprintln(out, msg)
					last = msg
				}
				if st.Complete {
					return nil
				}
				if !watch {
					return errors.New("rollout not complete")
				}
				select {
				case <-ctx.Done():
					return fmt.Errorf("rollout not complete within %s: %s", timeout, last)
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	srv.register(cmd)
	cmd.Flags().StringVarP(&namespace, "namespace", "n", "default", "the workload's namespace")
	cmd.Flags().BoolVarP(&watch, "watch", "w", true, "wait until the rollout completes")
	cmd.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait")
	return cmd
}

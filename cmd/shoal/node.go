package main

import (
	"fmt"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/localcluster"
	"github.com/shoal-dev/shoal/state"
)

func newNodeCommand() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "node",
		Short: "Change the nodes of a local cluster",
		Args:  cobra.NoArgs,
	}
	cmd.AddCommand(newNodeAddCommand())
	return cmd
}

func newNodeAddCommand() *cobra.Command {
	var (
		dir     string
		o       localcluster.NodeOptions
		timeout time.Duration
		noWait  bool
	)
	cmd := &cobra.Command{
		Use:   "add [--dir DIR]",
		Short: "Add a node to the local cluster that shoal up made",
		Long: `Add one node to the running local cluster in --dir, set up as the others: a network namespace
on the cluster's bridge at the next address, a private containerd with the --image archives
imported, and an agent that joins the others by gossip. The leader gives it a pod CIDR,
DaemonSets start their pod on it, and the scheduler places pods on it. It waits until the
cluster reports the node Ready. shoal down removes it with the rest.

Up does not remember its --image and --agent-arg flags: give the same ones again.`,
		Example: `  shoal node add --image dist/images/web-1.0.tar`,
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			out := cmd.OutOrStdout()
			o.Out = out
			rec, err := localcluster.AddNode(ctx, dir, o)
			if err != nil {
				return err
			}
			n := rec.Nodes[len(rec.Nodes)-1]
			if noWait {
				return nil
			}
			c, err := rec.Client()
			if err != nil {
				return err
			}
			deadline := time.Now().Add(timeout)
			last := "not known yet"
			for {
				if list, err := c.Nodes(ctx); err != nil {
					last = err.Error()
				} else {
					for _, m := range list.Nodes {
						if m.Name == n.Name {
							last = m.Status.String()
						}
					}
				}
				if last == state.NodeReady.String() {
					fmt.Fprintf(out, "ready     %s at %s\n", n.Name, n.Addr)
					return nil
				}
				if time.Now().After(deadline) {
					return fmt.Errorf("node %s not Ready after %s (%s); see %s", n.Name, timeout, last, n.LogFile)
				}
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-time.After(500 * time.Millisecond):
				}
			}
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&dir, "dir", localcluster.DefaultDir, "the directory given to shoal up")
	fl.StringArrayVar(&o.Images, "image", nil, "an image tarball to import into the node's containerd (repeatable)")
	fl.StringArrayVar(&o.AgentArgs, "agent-arg", nil, "an extra `shoal agent` flag (repeatable): the ones given to shoal up")
	fl.DurationVar(&timeout, "timeout", 2*time.Minute, "how long to wait for the node to be Ready")
	fl.BoolVar(&noWait, "no-wait", false, "return once the agent is started")
	return cmd
}

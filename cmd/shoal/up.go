package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/netip"
	"os"
	"sort"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/internal/localcluster"
)

func newUpCommand() *cobra.Command {
	var (
		o       localcluster.Options
		subnet  string
		timeout time.Duration
		noWait  bool
	)
	cmd := &cobra.Command{
		Use:   "up --repo DIR|URL [--nodes N]",
		Short: "Run a local cluster on this machine: one network namespace, containerd and agent per node",
		Long: `Run a real shoal cluster on this machine, each node set up as a machine of its own would be:
a network namespace on a shared bridge with its own address, a private containerd, and an agent
that joins the others by gossip. The agents follow --repo: a Git URL, a local repository, or a
plain directory that up turns into a repository of its own (commit there to deploy).

It shows the nodes joining, the leader, the commit and the pods getting ready, then how to reach
the Services and how to stop. Everything lives under --dir; shoal down removes it all.
Needs root, containerd, runc, iproute2, util-linux (nsenter), iptables and the CNI plugins.`,
		Example: `  shoal up --repo examples/hello --nodes 3 --image dist/images/web-1.0.tar
  shoal down`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			p, err := netip.ParsePrefix(subnet)
			if err != nil {
				return fmt.Errorf("--subnet: %w", err)
			}
			o.Subnet = p.Masked()
			out := cmd.OutOrStdout()
			o.Out = out
			rec, err := localcluster.Up(ctx, o)
			if err != nil {
				return err
			}
			if !noWait {
				wctx, cancel := context.WithTimeout(ctx, timeout)
				err := rec.Wait(wctx, out)
				cancel()
				if err != nil {
					fmt.Fprintf(out, "\nThe cluster is up but not ready. Look at the agents' logs (%s/node*/agent.log);\nshoal down --dir %s removes it.\n", rec.Dir, rec.Dir)
					return err
				}
			}
			printReach(out, rec)
			return nil
		},
	}
	fl := cmd.Flags()
	fl.IntVar(&o.Nodes, "nodes", 3, "how many nodes")
	fl.StringVar(&o.Repo, "repo", "", "what the cluster follows: a Git URL, a local repository or a plain directory")
	fl.StringVar(&o.Branch, "branch", "", "the branch to follow (default main)")
	fl.StringVar(&o.Path, "path", "", "the directory of the repository holding the manifests")
	fl.StringVar(&o.Dir, "dir", localcluster.DefaultDir, "where the cluster keeps everything")
	fl.StringVar(&o.Name, "name", localcluster.DefaultName, "prefix of the bridge, namespaces and links (at most 8 characters)")
	fl.StringVar(&subnet, "subnet", localcluster.DefaultSubnet.String(), "the nodes' network: the host takes .1, node i takes .(10+i)")
	fl.StringArrayVar(&o.Images, "image", nil, "an image tarball to import into every node's containerd (repeatable)")
	fl.StringArrayVar(&o.AgentArgs, "agent-arg", nil, "an extra `shoal agent` flag for every node (repeatable)")
	fl.DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the cluster to run its commit")
	fl.BoolVar(&noWait, "no-wait", false, "return once the agents are started")
	_ = cmd.MarkFlagRequired("repo")
	return cmd
}

func newDownCommand() *cobra.Command {
	var dir string
	cmd := &cobra.Command{
		Use:   "down",
		Short: "Remove the local cluster that shoal up made",
		Long: `Stop the agents, remove every container, stop the containerd daemons, and delete the network
namespaces, links, bridge, mounts and files that shoal up made. It can be run again after a
failure: what is gone already is skipped.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			ctx := cmd.Context()
			if ctx == nil {
				ctx = context.Background()
			}
			err := localcluster.Down(ctx, dir, cmd.OutOrStdout())
			if errors.Is(err, os.ErrNotExist) {
				fmt.Fprintf(cmd.OutOrStdout(), "no local cluster in %s: nothing to do\n", dir)
				return nil
			}
			return err
		},
	}
	cmd.Flags().StringVar(&dir, "dir", localcluster.DefaultDir, "the directory given to shoal up")
	return cmd
}

// printReach says how to reach the cluster's Services and how to stop.
func printReach(out io.Writer, rec *localcluster.Record) {
	nodeAddr := rec.Nodes[0].Addr
	fmt.Fprintln(out)
	var lines []string
	if c, err := rec.Client(); err == nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		svcs, err := c.Services(ctx, "")
		cancel()
		if err == nil {
			for _, s := range svcs.Services {
				for _, p := range s.Ports {
					switch {
					case p.NodePort != 0:
						lines = append(lines, fmt.Sprintf("  %s/%s  http://%s:%d/  (NodePort, on every node; ClusterIP %s:%d inside a node)",
							s.Namespace, s.Name, nodeAddr, p.NodePort, s.ClusterIP, p.Port))
					case s.ClusterIP != "":
						lines = append(lines, fmt.Sprintf("  %s/%s  %s:%d  (ClusterIP, inside a node)", s.Namespace, s.Name, s.ClusterIP, p.Port))
					}
				}
			}
		}
	}
	sort.Strings(lines)
	if len(lines) > 0 {
		fmt.Fprintln(out, "Services:")
		for _, l := range lines {
			fmt.Fprintln(out, l)
		}
	}
	fmt.Fprintf(out, "Inside a node:  nsenter --net=/run/netns/%s curl ...  (ClusterIPs, pod IPs, DNS)\n", rec.Nodes[0].NetNS)
	fmt.Fprintf(out, "Look around:    export SHOAL_SERVER=%s SHOAL_CLUSTER_KEY_FILE=%s\n", rec.Nodes[0].StatusAddr, rec.KeyFile)
	fmt.Fprintf(out, "                shoal status; shoal get nodes; shoal get pods -A\n")
	if rec.RepoCreated {
		fmt.Fprintf(out, "Deploy:         commit to %s\n", rec.Repo)
	} else {
		fmt.Fprintf(out, "Deploy:         push to %s\n", rec.Repo)
	}
	fmt.Fprintf(out, "Logs:           %s/node*/agent.log\n", rec.Dir)
	fmt.Fprintf(out, "Stop:           shoal down --dir %s\n", rec.Dir)
}

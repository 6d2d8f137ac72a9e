package main

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/plan"
)

// clusterFlags are `shoal plan`'s way to a live cluster for the scheduling dry run: like
// serverFlags, but off unless --cluster is given, since a plan needs no cluster.
type clusterFlags struct {
	addr    string
	keyFile string
}

func (f *clusterFlags) register(cmd *cobra.Command) {
	cmd.Flags().StringVar(&f.addr, "cluster", "",
		"an agent's status API (host:port or URL): also dry-run HEAD's scheduling against that cluster's nodes and pods")
	cmd.Flags().StringVar(&f.keyFile, "cluster-key-file", os.Getenv("SHOAL_CLUSTER_KEY_FILE"),
		"the cluster key, needed with --cluster for an agent that is not on localhost ($SHOAL_CLUSTER_KEY_FILE)")
}

func (f *clusterFlags) client() (*agent.Client, error) {
	return (&serverFlags{server: f.addr, keyFile: f.keyFile}).client()
}

// dryRun reads the cluster and simulates head on it. A head that is invalid is not simulated:
// the cluster would refuse it and keep running its commit.
func (f *clusterFlags) dryRun(ctx context.Context, repo *gitsource.Repo, path string, p *plan.Plan, headCommit string, head *manifest.Set, now time.Time) (*plan.ClusterPlan, error) {
	if !p.Valid() {
		return &plan.ClusterPlan{Server: f.addr, Head: headCommit,
			Skipped: "HEAD is invalid: the cluster would refuse it and keep running its commit"}, nil
	}
	c, err := f.client()
	if err != nil {
		return nil, err
	}
	st, err := c.Status(ctx)
	if err != nil {
		return nil, err
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return nil, err
	}
	pods, err := c.Pods(ctx, "")
	if err != nil {
		return nil, err
	}
	in := plan.ClusterInput{
		Server:   f.addr,
		Nodes:    nodes.Nodes,
		Pods:     pods.Pods,
		Running:  st.Pinned,
		Head:     headCommit,
		HeadSet:  head,
		Now:      now.UTC(),
		BarePods: agent.BarePodCommands,
		TimeZone: time.LoadLocation,
	}
	if st.Pinned != nil && st.Pinned.Commit != headCommit {
		// Only the prune annotation of removed objects is read from it; a clone that lacks the
		// commit costs that, and the report says so.
		if set, _, _, err := loadAt(repo, st.Pinned.Commit, path); err == nil {
			in.RunningSet = set
		}
	}
	return plan.Simulate(in)
}

package main

import (
	"context"
	"os"
	"time"

	"github.com/spf13/cobra"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/cluster"
	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/plan"
	"github.com/shoal-dev/shoal/state"
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
	c := &agent.Client{Server: f.addr}
	if f.keyFile != "" {
		key, err := cluster.LoadKeyFile(f.keyFile)
		if err != nil {
			return nil, err
		}
		c.Token = agent.StatusToken(key)
	}
	return c, nil
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
		BarePods: barePodCommands,
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

// barePodCommands is the leader's bare-Pod step (agent.PlanBarePods) as state commands, in the
// order the leader applies them: purges, deletions, then creations.
func barePodCommands(set *manifest.Set, commit string, v *state.Snapshot, now time.Time) []state.Command {
	var pods []*corev1.Pod
	for _, o := range set.Objects() {
		if p, ok := o.Obj.(*corev1.Pod); ok && o.Key.Kind == "Pod" {
			pods = append(pods, p)
		}
	}
	bp := agent.PlanBarePods(pods, commit, v, now)
	var out []state.Command
	if len(bp.Purge) > 0 {
		out = append(out, &state.DeletePods{UIDs: bp.Purge})
	}
	if len(bp.Delete) > 0 {
		ch := make([]state.DesiredChange, len(bp.Delete))
		for i, u := range bp.Delete {
			ch[i] = state.DesiredChange{UID: u, Desired: state.DesiredDelete}
		}
		out = append(out, &state.SetPodsDesired{Changes: ch})
	}
	if len(bp.Create) > 0 {
		out = append(out, &state.CreatePods{Pods: bp.Create, Time: now})
	}
	return out
}

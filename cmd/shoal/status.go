package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"
	"k8s.io/apimachinery/pkg/util/duration"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/cluster"
)

// serverFlags are how the reading commands reach an agent's status API.
type serverFlags struct {
	server  string
	keyFile string
}

func (s *serverFlags) register(cmd *cobra.Command) {
	def := os.Getenv("SHOAL_SERVER")
	if def == "" {
		def = agent.DefaultStatusAddr
	}
	cmd.Flags().StringVar(&s.server, "server", def, "the agent's status API (host:port or URL; $SHOAL_SERVER)")
	cmd.Flags().StringVar(&s.keyFile, "cluster-key-file", os.Getenv("SHOAL_CLUSTER_KEY_FILE"),
		"the cluster key, needed for an agent that is not on localhost ($SHOAL_CLUSTER_KEY_FILE)")
}

func (s *serverFlags) client() (*agent.Client, error) {
	c := &agent.Client{Server: s.server}
	if s.keyFile != "" {
		key, err := cluster.LoadKeyFile(s.keyFile)
		if err != nil {
			return nil, err
		}
		c.Token = agent.StatusToken(key)
	}
	return c, nil
}

func newStatusCommand() *cobra.Command {
	var (
		srv    serverFlags
		output string
	)
	cmd := &cobra.Command{
		Use:   "status [--server ADDR] [-o json]",
		Short: "Show the cluster: leader, members, the pinned commit and refused commits",
		Long: `Show the cluster as one agent's replica sees it: the leader, the gossip members, the commit
the cluster runs and the commits that were refused, with why.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			c, err := srv.client()
			if err != nil {
				return err
			}
			st, err := c.Status(cmd.Context())
			if err != nil {
				return err
			}
			if output == "json" {
				enc := json.NewEncoder(cmd.OutOrStdout())
				enc.SetIndent("", "  ")
				return enc.Encode(st)
			}
			return writeStatus(cmd.OutOrStdout(), st, time.Now())
		},
	}
	srv.register(cmd)
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text or json")
	return cmd
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func age(now, t time.Time) string {
	if t.IsZero() {
		return "<unknown>"
	}
	return duration.HumanDuration(now.Sub(t))
}

func writeStatus(w io.Writer, st agent.ClusterStatus, now time.Time) error {
	leader := st.Leader
	if leader == "" {
		leader = "<none>"
	}
	fmt.Fprintf(w, "Cluster:  %s\n", orNone(st.ClusterID))
	fmt.Fprintf(w, "Leader:   %s\n", leader)
	fmt.Fprintf(w, "Answered: %s (replica at index %d)\n", st.Node, st.Index)
	if st.Pinned != nil {
		fmt.Fprintf(w, "Commit:   %s (%s), pinned %s ago\n", short(st.Pinned.Commit), orNone(st.Pinned.Ref), age(now, st.Pinned.Time))
	} else {
		fmt.Fprintf(w, "Commit:   <none pinned yet>\n")
	}
	if st.Fetched != "" && (st.Pinned == nil || st.Fetched != st.Pinned.Commit) {
		fmt.Fprintf(w, "Fetched:  %s (newest on this node's clone)\n", short(st.Fetched))
	}
	fmt.Fprintf(w, "Nodes:    %d\nPods:     %d\n", st.Nodes, st.Pods)
	var refused []string
	for _, r := range st.Revisions {
		if r.Refused {
			refused = append(refused, fmt.Sprintf("  %s  %s ago: %s", short(r.Commit), age(now, r.Time), r.Reason))
		}
	}
	if len(refused) > 0 {
		fmt.Fprintln(w, "\nRefused commits:")
		for _, r := range refused {
			fmt.Fprintln(w, r)
		}
	}
	fmt.Fprintln(w, "\nMembers:")
	tw := tabwriter.NewWriter(w, 0, 8, 3, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTATUS\tADDRESS\tSINCE")
	for _, m := range st.Members {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", m.Name, m.Status, m.Addr, age(now, m.Since))
	}
	return tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "<none>"
	}
	return s
}

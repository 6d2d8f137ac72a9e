package main

import (
	"fmt"
	"io"
	"time"

	"github.com/spf13/cobra"

	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/plan"
)

func newPlanCommand() *cobra.Command {
	var (
		repoDir string
		path    string
		output  string
		clu     clusterFlags
	)
	cmd := &cobra.Command{
		Use:   "plan [--repo DIR] [--path P] [--cluster ADDR] BASE HEAD",
		Short: "Show what the commit HEAD will change relative to BASE",
		Long: `Show what deploying HEAD changes relative to BASE: the objects added, changed and removed,
their field-level differences, and what each change will do in the cluster ("rolling update of
3 pods, maxSurge 1, maxUnavailable 0"). HEAD's validation errors are listed too. BASE and HEAD
are any revisions Git understands: a branch, a tag, a commit, HEAD~1.

Secret values are never shown, only which keys changed.

With --cluster ADDR (an agent's status API), it also reads that cluster's nodes and pods and
runs the leader's own decisions for HEAD on a local copy of them: the workload controllers, the
bare-Pod controller and the scheduler. It reports, per workload, the pods that would be created
and stopped, the nodes the new ones would be placed on, and for those that fit nowhere the
scheduler's reason. Nothing is written to the cluster. What is not simulated (config-change
rolls, pods becoming ready, gossip liveness) is listed in the output.

Exit status: 0 no change, 2 changes, 1 HEAD is invalid (or an error), 3 (with --cluster) a pod
would fit on no node, so a pull-request check can run it. Use -o markdown for a pull-request
comment.`,
		Example: `  shoal plan main HEAD
  shoal plan --repo ./deploy --path clusters/prod origin/main my-branch -o markdown
  shoal plan --cluster 10.77.0.11:7949 --cluster-key-file cluster.key origin/main HEAD`,
		Args: cobra.ExactArgs(2),
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := checkOutput(output, "text", "json", "markdown"); err != nil {
				return err
			}
			repo, err := gitsource.OpenLocal(repoDir)
			if err != nil {
				return err
			}
			base, _, _, err := loadAt(repo, args[0], path)
			if err != nil {
				return err
			}
			head, headErrs, headCommit, err := loadAt(repo, args[1], path)
			if err != nil {
				return err
			}
			p := plan.Compute(base, head, headErrs)
			if clu.addr != "" {
				if p.Cluster, err = clu.dryRun(cmd.Context(), repo, path, p, headCommit, head, time.Now()); err != nil {
					return fmt.Errorf("dry run against %s: %w", clu.addr, err)
				}
			}
			if err := writePlan(cmd.OutOrStdout(), output, p); err != nil {
				return err
			}
			if code := p.ExitCode(); code != 0 {
				return exitError{code: code}
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&repoDir, "repo", ".", "the Git repository (a working clone or a bare repository)")
	cmd.Flags().StringVar(&path, "path", ".", "the directory inside the repository that holds the manifests")
	cmd.Flags().StringVarP(&output, "output", "o", "text", "output format: text, json or markdown")
	clu.register(cmd)
	return cmd
}

// loadAt reads and validates the manifests under path at the revision rev, and returns the
// commit rev names. Validation problems are returned beside the set, not as an error: a plan
// reports them.
func loadAt(repo *gitsource.Repo, rev, path string) (*manifest.Set, manifest.ErrorList, string, error) {
	commit, err := repo.Resolve(rev)
	if err != nil {
		return nil, nil, "", fmt.Errorf("resolve %s: %w", rev, err)
	}
	fsys, err := repo.FS(commit)
	if err != nil {
		return nil, nil, "", fmt.Errorf("read %s (%s): %w", rev, commit, err)
	}
	set, errs := manifest.Load(fsys, path)
	return set, errs, commit.String(), nil
}

func writePlan(w io.Writer, output string, p *plan.Plan) error {
	switch output {
	case "json":
		return plan.WriteJSON(w, p)
	case "markdown":
		return plan.WriteMarkdown(w, p)
	default:
		return plan.WriteText(w, p)
	}
}

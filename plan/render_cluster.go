package plan

import (
	"bytes"
	"fmt"
	"strings"
)

// The renderers' part for a scheduling dry run (Plan.Cluster). Like the rest, they only format.

// clusterHeadline is the dry run's first sentence, shared by text and markdown.
func clusterHeadline(c *ClusterPlan) string {
	if c.Skipped != "" {
		return fmt.Sprintf("Dry run of %s on the cluster at %s", shortCommit(c.Head), c.Server)
	}
	running := "no commit pinned yet"
	if c.Running != "" {
		running = "it runs " + shortCommit(c.Running)
	}
	return fmt.Sprintf("Dry run of %s on the cluster at %s (%s, %s; %s)",
		shortCommit(c.Head), c.Server, count(c.Nodes, "node"), count(c.Pods, "pod"), running)
}

// workloadCounts is "3 new pods, 1 pending, 1 to stop", or "" when all are zero.
func workloadCounts(w Placement) string {
	var parts []string
	if w.New > 0 {
		parts = append(parts, count(w.New, "new pod"))
	}
	if w.Pending > 0 {
		parts = append(parts, fmt.Sprintf("%d already pending", w.Pending))
	}
	if w.Stopping > 0 {
		parts = append(parts, fmt.Sprintf("%d to stop", w.Stopping))
	}
	return strings.Join(parts, ", ")
}

// unfitText is "2 would not fit: 0/3 nodes are available: 3 insufficient cpu."
func unfitText(u Unfit) string {
	return fmt.Sprintf("%d would not fit: %s", u.Pods, u.Reason)
}

// writeClusterText appends the dry run to a text plan.
func writeClusterText(b *bytes.Buffer, c *ClusterPlan, paint func(code, s string) string) {
	fmt.Fprintf(b, "\n%s:\n", paint(ansiBold, clusterHeadline(c)))
	if c.Skipped != "" {
		b.WriteString("  not run: " + c.Skipped + "\n")
		return
	}
	if len(c.Workloads) == 0 {
		b.WriteString("  no pod to create, stop or place.\n")
	}
	for _, w := range c.Workloads {
		fmt.Fprintf(b, "  %s: %s\n", w.Workload, workloadCounts(w))
		if len(w.Placed) > 0 {
			b.WriteString("      " + paint(ansiGreen, "placed on "+placedText(w.Placed)) + "\n")
		}
		for _, u := range w.Unfit {
			b.WriteString("      " + paint(ansiRed, unfitText(u)) + "\n")
		}
	}
	if n := c.UnfitPods(); n > 0 {
		fmt.Fprintf(b, "  %s\n", paint(ansiRed, fmt.Sprintf("%s would fit on no node.", count(n, "pod"))))
	}
	if len(c.NotSimulated) > 0 {
		b.WriteString("  Not simulated:\n")
		for _, s := range c.NotSimulated {
			b.WriteString("    - " + s + "\n")
		}
	}
}

// writeClusterMarkdown appends the dry run to a markdown plan.
func writeClusterMarkdown(b *bytes.Buffer, c *ClusterPlan) {
	fmt.Fprintf(b, "#### %s\n\n", mdText(clusterHeadline(c)))
	if c.Skipped != "" {
		fmt.Fprintf(b, "Not run: %s\n\n", mdText(c.Skipped))
		return
	}
	if len(c.Workloads) == 0 {
		b.WriteString("No pod to create, stop or place.\n\n")
	} else {
		b.WriteString("| Workload | Pods | Placed on | Would not fit |\n|---|---|---|---|\n")
		for _, w := range c.Workloads {
			unfits := make([]string, len(w.Unfit))
			for i, u := range w.Unfit {
				unfits[i] = mdText(unfitText(u))
			}
			fmt.Fprintf(b, "| %s | %s | %s | %s |\n", mdText(w.Workload.String()), mdText(workloadCounts(w)),
				mdText(placedText(w.Placed)), strings.Join(unfits, "<br>"))
		}
		b.WriteString("\n")
	}
	if n := c.UnfitPods(); n > 0 {
		fmt.Fprintf(b, "**%s would fit on no node.**\n\n", count(n, "pod"))
	}
	if len(c.NotSimulated) > 0 {
		b.WriteString("<details>\n<summary>Not simulated</summary>\n\n")
		for _, s := range c.NotSimulated {
			b.WriteString("- " + mdText(s) + "\n")
		}
		b.WriteString("\n</details>\n\n")
	}
}

// jsonCluster is the "cluster" member of the JSON plan (see WriteJSON).
type jsonCluster struct {
	Server       string          `json:"server"`
	Running      string          `json:"running,omitempty"`
	Head         string          `json:"head"`
	Nodes        int             `json:"nodes"`
	Pods         int             `json:"pods"`
	Skipped      string          `json:"skipped,omitempty"`
	Unfit        int             `json:"unfit"`
	Workloads    []jsonPlacement `json:"workloads"`
	NotSimulated []string        `json:"notSimulated"`
}

type jsonPlacement struct {
	Object    string          `json:"object"`
	Kind      string          `json:"kind"`
	Namespace string          `json:"namespace,omitempty"`
	Name      string          `json:"name"`
	New       int             `json:"new"`
	Pending   int             `json:"pending"`
	Stopping  int             `json:"stopping"`
	Placed    []jsonNodeCount `json:"placed"`
	Unfit     []jsonUnfit     `json:"unfit"`
}

type jsonNodeCount struct {
	Node string `json:"node"`
	Pods int    `json:"pods"`
}

type jsonUnfit struct {
	Pods   int    `json:"pods"`
	Reason string `json:"reason"`
}

func toJSONCluster(c *ClusterPlan) *jsonCluster {
	if c == nil {
		return nil
	}
	out := &jsonCluster{
		Server: c.Server, Running: c.Running, Head: c.Head, Nodes: c.Nodes, Pods: c.Pods,
		Skipped: c.Skipped, Unfit: c.UnfitPods(),
		Workloads:    make([]jsonPlacement, 0, len(c.Workloads)),
		NotSimulated: append([]string{}, c.NotSimulated...),
	}
	for _, w := range c.Workloads {
		jp := jsonPlacement{
			Object: w.Workload.String(), Kind: w.Workload.Kind, Namespace: w.Workload.Namespace, Name: w.Workload.Name,
			New: w.New, Pending: w.Pending, Stopping: w.Stopping,
			Placed: make([]jsonNodeCount, 0, len(w.Placed)),
			Unfit:  make([]jsonUnfit, 0, len(w.Unfit)),
		}
		for _, n := range w.Placed {
			jp.Placed = append(jp.Placed, jsonNodeCount(n))
		}
		for _, u := range w.Unfit {
			jp.Unfit = append(jp.Unfit, jsonUnfit(u))
		}
		out.Workloads = append(out.Workloads, jp)
	}
	return out
}

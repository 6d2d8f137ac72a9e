package scheduler

import (
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/cockroachdb/datadriven"
)

// TestGolden runs the placement scripts in testdata. Commands:
//
//	nodes                      lines: nodes; starts a fresh cluster
//	bind                       lines: "NODE: POD"; pods already running
//	schedule [strategy=S] [candidates=all]
//	                           lines: pods; prints bindings and reasons and
//	                           keeps the bindings in the cluster
//	verify                     lines: "NODE: POD"; re-checks bindings against the cluster
//	state                      prints every node's totals and pods
//
// Rewrite the expected output with: go test ./scheduler -run TestGolden -rewrite
func TestGolden(t *testing.T) {
	// Only the scripts: rapid keeps its failure files under testdata/rapid.
	paths, err := filepath.Glob("testdata/*.txt")
	if err != nil || len(paths) == 0 {
		t.Fatalf("no scripts in testdata: %v", err)
	}
	for _, path := range paths {
		t.Run(filepath.Base(path), func(t *testing.T) { runScript(t, path) })
	}
}

func runScript(t *testing.T, path string) {
	var cs *ClusterState
	datadriven.RunTest(t, path, func(t *testing.T, td *datadriven.TestData) string {
		switch td.Cmd {
		case "nodes":
			var nodes []Node
			for _, l := range lines(td.Input) {
				nodes = append(nodes, parseNode(t, l))
			}
			cs = NewClusterState(StaticSnapshot{NodeList: nodes})
			return describeState(cs)
		case "bind":
			for _, l := range lines(td.Input) {
				node, pod, _ := strings.Cut(l, ":")
				if err := cs.Bind(parsePod(t, strings.TrimSpace(pod)), node); err != nil {
					t.Fatal(err)
				}
			}
			return describeState(cs)
		case "schedule":
			cfg := Config{}
			if td.HasArg("strategy") {
				var s string
				td.ScanArgs(t, "strategy", &s)
				cfg.Strategy = Strategy(s)
			}
			if td.HasArg("candidates") {
				cfg.CandidatePercent = 100
			}
			var pods []Pod
			for _, l := range lines(td.Input) {
				pods = append(pods, parsePod(t, l))
			}
			res := New(cfg).ScheduleState(cs, pods)
			var sb strings.Builder
			for _, b := range res.Bindings {
				fmt.Fprintf(&sb, "%s -> %s score=%d\n", b.PodID, b.Node, b.Score)
			}
			for _, u := range res.Unplaced {
				fmt.Fprintf(&sb, "%s unplaced: %s\n", u.PodID, u.Reason)
			}
			return sb.String()
		case "verify":
			var pods []Pod
			var bs []Binding
			for _, l := range lines(td.Input) {
				node, spec, _ := strings.Cut(l, ":")
				p := parsePod(t, strings.TrimSpace(spec))
				pods = append(pods, p)
				bs = append(bs, Binding{PodID: p.ID, Node: node})
			}
			res := New(Config{}).VerifyState(cs, pods, bs)
			var sb strings.Builder
			for _, b := range res.Accepted {
				fmt.Fprintf(&sb, "accepted %s -> %s\n", b.PodID, b.Node)
			}
			for _, r := range res.Rejected {
				fmt.Fprintf(&sb, "rejected %s -> %s: %s\n", r.PodID, r.Node, r.Reason)
			}
			return sb.String()
		case "state":
			return describeState(cs)
		}
		t.Fatalf("unknown command %q", td.Cmd)
		return ""
	})
}

func lines(s string) []string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if l = strings.TrimSpace(l); l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

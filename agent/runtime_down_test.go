package agent

import (
	"fmt"
	"path/filepath"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/state"
)

// TestRuntimeUnavailableTaintsTheNode: a node whose container runtime
// cannot start takes no pods: it carries the runtime-unavailable taint
// (and keeps trying to start the runtime) instead of being a Ready node
// where pods stay Pending for ever.
func TestRuntimeUnavailableTaintsTheNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an agent")
	}
	repo := newTestRepo(t)
	repo.commit("empty", map[string]string{"ns.yaml": "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: x\n"})
	c := newTestCluster(t, repo, 1)
	c.configure = func(cfg *Config) {
		cfg.Runtime = RuntimeContainerd
		cfg.ContainerdSocket = filepath.Join(t.TempDir(), "no-containerd.sock")
		cfg.NoRoutes = true
	}
	n1 := c.start("n1")
	waitState(t, "n1 tainted runtime-unavailable", []*testAgent{n1}, func(v *state.Snapshot) error {
		n := v.Node("n1")
		if n == nil {
			return fmt.Errorf("n1 not registered")
		}
		if !slices.ContainsFunc(n.Taints, func(tn corev1.Taint) bool { return tn.Key == TaintRuntimeUnavailable && tn.Effect == "NoSchedule" }) {
			return fmt.Errorf("n1 taints %v", n.Taints)
		}
		return nil
	})
}

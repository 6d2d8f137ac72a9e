package localcluster

import (
	"context"
	"encoding/base64"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// Progress is the cluster as seen from one agent's status API.
type Progress struct {
	Nodes, NodesReady int
	Leader            string
	Pinned            string // commit
	Refused           string // the newest refused commit's reason, if newer than the pinned one
	Pods, PodsReady   int
	// Services counts the Services with an address; ServicesServing
	// those whose NodePorts all accept connections on every node (a
	// Service without NodePorts serves once its ClusterIP is allocated).
	Services, ServicesServing int
}

// Done reports whether the cluster runs its commit: every node ready,
// a leader, a pinned commit, at least minPods pods that should run, and
// every one of them ready (or finished).
func (p Progress) Done(nodes, minPods int) bool {
	return p.NodesReady == nodes && p.Leader != "" && p.Pinned != "" && p.Pods >= minPods && p.PodsReady == p.Pods &&
		p.ServicesServing == p.Services
}

// Client returns a status API client for the cluster's first node that
// answers.
func (r *Record) Client() (*agent.Client, error) {
	raw, err := os.ReadFile(r.KeyFile)
	if err != nil {
		return nil, err
	}
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", r.KeyFile, err)
	}
	if len(r.Nodes) == 0 {
		return nil, fmt.Errorf("the cluster in %s has no nodes", r.Dir)
	}
	return &agent.Client{Server: r.Nodes[0].StatusAddr, Token: agent.StatusToken(key)}, nil
}

// Observe asks the status API once.
func (r *Record) Observe(ctx context.Context, c *agent.Client) (Progress, error) {
	var p Progress
	st, err := c.Status(ctx)
	if err != nil {
		return p, err
	}
	p.Leader = st.Leader
	if st.Pinned != nil {
		p.Pinned = st.Pinned.Commit
	}
	for _, rev := range st.Revisions {
		if rev.Refused && (st.Pinned == nil || rev.Seq > st.Pinned.Seq) {
			p.Refused = short(rev.Commit) + ": " + rev.Reason
		}
	}
	nodes, err := c.Nodes(ctx)
	if err != nil {
		return p, err
	}
	p.Nodes = len(nodes.Nodes)
	for _, n := range nodes.Nodes {
		if n.Status == state.NodeReady {
			p.NodesReady++
		}
	}
	pods, err := c.Pods(ctx, "")
	if err != nil {
		return p, err
	}
	for _, pod := range pods.Pods {
		if pod.Desired != state.DesiredRun {
			continue
		}
		p.Pods++
		if pod.Status.Ready || pod.Status.Phase == state.PhaseSucceeded {
			p.PodsReady++
		}
	}
	svcs, err := c.Services(ctx, "")
	if err != nil {
		return p, err
	}
	for _, s := range svcs.Services {
		if s.ClusterIP == "" {
			continue // headless: DNS only
		}
		p.Services++
		serving := true
	ports:
		for _, port := range s.Ports {
			if port.NodePort == 0 || port.Protocol != "TCP" {
				continue
			}
			for _, n := range r.Nodes { // every node programs every Service
				if !accepts(ctx, net.JoinHostPort(n.Addr, strconv.Itoa(int(port.NodePort)))) {
					serving = false // one refusal decides it: dial no more
					break ports
				}
			}
		}
		if serving {
			p.ServicesServing++
		}
	}
	return p, nil
}

// accepts reports whether a TCP connection to addr succeeds.
func accepts(ctx context.Context, addr string) bool {
	d := net.Dialer{Timeout: time.Second}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return false
	}
	conn.Close()
	return true
}

// Wait follows the cluster until it runs its commit, printing each change
// of its progress, and gives up at ctx's end with the last progress seen.
func (r *Record) Wait(ctx context.Context, out io.Writer) error {
	if out == nil {
		out = io.Discard
	}
	c, err := r.Client()
	if err != nil {
		return err
	}
	minPods := r.expectedPods()
	var last Progress
	var lastErr error
	first := true
	tick := time.NewTicker(250 * time.Millisecond)
	defer tick.Stop()
	for {
		if err := r.agentsAlive(); err != nil {
			return err
		}
		p, err := r.Observe(ctx, c)
		lastErr = err
		if err == nil {
			if first || p.NodesReady != last.NodesReady || p.Leader != last.Leader {
				fmt.Fprintf(out, "cluster   %d/%d nodes ready, leader %s\n", p.NodesReady, len(r.Nodes), orNone(p.Leader))
			}
			if p.Pinned != last.Pinned && p.Pinned != "" {
				fmt.Fprintf(out, "commit    %s pinned\n", short(p.Pinned))
			}
			if p.Refused != last.Refused && p.Refused != "" {
				fmt.Fprintf(out, "refused   %s\n", p.Refused)
			}
			if p.Pinned != "" && (first || p.Pods != last.Pods || p.PodsReady != last.PodsReady) {
				fmt.Fprintf(out, "pods      %d/%d ready\n", p.PodsReady, p.Pods)
			}
			if p.Services > 0 && (p.Services != last.Services || p.ServicesServing != last.ServicesServing) {
				fmt.Fprintf(out, "services  %d/%d serving\n", p.ServicesServing, p.Services)
			}
			first = false
			last = p
			if p.Done(len(r.Nodes), minPods) {
				return nil
			}
		}
		select {
		case <-ctx.Done():
			if lastErr != nil {
				return fmt.Errorf("cluster not ready: %w (agent logs: %s/node*/agent.log)", lastErr, r.Dir)
			}
			return fmt.Errorf("cluster not ready: %d/%d nodes, leader %s, %d/%d pods ready, %d/%d services serving (agent logs: %s/node*/agent.log)",
				last.NodesReady, len(r.Nodes), orNone(last.Leader), last.PodsReady, last.Pods, last.ServicesServing, last.Services, r.Dir)
		case <-tick.C:
		}
	}
}

func short(commit string) string {
	if len(commit) > 12 {
		return commit[:12]
	}
	return commit
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// expectedPods counts the pods the manifests of a local repository's
// working tree ask for at least: the replicas of Deployments and
// StatefulSets, and bare Pods. Until the controllers made that many, a
// cluster with no pods yet is not done. It is 0 for a remote repository.
func (r *Record) expectedPods() int {
	if !filepath.IsAbs(r.Repo) {
		return 0
	}
	dir := "."
	if r.Path != "" {
		dir = r.Path
	}
	set, errs := manifest.Load(os.DirFS(r.Repo), dir)
	if len(errs) > 0 {
		return 0
	}
	n := 0
	for _, o := range set.Objects() {
		switch obj := o.Obj.(type) {
		case *appsv1.Deployment:
			n += replicas(obj.Spec.Replicas)
		case *appsv1.StatefulSet:
			n += replicas(obj.Spec.Replicas)
		case *corev1.Pod:
			n++
		}
	}
	return n
}

// agentsAlive returns an error naming an agent that exited, with the end
// of its log.
func (r *Record) agentsAlive() error {
	for _, n := range r.Nodes {
		if n.AgentPID > 0 && !isProcess(n.AgentPID, "agent") {
			return fmt.Errorf("the agent of %s exited; the end of %s:\n%s", n.Name, n.LogFile, tail(n.LogFile, 15))
		}
	}
	return nil
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return err.Error()
	}
	lines := strings.Split(strings.TrimRight(string(b), "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

func replicas(r *int32) int {
	if r == nil {
		return 1
	}
	return int(*r)
}

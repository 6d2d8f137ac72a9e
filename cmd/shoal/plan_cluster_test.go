package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// dryRunServer is an agent's status API holding two 1-CPU nodes and, on n1, a bare Pod "hog"
// that requests 800m of it. It answers only with the token.
func dryRunServer(t *testing.T, token, pinned string) *httptest.Server {
	t.Helper()
	nodes := []*state.Node{
		{Name: "n1", Status: state.NodeReady, Labels: map[string]string{corev1.LabelHostname: "n1"}, Allocatable: state.Resources{MilliCPU: 1000, Memory: 4 << 30, Pods: 110}},
		{Name: "n2", Status: state.NodeReady, Labels: map[string]string{corev1.LabelHostname: "n2"}, Allocatable: state.Resources{MilliCPU: 1000, Memory: 4 << 30, Pods: 110}},
	}
	// The hog's record is the one the bare-Pod controller makes for the manifest in the repository.
	created := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	rec := agent.PlanBarePods([]*corev1.Pod{hogPod(t)}, pinned, emptySnapshot(t), created).Create[0]
	rec.NodeName = "n1"
	rec.Status = state.PodStatus{Phase: state.PhaseRunning, Ready: true}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, r *http.Request, v any) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, agent.ClusterStatus{Node: "n1", Leader: "n1", Nodes: 2, Pods: 1,
			Pinned: &state.Revision{Seq: 1, Commit: pinned, Ref: "refs/heads/main", Time: created}})
	})
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, agent.NodeList{Leader: "n1", Nodes: nodes})
	})
	mux.HandleFunc("GET /v1/pods", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, agent.PodList{Pods: []*state.Pod{&rec}})
	})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	return srv
}

// hogPod is hog.yaml as manifest.Load decodes it, defaults and all.
func hogPod(t *testing.T) *corev1.Pod {
	objs, errs := manifest.Decode("hog.yaml", []byte(hogYAML))
	if len(errs) > 0 || len(objs) != 1 {
		t.Fatalf("hog.yaml: %v", errs)
	}
	return objs[0].Obj.(*corev1.Pod)
}

const hogYAML = `apiVersion: v1
kind: Pod
metadata: {name: hog, namespace: default}
spec:
  containers:
    - name: hog
      image: hog:1
      resources: {requests: {cpu: 800m}}
`

func emptySnapshot(t *testing.T) *state.Snapshot {
	s, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	return s.Snapshot()
}

func webDeployment(replicas, cpu string) string {
	return strings.NewReplacer("REPLICAS", replicas, "CPU", cpu).Replace(`apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: REPLICAS
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: web:1
          resources: {requests: {cpu: CPU}}
`)
}

func TestPlanCluster(t *testing.T) {
	if _, err := exec.LookPath("git"); err != nil {
		t.Skip("the plan test builds its repository with the git command, which is not installed")
	}
	repo := t.TempDir()
	git(t, repo, "init", "-q", "-b", "main")
	write(t, repo, "deploy/hog.yaml", hogYAML)
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-qm", "hog")
	out, err := exec.Command("git", "-C", repo, "rev-parse", "HEAD").Output()
	if err != nil {
		t.Fatal(err)
	}
	pinned := strings.TrimSpace(string(out))
	write(t, repo, "deploy/web.yaml", webDeployment("2", "600m"))
	git(t, repo, "add", "-A")
	git(t, repo, "commit", "-qm", "web")
	write(t, repo, "deploy/web.yaml", webDeployment("1", "600m"))
	git(t, repo, "commit", "-qam", "web fits")
	write(t, repo, "deploy/web.yaml", strings.Replace(webDeployment("1", "600m"), "replicas", "replicaz", 1))
	git(t, repo, "commit", "-qam", "typo")

	keyFile := filepath.Join(t.TempDir(), "key")
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := dryRunServer(t, agent.StatusToken(key), pinned)
	plan := func(args ...string) (int, string, string) {
		return shoal(t, append([]string{"plan", "--repo", repo, "--path", "deploy", "--cluster", srv.URL, "--cluster-key-file", keyFile}, args...)...)
	}

	// Two 600m pods: n2 takes one, n1 has 200m left beside the hog.
	code, stdout, stderr := plan("main~3", "main~2")
	if code != 3 {
		t.Errorf("a pod that does not fit: exit %d, want 3\n%s%s", code, stdout, stderr)
	}
	for _, want := range []string{
		"Dry run of ",
		"it runs " + pinned[:12],
		"Deployment default/web: 2 new pods",
		"placed on n2: 1",
		"1 would not fit: 0/2 nodes are available: 2 insufficient cpu.",
		"1 pod would fit on no node.",
		"config-change rolls",
	} {
		if !strings.Contains(stdout, want) {
			t.Errorf("output lacks %q:\n%s", want, stdout)
		}
	}
	if strings.Contains(stdout, "hog") {
		t.Errorf("the running hog is unchanged, yet shown:\n%s", stdout)
	}

	// One fits: exit 2, as without --cluster.
	if code, stdout, _ := plan("main~3", "main~1"); code != 2 || !strings.Contains(stdout, "placed on n2: 1") {
		t.Errorf("a pod that fits: exit %d\n%s", code, stdout)
	}

	code, stdout, _ = plan("main~3", "main~2", "-o", "json")
	var p struct {
		ExitCode int
		Cluster  struct {
			Unfit     int
			Workloads []struct {
				Object string
				New    int
				Placed []struct {
					Node string
					Pods int
				}
				Unfit []struct {
					Pods   int
					Reason string
				}
			}
		}
	}
	if err := json.Unmarshal([]byte(stdout), &p); err != nil || code != 3 || p.ExitCode != 3 || p.Cluster.Unfit != 1 ||
		len(p.Cluster.Workloads) != 1 || p.Cluster.Workloads[0].New != 2 || len(p.Cluster.Workloads[0].Unfit) != 1 {
		t.Errorf("json: exit %d, err %v, %+v\n%s", code, err, p, stdout)
	}

	if code, stdout, _ := plan("main~3", "main~2", "-o", "markdown"); code != 3 || !strings.Contains(stdout, "| Deployment default/web | 2 new pods | n2: 1 |") {
		t.Errorf("markdown: exit %d\n%s", code, stdout)
	}

	// An invalid HEAD is not simulated.
	if code, stdout, _ := plan("main~1", "main"); code != 1 || !strings.Contains(stdout, "not run: HEAD is invalid") {
		t.Errorf("invalid head: exit %d\n%s", code, stdout)
	}

	// Without the key the agent refuses, and the error says where.
	if code, _, stderr := shoal(t, "plan", "--repo", repo, "--path", "deploy", "--cluster", srv.URL, "main~3", "main~2"); code != 1 || !strings.Contains(stderr, "401") {
		t.Errorf("without the key: exit %d, %q", code, stderr)
	}
}

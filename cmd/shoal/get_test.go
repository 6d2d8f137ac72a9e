package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/state"
)

// statusServer serves canned answers in the status API's form and records
// the requests, standing in for an agent.
type statusServer struct {
	*httptest.Server
	token    string
	lastPath string
	lastNS   string
}

func newStatusServer(t *testing.T, token string) *statusServer {
	now := time.Now().UTC()
	s := &statusServer{token: token}
	pods := []*state.Pod{
		{UID: "u1", Namespace: "default", Name: "web", NodeName: "n1", Created: now.Add(-90 * time.Second), Desired: state.DesiredRun,
			Spec:   state.PodSpec{Images: []string{"web:1"}},
			Status: state.PodStatus{Phase: state.PhaseRunning, Ready: true, PodIP: "10.244.0.5", Containers: []state.ContainerStatus{{Name: "app", State: "running", Ready: true, Restarts: 2}}}},
		{UID: "u2", Namespace: "default", Name: "api", Created: now.Add(-3 * time.Hour), Desired: state.DesiredRun,
			Spec:   state.PodSpec{Images: []string{"api:1", "sidecar:1"}},
			Status: state.PodStatus{Phase: state.PhasePending}},
		{UID: "u3", Namespace: "shop", Name: "cart", NodeName: "n2", Created: now.Add(-time.Minute), Desired: state.DesiredDelete,
			Spec:   state.PodSpec{Images: []string{"cart:1"}},
			Status: state.PodStatus{Phase: state.PhaseRunning, Containers: []state.ContainerStatus{{Name: "cart", State: "running", Ready: true}}}},
		{UID: "u5", Namespace: "shop", Name: "lost", NodeName: "n2", Created: now.Add(-time.Minute), Desired: state.DesiredRun,
			Spec:   state.PodSpec{Images: []string{"lost:1"}},
			Status: state.PodStatus{Phase: state.PhaseLost, Containers: []state.ContainerStatus{{Name: "x", State: "waiting", Reason: "CreateContainerConfigError"}}}},
		{UID: "u4", Namespace: "shop", Name: "pull", NodeName: "n2", Created: now.Add(-time.Minute), Desired: state.DesiredRun,
			Spec:   state.PodSpec{Images: []string{"nope:1"}},
			Status: state.PodStatus{Phase: state.PhasePending, Containers: []state.ContainerStatus{{Name: "x", State: "waiting", Reason: "ErrImagePull"}}}},
	}
	nodes := []*state.Node{
		{Name: "n1", Address: "10.0.0.1", Status: state.NodeReady, PodCIDR: "10.244.0.0/24", Allocatable: state.Resources{MilliCPU: 3500, Memory: 7 << 30, Pods: 110}},
		{Name: "n2", Address: "10.0.0.2", Status: state.NodeNotReady, Cordoned: true, PodCIDR: "10.244.1.0/24",
			Taints:      []corev1.Taint{{Key: "gpu", Value: "yes", Effect: corev1.TaintEffectNoSchedule}},
			Allocatable: state.Resources{MilliCPU: 2000, Memory: 1536 << 20, Pods: 110}},
	}
	mux := http.NewServeMux()
	reply := func(w http.ResponseWriter, r *http.Request, v any) {
		s.lastPath, s.lastNS = r.URL.Path, r.URL.Query().Get("namespace")
		if s.token != "" && r.Header.Get("Authorization") != "Bearer "+s.token {
			http.Error(w, "no token", http.StatusUnauthorized)
			return
		}
		json.NewEncoder(w).Encode(v)
	}
	mux.HandleFunc("/v1/status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, agent.ClusterStatus{
			Node: "n1", Leader: "n1", ClusterID: "c-123", Index: 42, Nodes: 2, Pods: 4,
			Pinned: &state.Revision{Seq: 1, Commit: "0123456789abcdef0123456789abcdef01234567", Ref: "refs/heads/main", Time: now.Add(-5 * time.Minute)},
			Revisions: []*state.Revision{
				{Seq: 1, Commit: "0123456789abcdef0123456789abcdef01234567", Ref: "refs/heads/main", Time: now.Add(-5 * time.Minute)},
				{Seq: 2, Commit: "fedcba9876543210fedcba9876543210fedcba98", Refused: true, Reason: "bad.yaml:3: unknown field", Time: now.Add(-time.Minute)},
			},
			Members: []agent.Member{{Name: "n1", Addr: "10.0.0.1:7946", Status: "alive"}, {Name: "n2", Addr: "10.0.0.2:7946", Status: "failed"}},
		})
	})
	mux.HandleFunc("/v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, agent.NodeList{Leader: "n1", Nodes: nodes})
	})
	mux.HandleFunc("/v1/pods", func(w http.ResponseWriter, r *http.Request) {
		var out []*state.Pod
		for _, p := range pods {
			if ns := r.URL.Query().Get("namespace"); ns == "" || ns == p.Namespace {
				out = append(out, p)
			}
		}
		reply(w, r, agent.PodList{Pods: out})
	})
	mux.HandleFunc("/v1/services", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, agent.ServiceList{
			Services: []agent.ServiceInfo{
				{Namespace: "default", Name: "web", Type: "NodePort", ClusterIP: "10.96.0.2",
					Ports:     []agent.ServicePortInfo{{Name: "http", Protocol: "TCP", Port: 80, TargetPort: "http", NodePort: 30080}},
					Endpoints: []agent.EndpointInfo{{IP: "10.244.0.5", Node: "n1", Ready: true}, {IP: "10.244.1.7", Node: "n2"}}},
				{Namespace: "default", Name: "db", Type: "ClusterIP",
					Ports: []agent.ServicePortInfo{{Protocol: "TCP", Port: 7379, TargetPort: "7379"}}},
			},
			Problems: []string{"Service default/clash: clusterIP 10.96.0.2 is held by default/web"},
		})
	})
	mux.HandleFunc("/v1/events", func(w http.ResponseWriter, r *http.Request) {
		reply(w, r, agent.EventList{Events: []*state.Event{
			{Seq: 1, Key: "Pod/default/big", Type: "Warning", Reason: "FailedScheduling", Message: "0/2 nodes: 2 Insufficient cpu", Time: now.Add(-time.Minute)},
			{Seq: 2, Key: "Deployment/default/web", Reason: "ScalingReplicaSet", Message: "Scaled up revision abc from 0 to 3", Time: now.Add(-30 * time.Second)},
		}})
	})
	s.Server = httptest.NewServer(mux)
	t.Cleanup(s.Close)
	return s
}

// fields splits a table's lines into columns.
func fields(out string) [][]string {
	var rows [][]string
	for _, l := range strings.Split(strings.TrimSpace(out), "\n") {
		rows = append(rows, strings.Fields(l))
	}
	return rows
}

func TestGetPods(t *testing.T) {
	srv := newStatusServer(t, "")
	code, out, errOut := shoal(t, "get", "pods", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows := fields(out)
	want := [][]string{
		{"NAME", "READY", "STATUS", "RESTARTS", "AGE"},
		{"api", "0/2", "Pending", "0", "3h"},
		{"web", "1/1", "Running", "2", "90s"},
	}
	if !equalRows(rows, want) {
		t.Errorf("get pods:\n%s\nwant %v", out, want)
	}
	if srv.lastNS != "default" {
		t.Errorf("namespace asked: %q, want default", srv.lastNS)
	}

	code, out, _ = shoal(t, "get", "pods", "-A", "-o", "wide", "--server", srv.URL)
	rows = fields(out)
	if code != 0 || len(rows) != 6 || strings.Join(rows[0], " ") != "NAMESPACE NAME READY STATUS RESTARTS AGE IP NODE" {
		t.Fatalf("get pods -A -o wide: exit %d\n%s", code, out)
	}
	if srv.lastNS != "" {
		t.Errorf("-A asked for namespace %q", srv.lastNS)
	}
	byName := map[string][]string{}
	for _, r := range rows[1:] {
		byName[r[1]] = r
	}
	if r := byName["cart"]; r[3] != "Terminating" {
		t.Errorf("a pod being deleted: %v, want Terminating", r)
	}
	if r := byName["lost"]; r[3] != "Lost" {
		t.Errorf("a lost pod: %v, want Lost over its last waiting reason", r)
	}
	if r := byName["pull"]; r[3] != "ErrImagePull" || r[6] != "<none>" || r[7] != "n2" {
		t.Errorf("a pod waiting on its image: %v", r)
	}
	if r := byName["web"]; r[6] != "10.244.0.5" || r[7] != "n1" {
		t.Errorf("web, wide: %v", r)
	}

	code, _, errOut = shoal(t, "get", "pods", "-n", "empty", "--server", srv.URL)
	if code != 0 || !strings.Contains(errOut, "No resources found in empty namespace.") {
		t.Errorf("empty namespace: exit %d, stderr %q", code, errOut)
	}
}

func TestGetPodsJSONAndYAML(t *testing.T) {
	srv := newStatusServer(t, "")
	code, out, _ := shoal(t, "get", "pods", "-n", "shop", "-o", "json", "--server", srv.URL)
	var pods []state.Pod
	if err := json.Unmarshal([]byte(out), &pods); code != 0 || err != nil || len(pods) != 3 || pods[0].Namespace != "shop" {
		t.Fatalf("-o json: exit %d, %v\n%s", code, err, out)
	}
	code, out, _ = shoal(t, "get", "nodes", "-o", "yaml", "--server", srv.URL)
	var nodes []state.Node
	if err := yaml.Unmarshal([]byte(out), &nodes); code != 0 || err != nil || len(nodes) != 2 || nodes[1].PodCIDR != "10.244.1.0/24" {
		t.Fatalf("-o yaml: exit %d, %v\n%s", code, err, out)
	}
	if code, _, errOut := shoal(t, "get", "pods", "-o", "table", "--server", srv.URL); code != 1 || !strings.Contains(errOut, "unsupported output format") {
		t.Errorf("-o table: exit %d, %q", code, errOut)
	}
	if code, _, errOut := shoal(t, "get", "deployments", "--server", srv.URL); code != 1 || !strings.Contains(errOut, "unknown resource type") {
		t.Errorf("get deployments: exit %d, %q", code, errOut)
	}
}

func TestGetNodes(t *testing.T) {
	srv := newStatusServer(t, "")
	code, out, errOut := shoal(t, "get", "nodes", "-o", "wide", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := [][]string{
		{"NAME", "STATUS", "ROLES", "CPU", "MEMORY", "PODS", "INTERNAL-IP", "POD-CIDR", "TAINTS"},
		{"n1", "Ready", "leader", "3500m", "7Gi", "110", "10.0.0.1", "10.244.0.0/24", "<none>"},
		{"n2", "NotReady,SchedulingDisabled", "<none>", "2", "1536Mi", "110", "10.0.0.2", "10.244.1.0/24", "gpu=yes:NoSchedule"},
	}
	if rows := fields(out); !equalRows(rows, want) {
		t.Errorf("get nodes -o wide:\n%s\nwant %v", out, want)
	}
}

func TestStatus(t *testing.T) {
	keyFile := filepath.Join(t.TempDir(), "key")
	key := []byte("0123456789abcdef0123456789abcdef")
	if err := os.WriteFile(keyFile, key, 0o600); err != nil {
		t.Fatal(err)
	}
	srv := newStatusServer(t, agent.StatusToken(key))

	if code, _, errOut := shoal(t, "status", "--server", srv.URL); code != 1 || !strings.Contains(errOut, "401") {
		t.Errorf("without the key: exit %d, %q", code, errOut)
	}
	code, out, errOut := shoal(t, "status", "--server", srv.URL, "--cluster-key-file", keyFile)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Leader:   n1",
		"Commit:   0123456789ab (refs/heads/main), pinned 5m",
		"fedcba987654  60s ago: bad.yaml:3: unknown field",
		"n2     failed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status lacks %q:\n%s", want, out)
		}
	}
	code, out, _ = shoal(t, "status", "-o", "json", "--server", srv.URL, "--cluster-key-file", keyFile)
	var st agent.ClusterStatus
	if err := json.Unmarshal([]byte(out), &st); code != 0 || err != nil || st.Pinned == nil || len(st.Revisions) != 2 {
		t.Errorf("-o json: exit %d, %v\n%s", code, err, out)
	}
}

func equalRows(got, want [][]string) bool {
	if len(got) != len(want) {
		return false
	}
	for i := range got {
		if strings.Join(got[i], " ") != strings.Join(want[i], " ") {
			return false
		}
	}
	return true
}

func TestGetServices(t *testing.T) {
	srv := newStatusServer(t, "")
	code, out, errOut := shoal(t, "get", "services", "-o", "wide", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	want := [][]string{
		{"NAME", "TYPE", "CLUSTER-IP", "PORT(S)", "ENDPOINTS", "ADDRESSES"},
		{"web", "NodePort", "10.96.0.2", "80:30080/TCP", "1/2", "10.244.0.5"},
		{"db", "ClusterIP", "None", "7379/TCP", "0/0", "<none>"},
	}
	if rows := fields(out); !equalRows(rows, want) {
		t.Errorf("get services:\n%s\nwant %v", out, want)
	}
	if srv.lastPath != "/v1/services" || srv.lastNS != "default" {
		t.Errorf("asked %s?namespace=%s", srv.lastPath, srv.lastNS)
	}
	if !strings.Contains(errOut, "warning: Service default/clash") {
		t.Errorf("problems not shown: %q", errOut)
	}
	code, out, _ = shoal(t, "get", "svc", "--no-headers", "--server", srv.URL)
	if rows := fields(out); code != 0 || len(rows) != 2 || rows[0][0] != "web" {
		t.Errorf("--no-headers: exit %d\n%s", code, out)
	}
}

func TestGetEvents(t *testing.T) {
	srv := newStatusServer(t, "")
	code, out, errOut := shoal(t, "get", "events", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	rows := fields(out)
	if len(rows) != 3 || strings.Join(rows[0], " ") != "LAST SEEN TYPE REASON OBJECT MESSAGE" ||
		rows[1][1] != "Warning" || rows[1][2] != "FailedScheduling" || rows[1][3] != "Pod/default/big" || rows[2][1] != "Normal" {
		t.Errorf("get events:\n%s", out)
	}
	if srv.lastPath != "/v1/events" || srv.lastNS != "default" {
		t.Errorf("asked %s?namespace=%s", srv.lastPath, srv.lastNS)
	}
}

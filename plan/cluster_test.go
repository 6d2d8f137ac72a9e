package plan

import (
	"encoding/json"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/state"
)

var dryNow = time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)

func node(name string, milliCPU int64) *state.Node {
	return &state.Node{Name: name, Status: state.NodeReady,
		Labels:      map[string]string{corev1.LabelHostname: name},
		Capacity:    state.Resources{MilliCPU: milliCPU, Memory: 8 << 30, Pods: 110},
		Allocatable: state.Resources{MilliCPU: milliCPU, Memory: 8 << 30, Pods: 110}}
}

func deployment(name string, replicas int, cpu string, extra string) string {
	return `
apiVersion: apps/v1
kind: Deployment
metadata: {name: ` + name + `, namespace: shop}
spec:
  replicas: ` + strconv.Itoa(replicas) + `
  selector: {matchLabels: {app: ` + name + `}}
  template:
    metadata: {labels: {app: ` + name + `}}
    spec:
      containers:
        - name: app
          image: shop/` + name + `:1
          resources: {requests: {cpu: "` + cpu + `"}}
` + extra
}

// livePods are the records the leader would have created for set's workloads at commit (with
// config hashes config), running on the nodes given in order, as a cluster would serve them.
func livePods(t *testing.T, set *manifest.Set, commit string, config map[manifest.Key]string, nodes []*state.Node, on ...string) []*state.Pod {
	t.Helper()
	s, err := RebuildStore(nodes, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	rp, err := reconciler.Reconcile(reconciler.Input{Objects: set, Commit: commit, State: s.Snapshot(), Now: dryNow.Add(-time.Hour), ConfigHashes: config})
	if err != nil {
		t.Fatal(err)
	}
	if len(rp.Create) != len(on) {
		t.Fatalf("the reconciler creates %d pods, the test places %d", len(rp.Create), len(on))
	}
	out := make([]*state.Pod, len(rp.Create))
	for i := range rp.Create {
		p := rp.Create[i]
		p.NodeName = on[i]
		p.Status = state.PodStatus{Phase: state.PhaseRunning, Ready: true, StartTime: dryNow.Add(-time.Hour)}
		out[i] = &p
	}
	return out
}

func TestRebuildStore(t *testing.T) {
	gone := node("n3", 1000)
	gone.Status = state.NodeGone
	nodes := []*state.Node{node("n1", 2000), node("n2", 2000), gone}
	pods := []*state.Pod{
		{UID: "u1", Namespace: "shop", Name: "a", NodeName: "n1", Desired: state.DesiredRun, Owner: state.Owner{Kind: "Deployment", Name: "a"},
			Spec: state.PodSpec{Requests: state.Resources{MilliCPU: 500, Pods: 1}}, Status: state.PodStatus{Phase: state.PhaseRunning}, Created: dryNow},
		{UID: "u2", Namespace: "shop", Name: "b", Desired: state.DesiredRun, Status: state.PodStatus{Phase: state.PhasePending}},
		{UID: "u3", Namespace: "shop", Name: "c", NodeName: "n3", Desired: state.DesiredRun, Status: state.PodStatus{Phase: state.PhaseLost}},
		{UID: "u4", Namespace: "shop", Name: "d", NodeName: "n9", Desired: state.DesiredDelete, Status: state.PodStatus{Phase: state.PhaseRunning}},
	}
	running := &state.Revision{Commit: "c0ffee", Ref: "main", Time: dryNow.Add(-time.Hour)}
	s, err := RebuildStore(nodes, pods, running)
	if err != nil {
		t.Fatal(err)
	}
	v := s.Snapshot()
	if got := v.Nodes(); len(got) != 3 {
		t.Fatalf("nodes = %d, want 3 (the placeholder for n9 removed)", len(got))
	}
	for _, n := range nodes {
		if got := v.Node(n.Name); got == nil || !reflect.DeepEqual(got, n) {
			t.Errorf("node %s = %+v, want %+v", n.Name, got, n)
		}
	}
	for _, p := range pods {
		got := v.Pod(p.UID)
		if got == nil {
			t.Errorf("pod %s missing", p.UID)
			continue
		}
		if got.NodeName != p.NodeName || got.Desired != p.Desired || got.Status.Phase != p.Status.Phase || got.Spec.Requests != p.Spec.Requests || got.Owner != p.Owner {
			t.Errorf("pod %s = %+v, want %+v", p.UID, got, p)
		}
	}
	if un := v.UnplacedPods(); len(un) != 1 || un[0].UID != "u2" {
		t.Errorf("unplaced = %v, want u2", un)
	}
	if pin := v.PinnedRevision(); pin == nil || pin.Commit != "c0ffee" || !pin.Time.Equal(running.Time) {
		t.Errorf("pinned = %+v, want c0ffee", pin)
	}

	// Two records with one name are not a cluster's state.
	dup := *pods[0]
	dup.UID = "u9"
	if _, err := RebuildStore(nodes, append(pods, &dup), nil); err == nil || !strings.Contains(err.Error(), "name-taken") {
		t.Errorf("duplicate name: err = %v, want name-taken", err)
	}
}

func TestSimulate(t *testing.T) {
	nodes := []*state.Node{node("n1", 2000), node("n2", 2000), node("n3", 2000)}
	base := decodeSet(t, deployment("hog", 2, "1500m", ""))
	// hog takes 1500m of n1 and n2: only n3 can take a 1000m pod.
	live := livePods(t, base, "base1", nil, nodes, "n1", "n2")
	head := decodeSet(t,
		deployment("hog", 2, "1500m", ""),
		deployment("web", 2, "1000m", ""),
		deployment("big", 2, "3", ""),
	)
	cp, err := Simulate(ClusterInput{
		Server: "10.77.0.11:7949", Nodes: nodes, Pods: live,
		Running: &state.Revision{Commit: "base1", Time: dryNow.Add(-time.Hour)}, RunningSet: base,
		Head: "head1", HeadSet: head, Now: dryNow, BarePods: agent.BarePodCommands,
	})
	if err != nil {
		t.Fatal(err)
	}
	want := []Placement{
		{Workload: manifest.Key{Kind: "Deployment", Namespace: "shop", Name: "big"}, New: 2,
			Unfit: []Unfit{{Pods: 2, Reason: "0/3 nodes are available: 3 insufficient cpu."}}},
		{Workload: manifest.Key{Kind: "Deployment", Namespace: "shop", Name: "web"}, New: 2,
			Placed: []NodeCount{{Node: "n3", Pods: 2}}},
	}
	if !reflect.DeepEqual(cp.Workloads, want) {
		t.Errorf("workloads:\n got %+v\nwant %+v", cp.Workloads, want)
	}
	if cp.UnfitPods() != 2 || cp.Nodes != 3 || cp.Pods != 2 || cp.Running != "base1" || cp.Head != "head1" {
		t.Errorf("plan = %+v", cp)
	}
	if len(cp.NotSimulated) == 0 || !strings.Contains(cp.NotSimulated[0], "config-change rolls") {
		t.Errorf("not simulated = %q, want config-change rolls first", cp.NotSimulated)
	}
	p := &Plan{Cluster: cp}
	if got := p.ExitCode(); got != 3 {
		t.Errorf("ExitCode = %d, want 3 when a pod would not fit", got)
	}

	// The same inputs give the same plan.
	again, err := Simulate(ClusterInput{
		Server: "10.77.0.11:7949", Nodes: nodes, Pods: live,
		Running: &state.Revision{Commit: "base1", Time: dryNow.Add(-time.Hour)}, RunningSet: base,
		Head: "head1", HeadSet: head, Now: dryNow, BarePods: agent.BarePodCommands,
	})
	if err != nil || !reflect.DeepEqual(again, cp) {
		t.Errorf("second run differs: %+v, %v", again, err)
	}
}

func TestSimulateScaleUpAndBarePod(t *testing.T) {
	nodes := []*state.Node{node("n1", 2000), node("n2", 2000)}
	base := decodeSet(t, deployment("web", 2, "500m", ""))
	live := livePods(t, base, "base1", nil, nodes, "n1", "n2")
	head := decodeSet(t, deployment("web", 4, "500m", ""), `
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
spec:
  containers: [{name: sh, image: busybox, resources: {requests: {cpu: "5"}}}]
`)
	cp, err := Simulate(ClusterInput{Server: "s", Nodes: nodes, Pods: live, Running: &state.Revision{Commit: "base1"},
		Head: "head1", HeadSet: head, Now: dryNow, BarePods: agent.BarePodCommands})
	if err != nil {
		t.Fatal(err)
	}
	want := []Placement{
		{Workload: manifest.Key{Kind: "Deployment", Namespace: "shop", Name: "web"}, New: 2,
			Placed: []NodeCount{{Node: "n1", Pods: 1}, {Node: "n2", Pods: 1}}},
		{Workload: manifest.Key{Kind: "Pod", Namespace: "shop", Name: "debug"}, New: 1,
			Unfit: []Unfit{{Pods: 1, Reason: "0/2 nodes are available: 2 insufficient cpu."}}},
	}
	if !reflect.DeepEqual(cp.Workloads, want) {
		t.Errorf("workloads:\n got %+v\nwant %+v", cp.Workloads, want)
	}
	if !strings.Contains(strings.Join(cp.NotSimulated, "\n"), "base1") {
		t.Errorf("not simulated = %q: want the unreadable running commit named", cp.NotSimulated)
	}
}

// TestSimulateConfigHashes: pods whose template hash folds in a ConfigMap's content are not
// rolled by a dry run that cannot read contents, unless their template changed.
func TestSimulateConfigHashes(t *testing.T) {
	nodes := []*state.Node{node("n1", 4000)}
	set := decodeSet(t, deployWeb)
	config := map[manifest.Key]string{{Kind: "ConfigMap", Namespace: "shop", Name: "web-config"}: "content1"}
	live := livePods(t, set, "c1", config, nodes, "n1", "n1", "n1")
	if live[0].ConfigHash == "" {
		t.Fatal("fixture: the pods carry no config hash")
	}
	in := ClusterInput{Server: "s", Nodes: nodes, Pods: live, Running: &state.Revision{Commit: "c1"},
		Head: "c1", HeadSet: set, Now: dryNow, BarePods: agent.BarePodCommands}
	cp, err := Simulate(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Workloads) != 0 {
		t.Errorf("unchanged template: workloads %+v, want none", cp.Workloads)
	}

	in.HeadSet = decodeSet(t, edit(deployWeb, "shop/web:1", "shop/web:2"))
	in.Head = "c2"
	cp, err = Simulate(in)
	if err != nil {
		t.Fatal(err)
	}
	if len(cp.Workloads) != 1 || cp.Workloads[0].New == 0 {
		t.Errorf("changed template: workloads %+v, want a rolling update's new pods", cp.Workloads)
	}
}

func TestSimulateValidate(t *testing.T) {
	if _, err := Simulate(ClusterInput{}); err == nil {
		t.Fatal("empty input accepted")
	}
}

func TestRenderCluster(t *testing.T) {
	p := &Plan{Cluster: &ClusterPlan{
		Server: "10.77.0.11:7949", Running: "0123456789abcdef", Head: "fedcba9876543210", Nodes: 3, Pods: 5,
		Workloads: []Placement{
			{Workload: manifest.Key{Kind: "Deployment", Namespace: "shop", Name: "big"}, New: 2,
				Unfit: []Unfit{{Pods: 2, Reason: "0/3 nodes are available: 2 insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}."}}},
			{Workload: manifest.Key{Kind: "Deployment", Namespace: "shop", Name: "web"}, New: 3, Stopping: 1,
				Placed: []NodeCount{{Node: "n1", Pods: 2}, {Node: "n2", Pods: 1}}},
		},
		NotSimulated: []string{"config-change rolls"},
	}}
	var b strings.Builder
	if err := WriteText(&b, p); err != nil {
		t.Fatal(err)
	}
	want := `No changes.

Dry run of fedcba987654 on the cluster at 10.77.0.11:7949 (3 nodes, 5 pods; it runs 0123456789ab):
  Deployment shop/big: 2 new pods
      2 would not fit: 0/3 nodes are available: 2 insufficient memory, 1 node(s) had untolerated taint {dedicated: gpu}.
  Deployment shop/web: 3 new pods, 1 to stop
      placed on n1: 2, n2: 1
  2 pods would fit on no node.
  Not simulated:
    - config-change rolls
`
	if b.String() != want {
		t.Errorf("text:\n%s\nwant:\n%s", b.String(), want)
	}

	b.Reset()
	if err := WriteMarkdown(&b, p); err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{"| Deployment shop/web | 3 new pods, 1 to stop | n1: 2, n2: 1 |  |", "**2 pods would fit on no node.**"} {
		if !strings.Contains(b.String(), s) {
			t.Errorf("markdown lacks %q:\n%s", s, b.String())
		}
	}

	b.Reset()
	if err := WriteJSON(&b, p); err != nil {
		t.Fatal(err)
	}
	var got struct {
		ExitCode int `json:"exitCode"`
		Cluster  struct {
			Unfit     int `json:"unfit"`
			Workloads []struct {
				Object string `json:"object"`
				Placed []struct {
					Node string `json:"node"`
					Pods int    `json:"pods"`
				} `json:"placed"`
				Unfit []struct {
					Pods   int    `json:"pods"`
					Reason string `json:"reason"`
				} `json:"unfit"`
			} `json:"workloads"`
		} `json:"cluster"`
	}
	if err := json.Unmarshal([]byte(b.String()), &got); err != nil {
		t.Fatal(err)
	}
	if got.ExitCode != 3 || got.Cluster.Unfit != 2 || len(got.Cluster.Workloads) != 2 ||
		got.Cluster.Workloads[1].Placed[0].Node != "n1" || got.Cluster.Workloads[0].Unfit[0].Pods != 2 {
		t.Errorf("json = %+v\n%s", got, b.String())
	}

	// Without a dry run, the JSON has no "cluster".
	b.Reset()
	if err := WriteJSON(&b, &Plan{}); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(b.String(), `"cluster"`) {
		t.Errorf("json without a dry run:\n%s", b.String())
	}

	// A skipped dry run says why.
	b.Reset()
	skipped := &Plan{Cluster: &ClusterPlan{Server: "s", Head: "h", Skipped: "HEAD is invalid"}}
	if err := WriteText(&b, skipped); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "  not run: HEAD is invalid\n") || skipped.ExitCode() != 0 {
		t.Errorf("skipped: exit %d\n%s", skipped.ExitCode(), b.String())
	}
}

// TestSimulateStops: a scale-down and a Recreate rollout stop pods, and the Recreate's new pods
// wait for the old ones to stop, which the dry run does not model: it settles with none.
func TestSimulateStops(t *testing.T) {
	nodes := []*state.Node{node("n1", 8000)}
	recreate := "  strategy: {type: Recreate}\n"
	base := decodeSet(t, deployment("web", 3, "100m", ""), deployment("api", 2, "100m", recreate))
	live := livePods(t, base, "base1", nil, nodes, "n1", "n1", "n1", "n1", "n1")
	head := decodeSet(t, deployment("web", 1, "100m", ""), strings.Replace(deployment("api", 2, "100m", recreate), "shop/api:1", "shop/api:2", 1))
	cp, err := Simulate(ClusterInput{Server: "s", Nodes: nodes, Pods: live, Running: &state.Revision{Commit: "base1"}, RunningSet: base,
		Head: "head1", HeadSet: head, Now: dryNow, BarePods: agent.BarePodCommands})
	if err != nil {
		t.Fatal(err)
	}
	want := []Placement{
		{Workload: manifest.Key{Kind: "Deployment", Namespace: "shop", Name: "api"}, Stopping: 2},
		{Workload: manifest.Key{Kind: "Deployment", Namespace: "shop", Name: "web"}, Stopping: 2},
	}
	if !reflect.DeepEqual(cp.Workloads, want) {
		t.Errorf("workloads:\n got %+v\nwant %+v", cp.Workloads, want)
	}
}

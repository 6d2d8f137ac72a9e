package localcluster

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	containerd "github.com/containerd/containerd/v2/client"
	git "github.com/go-git/go-git/v5"
	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/object"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/gitsource"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// The fault-injection tests: the hello example on three real nodes, with
// a small StatefulSet of the same image beside it, through a partition,
// a leader killed in the middle of a rollout and a machine dying; and
// bad commits refused while the last good one keeps serving.

// dbYAML is a StatefulSet whose names must never run twice.
const dbYAML = `apiVersion: v1
kind: Service
metadata:
  name: db
  namespace: hello
spec:
  clusterIP: None
  selector:
    app: db
  ports:
    - port: 8080
---
apiVersion: apps/v1
kind: StatefulSet
metadata:
  name: db
  namespace: hello
spec:
  serviceName: db
  replicas: 3
  podManagementPolicy: Parallel
  selector:
    matchLabels:
      app: db
  template:
    metadata:
      labels:
        app: db
    spec:
      containers:
        - name: db
          image: shoal.dev/examples/web:1.0
          env:
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
          ports:
            - name: http
              containerPort: 8080
          readinessProbe:
            httpGet:
              path: /ready
              port: http
            periodSeconds: 1
          resources:
            requests:
              cpu: 10m
              memory: 16Mi
`

// upFaults is upForTest with the options the fault tests need (agent
// flags, an existing repository), and a cleanup that copes with the
// faults a test left behind.
func upFaults(t *testing.T, o Options) *Record {
	t.Helper()
	rec := upWith(t, o, 60)
	// Registered after upWith's, so it runs before its Down: a node left
	// partitioned would make its agent's graceful leave wait out the stop
	// grace; Down copes, but slowly. A killed node is left as it is: Down
	// restarts its containerd to clean up.
	t.Cleanup(func() {
		for _, n := range rec.Nodes {
			_ = rec.Heal(context.Background(), n.Name) // not partitioned: no rule to delete
		}
	})
	return rec
}

// clientOf returns a status API client for one node, quick to give up on
// a node that does not answer.
func clientOf(t testing.TB, rec *Record, node string) *agent.Client {
	t.Helper()
	c, err := rec.Client()
	if err != nil {
		t.Fatal(err)
	}
	n, err := rec.node(node)
	if err != nil {
		t.Fatal(err)
	}
	c.Server = n.StatusAddr
	c.HTTP = &http.Client{Timeout: 2 * time.Second}
	return c
}

// view is the cluster as one node's status API shows it.
type view struct {
	st    agent.ClusterStatus
	nodes map[string]state.NodeStatus
	pods  []*state.Pod // of namespace hello, Desired Run
}

func observe(t testing.TB, rec *Record, node string) (view, error) {
	c := clientOf(t, rec, node)
	ctx := context.Background()
	var v view
	var err error
	if v.st, err = c.Status(ctx); err != nil {
		return v, err
	}
	nl, err := c.Nodes(ctx)
	if err != nil {
		return v, err
	}
	v.nodes = map[string]state.NodeStatus{}
	for _, n := range nl.Nodes {
		v.nodes[n.Name] = n.Status
	}
	pl, err := c.Pods(ctx, "hello")
	if err != nil {
		return v, err
	}
	for _, p := range pl.Pods {
		if p.Desired == state.DesiredRun {
			v.pods = append(v.pods, p)
		}
	}
	return v, nil
}

// ready returns the Ready pods of the view whose name starts with prefix,
// by template hash.
func (v view) ready(prefix string) map[string]int {
	out := map[string]int{}
	for _, p := range v.pods {
		if strings.HasPrefix(p.Name, prefix) && p.Status.Ready && p.Status.Phase != state.PhaseLost {
			out[p.TemplateHash]++
		}
	}
	return out
}

func (v view) pod(name string) *state.Pod {
	for _, p := range v.pods {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func (v view) pinned() string {
	if v.st.Pinned == nil {
		return ""
	}
	return v.st.Pinned.Commit
}

// runningPod is a pod with a running container in a node's containerd.
type runningPod struct{ Node, Name, UID string }

// running lists the pods of namespace hello with a running task in each
// live node's containerd: what really runs, whatever the state says. A
// node whose containerd is dead (killed) runs nothing.
func running(t testing.TB, rec *Record) []runningPod {
	t.Helper()
	ctx := context.Background()
	var out []runningPod
	for _, n := range rec.Nodes {
		if !isProcess(n.ContainerdPID, "containerd") {
			continue
		}
		client, err := containerd.New(runtime.SocketPath(n.ContainerdDir), containerd.WithTimeout(5*time.Second))
		if err != nil {
			t.Fatalf("containerd of %s: %v", n.Name, err)
		}
		seen := map[string]bool{}
		nctx := namespacesWith(ctx, "shoal")
		ctrs, err := client.Containers(nctx)
		if err != nil {
			client.Close()
			t.Fatalf("containerd of %s: %v", n.Name, err)
		}
		for _, ctr := range ctrs {
			labels, err := ctr.Labels(nctx)
			if err != nil || labels[runtime.LabelPodNamespace] != "hello" || seen[labels[runtime.LabelPodUID]] {
				continue
			}
			task, err := ctr.Task(nctx, nil)
			if err != nil {
				continue
			}
			if st, err := task.Status(nctx); err == nil && st.Status == containerd.Running {
				seen[labels[runtime.LabelPodUID]] = true
				out = append(out, runningPod{Node: n.Name, Name: labels[runtime.LabelPodName], UID: labels[runtime.LabelPodUID]})
			}
		}
		client.Close()
	}
	return out
}

// onceEach fails the test if a pod name with the prefix runs on more than
// one node, or twice on one.
func onceEach(t testing.TB, rp []runningPod, prefix string) {
	t.Helper()
	where := map[string][]string{}
	for _, p := range rp {
		if strings.HasPrefix(p.Name, prefix) {
			where[p.Name] = append(where[p.Name], p.Node+"/"+p.UID)
		}
	}
	for name, w := range where {
		if len(w) > 1 {
			t.Fatalf("pod %s runs %d times: %v", name, len(w), w)
		}
	}
}

// leaderOf asks the nodes in turn which one leads, skipping those given.
func leaderOf(t testing.TB, rec *Record, skip ...string) string {
	t.Helper()
	for _, n := range rec.Nodes {
		if contains(skip, n.Name) {
			continue
		}
		if st, err := clientOf(t, rec, n.Name).Status(context.Background()); err == nil && st.Leader != "" {
			return st.Leader
		}
	}
	return ""
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// statusInNode reads a node's status API from inside its own network
// namespace, which works while the node is cut off from the host.
func statusInNode(t testing.TB, rec *Record, node string) (agent.ClusterStatus, error) {
	t.Helper()
	var st agent.ClusterStatus
	c := clientOf(t, rec, node)
	n, _ := rec.node(node)
	out, err := inNode(*n, "curl", "-sS", "-f", "-m", "3", "-H", "Authorization: Bearer "+c.Token, "http://"+n.StatusAddr+"/v1/status")
	if err != nil {
		return st, fmt.Errorf("%v: %s", err, out)
	}
	return st, json.Unmarshal(out, &st)
}

// TestFaultsPartitionLeaderNode runs the hello Deployment and a
// StatefulSet on three nodes through three faults in turn:
//
//  1. a node cut off from the network: the minority pins and starts
//     nothing; the majority replaces the Deployment's pods but holds the
//     StatefulSet pod's name; after healing no StatefulSet pod ever ran
//     twice and everything is back;
//  2. the leader killed with SIGKILL in the middle of a rollout: the new
//     leader completes it, with exactly `replicas` Ready pods of the new
//     template and none of the old, and no pod running twice;
//  3. a node dying (agent, containers and containerd killed): NotReady,
//     its pods Lost after the grace and replaced elsewhere, Ready.
func TestFaultsPartitionLeaderNode(t *testing.T) {
	skipUnlessIntegration(t)
	dir := t.TempDir()
	repo := exampleCopy(t, "hello")
	if err := os.WriteFile(filepath.Join(repo, "db.yaml"), []byte(dbYAML), 0o644); err != nil {
		t.Fatal(err)
	}
	rec := upFaults(t, Options{Name: "fltp", Nodes: 3, Repo: repo,
		Images: []string{imageTar(t, dir, "web", "shoal.dev/examples/web:1.0")}})
	ctx := context.Background()
	binary := shoalBinary(t)

	// Every StatefulSet name runs once, checked at every step of every
	// wait below, on every node's containerd.
	wait := func(what string, cond func() (bool, string)) {
		t.Helper()
		waitFor(t, what, 2*time.Minute, func() (bool, string) {
			onceEach(t, running(t, rec), "db-")
			return cond()
		})
	}

	// 1. Partition the node running db-1 (not node1: the host reads the
	// majority through it).
	v, err := observe(t, rec, "node1")
	if err != nil {
		t.Fatal(err)
	}
	cut := ""
	for _, name := range []string{"db-1", "db-2", "db-0"} {
		if p := v.pod(name); p != nil && p.NodeName != "node1" {
			cut = p.NodeName
			break
		}
	}
	if cut == "" {
		t.Fatalf("every db pod on node1: %v", v.pods)
	}
	majority := "node1"
	oldCommit := v.pinned()
	var cutDB []string // the StatefulSet pods on the cut node
	for _, p := range v.pods {
		if p.NodeName == cut && strings.HasPrefix(p.Name, "db-") {
			cutDB = append(cutDB, p.Name)
		}
	}
	before := podSet(running(t, rec), cut)
	t.Logf("partitioning %s (running %v)", cut, before)
	if err := rec.Partition(ctx, cut); err != nil {
		t.Fatal(err)
	}
	web, err := os.ReadFile(filepath.Join(rec.Repo, "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	scaled := strings.Replace(string(web), "replicas: 3", "replicas: 4", 1)
	commit := commitFile(t, rec, "web.yaml", scaled, "scale web to 4 while a node is cut off")
	wait("the majority to pin "+short(commit)+", mark "+cut+" NotReady, run 4 web pods and hold the db names", func() (bool, string) {
		v, err := observe(t, rec, majority)
		if err != nil {
			return false, err.Error()
		}
		webReady := 0
		for _, p := range v.pods {
			if strings.HasPrefix(p.Name, "web-") && p.Status.Ready && p.NodeName != cut {
				webReady++
			}
		}
		held := 0 // lost with the node, and kept there: not replaced
		for _, name := range cutDB {
			p := v.pod(name)
			if p == nil || p.NodeName != cut {
				t.Fatalf("StatefulSet pod %s moved off the unreachable node %s: %+v", name, cut, p)
			}
			if p.Status.Phase == state.PhaseLost {
				held++
			}
		}
		return v.pinned() == commit && v.nodes[cut] == state.NodeNotReady && webReady == 4 && held == len(cutDB),
			fmt.Sprintf("pinned %s, %s %v, %d web pods ready off it, %d/%d db pods held", short(v.pinned()), cut, v.nodes[cut], webReady, held, len(cutDB))
	})
	wait("the cut node to see the commit in its clone", func() (bool, string) {
		st, err := statusInNode(t, rec, cut)
		if err != nil {
			return false, err.Error()
		}
		return st.Fetched == commit, "fetched " + short(st.Fetched)
	})
	st, err := statusInNode(t, rec, cut)
	if err != nil {
		t.Fatal(err)
	}
	if st.Pinned == nil || st.Pinned.Commit != oldCommit || st.Leader == cut {
		t.Errorf("the cut-off node: leader %q, pinned %+v; want no leadership and %s still pinned", st.Leader, st.Pinned, short(oldCommit))
	}
	if after := podSet(running(t, rec), cut); !equal(before, after) {
		t.Errorf("the cut-off node's pods changed: %v, was %v", after, before)
	}

	if err := rec.Heal(ctx, cut); err != nil {
		t.Fatal(err)
	}
	wait("the healed node back: Ready, caught up, 3 db and 4 web pods Ready", func() (bool, string) {
		v, err := observe(t, rec, majority)
		if err != nil {
			return false, err.Error()
		}
		st, err := clientOf(t, rec, cut).Status(ctx)
		if err != nil {
			return false, err.Error()
		}
		db, web := sum(v.ready("db-")), sum(v.ready("web-"))
		rp := running(t, rec)
		return v.nodes[cut] == state.NodeReady && st.Pinned != nil && st.Pinned.Commit == commit && db == 3 && web == 4 && count(rp, "db-") == 3 && count(rp, "web-") == 4,
			fmt.Sprintf("%s %v, its pin %v, ready db %d web %d, running db %d web %d", cut, v.nodes[cut], st.Pinned, db, web, count(rp, "db-"), count(rp, "web-"))
	})

	// 2. Kill the leader in the middle of a rollout.
	leader := leaderOf(t, rec)
	if leader == "" {
		t.Fatal("no leader")
	}
	v, err = observe(t, rec, majority)
	if err != nil {
		t.Fatal(err)
	}
	oldHash := hashes(v.ready("web-"))
	rolled := strings.Replace(scaled, `value: "version 1"`, `value: "version 2"`, 1)
	commit = commitFile(t, rec, "web.yaml", rolled, "roll web to version 2")
	var newHash string
	var atKill []string
	wait("the rollout to start", func() (bool, string) {
		v, err := observe(t, rec, majority)
		if err != nil {
			return false, err.Error()
		}
		for _, p := range v.pods {
			if strings.HasPrefix(p.Name, "web-") && p.TemplateHash != oldHash {
				newHash, atKill = p.TemplateHash, names(v.pods)
				return true, ""
			}
		}
		return false, fmt.Sprintf("pinned %s, pods %v", short(v.pinned()), names(v.pods))
	})
	t.Logf("killing the leader %s during the rollout to %s: %v", leader, newHash, atKill)
	if err := rec.KillAgent(leader); err != nil {
		t.Fatal(err)
	}
	reader := "node1"
	if leader == "node1" {
		reader = "node2"
	}
	wait("the rollout to complete on a new leader", func() (bool, string) {
		v, err := observe(t, rec, reader)
		if err != nil {
			return false, err.Error()
		}
		// Never more than replicas + maxSurge web pods that can run.
		live := 0
		for _, p := range v.pods {
			if strings.HasPrefix(p.Name, "web-") && p.Status.Phase != state.PhaseLost {
				live++
			}
		}
		if live > 5 {
			t.Fatalf("%d web pods to run, more than replicas + maxSurge (5): %v", live, names(v.pods))
		}
		r := v.ready("web-")
		return v.st.Leader != "" && v.st.Leader != leader && r[newHash] == 4 && len(r) == 1,
			fmt.Sprintf("leader %q, ready by template %v", v.st.Leader, r)
	})
	if err := rec.RestartNode(ctx, leader, binary, nil); err != nil {
		t.Fatal(err)
	}
	wait("the old leader's node back, running only pods of the new template", func() (bool, string) {
		v, err := observe(t, rec, reader)
		if err != nil {
			return false, err.Error()
		}
		want := map[string]bool{}
		for _, p := range v.pods {
			if p.Status.Phase != state.PhaseLost && (p.TemplateHash == newHash || strings.HasPrefix(p.Name, "db-")) {
				want[p.UID] = true
			}
		}
		rp := running(t, rec)
		for _, p := range rp {
			if !want[p.UID] {
				return false, fmt.Sprintf("%s (%s) runs on %s", p.Name, p.UID, p.Node)
			}
		}
		r := v.ready("web-")
		return v.nodes[leader] == state.NodeReady && r[newHash] == 4 && len(r) == 1 && count(rp, "web-") == 4 && count(rp, "db-") == 3,
			fmt.Sprintf("%s %v, ready %v, running %d", leader, v.nodes[leader], r, len(rp))
	})

	// 3. A node dies: not node1 (the host reads through it); one with
	// web pods, rather one with a db pod too, and rather not the leader
	// (this is about the node, not another election).
	leader = leaderOf(t, rec)
	v, err = observe(t, rec, "node1")
	if err != nil {
		t.Fatal(err)
	}
	score := map[string]int{}
	for _, p := range v.pods {
		switch {
		case p.NodeName == "node1":
		case strings.HasPrefix(p.Name, "web-"):
			score[p.NodeName] |= 4
		case strings.HasPrefix(p.Name, "db-"):
			score[p.NodeName] |= 2
		}
	}
	rank := func(name string) int {
		if name != leader {
			return score[name] | 1
		}
		return score[name]
	}
	dead := ""
	for name := range score {
		if score[name]&4 != 0 && (dead == "" || rank(name) > rank(dead)) {
			dead = name
		}
	}
	if dead == "" {
		t.Fatalf("no web pod off node1: %v", names(v.pods))
	}
	var lost, heldDB []string
	for _, p := range v.pods {
		switch {
		case p.NodeName != dead:
		case strings.HasPrefix(p.Name, "web-"):
			lost = append(lost, p.UID)
		case strings.HasPrefix(p.Name, "db-"):
			heldDB = append(heldDB, p.Name)
		}
	}
	t.Logf("killing node %s (leader %s) with web pods %v and db pods %v", dead, leader, lost, heldDB)
	deadNode, err := rec.node(dead)
	if err != nil {
		t.Fatal(err)
	}
	var sockets []string
	for _, pid := range shimsOf(runtime.SocketPath(deadNode.ContainerdDir)) {
		sock := shimSocket(shimArgs(pid))
		if _, err := os.Stat(sock); err != nil {
			t.Fatalf("shim %d's socket is not where shimSocket says: %v", pid, err)
		}
		sockets = append(sockets, sock)
	}
	if len(sockets) == 0 {
		t.Fatalf("no shims on node %s", dead)
	}
	if err := rec.KillNode(dead); err != nil {
		t.Fatal(err)
	}
	for _, sock := range sockets {
		if _, err := os.Stat(sock); !errors.Is(err, os.ErrNotExist) {
			t.Errorf("a killed shim's socket is left in /run: %s (%v)", sock, err)
		}
	}
	wait("the dead node's pods Lost and replaced, 4 web pods Ready elsewhere", func() (bool, string) {
		v, err := observe(t, rec, "node1")
		if err != nil {
			return false, err.Error()
		}
		c := clientOf(t, rec, "node1")
		all, err := c.Pods(ctx, "hello")
		if err != nil {
			return false, err.Error()
		}
		for _, name := range heldDB {
			if p := v.pod(name); p == nil || p.NodeName != dead {
				t.Fatalf("StatefulSet pod %s moved off the dead (not gone) node %s: %+v", name, dead, p)
			}
		}
		// A Deployment's lost pod is marked Lost, then its record deleted
		// by the reconciler in the same breath: lost is Lost or gone.
		lostNow := len(lost)
		for _, p := range all.Pods {
			if contains(lost, p.UID) && p.Status.Phase != state.PhaseLost {
				lostNow--
			}
		}
		ready := 0
		for _, p := range v.pods {
			if strings.HasPrefix(p.Name, "web-") && p.Status.Ready && p.NodeName != dead && p.Status.Phase != state.PhaseLost {
				ready++
			}
		}
		return v.nodes[dead] == state.NodeNotReady && lostNow == len(lost) && ready == 4,
			fmt.Sprintf("%s %v, %d/%d of its web pods lost, %d web pods ready elsewhere", dead, v.nodes[dead], lostNow, len(lost), ready)
	})
}

func podSet(rp []runningPod, node string) []string {
	var out []string
	for _, p := range rp {
		if p.Node == node {
			out = append(out, p.Name)
		}
	}
	sort.Strings(out)
	return out
}

func equal(a, b []string) bool {
	return strings.Join(a, ",") == strings.Join(b, ",")
}

func count(rp []runningPod, prefix string) int {
	n := 0
	for _, p := range rp {
		if strings.HasPrefix(p.Name, prefix) {
			n++
		}
	}
	return n
}

func sum(m map[string]int) int {
	n := 0
	for _, v := range m {
		n += v
	}
	return n
}

// hashes returns the only key of m, or "" when m has none or several.
func hashes(m map[string]int) string {
	if len(m) != 1 {
		return ""
	}
	for k := range m {
		return k
	}
	return ""
}

func names(pods []*state.Pod) []string {
	var out []string
	for _, p := range pods {
		out = append(out, fmt.Sprintf("%s@%s:%s/%v", p.Name, p.NodeName, p.TemplateHash, p.Status.Ready))
	}
	return out
}

// signer signs the commits of a repository the agents verify.
type signer struct {
	key     *openpgp.Entity
	keyring string // armored public key file
}

func newSigner(t *testing.T) signer {
	t.Helper()
	e, err := openpgp.NewEntity("Deployer", "", "deployer@example.com", nil)
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	w, err := armor.Encode(&buf, openpgp.PublicKeyType, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Serialize(w); err != nil {
		t.Fatal(err)
	}
	w.Close()
	file := filepath.Join(t.TempDir(), "keyring.asc")
	if err := os.WriteFile(file, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return signer{key: e, keyring: file}
}

// commit stages every change of the repository's work tree (new, changed
// and removed files) and commits it, signed unless key is nil.
func commitAll(t testing.TB, repo, msg string, key *openpgp.Entity) string {
	t.Helper()
	r, err := git.PlainOpen(repo)
	if err != nil {
		t.Fatal(err)
	}
	wt, err := r.Worktree()
	if err != nil {
		t.Fatal(err)
	}
	if err := wt.AddWithOptions(&git.AddOptions{All: true}); err != nil {
		t.Fatal(err)
	}
	sig := &object.Signature{Name: "e2e", Email: "e2e@localhost", When: time.Now()}
	h, err := wt.Commit(msg, &git.CommitOptions{Author: sig, Committer: sig, SignKey: key})
	if err != nil {
		t.Fatal(err)
	}
	return h.String()
}

// TestFaultsRefusedCommits: agents that require signed commits refuse a
// malformed YAML file, an invalid object and an unsigned commit, each as
// a whole and with its reason in the status API, while the last good
// commit keeps running and serving; a good signed commit is then pinned.
func TestFaultsRefusedCommits(t *testing.T) {
	skipUnlessIntegration(t)
	dir := t.TempDir()
	s := newSigner(t)
	repo := filepath.Join(dir, "repo")
	if _, err := git.PlainInitWithOptions(repo, &git.PlainInitOptions{
		InitOptions: git.InitOptions{DefaultBranch: plumbing.NewBranchReferenceName(gitsource.DefaultBranch)},
	}); err != nil {
		t.Fatal(err)
	}
	if err := copyTree(exampleCopy(t, "hello"), repo); err != nil {
		t.Fatal(err)
	}
	good := commitAll(t, repo, "hello, signed", s.key)
	rec := upFaults(t, Options{Name: "flrc", Nodes: 3, Repo: repo,
		Images:    []string{imageTar(t, dir, "web", "shoal.dev/examples/web:1.0")},
		AgentArgs: []string{"--verify-keyring-file", s.keyring}})

	// serving checks that the good commit still runs: pinned, three Ready
	// replicas, and the NodePort answering from every node's address.
	serving := func(v view) (bool, string) {
		if v.pinned() != good {
			return false, "pinned " + short(v.pinned())
		}
		if r := sum(v.ready("web-")); r != 3 {
			return false, fmt.Sprintf("%d web pods ready", r)
		}
		for _, n := range rec.Nodes {
			c := http.Client{Timeout: 3 * time.Second}
			resp, err := c.Get("http://" + n.Addr + ":30080/")
			if err != nil {
				return false, err.Error()
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if !strings.Contains(string(b), "hello from web-") {
				return false, fmt.Sprintf("NodePort on %s: %q", n.Name, b)
			}
		}
		return true, ""
	}
	refused := func(commit, want string) {
		t.Helper()
		waitFor(t, "commit "+short(commit)+" refused", time.Minute, func() (bool, string) {
			v, err := observe(t, rec, "node1")
			if err != nil {
				return false, err.Error()
			}
			var rev *state.Revision
			for _, r := range v.st.Revisions {
				if r.Commit == commit {
					rev = r
				}
			}
			if rev == nil {
				return false, "not judged yet"
			}
			if !rev.Refused || !strings.Contains(rev.Reason, want) {
				t.Fatalf("commit %s: refused %v, reason %q; want refused for %q", short(commit), rev.Refused, rev.Reason, want)
			}
			t.Logf("refused %s: %s", short(commit), rev.Reason)
			return serving(v)
		})
	}

	bad := filepath.Join(repo, "bad.yaml")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: [oops\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	refused(commitAll(t, repo, "malformed YAML", s.key), "bad.yaml")

	invalid := strings.Replace(dbYAML, "replicas: 3", "replicas: -1", 1)
	if err := os.WriteFile(bad, []byte(invalid), 0o644); err != nil {
		t.Fatal(err)
	}
	refused(commitAll(t, repo, "an invalid StatefulSet", s.key), "replicas")

	if err := os.Remove(bad); err != nil {
		t.Fatal(err)
	}
	web, err := os.ReadFile(filepath.Join(repo, "web.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	scaled := strings.Replace(string(web), "replicas: 3", "replicas: 4", 1)
	if err := os.WriteFile(filepath.Join(repo, "web.yaml"), []byte(scaled), 0o644); err != nil {
		t.Fatal(err)
	}
	refused(commitAll(t, repo, "good content, but unsigned", nil), "not signed")

	// The same content signed is pinned and runs.
	if err := os.WriteFile(filepath.Join(repo, "web.yaml"), []byte(strings.Replace(scaled, "replicas: 4", "replicas: 2", 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	good = commitAll(t, repo, "scale to 2, signed", s.key)
	waitFor(t, "the signed commit pinned and running", time.Minute, func() (bool, string) {
		v, err := observe(t, rec, "node1")
		if err != nil {
			return false, err.Error()
		}
		r := sum(v.ready("web-"))
		return v.pinned() == good && r == 2 && len(v.pods) == 2, fmt.Sprintf("pinned %s, %d/%d ready", short(v.pinned()), r, len(v.pods))
	})
}

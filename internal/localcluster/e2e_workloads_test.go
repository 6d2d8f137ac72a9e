package localcluster

import (
	"bytes"
	"context"
	"fmt"
	"github.com/shoal-dev/shoal/secrets"
	"golang.org/x/sys/unix"
	"io"
	"io/fs"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"sigs.k8s.io/yaml"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/state"
)

// The workloads end to end (issue 8): the shop example on a real local
// cluster, with a Job, the shop's CronJob on a schedule that fires within
// the test, and a DaemonSet, on two nodes and then a third added while it
// runs. One cluster serves every phase, to keep the test short.

// workloadsJob is a Job of the test's own, next to the shop's manifests.
const workloadsJob = `apiVersion: batch/v1
kind: Job
metadata:
  name: migrate
  namespace: shop
spec:
  backoffLimit: 2
  template:
    spec:
      restartPolicy: Never
      containers:
        - name: migrate
          image: shoal.dev/examples/batch:1.0
          args: ["-sleep=1s", "-exit-code=0"]
`

// workloadsDaemonSet runs a web server on every node.
const workloadsDaemonSet = `apiVersion: apps/v1
kind: DaemonSet
metadata:
  name: node-web
  namespace: shop
spec:
  selector:
    matchLabels:
      app: node-web
  template:
    metadata:
      labels:
        app: node-web
    spec:
      containers:
        - name: web
          image: shoal.dev/examples/web:1.0
          ports:
            - name: http
              containerPort: 8080
          readinessProbe:
            httpGet:
              path: /ready
              port: http
`

// upWorkloads is upForTest with the whole Options (agent flags); the
// name is made unique to the test process (testName).
func upWorkloads(t *testing.T, o Options) *Record {
	t.Helper()
	return upWith(t, o, 40)
}

// allPods returns every pod record of a namespace, finished ones too.
func allPods(t testing.TB, rec *Record, namespace string) []*state.Pod {
	t.Helper()
	c, err := rec.Client()
	if err != nil {
		t.Fatal(err)
	}
	list, err := c.Pods(context.Background(), namespace)
	if err != nil {
		t.Fatal(err)
	}
	return list.Pods
}

// httpDo sends one request from the host and returns the status and body.
func httpDo(method, url, body string) (int, string, error) {
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	c := &http.Client{Timeout: 5 * time.Second}
	resp, err := c.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

// TestLocalClusterWorkloads: the shop serves through its NodePort, its
// web front end reaching the database by DNS name with the password from
// the encrypted Secret; the database's StatefulSet pod comes back as db-0
// on the node of its volume, with its data, after a commit rolls it; a Job
// and the shop's CronJob complete; a DaemonSet runs on every node,
// including one added to the running cluster.
func TestLocalClusterWorkloads(t *testing.T) {
	skipUnlessIntegration(t)
	repo := exampleCopy(t, "shop")
	worker, err := os.ReadFile(filepath.Join(repo, "worker.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	// Every minute, so that it fires while the test runs.
	everyMinute := strings.Replace(string(worker), `schedule: "30 2 * * *"`, `schedule: "* * * * *"`, 1)
	if everyMinute == string(worker) {
		t.Fatal("worker.yaml: the CronJob's schedule is not the one this test rewrites")
	}
	for file, content := range map[string]string{"worker.yaml": everyMinute, "job.yaml": workloadsJob, "node-web.yaml": workloadsDaemonSet} {
		if err := os.WriteFile(filepath.Join(repo, file), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ageKey, err := filepath.Abs(filepath.Join("..", "..", "examples", "keys", "demo.agekey"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	var images []string
	for _, img := range []string{"web", "kv", "batch"} {
		images = append(images, imageTar(t, dir, img, "shoal.dev/examples/"+img+":1.0"))
	}
	rec := upWorkloads(t, Options{Name: "wkld", Nodes: 2, Repo: repo, Images: images,
		AgentArgs: []string{"--age-key-file=" + ageKey}})
	ctx := context.Background()
	c, err := rec.Client()
	if err != nil {
		t.Fatal(err)
	}

	// The shop: PUT through the web Service's NodePort on one node, GET
	// it back through another's.
	svcs, err := c.Services(ctx, "shop")
	if err != nil {
		t.Fatal(err)
	}
	nodePort := int32(0)
	for _, s := range svcs.Services {
		if s.Name == "web" && len(s.Ports) == 1 {
			nodePort = s.Ports[0].NodePort
		}
	}
	if nodePort == 0 {
		t.Fatalf("no NodePort for shop/web: %+v", svcs.Services)
	}
	url := func(n NodeRecord, key string) string {
		return fmt.Sprintf("http://%s:%d/kv/%s", n.Addr, nodePort, key)
	}
	waitFor(t, "a PUT through the shop's NodePort", time.Minute, func() (bool, string) {
		code, body, err := httpDo(http.MethodPut, url(rec.Nodes[0], "greeting"), "hello shop")
		return err == nil && code == http.StatusNoContent, fmt.Sprintf("%d %q %v", code, body, err)
	})
	code, body, err := httpDo(http.MethodGet, url(rec.Nodes[1], "greeting"), "")
	if err != nil || code != http.StatusOK || body != "hello shop" {
		t.Fatalf("GET through %s: %d %q %v, want 200 \"hello shop\"", rec.Nodes[1].Name, code, body, err)
	}
	db0 := podNamed(t, rec, "db-0")
	if db0 == nil {
		t.Fatal("no pod db-0")
	}
	// The database wants the password the web front end got from the Secret.
	out, err := inNode(rec.Nodes[0], "curl", "-sS", "-m", "5", "-o", "/dev/null", "-w", "%{http_code}", "http://"+db0.Status.PodIP+":7379/kv/greeting")
	if err != nil || string(out) != "401" {
		t.Errorf("the database without the password: %v %s, want 401", err, out)
	}

	// The Secret's plaintext is nowhere on the nodes' disks: the cluster
	// directory holds the raft logs and snapshots, the Git clones, the
	// agents' and containers' logs and containerd's root and state (tmpfs
	// mounts, where the values belong, excluded).
	scanForPlaintext(t, rec.Dir, shopPassword(t, ageKey))

	t.Run("statefulset keeps its name, node and data", func(t *testing.T) {
		db, err := os.ReadFile(filepath.Join(rec.Repo, "db.yaml"))
		if err != nil {
			t.Fatal(err)
		}
		rolled := strings.Replace(string(db), "            - name: DATA_DIR\n", "            - name: GENERATION\n              value: \"2\"\n            - name: DATA_DIR\n", 1)
		if rolled == string(db) {
			t.Fatal("db.yaml: no DATA_DIR env to add a variable next to")
		}
		commit := commitFile(t, rec, "db.yaml", rolled, "db: a new template rolls db-0")
		waitFor(t, "db-0 of the new template ready", 2*time.Minute, func() (bool, string) {
			p := podNamed(t, rec, "db-0")
			if p == nil {
				return false, "no db-0"
			}
			return p.UID != db0.UID && p.Commit == commit && p.Status.Ready, fmt.Sprintf("db-0 %s at %.12s on %s, %s ready=%v", p.UID, p.Commit, p.NodeName, p.Status.Phase, p.Status.Ready)
		})
		p := podNamed(t, rec, "db-0")
		t.Logf("db-0 %s on %s, then %s on %s pinned to %q", db0.UID, db0.NodeName, p.UID, p.NodeName, p.Spec.PinnedNode)
		if p.NodeName != db0.NodeName || p.Spec.PinnedNode != db0.NodeName {
			t.Errorf("db-0 came back on %s pinned to %q, want %s, the node of its volume", p.NodeName, p.Spec.PinnedNode, db0.NodeName)
		}
		waitFor(t, "the value written before the roll", time.Minute, func() (bool, string) {
			code, body, err := httpDo(http.MethodGet, url(rec.Nodes[1], "greeting"), "")
			return err == nil && code == http.StatusOK && body == "hello shop", fmt.Sprintf("%d %q %v", code, body, err)
		})
	})

	t.Run("job completes", func(t *testing.T) {
		waitFor(t, "the Job's pod to succeed", time.Minute, func() (bool, string) {
			var seen []string
			for _, p := range allPods(t, rec, "shop") {
				if p.Owner.Kind == "Job" && p.Owner.Name == "migrate" {
					if p.Status.Phase == state.PhaseSucceeded {
						t.Logf("Job pod %s succeeded on %s", p.Name, p.NodeName)
						return true, ""
					}
					seen = append(seen, p.Name+" "+string(p.Status.Phase))
				}
			}
			return false, fmt.Sprint(seen)
		})
	})

	t.Run("cronjob runs and completes", func(t *testing.T) {
		// The schedule fires at the next minute; the run works 5 s.
		waitFor(t, "a run of the CronJob to succeed", 100*time.Second, func() (bool, string) {
			var seen []string
			for _, p := range allPods(t, rec, "shop") {
				if p.Owner.Kind == "CronJob" && p.Owner.Name == "settle" {
					if p.Status.Phase == state.PhaseSucceeded {
						t.Logf("CronJob run %s succeeded on %s", p.Name, p.NodeName)
						return true, ""
					}
					seen = append(seen, p.Name+" "+string(p.Status.Phase))
				}
			}
			return false, fmt.Sprint(seen)
		})
	})

	t.Run("daemonset on every node, one added too", func(t *testing.T) {
		waitDaemons(t, rec, 2)
		// As a user would: shoal node add (AddNode), which waits for the
		// node to be Ready.
		args := []string{"node", "add", "--dir", rec.Dir, "--agent-arg", "--age-key-file=" + ageKey}
		for _, img := range images {
			args = append(args, "--image", img)
		}
		out, err := exec.Command(shoalBinary(t), args...).CombinedOutput()
		if added, lerr := Load(rec.Dir); lerr == nil {
			*rec = *added // Down and assertGone see the new node
		}
		if err != nil {
			t.Fatalf("shoal node add: %v\n%s", err, out)
		}
		if n := rec.Nodes[len(rec.Nodes)-1]; n.Name != "node3" || !netnsExists(n.NetNS) {
			t.Fatalf("added %+v", n)
		}
		pods := waitDaemons(t, rec, 3)
		// The new node's pod answers from the first node: the pod routes
		// reach the node that joined.
		for _, p := range pods {
			t.Logf("DaemonSet pod %s on %s at %s", p.Name, p.NodeName, p.Status.PodIP)
			if p.NodeName != "node3" {
				continue
			}
			out, err := inNode(rec.Nodes[0], "curl", "-sS", "-m", "5", "http://"+p.Status.PodIP+":8080/")
			if err != nil || !strings.Contains(string(out), "hello from "+p.Name) {
				t.Errorf("pod %s on node3 from node1: %v %s", p.Name, err, out)
			}
		}
	})
}

// podNamed returns the pod of a name in shop that should run, or nil.
func podNamed(t testing.TB, rec *Record, name string) *state.Pod {
	for _, p := range podsOf(t, rec, "shop") {
		if p.Name == name {
			return p
		}
	}
	return nil
}

// waitDaemons waits until every one of nodes Ready nodes runs one ready
// pod of the DaemonSet node-web, and returns them.
func waitDaemons(t *testing.T, rec *Record, nodes int) []*state.Pod {
	t.Helper()
	var pods []*state.Pod
	waitFor(t, fmt.Sprintf("node-web ready on %d nodes", nodes), 2*time.Minute, func() (bool, string) {
		c, err := rec.Client()
		if err != nil {
			return false, err.Error()
		}
		list, err := c.Nodes(context.Background())
		if err != nil {
			return false, err.Error()
		}
		ready := map[string]bool{}
		for _, n := range list.Nodes {
			if n.Status == state.NodeReady {
				ready[n.Name] = true
			}
		}
		pods = nil
		on := map[string]int{}
		for _, p := range podsOf(t, rec, "shop") {
			if p.Owner.Kind == "DaemonSet" && p.Owner.Name == "node-web" {
				pods = append(pods, p)
				if p.Status.Ready {
					on[p.NodeName]++
				}
			}
		}
		ok := len(ready) == nodes && len(pods) == nodes
		for n := range ready {
			ok = ok && on[n] == 1
		}
		return ok, fmt.Sprintf("%d ready nodes %v, ready daemon pods per node %v, %d pods", len(ready), ready, on, len(pods))
	})
	return pods
}

// shopPassword decrypts the shop's Secret with the demo key.
func shopPassword(t *testing.T, keyFile string) string {
	t.Helper()
	file := filepath.Join("..", "..", "examples", "shop", "secrets", "db-credentials.yaml")
	data, err := os.ReadFile(file)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := secrets.LoadKeyring(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	p, err := secrets.Decrypt(file, data, kr)
	if err != nil {
		t.Fatal(err)
	}
	plain, err := p.YAML()
	if err != nil {
		t.Fatal(err)
	}
	var obj struct {
		StringData map[string]string `json:"stringData"`
		Data       map[string][]byte `json:"data"`
	}
	if err := yaml.Unmarshal(plain, &obj); err != nil {
		t.Fatal(err)
	}
	pw := obj.StringData["password"]
	if pw == "" {
		pw = string(obj.Data["password"])
	}
	if len(pw) < 6 {
		t.Fatalf("the shop's password is too short to scan for (%d bytes)", len(pw))
	}
	return pw
}

// scanForPlaintext fails the test if any regular file under root, outside
// tmpfs mounts and containers' root filesystems, contains value.
func scanForPlaintext(t *testing.T, root, value string) {
	t.Helper()
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if os.IsNotExist(err) || os.IsPermission(err) {
				return nil // removed meanwhile
			}
			return err
		}
		if d.IsDir() && p != root {
			var st, parent unix.Stat_t
			if unix.Stat(p, &st) == nil && unix.Stat(filepath.Dir(p), &parent) == nil && st.Dev != parent.Dev {
				return filepath.SkipDir // a mount: a tmpfs, a rootfs, a netns
			}
		}
		if d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(value)) {
				t.Errorf("the Secret's plaintext is on disk in %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

package agent

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

func podNamed(v *state.Snapshot, name string) *state.Pod { return v.PodByName("default", name) }

// running checks that the named pods are bound, running and ready.
func running(v *state.Snapshot, names ...string) error {
	for _, n := range names {
		p := podNamed(v, n)
		switch {
		case p == nil:
			return fmt.Errorf("pod %s: no record", n)
		case p.NodeName == "":
			return fmt.Errorf("pod %s: not bound", n)
		case p.Status.Phase != state.PhaseRunning || !p.Status.Ready || p.Status.PodIP == "":
			return fmt.Errorf("pod %s: status %+v", n, p.Status)
		}
	}
	return nil
}

func pinned(v *state.Snapshot, commit string) error {
	if p := v.PinnedRevision(); p == nil || p.Commit != commit {
		return fmt.Errorf("pinned %+v, want %s", p, commit)
	}
	return nil
}

func nodeStatus(v *state.Snapshot, name string, want state.NodeStatus) error {
	n := v.Node(name)
	if n == nil || n.Status != want {
		return fmt.Errorf("node %s: %+v, want %s", name, n, want)
	}
	return nil
}

// checkPlacement asserts that every pod record not lost runs in exactly
// the live runtime of its node, and that no pod was ever started twice.
func checkPlacement(t *testing.T, c *testCluster, v *state.Snapshot) {
	t.Helper()
	for _, p := range v.Pods() {
		runs := 0
		for _, a := range c.agents {
			runs += a.rt.runCount(p.UID)
		}
		if runs > 1 {
			t.Errorf("pod %s (%s) was started %d times", p.Key(), p.UID, runs)
		}
		if p.Status.Phase == state.PhaseLost {
			continue
		}
		for _, a := range c.live() {
			_, held := a.rt.holds()[p.UID]
			if held != (a.name == p.NodeName) {
				t.Errorf("pod %s bound to %s: held by %s = %v", p.Key(), p.NodeName, a.name, held)
			}
		}
	}
}

func TestClusterOfThree(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-agent cluster")
	}
	repo := newTestRepo(t)
	good := map[string]string{"a.yaml": podYAML("a", "example.com/a:1"), "b.yaml": podYAML("b", "example.com/b:1")}
	c1 := repo.commit("two pods", good)

	c := newTestCluster(t, repo, 3)
	for _, n := range []string{"n1", "n2", "n3"} {
		c.start(n)
	}
	all := c.live()

	// Pinned, scheduled, run, and the status reached every replica.
	waitState(t, "two pods running", all, func(v *state.Snapshot) error {
		if err := pinned(v, c1); err != nil {
			return err
		}
		return running(v, "a", "b")
	})
	v := all[0].Store().Snapshot()
	checkPlacement(t, c, v)
	for _, n := range v.Nodes() {
		if n.PodCIDR == "" || n.Status != state.NodeReady {
			t.Errorf("node %s: %+v, want Ready with a pod CIDR", n.Name, n)
		}
	}
	uidA, uidB, nodeB := podNamed(v, "a").UID, podNamed(v, "b").UID, podNamed(v, "b").NodeName

	cl := &Client{Server: all[1].StatusAddr()}
	st, err := cl.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if st.Pinned == nil || st.Pinned.Commit != c1 || st.Leader == "" || len(st.Members) != 3 {
		t.Errorf("status: %+v", st)
	}

	// A bad commit is refused with its reason; the pods keep running.
	bad := map[string]string{"bad.yaml": strings.Replace(podYAML("c", "example.com/c:1"), "image:", "imagee:", 1)}
	for k, v := range good {
		bad[k] = v
	}
	c2 := repo.commit("a typo", bad)
	waitState(t, "bad commit refused", all, func(v *state.Snapshot) error {
		revs := v.RevisionsOf(c2)
		if len(revs) == 0 || !revs[0].Refused {
			return fmt.Errorf("revisions of %s: %+v", c2, revs)
		}
		if !strings.Contains(revs[0].Reason, "bad.yaml") {
			t.Errorf("refusal reason does not name the file: %q", revs[0].Reason)
		}
		if err := pinned(v, c1); err != nil {
			return err
		}
		return running(v, "a", "b")
	})
	st, err = cl.Status(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if last := st.Revisions[len(st.Revisions)-1]; last.Commit != c2 || !last.Refused || last.Reason == "" {
		t.Errorf("status does not show the refusal: %+v", st.Revisions)
	}

	// A pod removed from Git is deleted, from the state and the runtime.
	c3 := repo.commit("drop b", map[string]string{"a.yaml": good["a.yaml"]})
	waitState(t, "pod b deleted", all, func(v *state.Snapshot) error {
		if err := pinned(v, c3); err != nil {
			return err
		}
		if p := podNamed(v, "b"); p != nil {
			return fmt.Errorf("pod b still recorded: %+v", p)
		}
		if p := podNamed(v, "a"); p == nil || p.UID != uidA {
			return fmt.Errorf("pod a replaced or gone: %+v", p)
		}
		return running(v, "a")
	})
	waitRuntime(t, c.agents[nodeB].rt, "pod b removed from its runtime", func() error {
		if _, ok := c.agents[nodeB].rt.holds()[uidB]; ok {
			return errNotYet
		}
		return nil
	})

	// The node running pod a dies: NotReady at once, its pod lost after
	// the grace.
	victim := podNamed(all[0].Store().Snapshot(), "a").NodeName
	c.kill(victim)
	waitState(t, "victim NotReady and pod a lost", c.live(), func(v *state.Snapshot) error {
		if err := nodeStatus(v, victim, state.NodeNotReady); err != nil {
			return err
		}
		if p := podNamed(v, "a"); p == nil || p.Status.Phase != state.PhaseLost {
			return fmt.Errorf("pod a: %+v", p)
		}
		return nil
	})

	// It comes back: Ready again, and it does not run the lost pod.
	c.start(victim)
	waitState(t, "victim Ready again", c.live(), func(v *state.Snapshot) error {
		return nodeStatus(v, victim, state.NodeReady)
	})
	waitRuntime(t, c.agents[victim].rt, "lost pod removed on the returning node", func() error {
		if _, ok := c.agents[victim].rt.holds()[uidA]; ok {
			return errNotYet
		}
		return nil
	})

	// The leader dies: a new one resumes pinning, scheduling and health.
	var leader *testAgent
	for _, a := range c.live() {
		if name := a.Cluster().Leader(); name != "" {
			leader = c.agents[name]
		}
	}
	if leader == nil {
		t.Fatal("no leader known")
	}
	c.kill(leader.name)
	waitState(t, "a new leader marks the old one NotReady", c.live(), func(v *state.Snapshot) error {
		return nodeStatus(v, leader.name, state.NodeNotReady)
	})
	c4 := repo.commit("add c", map[string]string{"a.yaml": good["a.yaml"], "c.yaml": podYAML("c", "example.com/c:1")})
	waitState(t, "new leader pins and schedules", c.live(), func(v *state.Snapshot) error {
		if err := pinned(v, c4); err != nil {
			return err
		}
		if err := running(v, "c"); err != nil {
			return err
		}
		if p := podNamed(v, "c"); p.NodeName == leader.name {
			return fmt.Errorf("pod c bound to the dead leader")
		}
		return nil
	})
	checkPlacement(t, c, c.live()[0].Store().Snapshot())
}

func TestAgentRestartAdopts(t *testing.T) {
	repo := newTestRepo(t)
	c1 := repo.commit("two pods", map[string]string{"a.yaml": podYAML("a", "example.com/a:1"), "b.yaml": podYAML("b", "example.com/b:1")})
	c := newTestCluster(t, repo, 1)
	a := c.start("n1")
	waitState(t, "pods running", []*testAgent{a}, func(v *state.Snapshot) error {
		if err := pinned(v, c1); err != nil {
			return err
		}
		return running(v, "a", "b")
	})
	v := a.Store().Snapshot()
	uids := []string{podNamed(v, "a").UID, podNamed(v, "b").UID}

	c.kill("n1")
	a.rt.mu.Lock()
	a.rt.adopted, a.rt.rounds = nil, 0
	a.rt.mu.Unlock()
	a = c.start("n1")
	// The restarted agent's replica comes back from raft; its pod loop
	// adopts and then keeps reporting; wait for a full round after GC.
	waitRuntime(t, a.rt, "pods adopted and a sync round done", func() error {
		a.rt.mu.Lock()
		defer a.rt.mu.Unlock()
		if len(a.rt.adopted) < 2 {
			return fmt.Errorf("adopted %v", a.rt.adopted)
		}
		if a.rt.rounds < 2 {
			return errNotYet
		}
		return nil
	})
	for _, u := range uids {
		if n := a.rt.runCount(u); n != 1 {
			t.Errorf("pod %s started %d times, want once (adopted, not restarted)", u, n)
		}
		if st, ok := a.rt.holds()[u]; !ok || st.Containers[0].State != "Running" {
			t.Errorf("pod %s after restart: %+v", u, st)
		}
	}
	waitState(t, "still running after restart", []*testAgent{a}, func(v *state.Snapshot) error { return running(v, "a", "b") })
}

func TestUnschedulablePodWaitsWithAReason(t *testing.T) {
	repo := newTestRepo(t)
	huge := strings.Replace(podYAML("huge", "example.com/huge:1"), "cpu: 100m", "cpu: \"64\"", 1)
	repo.commit("a pod too big and a small one", map[string]string{"huge.yaml": huge, "a.yaml": podYAML("a", "example.com/a:1")})
	c := newTestCluster(t, repo, 1)
	a := c.start("n1")
	waitState(t, "huge pod reported unschedulable, the other running", []*testAgent{a}, func(v *state.Snapshot) error {
		if err := running(v, "a"); err != nil {
			return err
		}
		p := podNamed(v, "huge")
		if p == nil || p.NodeName != "" {
			return fmt.Errorf("huge: %+v", p)
		}
		evs := v.Events("Pod/default/huge")
		if len(evs) == 0 {
			return errNotYet
		}
		if evs[0].Reason != "FailedScheduling" || !strings.Contains(evs[0].Message, "0/1 nodes") || !strings.Contains(evs[0].Message, "cpu") {
			return fmt.Errorf("event: %+v", evs[0])
		}
		return nil
	})
}

func TestStatusAPINeedsTheTokenOffLoopback(t *testing.T) {
	srv := httptest.NewServer(requireToken(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, NodeList{Leader: "n1"})
	}), StatusToken(testKey), false))
	defer srv.Close()
	ctx := context.Background()
	if _, err := (&Client{Server: srv.URL}).Nodes(ctx); err == nil || !strings.Contains(err.Error(), "401") {
		t.Errorf("without a token: %v", err)
	}
	if _, err := (&Client{Server: srv.URL, Token: StatusToken([]byte("another key, 32 bytes long......"))}).Nodes(ctx); err == nil {
		t.Error("another cluster's token was accepted")
	}
	if l, err := (&Client{Server: srv.URL, Token: StatusToken(testKey)}).Nodes(ctx); err != nil || l.Leader != "n1" {
		t.Errorf("with the token: %+v, %v", l, err)
	}
}

func TestContainersRestartUnderTheirPolicy(t *testing.T) {
	repo := newTestRepo(t)
	never := strings.Replace(podYAML("once", "example.com/once:1"), "spec:\n", "spec:\n  restartPolicy: Never\n", 1)
	repo.commit("two pods", map[string]string{"a.yaml": podYAML("a", "example.com/a:1"), "once.yaml": never})
	c := newTestCluster(t, repo, 1)
	a := c.start("n1")
	agents := []*testAgent{a}
	waitState(t, "pods running", agents, func(v *state.Snapshot) error { return running(v, "a", "once") })
	v := a.Store().Snapshot()
	keyOf := func(p *state.Pod) runtime.PodKey {
		return runtime.PodKey{Namespace: p.Namespace, Name: p.Name, UID: p.UID}
	}
	pa, once := podNamed(v, "a"), podNamed(v, "once")

	// restartPolicy Always: the first restart is immediate...
	if err := a.rt.Exit(keyOf(pa), "app", 1); err != nil {
		t.Fatal(err)
	}
	waitState(t, "a restarted once", agents, func(v *state.Snapshot) error {
		p := podNamed(v, "a")
		if len(p.Status.Containers) != 1 || p.Status.Containers[0].Restarts != 1 || p.Status.Containers[0].State != "running" {
			return fmt.Errorf("a: %+v", p.Status)
		}
		return running(v, "a")
	})
	// ...the next one waits in back-off, shown as CrashLoopBackOff.
	if err := a.rt.Exit(keyOf(pa), "app", 1); err != nil {
		t.Fatal(err)
	}
	waitState(t, "a in back-off", agents, func(v *state.Snapshot) error {
		p := podNamed(v, "a")
		if len(p.Status.Containers) != 1 || p.Status.Containers[0].Reason != "CrashLoopBackOff" || p.Status.Ready {
			return fmt.Errorf("a: %+v", p.Status)
		}
		return nil
	})
	// restartPolicy Never: a finished container stays finished.
	if err := a.rt.Exit(keyOf(once), "app", 0); err != nil {
		t.Fatal(err)
	}
	waitState(t, "once succeeded", agents, func(v *state.Snapshot) error {
		if p := podNamed(v, "once"); p.Status.Phase != state.PhaseSucceeded {
			return fmt.Errorf("once: %+v", p.Status)
		}
		return nil
	})
	if st := a.rt.holds()[once.UID]; st.Containers[0].RestartCount != 0 || st.Containers[0].State != runtime.StateTerminated {
		t.Errorf("once after exit: %+v", st.Containers[0])
	}
}

func TestProbesDriveReadinessAndRestarts(t *testing.T) {
	repo := newTestRepo(t)
	withProbe := func(name, probe string) string {
		return strings.Replace(podYAML(name, "example.com/"+name+":1"), "      resources:", "      "+probe+":\n        exec: {command: [check]}\n        periodSeconds: 1\n        failureThreshold: 1\n      resources:", 1)
	}
	repo.commit("probed pods", map[string]string{"r.yaml": withProbe("r", "readinessProbe"), "l.yaml": withProbe("l", "livenessProbe")})
	c := newTestCluster(t, repo, 1)
	a := c.start("n1")
	agents := []*testAgent{a}
	var failing sync.Map // pod name → true while its probe fails
	failing.Store("r", true)
	a.rt.setProbe(func(pod, _ string) bool { _, bad := failing.Load(pod); return !bad })

	waitState(t, "r running but not ready, l ready", agents, func(v *state.Snapshot) error {
		if err := running(v, "l"); err != nil {
			return err
		}
		r := podNamed(v, "r")
		if r == nil || r.Status.Phase != state.PhaseRunning || r.Status.Ready || len(r.Status.Containers) != 1 || r.Status.Containers[0].State != "running" {
			return fmt.Errorf("r: %+v", r)
		}
		return nil
	})
	failing.Delete("r")
	waitState(t, "r ready once its probe passes", agents, func(v *state.Snapshot) error { return running(v, "r") })

	failing.Store("l", true)
	waitState(t, "l restarted after its liveness probe failed", agents, func(v *state.Snapshot) error {
		l := podNamed(v, "l")
		if len(l.Status.Containers) != 1 || l.Status.Containers[0].Restarts < 1 {
			return fmt.Errorf("l: %+v", l.Status)
		}
		return nil
	})
	failing.Delete("l")
}

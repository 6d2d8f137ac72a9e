package reconciler

import (
	"fmt"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// world is a small cluster for tests: a real state store, a trivial scheduler and nodes that
// do what they are told at once. The reconciler's plans are applied to it through the same
// commands the leader submits; time moves only when a test says so.
type world struct {
	t        testing.TB
	store    *state.Store
	now      time.Time
	objs     *manifest.Set
	prevObjs *manifest.Set // the commit before objs, as the leader passes it (Input.Previous)
	commit   string
	pinnedAt time.Time
	commits  int
	config   map[manifest.Key]string
	last     *Plan
	saved    *state.Snapshot
	// running is what each node actually runs, by pod name → UID: a partitioned (NotReady)
	// node keeps running what it had, whatever the store says.
	running map[string]map[string]string
	// dirs is each node's local volume directories, by node → "NAMESPACE/CLAIM" → UID of the
	// pod that made it, while its data is wanted: a node declared gone gives its data up (its
	// records are forgotten), a deleted volume's directory is removed.
	dirs map[string]map[string]string
	// violations are broken volume invariants seen by the nodes (sync): a pod started on a
	// volume being deleted, a fresh claim's pod started on a directory another pod made (whose
	// data is wanted), or while its volume is recorded on another node, a volume marked for
	// deletion while a pod of its claim runs.
	violations []string
}

var epoch = time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)

func newWorld(t testing.TB) *world {
	s, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	return &world{t: t, store: s, now: epoch, running: map[string]map[string]string{}, dirs: map[string]map[string]string{}}
}

func (w *world) apply(c state.Command) *state.Result {
	w.t.Helper()
	res, err := w.store.ApplyCommand(c)
	if err != nil {
		w.t.Fatalf("%T: %v", c, err)
	}
	return res
}

func (w *world) addNode(name string) {
	w.apply(&state.UpsertNode{Node: state.Node{Name: name, Status: state.NodeReady,
		Allocatable: state.Resources{MilliCPU: 64000, Memory: 1 << 40, Pods: 1000}}})
	if w.running[name] == nil {
		w.running[name] = map[string]string{}
	}
}

func (w *world) setNode(name string, st state.NodeStatus) {
	w.apply(&state.SetNodeStatus{Name: name, Status: st, Heartbeat: w.now})
	if st == state.NodeGone {
		w.running[name] = map[string]string{} // known dead: nothing runs there
		delete(w.dirs, name)                  // its volumes' records are forgotten: data given up
	}
}

// killNode makes a node unreachable and, as the leader's health loop does after its grace
// period, marks its pods lost.
func (w *world) killNode(name string) {
	w.setNode(name, state.NodeNotReady)
	var uids []string
	for _, p := range w.store.Snapshot().PodsOnNode(name) {
		if !p.Status.Phase.Terminal() {
			uids = append(uids, p.UID)
		}
	}
	if len(uids) > 0 {
		w.apply(&state.MarkPodsLost{UIDs: uids, Reason: "NodeLost", Time: w.now})
	}
}

func (w *world) commitYAML(doc string) {
	w.t.Helper()
	objs, errs := manifest.Decode("test.yaml", []byte(doc))
	if err := errs.Err(); err != nil {
		w.t.Fatal(err)
	}
	set, errs := manifest.NewSet(objs)
	if err := errs.Err(); err != nil {
		w.t.Fatal(err)
	}
	w.commits++
	w.prevObjs = w.objs
	w.objs, w.commit, w.pinnedAt = set, fmt.Sprintf("c%d", w.commits), w.now
}

func (w *world) reconcile() *Plan {
	w.t.Helper()
	p, err := Reconcile(w.input(w.store.Snapshot()))
	if err != nil {
		w.t.Fatal(err)
	}
	for _, c := range p.Commands() {
		w.apply(c)
	}
	w.last = p
	return p
}

func (w *world) input(s Snapshot) Input {
	return Input{Objects: w.objs, Previous: w.prevObjs, Commit: w.commit, PinnedAt: w.pinnedAt, State: s, Now: w.now, ConfigHashes: w.config,
		TimeZone: time.LoadLocation}
}

// schedule binds every unplaced pod to the Ready node running the fewest pods (or its pinned
// node), and the node starts it: Running, not yet ready.
func (w *world) schedule() []string {
	snap := w.store.Snapshot()
	load := map[string]int{}
	var ready []string
	for _, n := range snap.Nodes() {
		if n.Status == state.NodeReady {
			ready = append(ready, n.Name)
			load[n.Name] = len(snap.PodsOnNode(n.Name))
		}
	}
	var out []string
	for _, p := range snap.UnplacedPods() {
		node := ""
		if p.Spec.PinnedNode != "" {
			if load[p.Spec.PinnedNode] >= 0 && snap.Node(p.Spec.PinnedNode) != nil && snap.Node(p.Spec.PinnedNode).Status == state.NodeReady {
				node = p.Spec.PinnedNode
			}
		} else {
			for _, n := range ready {
				if node == "" || load[n] < load[node] {
					node = n
				}
			}
		}
		if node == "" {
			continue
		}
		res := w.apply(&state.BindPods{Bindings: []state.Binding{{UID: p.UID, Node: node}}})
		if len(res.Rejected) > 0 {
			continue
		}
		load[node]++
		out = append(out, p.Name+" → "+node)
	}
	w.sync()
	return out
}

// sync is every reachable node converging on the store: pods bound to it and meant to run are
// started (Running, not ready), pods told to stop are stopped and reported Succeeded, and
// containers with no record are killed; then volumes marked for deletion are deleted and
// their records removed, once no pod of their claim runs there (as the node agent does). An
// unreachable node does nothing.
func (w *world) sync() {
	defer w.syncVolumes()
	snap := w.store.Snapshot()
	for _, n := range snap.Nodes() {
		if n.Status != state.NodeReady {
			continue
		}
		run := w.running[n.Name]
		var ups []state.PodStatusUpdate
		keep := map[string]bool{}
		for _, p := range snap.PodsOnNode(n.Name) {
			switch {
			case p.Status.Phase == state.PhaseLost || p.Status.Phase.Terminal():
			case p.Desired != state.DesiredRun:
				delete(run, p.Name)
				ups = append(ups, state.PodStatusUpdate{UID: p.UID, Status: state.PodStatus{Phase: state.PhaseSucceeded, Reason: "Stopped"}})
			case p.Status.Phase == state.PhasePending:
				for _, v := range snap.Volumes() {
					if v.Namespace == p.Namespace && v.Pod == p.Name && !v.Deleting.IsZero() {
						w.violations = append(w.violations, fmt.Sprintf("pod %s starts on %s while the volume of its claim %s is being deleted on %s", p.Name, n.Name, v.Claim, v.Node))
					}
				}
				w.startVolumes(snap, p, n.Name)
				run[p.Name] = p.UID
				keep[p.Name] = true
				ups = append(ups, state.PodStatusUpdate{UID: p.UID, Status: state.PodStatus{Phase: state.PhaseRunning, StartTime: w.now}})
			default:
				run[p.Name] = p.UID
				keep[p.Name] = true
			}
		}
		for name := range run {
			if !keep[name] {
				delete(run, name)
			}
		}
		if len(ups) > 0 {
			w.apply(&state.UpdatePodStatus{Node: n.Name, Updates: ups})
		}
	}
}

// startVolumes is a node setting up the volumes of a pod it starts. A fresh claim gets a new
// directory: one another pod made there, whose data is wanted, would be set aside (the data
// lost to the claim), and a record of the claim on another node means the data lives there.
// Its record on this node may be that of this very pod's binding. A claim recorded here for
// the pod keeps its directory.
func (w *world) startVolumes(snap *state.Snapshot, p *state.Pod, node string) {
	if w.dirs[node] == nil {
		w.dirs[node] = map[string]string{}
	}
	dirs := w.dirs[node]
	fresh := map[string]bool{}
	for _, c := range p.Spec.FreshClaims {
		fresh[c] = true
		k := p.Namespace + "/" + c
		if v := snap.Volume(p.Namespace, c); v != nil && v.Node != node {
			w.violations = append(w.violations, fmt.Sprintf("pod %s starts on %s with claim %s fresh, but its volume is recorded on %s", p.Name, node, c, v.Node))
		}
		if uid, ok := dirs[k]; ok && uid != p.UID {
			w.violations = append(w.violations, fmt.Sprintf("pod %s (uid %s) starts on %s with claim %s fresh, over the directory pod uid %s made there, whose data is wanted", p.Name, p.UID, node, c, uid))
		}
		for other, d := range w.dirs {
			if uid, ok := d[k]; ok && other != node {
				w.violations = append(w.violations, fmt.Sprintf("pod %s (uid %s) starts on %s with claim %s fresh, while %s holds the directory pod uid %s made, whose data is wanted", p.Name, p.UID, node, c, other, uid))
			}
		}
		dirs[k] = p.UID
	}
	for _, v := range snap.Volumes() {
		k := v.Namespace + "/" + v.Claim
		if v.Namespace == p.Namespace && v.Pod == p.Name && v.Node == node && !fresh[v.Claim] && dirs[k] == "" {
			dirs[k] = p.UID
		}
	}
}

// startUnreported is a Ready node taking every unplaced pod it may (unpinned, or pinned to
// it), starting them (their volumes made, data written), and being cut off before its report
// lands: the store has the pods bound, not started.
func (w *world) startUnreported(node string) {
	for _, p := range w.store.Snapshot().UnplacedPods() {
		if p.Spec.PinnedNode != "" && p.Spec.PinnedNode != node {
			continue
		}
		if len(w.apply(&state.BindPods{Bindings: []state.Binding{{UID: p.UID, Node: node}}}).Rejected) > 0 {
			continue
		}
		w.startVolumes(w.store.Snapshot(), p, node)
		w.running[node][p.Name] = p.UID
	}
	w.killNode(node)
}

// releaseLost is a node back from being unreachable deleting the records of its lost
// StatefulSet pods it no longer runs (the agent's ReleasedPods): their names are free again.
func (w *world) releaseLost(node string) {
	var uids []string
	for _, p := range w.store.Snapshot().PodsOnNode(node) {
		if p.Status.Phase == state.PhaseLost && p.Owner.Kind == "StatefulSet" && w.running[node][p.Name] != p.UID {
			uids = append(uids, p.UID)
		}
	}
	if len(uids) > 0 {
		w.apply(&state.DeletePods{UIDs: uids})
	}
}

// syncVolumes is every reachable node deleting the volumes marked for deletion on it, unless a
// pod that may mount the claim still runs there; and checks that the store never marks a volume
// while a pod that may mount it (its own, or another set's pod whose claim has the same name)
// runs anywhere.
func (w *world) syncVolumes() {
	snap := w.store.Snapshot()
	byNode := map[string][]state.VolumeRef{}
	for _, v := range snap.Volumes() {
		if v.Deleting.IsZero() {
			continue
		}
		busy := false
		for node, run := range w.running {
			for name := range run {
				if name == v.Pod || ClaimMayBeOf(v.Claim, name) {
					busy = busy || node == v.Node
					w.violations = append(w.violations, fmt.Sprintf("volume %s/%s is being deleted while pod %s, which may mount it, runs on %s", v.Namespace, v.Claim, name, node))
				}
			}
		}
		if n := snap.Node(v.Node); busy || n == nil || n.Status != state.NodeReady {
			continue
		}
		byNode[v.Node] = append(byNode[v.Node], state.VolumeRef{Namespace: v.Namespace, Claim: v.Claim, Node: v.Node})
	}
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		w.apply(&state.RemoveVolumes{Volumes: byNode[n]})
		for _, v := range byNode[n] {
			delete(w.dirs[n], v.Namespace+"/"+v.Claim)
		}
	}
}

// setPods reports a status for the named pods (a name ending in '*' is a prefix; "all" is every
// running pod).
func (w *world) setPods(patterns []string, ready bool, phase state.Phase) []string {
	snap := w.store.Snapshot()
	byNode := map[string][]state.PodStatusUpdate{}
	var names []string
	for _, p := range snap.Pods() {
		if p.NodeName == "" || p.Desired != state.DesiredRun || p.Status.Phase != state.PhaseRunning || !matches(p.Name, patterns) {
			continue
		}
		if n := snap.Node(p.NodeName); n == nil || n.Status != state.NodeReady {
			continue
		}
		if ready && p.Status.Ready && phase == state.PhaseRunning {
			continue
		}
		st := state.PodStatus{Phase: phase, Ready: ready, StartTime: p.Status.StartTime}
		if ready {
			st.Containers = []state.ContainerStatus{{Name: "c", State: "running", Ready: true, StartedAt: w.now}}
		}
		byNode[p.NodeName] = append(byNode[p.NodeName], state.PodStatusUpdate{UID: p.UID, Status: st})
		names = append(names, p.Name)
	}
	nodes := make([]string, 0, len(byNode))
	for n := range byNode {
		nodes = append(nodes, n)
	}
	sort.Strings(nodes)
	for _, n := range nodes {
		w.apply(&state.UpdatePodStatus{Node: n, Updates: byNode[n]})
	}
	if phase.Terminal() {
		w.sync()
	}
	sort.Strings(names)
	return names
}

func matches(name string, patterns []string) bool {
	for _, p := range patterns {
		if p == "all" || p == name || strings.HasSuffix(p, "*") && strings.HasPrefix(name, p[:len(p)-1]) {
			return true
		}
	}
	return false
}

// liveNames returns, for every pod name, the nodes running it.
func (w *world) liveNames() map[string][]string {
	out := map[string][]string{}
	for node, run := range w.running {
		for name := range run {
			out[name] = append(out[name], node)
		}
	}
	return out
}

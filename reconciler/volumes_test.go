package reconciler

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/state"
)

func volumeSet(image string) string {
	return `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  replicas: 1
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "` + image + `", volumeMounts: [{name: data, mountPath: /data}]}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
`
}

// podNamed returns the live record of a pod name, or nil.
func podNamed(w *world, name string) *state.Pod {
	for _, p := range w.store.Snapshot().Pods() {
		if p.Name == name && p.Desired == state.DesiredRun {
			return p
		}
	}
	return nil
}

// TestStatefulSetVolumeRecorded: once db-0's node reports it started, the plan records its
// claim on that node; a rolling update then brings db-0 back pinned there.
func TestStatefulSetVolumeRecorded(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	w.addNode("n2")
	w.commitYAML(volumeSet("db:v1"))
	if p := w.reconcile(); len(p.Create) != 1 || p.Create[0].Spec.PinnedNode != "" || len(p.Volumes) != 0 {
		t.Fatalf("first plan: creates %v, volumes %v; want db-0 unpinned and no volume", p.Create, p.Volumes)
	}
	if got := w.schedule(); len(got) != 1 {
		t.Fatalf("scheduled %v", got)
	}
	first := podNamed(w, "db-0")
	node := first.NodeName
	p := w.reconcile()
	if len(p.Volumes) != 1 || p.Volumes[0] != (state.Volume{Namespace: "shop", Claim: "data-db-0", Node: node, Created: w.now,
		Owner: "db", Pod: "db-0", WhenDeleted: state.Retain, WhenScaled: state.Retain}) {
		t.Fatalf("volumes %+v, want shop/data-db-0 on %s", p.Volumes, node)
	}
	if got := w.store.Snapshot().VolumeNode("shop", "data-db-0"); got != node {
		t.Fatalf("store: data-db-0 on %q, want %s", got, node)
	}
	if p := w.reconcile(); len(p.Volumes) != 0 {
		t.Errorf("recorded again: %+v", p.Volumes)
	}

	// A new template rolls db-0: stopped, removed, created again on the volume's node.
	w.setPods([]string{"all"}, true, state.PhaseRunning)
	w.now = w.now.Add(time.Minute)
	w.commitYAML(volumeSet("db:v2"))
	for range 5 {
		w.reconcile()
		w.sync()
	}
	p0 := podNamed(w, "db-0")
	if p0 == nil || p0.UID == first.UID || p0.TemplateHash == first.TemplateHash || p0.Spec.PinnedNode != node {
		t.Fatalf("db-0 after the update: %+v, want a new pod of the new revision pinned to %s", p0, node)
	}
}

// TestStatefulSetVolumeSamePlan: a pod that started and failed before any reconcile saw it
// running is removed and created again in one plan; the claim recorded by that plan pins it.
func TestStatefulSetVolumeSamePlan(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	w.addNode("n2")
	w.commitYAML(volumeSet("db:v1"))
	w.reconcile()
	w.schedule()
	node := podNamed(w, "db-0").NodeName
	w.setPods([]string{"db-0"}, false, state.PhaseFailed)

	p := w.reconcile()
	if len(p.Volumes) != 1 || p.Volumes[0].Node != node || p.Volumes[0].Claim != "data-db-0" {
		t.Fatalf("volumes %+v, want data-db-0 on %s", p.Volumes, node)
	}
	if len(p.Delete) != 1 || len(p.Create) != 1 || p.Create[0].Spec.PinnedNode != node {
		t.Fatalf("plan: delete %v, create %+v; want db-0 replaced and pinned to %s", p.Delete, p.Create, node)
	}
	cmds := p.Commands()
	if _, ok := cmds[0].(*state.RecordVolumes); !ok {
		t.Errorf("first command %T, want the volumes recorded before anything else", cmds[0])
	}
}

// TestStatefulSetVolumeAtBinding: a pod's claims are recorded on its node as soon as it is
// bound there, before the node reports it started: the node may make the volume and write to
// it before its report lands. When the node is cut off in that window, the pod is lost and
// released, and the claim's next pod is pinned to the node (its data is there), not made
// fresh: fresh and unpinned, it would be given a new, empty volume, on that node or elsewhere.
func TestStatefulSetVolumeAtBinding(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	w.addNode("n2")
	w.commitYAML(volumeSet("db:v1"))
	w.reconcile()
	first := podNamed(w, "db-0")
	if len(first.Spec.FreshClaims) != 1 || first.Spec.PinnedNode != "" {
		t.Fatalf("first db-0: fresh %v, pinned %q; want data-db-0 fresh, unpinned", first.Spec.FreshClaims, first.Spec.PinnedNode)
	}
	w.apply(&state.BindPods{Bindings: []state.Binding{{UID: first.UID, Node: "n1"}}})
	// n1 starts db-0, which writes its data, but n1 is cut off before its report lands.
	w.killNode("n1")
	p := w.reconcile()
	if len(p.Volumes) != 1 || p.Volumes[0].Claim != "data-db-0" || p.Volumes[0].Node != "n1" || !p.Volumes[0].Created.Equal(w.now) {
		t.Fatalf("volumes %+v; want data-db-0 recorded on n1 at binding, created now", p.Volumes)
	}
	w.now = w.now.Add(10 * time.Minute)
	w.setNode("n1", state.NodeReady)
	// n1's agent removes the lost pod and releases its record.
	w.apply(&state.DeletePods{UIDs: []string{first.UID}})
	p = w.reconcile()
	if len(p.Create) != 1 || len(p.Create[0].Spec.FreshClaims) != 0 || p.Create[0].Spec.PinnedNode != "n1" {
		t.Fatalf("second db-0: %+v; want it pinned to n1, where the first one's data is, with no fresh claim", p.Create)
	}
}

// TestStatefulSetOrphanVolumeAtBinding: a prune-disabled set removed from Git before its
// bound pod's claims were recorded keeps its pod, and the pod's fresh claims are recorded on
// its node (Retain, kept): the set back in Git pins the claim's next pod there.
func TestStatefulSetOrphanVolumeAtBinding(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	doc := strings.Replace(volumeSet("db:v1"), "metadata: {name: db, namespace: shop}\nspec:\n  replicas", "metadata: {name: db, namespace: shop, annotations: {shoal.dev/prune: disabled}}\nspec:\n  replicas", 1)
	w.commitYAML(doc)
	w.reconcile()
	first := podNamed(w, "db-0")
	w.apply(&state.BindPods{Bindings: []state.Binding{{UID: first.UID, Node: "n1"}}})
	w.commitYAML("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: other, namespace: shop}\ndata: {a: b}\n")
	p := w.reconcile()
	if len(p.Volumes) != 1 || p.Volumes[0].Claim != "data-db-0" || p.Volumes[0].Node != "n1" || !p.Volumes[0].Keep || p.Volumes[0].WhenDeleted != state.Retain {
		t.Fatalf("volumes %+v; want data-db-0 recorded on n1, kept, Retain", p.Volumes)
	}
	w.killNode("n1")
	w.setNode("n1", state.NodeReady)
	w.apply(&state.DeletePods{UIDs: []string{first.UID}})
	w.commitYAML(doc)
	p = w.reconcile()
	if len(p.Create) != 1 || len(p.Create[0].Spec.FreshClaims) != 0 || p.Create[0].Spec.PinnedNode != "n1" {
		t.Fatalf("db-0 back in Git: %+v; want it pinned to n1", p.Create)
	}
}

// TestStatefulSetStaleFreshClaim: a leader deciding from a view older than a claim's record
// makes the claim's pod with the claim fresh; the store refuses that pod, and the next
// reconcile, from the store's view, pins it to the volume's node.
func TestStatefulSetStaleFreshClaim(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	w.commitYAML(volumeSet("db:v1"))
	stale := w.store.Snapshot() // before db-0 existed
	w.converge(5 * time.Second)
	if n := w.store.Snapshot().VolumeNode("shop", "data-db-0"); n == "" {
		t.Fatal("data-db-0 not recorded after converging")
	}
	// db-0 fails; the leader removes its record and dies; the next one decides from stale.
	w.apply(&state.DeletePods{UIDs: []string{podNamed(w, "db-0").UID}})
	w.now = w.now.Add(time.Minute)
	plan, err := Reconcile(w.input(stale))
	if err != nil {
		t.Fatal(err)
	}
	if len(plan.Create) != 1 || len(plan.Create[0].Spec.FreshClaims) != 1 {
		t.Fatalf("stale plan creates %+v; want db-0 with data-db-0 fresh", plan.Create)
	}
	rejected := false
	for _, c := range plan.Commands() {
		if _, ok := c.(*state.CreatePods); !ok {
			continue
		}
		res := w.apply(c)
		rejected = len(res.Rejected) == 1 && res.Rejected[0].Reason == state.RejectClaimRecorded
	}
	if !rejected || len(w.store.Snapshot().PodsByOwner("shop", "StatefulSet", "db")) != 0 {
		t.Fatalf("stale db-0 with a recorded claim fresh: rejected %v, pods %v; want refused (%s)", rejected, describePods(w.store.Snapshot()), state.RejectClaimRecorded)
	}
	p := w.reconcile()
	if len(p.Create) != 1 || len(p.Create[0].Spec.FreshClaims) != 0 || p.Create[0].Spec.PinnedNode != "n1" {
		t.Fatalf("db-0 from the store's view: %+v; want it pinned to n1", p.Create)
	}
}

// retainedSet is volumeSet's StatefulSet with the given replicas and retention policy.
func retainedSet(replicas int, retention string) string {
	return strings.Replace(strings.Replace(volumeSet("db:v1"), "replicas: 1", fmt.Sprintf("replicas: %d", replicas), 1),
		"  serviceName: db\n", "  serviceName: db\n  persistentVolumeClaimRetentionPolicy: "+retention+"\n", 1)
}

// TestStatefulSetVolumeOldRecords: records written before owners were recorded are retained
// whatever the policy (an ordinal scaled away keeps its volume), and one whose pod runs learns
// its owner and policy, keeping its node and creation time.
func TestStatefulSetVolumeOldRecords(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	created := w.now.Add(-time.Hour)
	w.apply(&state.RecordVolumes{Volumes: []state.Volume{
		{Namespace: "shop", Claim: "data-db-0", Node: "n1", Created: created},
		{Namespace: "shop", Claim: "data-db-1", Node: "n1", Created: created},
	}})
	w.commitYAML(retainedSet(1, "{whenScaled: Delete, whenDeleted: Delete}"))
	p := w.reconcile()
	if len(p.Create) != 1 || p.Create[0].Spec.PinnedNode != "n1" || len(p.DeleteVolumes) != 0 {
		t.Fatalf("plan: creates %+v, deletes %v; want db-0 pinned to n1 and data-db-1 (old, no owner) kept", p.Create, p.DeleteVolumes)
	}
	w.schedule()
	p = w.reconcile()
	want := state.Volume{Namespace: "shop", Claim: "data-db-0", Node: "n1", Created: created, Owner: "db", Pod: "db-0",
		WhenDeleted: state.DeleteOnRemove, WhenScaled: state.DeleteOnRemove}
	if len(p.Volumes) != 0 || len(p.UpdateVolumes) != 1 || p.UpdateVolumes[0] != want {
		t.Fatalf("volumes %+v, updates %+v, want data-db-0 to learn its owner (an update): %+v", p.Volumes, p.UpdateVolumes, want)
	}
	if v := w.store.Snapshot().Volume("shop", "data-db-0"); v == nil || *v != want {
		t.Fatalf("store: %+v", v)
	}
	if v := w.store.Snapshot().Volume("shop", "data-db-1"); v == nil || v.Owner != "" || !v.Deleting.IsZero() {
		t.Fatalf("data-db-1: %+v, want the old record kept as it was", v)
	}
}

// TestStatefulSetVolumeCommandsOrder: a plan that removes a scaled-away pod's record and marks
// its volume for deletion submits the mark after the record's removal, which the store checks.
func TestStatefulSetVolumeCommandsOrder(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	w.commitYAML(retainedSet(2, "{whenScaled: Delete}"))
	for range 4 {
		w.reconcile()
		w.schedule()
		w.setPods([]string{"all"}, true, state.PhaseRunning)
	}
	w.commitYAML(retainedSet(1, "{whenScaled: Delete}"))
	w.reconcile()
	w.setPods([]string{"db-1"}, false, state.PhaseSucceeded)
	p := w.reconcile()
	if len(p.Delete) != 1 || len(p.DeleteVolumes) != 1 || p.DeleteVolumes[0] != (state.VolumeRef{Namespace: "shop", Claim: "data-db-1", Node: "n1"}) {
		t.Fatalf("plan: delete %v, delete volumes %v; want db-1's record and data-db-1", p.Delete, p.DeleteVolumes)
	}
	pods, vols := -1, -1
	for i, c := range p.Commands() {
		switch c.(type) {
		case *state.DeletePods:
			pods = i
		case *state.DeleteVolumes:
			vols = i
		}
	}
	if pods < 0 || vols < pods {
		t.Errorf("commands: delete-pods at %d, delete-volumes at %d; want the volumes after the pods", pods, vols)
	}
	if v := w.store.Snapshot().Volume("shop", "data-db-1"); v == nil || v.Deleting.IsZero() {
		t.Errorf("data-db-1 after the plan: %+v, want it marked", v)
	}
}

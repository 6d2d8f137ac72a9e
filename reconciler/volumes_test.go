package reconciler

import (
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
	if len(p.Volumes) != 1 || p.Volumes[0] != (state.Volume{Namespace: "shop", Claim: "data-db-0", Node: node, Created: w.now}) {
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

// TestStatefulSetVolumeNotBeforeStart: a bound pod its node has not reported started may
// not have its volumes yet: nothing is recorded.
func TestStatefulSetVolumeNotBeforeStart(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	w.commitYAML(volumeSet("db:v1"))
	w.reconcile()
	uid := podNamed(w, "db-0").UID
	w.apply(&state.BindPods{Bindings: []state.Binding{{UID: uid, Node: "n1"}}})
	if p := w.reconcile(); len(p.Volumes) != 0 {
		t.Errorf("volumes %+v recorded before the pod started", p.Volumes)
	}
}

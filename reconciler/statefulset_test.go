package reconciler

import (
	"testing"

	"github.com/shoal-dev/shoal/state"
)

// volumeView is a state view that also knows where local volumes live, as the state store
// will once it records them.
type volumeView struct {
	*state.Snapshot
	volumes map[string]string // "namespace/claim" → node
}

func (v volumeView) VolumeNode(namespace, claim string) string { return v.volumes[namespace+"/"+claim] }

var _ VolumeSnapshot = volumeView{}

// TestStatefulSetVolumePin: a pod whose volume exists is pinned to the volume's node; a pod
// whose volume does not exist yet is placed freely; volumes on two nodes are reported.
func TestStatefulSetVolumePin(t *testing.T) {
	w := newWorld(t)
	w.addNode("n1")
	w.addNode("n2")
	w.commitYAML(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  replicas: 3
  podManagementPolicy: Parallel
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:v1", volumeMounts: [{name: data, mountPath: /data}, {name: logs, mountPath: /logs}]}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  - metadata: {name: logs}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
`)
	in := w.input(volumeView{Snapshot: w.store.Snapshot(), volumes: map[string]string{
		"shop/data-db-0": "n2", "shop/logs-db-0": "n2",
		"shop/data-db-2": "n1", "shop/logs-db-2": "n2",
	}})
	p, err := Reconcile(in)
	if err != nil {
		t.Fatal(err)
	}
	pinned := map[string]string{}
	for _, c := range p.Create {
		pinned[c.Name] = c.Spec.PinnedNode
		if c.Labels[LabelStatefulSetPod] != c.Name {
			t.Errorf("%s: label %s = %q", c.Name, LabelStatefulSetPod, c.Labels[LabelStatefulSetPod])
		}
	}
	if pinned["db-0"] != "n2" || pinned["db-1"] != "" || pinned["db-2"] != "n1" || len(pinned) != 3 {
		t.Errorf("pinned nodes %v, want db-0 on n2, db-1 free, db-2 on n1", pinned)
	}
	conflict := false
	for _, e := range p.Events {
		conflict = conflict || e.Reason == ReasonVolumeConflict
	}
	if !conflict {
		t.Error("no event for db-2's volumes on two nodes")
	}
}

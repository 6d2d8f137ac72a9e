package agent

import (
	"reflect"
	"testing"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// TestPodManifestClaims: a StatefulSet pod mounts its claim templates as the local volumes of
// its own claims (TEMPLATE-POD), as Kubernetes' StatefulSet controller adds them, and the
// runtime turns them into node-local volumes.
func TestPodManifestClaims(t *testing.T) {
	set := loadSet(t, map[string]string{"db.yaml": `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 7379}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
      - name: db
        image: "kv:1"
        volumeMounts: [{name: data, mountPath: /data}, {name: wal, mountPath: /wal}, {name: tmp, mountPath: /tmp}]
      volumes:
      - {name: data, persistentVolumeClaim: {claimName: data}}
      - {name: tmp, emptyDir: {}}
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
  - metadata: {name: wal}
    spec: {resources: {requests: {storage: 1Gi}}}
`})
	rec := &state.Pod{UID: "uid-1", Namespace: "shop", Name: "db-3", Commit: "c0ffee", Owner: state.Owner{Kind: "StatefulSet", Name: "db"}}
	p, err := podManifest(set, rec)
	if err != nil {
		t.Fatal(err)
	}
	claims := map[string]string{}
	for _, v := range p.Spec.Volumes {
		if v.PersistentVolumeClaim != nil {
			claims[v.Name] = v.PersistentVolumeClaim.ClaimName
		} else if v.EmptyDir == nil {
			t.Errorf("volume %s: %+v", v.Name, v.VolumeSource)
		}
	}
	if want := map[string]string{"data": "data-db-3", "wal": "wal-db-3"}; !reflect.DeepEqual(claims, want) || len(p.Spec.Volumes) != 3 {
		t.Fatalf("claims %v (%d volumes), want %v and tmp", claims, len(p.Spec.Volumes), want)
	}
	spec, err := runtimeSpec(p, rec.UID, runtime.PodOptions{NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	local := map[string]string{}
	for _, v := range spec.Volumes {
		if v.Local != nil {
			local[v.Name] = v.Local.Claim
		}
	}
	if !reflect.DeepEqual(local, claims) {
		t.Errorf("runtime volumes %v, want %v", local, claims)
	}

	// The shared set keeps the template's own volume.
	o := set.Objects()
	for _, obj := range o {
		if obj.Key.Kind != "StatefulSet" {
			continue
		}
		t0, _ := podTemplate(obj)
		if v := t0.Spec.Volumes[0]; v.PersistentVolumeClaim == nil || v.PersistentVolumeClaim.ClaimName != "data" || len(t0.Spec.Volumes) != 2 {
			t.Errorf("the template was modified: %+v", t0.Spec.Volumes)
		}
	}
}

// TestJudgeCommitClaims: a StatefulSet whose containers mount its claim templates is not
// refused at pin time: the check gives its template the claims' volumes, as its pods get them.
func TestJudgeCommitClaims(t *testing.T) {
	set := loadSet(t, map[string]string{"db.yaml": `apiVersion: v1
kind: Namespace
metadata: {name: shop}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: shop}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 7379}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "kv:1", volumeMounts: [{name: data, mountPath: /data}]}]
  volumeClaimTemplates:
  - metadata: {name: data}
    spec: {resources: {requests: {storage: 1Gi}}}
`})
	if got := judgeCommit(loaded{set: set}); got != "" {
		t.Errorf("refused: %s", got)
	}
}

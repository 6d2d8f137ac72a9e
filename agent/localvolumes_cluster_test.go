package agent

import (
	"fmt"
	"slices"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

func claimSetYAML(replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: db
  replicas: %d
  podManagementPolicy: Parallel
  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - name: pg
          image: example.com/pg:1
          volumeMounts: [{name: data, mountPath: /data}]
          resources:
            requests: {cpu: 100m, memory: 64Mi}
  volumeClaimTemplates:
    - metadata: {name: data}
      spec: {accessModes: [ReadWriteOnce], resources: {requests: {storage: 1Gi}}}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
`, replicas)
}

// TestStatefulSetScaleDownDeletesVolume: with whenScaled: Delete, scaling a StatefulSet down
// deletes the scaled-away pod's volume on its node (the runtime's DeleteLocalVolume, once the
// pod is removed there) and its record; scaling back up runs the pod on a new, empty volume
// (the runtime runs it after the deletion); the remaining pod's volume is untouched.
func TestStatefulSetScaleDownDeletesVolume(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an agent")
	}
	repo := newTestRepo(t)
	repo.commit("db x2", map[string]string{"db.yaml": claimSetYAML(2)})
	c := newTestCluster(t, repo, 1)
	n1 := c.start("n1")
	all := c.live()

	recorded := func(v *state.Snapshot, claim, pod string) error {
		vol := v.Volume("default", claim)
		if vol == nil || vol.Node != "n1" || vol.Pod != pod || vol.Owner != "db" || !vol.WhenScaled.Deletes() || !vol.Deleting.IsZero() {
			return fmt.Errorf("volume %s: %+v", claim, vol)
		}
		return nil
	}
	waitState(t, "db-0 and db-1 running on their recorded volumes", all, func(v *state.Snapshot) error {
		if err := running(v, "db-0", "db-1"); err != nil {
			return err
		}
		if err := recorded(v, "data-db-0", "db-0"); err != nil {
			return err
		}
		return recorded(v, "data-db-1", "db-1")
	})
	v := n1.Store().Snapshot()
	db0, db1 := podNamed(v, "db-0").UID, podNamed(v, "db-1").UID
	created0 := v.Volume("default", "data-db-0").Created

	repo.commit("db x1", map[string]string{"db.yaml": claimSetYAML(1)})
	waitState(t, "db-1 and its volume gone", all, func(v *state.Snapshot) error {
		if p := podNamed(v, "db-1"); p != nil {
			return fmt.Errorf("db-1: %s %s", p.Desired, p.Status.Phase)
		}
		if vol := v.Volume("default", "data-db-1"); vol != nil {
			return fmt.Errorf("volume data-db-1: %+v", vol)
		}
		return recorded(v, "data-db-0", "db-0")
	})
	calls := n1.rt.Calls()
	del := slices.Index(calls, "DeleteLocalVolume default/data-db-1")
	if del < 0 || del < slices.Index(calls, "RunPod default/db-1") {
		t.Fatalf("runtime calls %v: want data-db-1 deleted after db-1 ran", calls)
	}
	if slices.Contains(calls, "DeleteLocalVolume default/data-db-0") {
		t.Errorf("data-db-0 deleted: %v", calls)
	}
	if _, held := n1.rt.holds()[db1]; held {
		t.Errorf("the runtime still holds the old db-1 after its volume was deleted")
	}

	repo.commit("db x2 again", map[string]string{"db.yaml": claimSetYAML(2)})
	waitState(t, "db-1 back on a new volume", all, func(v *state.Snapshot) error {
		if err := running(v, "db-1"); err != nil {
			return err
		}
		if podNamed(v, "db-1").UID == db1 {
			return fmt.Errorf("db-1 is still the old pod")
		}
		return recorded(v, "data-db-1", "db-1")
	})
	v = n1.Store().Snapshot()
	calls = n1.rt.Calls()
	runs := 0
	for i, call := range calls {
		if call == "RunPod default/db-1" {
			runs++
			if runs == 2 && i < del {
				t.Errorf("runtime calls %v: the new db-1 ran before its old volume was deleted", calls)
			}
		}
	}
	if runs != 2 {
		t.Errorf("db-1 ran %d times, want 2: %v", runs, calls)
	}
	if p := podNamed(v, "db-0"); p == nil || p.UID != db0 {
		t.Errorf("db-0: %+v, want the pod %s kept throughout", p, db0)
	}
	if vol := v.Volume("default", "data-db-0"); vol == nil || !vol.Created.Equal(created0) {
		t.Errorf("data-db-0: %+v, want the volume created at %s kept", vol, created0)
	}
}

// TestVolumesToDelete: a volume marked for deletion on this node is deleted once no record of
// its claim's pod here is live and the runtime holds no pod of that name; others wait, and
// volumes not marked or on other nodes are not this node's business.
func TestVolumesToDelete(t *testing.T) {
	s, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	apply := func(c state.Command) {
		t.Helper()
		if res, err := s.ApplyCommand(c); err != nil || len(res.Rejected) > 0 {
			t.Fatalf("%T: %+v, %v", c, res, err)
		}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for _, n := range []string{"n1", "n2"} {
		apply(&state.UpsertNode{Node: state.Node{Name: n, Status: state.NodeReady}})
	}
	vol := func(claim, pod, node string) state.Volume {
		return state.Volume{Namespace: "default", Claim: claim, Node: node, Owner: "db", Pod: pod, WhenScaled: state.DeleteOnRemove}
	}
	apply(&state.RecordVolumes{Volumes: []state.Volume{
		vol("data-db-1", "db-1", "n1"), vol("data-db-2", "db-2", "n1"), vol("data-db-3", "db-3", "n1"),
		vol("data-db-4", "db-4", "n1"), vol("data-db-5", "db-5", "n2"),
	}})
	// db-3 terminated here (its record remains, Succeeded); db-4's record is gone but the
	// runtime still holds its stopped pod.
	apply(&state.CreatePods{Pods: []state.Pod{{UID: "u3", Namespace: "default", Name: "db-3", Owner: state.Owner{Kind: "StatefulSet", Name: "db"}}}, Time: now})
	apply(&state.BindPods{Bindings: []state.Binding{{UID: "u3", Node: "n1"}}})
	apply(&state.UpdatePodStatus{Node: "n1", Updates: []state.PodStatusUpdate{{UID: "u3", Status: state.PodStatus{Phase: state.PhaseSucceeded}}}})
	var refs []state.VolumeRef
	for _, c := range []string{"data-db-1", "data-db-3", "data-db-4"} {
		refs = append(refs, state.VolumeRef{Namespace: "default", Claim: c, Node: "n1"})
	}
	refs = append(refs, state.VolumeRef{Namespace: "default", Claim: "data-db-5", Node: "n2"})
	apply(&state.DeleteVolumes{Volumes: refs, Time: now})
	actual := []runtime.PodStatus{{Key: runtime.PodKey{Namespace: "default", Name: "db-4", UID: "u4"}}}

	ready, waiting := VolumesToDelete("n1", s.Snapshot(), actual)
	want := []state.VolumeRef{{Namespace: "default", Claim: "data-db-1", Node: "n1"}, {Namespace: "default", Claim: "data-db-3", Node: "n1"}}
	if !slices.Equal(ready, want) || waiting != 1 {
		t.Errorf("ready %v, waiting %d; want %v and data-db-4 waiting", ready, waiting, want)
	}
}

// TestVolumesToDeleteCollidingClaim: claim data-x-web-0 of set x-web's pod x-web-0 is also the
// claim of set web's pod web-0 (template data-x). Marked for deletion (x-web scaled away), it
// waits while web-0 has a live record on this node or is held by the runtime; a web-0 in
// another namespace does not hold it.
func TestVolumesToDeleteCollidingClaim(t *testing.T) {
	s, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	apply := func(c state.Command) {
		t.Helper()
		if res, err := s.ApplyCommand(c); err != nil || len(res.Rejected) > 0 {
			t.Fatalf("%T: %+v, %v", c, res, err)
		}
	}
	now := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	apply(&state.UpsertNode{Node: state.Node{Name: "n1", Status: state.NodeReady}})
	apply(&state.RecordVolumes{Volumes: []state.Volume{{Namespace: "shop", Claim: "data-x-web-0", Node: "n1", Owner: "x-web", Pod: "x-web-0", WhenScaled: state.DeleteOnRemove}}})
	apply(&state.DeleteVolumes{Volumes: []state.VolumeRef{{Namespace: "shop", Claim: "data-x-web-0", Node: "n1"}}, Time: now})
	ref := state.VolumeRef{Namespace: "shop", Claim: "data-x-web-0", Node: "n1"}

	held := []runtime.PodStatus{{Key: runtime.PodKey{Namespace: "shop", Name: "web-0", UID: "u1"}}}
	if ready, waiting := VolumesToDelete("n1", s.Snapshot(), held); len(ready) != 0 || waiting != 1 {
		t.Errorf("runtime holds web-0: ready %v, waiting %d; want data-x-web-0 waiting", ready, waiting)
	}
	other := []runtime.PodStatus{{Key: runtime.PodKey{Namespace: "other", Name: "web-0", UID: "u2"}}}
	if ready, waiting := VolumesToDelete("n1", s.Snapshot(), other); !slices.Equal(ready, []state.VolumeRef{ref}) || waiting != 0 {
		t.Errorf("web-0 in another namespace: ready %v, waiting %d; want data-x-web-0 ready", ready, waiting)
	}

	apply(&state.CreatePods{Pods: []state.Pod{{UID: "u1", Namespace: "shop", Name: "web-0", Owner: state.Owner{Kind: "StatefulSet", Name: "web"}}}, Time: now})
	apply(&state.BindPods{Bindings: []state.Binding{{UID: "u1", Node: "n1"}}})
	if ready, waiting := VolumesToDelete("n1", s.Snapshot(), nil); len(ready) != 0 || waiting != 1 {
		t.Errorf("web-0 bound here: ready %v, waiting %d; want data-x-web-0 waiting", ready, waiting)
	}
	apply(&state.UpdatePodStatus{Node: "n1", Updates: []state.PodStatusUpdate{{UID: "u1", Status: state.PodStatus{Phase: state.PhaseSucceeded}}}})
	if ready, waiting := VolumesToDelete("n1", s.Snapshot(), nil); !slices.Equal(ready, []state.VolumeRef{ref}) || waiting != 0 {
		t.Errorf("web-0 terminated: ready %v, waiting %d; want data-x-web-0 ready", ready, waiting)
	}
}

// TestMarkFreshClaims: the runtime learns a pod's fresh claims from its record only; an
// annotation a template sets is replaced, or removed when the record lists none.
func TestMarkFreshClaims(t *testing.T) {
	p := &corev1.Pod{}
	p.Annotations = map[string]string{runtime.AnnotationFreshClaims: "data-db-0", "keep": "me"}
	markFreshClaims(p, &state.Pod{})
	if _, ok := p.Annotations[runtime.AnnotationFreshClaims]; ok || p.Annotations["keep"] != "me" {
		t.Errorf("record without fresh claims: annotations %v", p.Annotations)
	}
	p = &corev1.Pod{}
	markFreshClaims(p, &state.Pod{Spec: state.PodSpec{FreshClaims: []string{"data-db-1", "logs-db-1"}}})
	if got := p.Annotations[runtime.AnnotationFreshClaims]; got != "data-db-1,logs-db-1" || !runtime.FreshClaim(p.Annotations, "logs-db-1") {
		t.Errorf("record with fresh claims: annotation %q", got)
	}
}

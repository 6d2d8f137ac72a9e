package runtime

import (
	"context"
	"slices"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestFakeDeleteLocalVolume: the Fake refuses to delete a claim's volume while a pod it holds
// mounts it, stopped or not, and records the deletion once the pod is removed.
func TestFakeDeleteLocalVolume(t *testing.T) {
	ctx := context.Background()
	f := NewFake(FakeConfig{})
	spec := podSpec("db-0", ContainerSpec{Name: "db", Image: "db:1", PullPolicy: corev1.PullIfNotPresent,
		Mounts: []Mount{{Volume: "data", Path: "/data"}}})
	spec.Volumes = []Volume{{Name: "data", Local: &LocalVolume{Claim: "data-db-0"}}}
	if _, err := f.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteLocalVolume(spec.Key.Namespace, "data-db-0"); err == nil {
		t.Error("deleted a volume a running pod mounts")
	}
	if err := f.StopPod(ctx, spec.Key, 0); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteLocalVolume(spec.Key.Namespace, "data-db-0"); err == nil {
		t.Error("deleted a volume a stopped pod still mounts")
	}
	if err := f.DeleteLocalVolume(spec.Key.Namespace, "data-db-1"); err != nil {
		t.Errorf("another claim: %v", err)
	}
	if err := f.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	if err := f.DeleteLocalVolume(spec.Key.Namespace, "data-db-0"); err != nil {
		t.Fatal(err)
	}
	if calls := f.Calls(); !slices.Contains(calls, "DeleteLocalVolume "+spec.Key.Namespace+"/data-db-0") {
		t.Errorf("calls %v", calls)
	}
}

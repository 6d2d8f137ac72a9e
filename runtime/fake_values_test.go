package runtime

import (
	"context"
	"fmt"
	"reflect"
	"sync"
	"testing"
)

// TestFakeRefreshVolumes: with Values, the Fake projects configMap and
// secret volumes at RunPod and replaces those whose content changed on
// RefreshVolumes.
func TestFakeRefreshVolumes(t *testing.T) {
	res := &mapResolver{
		configMaps: map[string]map[string][]byte{"default/app": {"mode": []byte("blue")}},
		secrets:    map[string]map[string][]byte{"default/db": {"password": []byte("one")}},
	}
	f := NewFake(FakeConfig{Values: res})
	ctx := context.Background()
	spec := podSpec("p", ContainerSpec{Name: "c", Image: "img"})
	spec.Volumes = []Volume{
		{Name: "cfg", ConfigMap: &ObjectVolume{Name: "app", DefaultMode: 0o644}},
		{Name: "sec", Secret: &ObjectVolume{Name: "db", DefaultMode: 0o644, Items: []KeyToPath{{Key: "password", Path: "pw"}}}},
		{Name: "tmp", EmptyDir: &EmptyDirVolume{}},
	}
	if _, err := f.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if got := f.VolumeFiles(spec.Key.UID, "sec"); !reflect.DeepEqual(got, map[string]string{"pw": "one"}) {
		t.Errorf("sec at start: %v", got)
	}
	if changed, err := f.RefreshVolumes(ctx, spec.Key); err != nil || len(changed) != 0 {
		t.Errorf("unchanged: %v %v", changed, err)
	}
	res.configMaps["default/app"] = map[string][]byte{"mode": []byte("green")}
	changed, err := f.RefreshVolumes(ctx, spec.Key)
	if err != nil || !reflect.DeepEqual(changed, []string{"cfg"}) {
		t.Errorf("ConfigMap changed: %v %v, want [cfg]", changed, err)
	}
	if got := f.VolumeFiles(spec.Key.UID, "cfg"); !reflect.DeepEqual(got, map[string]string{"mode": "green"}) {
		t.Errorf("cfg after refresh: %v", got)
	}
	if _, err := f.RefreshVolumes(ctx, PodKey{Namespace: "default", Name: "x", UID: "nope"}); err == nil {
		t.Error("refresh of an unknown pod succeeded")
	}
}

// ctxResolver serves one ConfigMap whose content is the context's ctxMode, safely for
// concurrent callers.
type ctxResolver struct{}

type ctxMode struct{}

func (ctxResolver) ConfigMap(ctx context.Context, ns, name string) (map[string][]byte, error) {
	mode, _ := ctx.Value(ctxMode{}).(string)
	return map[string][]byte{"mode": []byte(mode)}, nil
}

func (ctxResolver) Secret(ctx context.Context, ns, name string) (map[string][]byte, error) {
	return nil, ErrValueNotFound
}

// TestFakeRefreshVolumesConcurrent: refreshes of one pod at once read the remembered hashes
// under the lock. Run with -race.
func TestFakeRefreshVolumesConcurrent(t *testing.T) {
	f := NewFake(FakeConfig{Values: ctxResolver{}})
	spec := podSpec("p", ContainerSpec{Name: "c", Image: "img"})
	spec.Volumes = []Volume{{Name: "cfg", ConfigMap: &ObjectVolume{Name: "app", DefaultMode: 0o644}}}
	if _, err := f.RunPod(context.WithValue(context.Background(), ctxMode{}, "start"), spec); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := range 50 {
				ctx := context.WithValue(context.Background(), ctxMode{}, fmt.Sprint(i, j))
				if _, err := f.RefreshVolumes(ctx, spec.Key); err != nil {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
}

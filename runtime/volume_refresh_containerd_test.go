package runtime

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// TestContainerdRefreshVolumes: the configMap and secret volumes of a
// running pod are updated in place when their values change, as the
// kubelet's AtomicWriter does: the container reads the new content, ..data
// points to a new directory, the old one is gone, the secret's files stay
// on tmpfs. Unchanged volumes are not rewritten; a subPath mount keeps
// what it was created with; a volume that cannot be resolved keeps its
// content.
func TestContainerdRefreshVolumes(t *testing.T) {
	n := newTestNode(t)
	res := &mapResolver{
		configMaps: map[string]map[string][]byte{"default/app": {"greeting": []byte("hello")}},
		secrets:    map[string]map[string][]byte{"default/creds": {"password": []byte(testSecretValue)}},
	}
	n.reopenWith(t, func(c *Config) { c.Values = res })
	ctx := context.Background()
	spec := podSpec("refresh", ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent,
		Mounts: []Mount{
			{Volume: "cfg", Path: "/cfg"},
			{Volume: "sec", Path: "/sec"},
			{Volume: "cfg", Path: "/pinned/greeting", SubPath: "greeting"},
		}})
	spec.Volumes = []Volume{
		{Name: "cfg", ConfigMap: &ObjectVolume{Name: "app", DefaultMode: 0o644}},
		{Name: "sec", Secret: &ObjectVolume{Name: "creds", DefaultMode: 0o400}},
	}
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	ip := st.PodIP
	read := func(path string) string { t.Helper(); return waitHTTP(t, ip, "/file"+path) }
	if got := read("/cfg/greeting"); got != "hello" {
		t.Fatalf("/cfg/greeting = %q", got)
	}
	vols := filepath.Join(n.podDir(spec.Key.UID), "volumes")
	payload := func(vol string) string {
		t.Helper()
		ts, err := os.Readlink(filepath.Join(vols, vol, "..data"))
		if err != nil {
			t.Fatalf("volume %s: %v", vol, err)
		}
		return ts
	}
	cfg1, sec1 := payload("cfg"), payload("sec")

	// Nothing changed: nothing is rewritten.
	changed, err := n.RefreshVolumes(ctx, spec.Key)
	if err != nil || len(changed) != 0 || payload("cfg") != cfg1 || payload("sec") != sec1 {
		t.Fatalf("refresh without a change: %v %v; payloads %s %s", changed, err, payload("cfg"), payload("sec"))
	}

	res.configMaps["default/app"] = map[string][]byte{"greeting": []byte("bonjour"), "extra": []byte("new key")}
	res.secrets["default/creds"] = map[string][]byte{"password": []byte(testSecretValue + "-2")}
	changed, err = n.RefreshVolumes(ctx, spec.Key)
	if err != nil || !reflect.DeepEqual(changed, []string{"cfg", "sec"}) {
		t.Fatalf("refresh: %v %v, want [cfg sec]", changed, err)
	}
	for path, want := range map[string]string{
		"/cfg/greeting": "bonjour", "/cfg/extra": "new key", "/sec/password": testSecretValue + "-2",
		"/pinned/greeting": "hello", // a subPath mount is not updated, as in Kubernetes
	} {
		if got := read(path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	for vol, old := range map[string]string{"cfg": cfg1, "sec": sec1} {
		now := payload(vol)
		if now == old || !strings.HasPrefix(now, "..") {
			t.Errorf("volume %s: ..data -> %s, want a new directory (was %s)", vol, now, old)
		}
		if _, err := os.Lstat(filepath.Join(vols, vol, old)); !os.IsNotExist(err) {
			t.Errorf("volume %s: the old payload %s is still there (%v)", vol, old, err)
		}
		if _, err := os.Lstat(filepath.Join(vols, vol, "..data_tmp")); !os.IsNotExist(err) {
			t.Errorf("volume %s: the temporary link is left (%v)", vol, err)
		}
	}
	if tmp, _ := isTmpfs(t, filepath.Join(vols, "sec", payload("sec"))); !tmp {
		t.Error("the new secret payload is not on tmpfs")
	}
	if fi, err := os.Stat(filepath.Join(vols, "sec", "password")); err != nil || fi.Mode().Perm() != 0o400 {
		t.Errorf("secret file mode: %v %v, want 0400", fi, err)
	}

	// A ConfigMap that disappears: the volume keeps its content, the error names it.
	delete(res.configMaps, "default/app")
	changed, err = n.RefreshVolumes(ctx, spec.Key)
	if err == nil || !strings.Contains(err.Error(), "volume cfg") || len(changed) != 0 {
		t.Errorf("refresh with the ConfigMap gone: %v %v, want an error naming volume cfg", changed, err)
	}
	if got := read("/cfg/greeting"); got != "bonjour" {
		t.Errorf("/cfg/greeting = %q after a failed refresh, want the last content", got)
	}

	// A volume without ..data (set up by an earlier version): the pod is not updated at all, and
	// nothing is read for it, so that asking again costs nothing.
	if err := os.Remove(filepath.Join(vols, "sec", "..data")); err != nil {
		t.Fatal(err)
	}
	calls := res.calls
	changed, err = n.RefreshVolumes(ctx, spec.Key)
	if !errors.Is(err, ErrNotUpdatableInPlace) || !strings.Contains(err.Error(), "sec") || len(changed) != 0 {
		t.Errorf("refresh with a flat volume: %v %v, want ErrNotUpdatableInPlace naming sec", changed, err)
	}
	if res.calls != calls {
		t.Errorf("%d values read for a pod that cannot be updated", res.calls-calls)
	}

	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	if _, err := n.RefreshVolumes(ctx, spec.Key); err == nil {
		t.Error("refresh of a removed pod succeeded")
	}
}

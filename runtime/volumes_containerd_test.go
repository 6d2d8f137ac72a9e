package runtime

import (
	"bytes"
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

func httpPut(url, body string) (int, string, error) {
	req, err := http.NewRequest(http.MethodPut, url, strings.NewReader(body))
	if err != nil {
		return 0, "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), err
}

func isTmpfs(t *testing.T, dir string) (bool, int64) {
	t.Helper()
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		t.Fatalf("statfs %s: %v", dir, err)
	}
	return st.Type == unix.TMPFS_MAGIC, int64(st.Blocks) * st.Bsize
}

const testSecretValue = "s3cret-Zq7xv"

func TestContainerdVolumesAndEnv(t *testing.T) {
	n := newTestNode(t)
	res := &mapResolver{
		configMaps: map[string]map[string][]byte{"default/app": {"greeting": []byte("hello"), "app.ini": []byte("[x]\ny=1\n")}},
		secrets:    map[string]map[string][]byte{"default/creds": {"password": []byte(testSecretValue)}},
	}
	n.reopenWith(t, func(c *Config) { c.Values = res })
	ctx := context.Background()
	hostDir := filepath.Join(t.TempDir(), "host", "sub")
	mode := int32(0o600)
	spec := podSpec("vol",
		ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent,
			Args:    []string{"--msg=$(GREETING)", "$$(GREETING)"},
			EnvFrom: []EnvFromSource{{ConfigMap: "app", Prefix: "CFG_"}},
			Env: []EnvVar{
				{Name: "GREETING", From: &EnvSource{ConfigMapKey: &ObjectKeyRef{Name: "app", Key: "greeting"}}},
				{Name: "PASSWORD", From: &EnvSource{SecretKey: &ObjectKeyRef{Name: "creds", Key: "password"}}},
				{Name: "POD_NAME", From: &EnvSource{FieldPath: "metadata.name"}},
				{Name: "POD_IP", From: &EnvSource{FieldPath: "status.podIP"}},
				{Name: "NODE", From: &EnvSource{FieldPath: "spec.nodeName"}},
				{Name: "APP", From: &EnvSource{FieldPath: "metadata.labels['app']"}},
				{Name: "CPU_M", From: &EnvSource{Resource: &ResourceRef{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
				{Name: "MSG", Value: "$(GREETING) from $(POD_NAME)"},
				{Name: "ESCAPED", Value: "$$(GREETING)"},
			},
			Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
			Mounts: []Mount{
				{Volume: "cache", Path: "/cache"},
				{Volume: "cache", Path: "/cache-ro", ReadOnly: true},
				{Volume: "cache", Path: "/sub", SubPath: "a/b"},
				{Volume: "mem", Path: "/mem"},
				{Volume: "host", Path: "/host"},
				{Volume: "cfg", Path: "/cfg"},
				{Volume: "sec", Path: "/sec"},
				{Volume: "meta", Path: "/meta"},
				{Volume: "data", Path: "/data"},
			},
		})
	spec.Labels = map[string]string{"app": "web", "tier": "front"}
	spec.NodeName = "node-1"
	spec.Volumes = []Volume{
		{Name: "cache", EmptyDir: &EmptyDirVolume{}},
		{Name: "mem", EmptyDir: &EmptyDirVolume{Memory: true, SizeLimit: 8 << 20}},
		{Name: "host", HostPath: &HostPathVolume{Path: hostDir, Type: corev1.HostPathDirectoryOrCreate}},
		{Name: "cfg", ConfigMap: &ObjectVolume{Name: "app", DefaultMode: 0o644, Items: []KeyToPath{{Key: "app.ini", Path: "conf/app.ini", Mode: &mode}}}},
		{Name: "sec", Secret: &ObjectVolume{Name: "creds", DefaultMode: 0o400}},
		{Name: "meta", DownwardAPI: &DownwardAPIVolume{DefaultMode: 0o644, Items: []DownwardAPIFile{
			{Path: "labels", FieldPath: "metadata.labels"},
			{Path: "name", FieldPath: "metadata.name"},
			{Path: "cpu", Resource: &ResourceRef{Container: "web", Resource: "requests.cpu", Divisor: resource.MustParse("1m")}},
		}}},
		{Name: "data", Local: &LocalVolume{Claim: "data-vol-0"}},
	}
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	if c, _ := st.Container("web"); c.State != StateRunning {
		t.Fatalf("web: %+v", c)
	}
	ip := st.PodIP
	base := "http://" + ip + ":8080"
	waitHTTP(t, ip, "/healthz")

	// Environment.
	for name, want := range map[string]string{
		"GREETING": "hello", "PASSWORD": testSecretValue, "POD_NAME": "vol", "POD_IP": ip, "NODE": "node-1", "APP": "web",
		"CPU_M": "250", "MSG": "hello from vol", "ESCAPED": "$(GREETING)", "CFG_greeting": "hello", "HOSTNAME": "vol",
	} {
		if got := waitHTTP(t, ip, "/env/"+name); got != want+"\n" {
			t.Errorf("env %s = %q, want %q", name, got, want)
		}
	}
	if got := waitHTTP(t, ip, "/file/proc/1/cmdline"); got != "/web\x00--msg=hello\x00$(GREETING)\x00" {
		t.Errorf("cmdline %q: args are expanded, $$ escapes", got)
	}

	// Projected files, with their modes on the host.
	for path, want := range map[string]string{
		"/cfg/conf/app.ini": "[x]\ny=1\n", "/sec/password": testSecretValue, "/meta/name": "vol", "/meta/cpu": "250",
		"/meta/labels": "app=\"web\"\ntier=\"front\"",
	} {
		if got := waitHTTP(t, ip, "/file"+path); got != want {
			t.Errorf("%s = %q, want %q", path, got, want)
		}
	}
	for path, want := range map[string]os.FileMode{"cfg/conf/app.ini": 0o600, "sec/password": 0o400, "meta/name": 0o644} {
		fi, err := os.Stat(filepath.Join(n.podDir(spec.Key.UID), "volumes", path))
		if err != nil || fi.Mode().Perm() != want {
			t.Errorf("%s mode: %v %v, want %v", path, fi.Mode(), err, want)
		}
	}

	// Writable and read-only mounts.
	for _, tc := range []struct {
		path string
		ok   bool
	}{
		{"/cache/x", true}, {"/cache-ro/y", false}, {"/sub/s", true}, {"/mem/m", true}, {"/host/h", true},
		{"/data/keep", true}, {"/cfg/new", false}, {"/sec/new", false}, {"/meta/new", false},
	} {
		code, body, err := httpPut(base+"/file"+tc.path, "data:"+tc.path)
		if err != nil {
			t.Fatal(err)
		}
		if (code == http.StatusOK) != tc.ok {
			t.Errorf("PUT %s: %d %s (want writable=%v)", tc.path, code, strings.TrimSpace(body), tc.ok)
		}
		if !tc.ok && !strings.Contains(body, "read-only file system") {
			t.Errorf("PUT %s refused for another reason: %s", tc.path, body)
		}
	}
	vols := filepath.Join(n.podDir(spec.Key.UID), "volumes")
	for host, want := range map[string]string{
		filepath.Join(vols, "cache", "x"):                                 "data:/cache/x",
		filepath.Join(vols, "cache", "a", "b", "s"):                       "data:/sub/s",
		filepath.Join(hostDir, "h"):                                       "data:/host/h",
		filepath.Join(n.LocalVolumePath("default", "data-vol-0"), "keep"): "data:/data/keep",
	} {
		if b, err := os.ReadFile(host); err != nil || string(b) != want {
			t.Errorf("%s on the host: %q %v, want %q", host, b, err, want)
		}
	}

	// Medium Memory and secrets are tmpfs (the memory one sized); the rest is disk.
	if tmp, size := isTmpfs(t, filepath.Join(vols, "mem")); !tmp || size != 8<<20 {
		t.Errorf("mem volume: tmpfs=%v size=%d, want a tmpfs of 8 MiB", tmp, size)
	}
	if tmp, _ := isTmpfs(t, filepath.Join(vols, "sec")); !tmp {
		t.Error("secret volume is not on tmpfs")
	}
	if tmp, _ := isTmpfs(t, filepath.Join(vols, "cache")); tmp {
		t.Error("disk emptyDir is on tmpfs")
	}
	// No secret value on disk under the data dir (tmpfs volumes excluded),
	// nor in containerd's root and state (its metadata database and the
	// task bundles), though the container has it in its environment.
	for _, root := range []string{n.cfg.DataDir, n.env.dir} {
		err = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil {
				if os.IsNotExist(err) {
					return nil // a file removed meanwhile
				}
				return err
			}
			if d.IsDir() && isMountPoint(p) && p != root {
				if tmp, _ := isTmpfs(t, p); tmp {
					return filepath.SkipDir
				}
				if strings.Contains(p, "/rootfs") {
					return filepath.SkipDir // a container's root filesystem mount
				}
			}
			if d.Type().IsRegular() {
				if b, err := os.ReadFile(p); err == nil && bytes.Contains(b, []byte(testSecretValue)) {
					t.Errorf("secret value written to disk in %s", p)
				}
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}

	// Removal unmounts and deletes; the local volume outlives the pod and
	// the next pod of the claim finds its data.
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
	if _, err := os.Stat(filepath.Join(hostDir, "h")); err != nil {
		t.Errorf("hostPath content removed with the pod: %v", err)
	}
	again := podSpec("vol-again", ContainerSpec{Name: "web", Image: n.env.images["web"], PullPolicy: corev1.PullIfNotPresent,
		Mounts: []Mount{{Volume: "data", Path: "/data", ReadOnly: true}}})
	again.Volumes = []Volume{{Name: "data", Local: &LocalVolume{Claim: "data-vol-0"}}}
	st, err = n.RunPod(ctx, again)
	if err != nil {
		t.Fatal(err)
	}
	if got := waitHTTP(t, st.PodIP, "/file/data/keep"); got != "data:/data/keep" {
		t.Errorf("local volume in the next pod: %q", got)
	}
	if err := n.RemovePod(ctx, again.Key); err != nil {
		t.Fatal(err)
	}
	if err := n.DeleteLocalVolume("default", "data-vol-0"); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(n.LocalVolumePath("default", "data-vol-0")); !os.IsNotExist(err) {
		t.Errorf("local volume not deleted: %v", err)
	}
	n.assertNoLeaks(t)
}

// TestContainerdVolumeAndEnvFailures: a volume that cannot be set up fails
// RunPod and leaves nothing (tmpfs included); an env that cannot be
// resolved fails only its container, with CreateContainerConfigError.
func TestContainerdVolumeAndEnvFailures(t *testing.T) {
	n := newTestNode(t)
	res := &mapResolver{secrets: map[string]map[string][]byte{"default/creds": {"password": []byte(testSecretValue)}}}
	n.reopenWith(t, func(c *Config) { c.Values = res })
	ctx := context.Background()
	batch := n.env.images["batch"]
	missing := filepath.Join(t.TempDir(), "missing")
	for name, vols := range map[string][]Volume{
		"hostPath Directory missing": {{Name: "h", HostPath: &HostPathVolume{Path: missing, Type: corev1.HostPathDirectory}}},
		// The secret's tmpfs is mounted before the configMap fails.
		"configMap missing":   {{Name: "s", Secret: &ObjectVolume{Name: "creds", DefaultMode: 0o644}}, {Name: "c", ConfigMap: &ObjectVolume{Name: "nope", DefaultMode: 0o644}}},
		"secret item missing": {{Name: "s", Secret: &ObjectVolume{Name: "creds", DefaultMode: 0o644, Items: []KeyToPath{{Key: "nope", Path: "x"}}}}},
	} {
		spec := podSpec("bad-vol", ContainerSpec{Name: "b", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"}})
		spec.Volumes = vols
		_, err := n.RunPod(ctx, spec)
		if err == nil {
			t.Errorf("%s: RunPod succeeded", name)
			continue
		}
		t.Logf("%s: %v", name, err)
		if _, err := n.PodStatus(ctx, spec.Key); !errors.Is(err, ErrPodNotFound) {
			t.Errorf("%s: pod left behind: %v", name, err)
		}
		n.assertNoLeaks(t)
	}
	// Optional: a missing optional secret volume is an empty directory.
	spec := podSpec("opt", ContainerSpec{Name: "b", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"},
		Mounts: []Mount{{Volume: "s", Path: "/s"}},
		Env:    []EnvVar{{Name: "X", From: &EnvSource{SecretKey: &ObjectKeyRef{Name: "creds", Key: "nope"}}}}},
		ContainerSpec{Name: "ok", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h"},
			Env: []EnvVar{{Name: "X", From: &EnvSource{SecretKey: &ObjectKeyRef{Name: "creds", Key: "nope", Optional: true}}}}},
	)
	spec.Volumes = []Volume{{Name: "s", Secret: &ObjectVolume{Name: "absent", Optional: true, DefaultMode: 0o644}}}
	spec.TerminationGracePeriod = 2 * time.Second // a young container may not handle SIGTERM yet
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := st.Container("b")
	if b.State != StateWaiting || b.Reason != ReasonCreateContainerConfigError || !strings.Contains(b.Message, "couldn't find key nope") {
		t.Errorf("b: %+v", b)
	}
	if ok, _ := st.Container("ok"); ok.State != StateRunning {
		t.Errorf("ok: %+v", ok)
	}
	// Only the projection's own entries (..data and its directory), as with the kubelet.
	ents, err := os.ReadDir(filepath.Join(n.podDir(spec.Key.UID), "volumes", "s"))
	for _, e := range ents {
		if !strings.HasPrefix(e.Name(), "..") {
			err = errors.Join(err, errors.New("file "+e.Name()))
		}
	}
	if err != nil || len(ents) != 2 {
		t.Errorf("optional missing secret volume: %v %v", names(ents), err)
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
	n.assertNoLeaks(t)
}

package secrets

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

// mountTmpfs mounts a tmpfs of its own for the test, and unmounts it afterwards.
func mountTmpfs(t *testing.T) string {
	t.Helper()
	if os.Geteuid() != 0 {
		t.Skip("needs root to mount a tmpfs (CI runs as root)")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", 0, "size=4m,mode=0700"); err != nil {
		t.Skipf("cannot mount a tmpfs here: %v", err)
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, 0); err != nil {
			t.Errorf("unmount %s: %v", dir, err)
		}
	})
	return dir
}

func TestIsTmpfs(t *testing.T) {
	dir := mountTmpfs(t)
	if ok, err := IsTmpfs(dir); err != nil || !ok {
		t.Errorf("IsTmpfs(mounted tmpfs) = %v, %v", ok, err)
	}
	disk := filepath.Join(".", "testdata")
	if ok, err := IsTmpfs(disk); err != nil || ok {
		t.Errorf("IsTmpfs(testdata) = %v, %v; want false (the source tree is not on tmpfs)", ok, err)
	}
	if _, err := IsTmpfs(filepath.Join(dir, "missing")); err == nil {
		t.Error("IsTmpfs of a missing path: no error")
	}
}

func TestWriteProjectionRefusesADisk(t *testing.T) {
	dir := t.TempDir()
	if ok, _ := IsTmpfs(dir); ok {
		t.Skip("the temporary directory is itself a tmpfs here")
	}
	err := WriteProjection(dir, map[string]File{"password": {Data: []byte("shoal-demo-password"), Mode: 0o400}})
	if err == nil || !strings.Contains(err.Error(), "not a tmpfs") {
		t.Fatalf("err = %v, want a refusal", err)
	}
	noPlaintext(t, "error", err.Error())
	entries, _ := os.ReadDir(dir)
	if len(entries) != 0 {
		t.Errorf("something was written to the disk: %v", entries)
	}
}

func readProjected(t *testing.T, dir, name string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, name))
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWriteProjectionAtomicSwap(t *testing.T) {
	dir := mountTmpfs(t)
	mode := int32(0o440)
	first, err := Project(Values{"user": []byte("admin"), "password": []byte("one")}, nil, &mode, false)
	if err != nil {
		t.Fatal(err)
	}
	if err := WriteProjection(dir, first); err != nil {
		t.Fatal(err)
	}
	ts1, err := os.Readlink(filepath.Join(dir, "..data"))
	if err != nil || !strings.HasPrefix(ts1, "..20") {
		t.Fatalf("..data -> %q, %v", ts1, err)
	}
	for _, name := range []string{"user", "password"} {
		if l, _ := os.Readlink(filepath.Join(dir, name)); l != "..data/"+name {
			t.Errorf("%s -> %q, want ..data/%s", name, l, name)
		}
	}
	if fi, _ := os.Stat(filepath.Join(dir, "password")); fi.Mode().Perm() != 0o440 {
		t.Errorf("mode %v, want 0440", fi.Mode().Perm())
	}

	// The same payload again changes nothing.
	if err := WriteProjection(dir, first); err != nil {
		t.Fatal(err)
	}
	if ts, _ := os.Readlink(filepath.Join(dir, "..data")); ts != ts1 {
		t.Errorf("an unchanged payload was rewritten: %s -> %s", ts1, ts)
	}

	// A new payload: password changes, user goes, token comes; the old directory is removed.
	second, _ := Project(Values{"password": []byte("two"), "token": []byte("t")}, nil, nil, false)
	if err := WriteProjection(dir, second); err != nil {
		t.Fatal(err)
	}
	ts2, _ := os.Readlink(filepath.Join(dir, "..data"))
	if ts2 == ts1 {
		t.Fatal("..data was not swapped")
	}
	if got := readProjected(t, dir, "password"); got != "two" {
		t.Errorf("password = %q after the swap", got)
	}
	if _, err := os.Lstat(filepath.Join(dir, "user")); !os.IsNotExist(err) {
		t.Errorf("user is still there: %v", err)
	}
	if _, err := os.Stat(filepath.Join(dir, ts1)); !os.IsNotExist(err) {
		t.Errorf("old payload %s not removed: %v", ts1, err)
	}
	if fi, _ := os.Stat(filepath.Join(dir, "token")); fi.Mode().Perm() != DefaultMode {
		t.Errorf("default mode %v, want %v", fi.Mode().Perm(), DefaultMode)
	}
	entries, _ := os.ReadDir(dir)
	var names []string
	for _, e := range entries {
		names = append(names, e.Name())
	}
	if len(names) != 4 { // ..data, the payload dir, password, token
		t.Errorf("entries %v", names)
	}
}

func TestProjectItemsAndSubPath(t *testing.T) {
	dir := mountTmpfs(t)
	v := Values{"tls.crt": []byte("CERT"), "tls.key": []byte("KEY"), "unused": []byte("x")}
	keyMode := int32(0o400)
	files, err := Project(v, []corev1.KeyToPath{
		{Key: "tls.crt", Path: "certs/server.crt"},
		{Key: "tls.key", Path: "certs/server.key", Mode: &keyMode},
	}, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || files["certs/server.key"].Mode != 0o400 || files["certs/server.crt"].Mode != DefaultMode {
		t.Fatalf("files %v", files)
	}
	if err := WriteProjection(dir, files); err != nil {
		t.Fatal(err)
	}
	if got := readProjected(t, dir, "certs/server.crt"); got != "CERT" {
		t.Errorf("certs/server.crt = %q", got)
	}
	p, err := SubPath(dir, "certs/server.key")
	if err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(p); !bytes.Equal(b, []byte("KEY")) || strings.Contains(p, "..data") {
		t.Errorf("SubPath = %s (%q); want the file in the payload directory", p, b)
	}
	for _, bad := range []string{"../etc/passwd", "/etc/passwd", "certs/../../x", "", "..data/certs"} {
		if _, err := SubPath(dir, bad); err == nil {
			t.Errorf("SubPath(%q) accepted", bad)
		}
	}

	if _, err := Project(v, []corev1.KeyToPath{{Key: "missing", Path: "m"}}, nil, false); err == nil {
		t.Error("a missing item key was accepted")
	}
	if f, err := Project(v, []corev1.KeyToPath{{Key: "missing", Path: "m"}}, nil, true); err != nil || len(f) != 0 {
		t.Errorf("optional: %v, %v", f, err)
	}
	for _, bad := range []string{"../x", "/abs", "a/../b", "..hidden", "a//b"} {
		if _, err := Project(v, []corev1.KeyToPath{{Key: "unused", Path: bad}}, nil, false); err == nil {
			t.Errorf("item path %q accepted", bad)
		}
	}
	if _, err := Project(v, []corev1.KeyToPath{{Key: "tls.crt", Path: "a"}, {Key: "tls.key", Path: "a/b"}}, nil, false); err == nil {
		t.Error("a path that is both a file and a directory was accepted")
	}
}

func TestConfigMapValuesProject(t *testing.T) {
	cm := &corev1.ConfigMap{Data: map[string]string{"app.conf": "port=80"}, BinaryData: map[string][]byte{"logo.png": {0x89, 'P'}}}
	files, err := Project(ConfigMapValues(cm), nil, nil, false)
	if err != nil {
		t.Fatal(err)
	}
	if len(files) != 2 || string(files["app.conf"].Data) != "port=80" || !bytes.Equal(files["logo.png"].Data, []byte{0x89, 'P'}) {
		t.Errorf("files %v", files)
	}
}

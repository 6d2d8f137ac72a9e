package runtime

import (
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLocalVolumeFreshClaim: a claim the leader has no volume record of (fresh) never reopens a
// directory made for an earlier incarnation of the claim (a node declared gone that came back
// keeps its directories): the old directory is moved aside under volumes/local-replaced, named
// by the claim and its maker's UID, unless the same pod made it (set up again after an agent
// restart), and never while another pod held here mounts the claim or a pod record here cannot
// be read. A pinned claim (with a record) always keeps its data. No containerd needed: only
// the data directory is touched.
func TestLocalVolumeFreshClaim(t *testing.T) {
	c := &Containerd{cfg: Config{DataDir: t.TempDir()}, log: slog.New(slog.NewTextHandler(testWriter{t}, nil))}
	const claim = "data-db-0"
	dir := c.LocalVolumePath("shop", claim)
	pod := func(uid string) PodKey { return PodKey{Namespace: "shop", Name: "db-0", UID: uid} }
	write := func() {
		t.Helper()
		if err := os.WriteFile(filepath.Join(dir, "old"), []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	has := func() bool {
		_, err := os.Stat(filepath.Join(dir, "old"))
		return err == nil
	}
	// moved reports whether the data a pod with UID maker made is kept aside.
	moved := func(maker string) bool {
		t.Helper()
		m, err := filepath.Glob(filepath.Join(c.cfg.DataDir, "volumes", "local-replaced", "shop", claim+"-"+maker+"-*", "old"))
		if err != nil {
			t.Fatal(err)
		}
		return len(m) == 1
	}
	setup := func(uid string, fresh bool) error {
		t.Helper()
		return c.setupLocalVolume(pod(uid), claim, fresh)
	}

	// A directory left from before (no maker file: an older shoal, or a forgotten volume).
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	write()
	if err := setup("u1", false); err != nil || !has() {
		t.Fatalf("pinned claim: %v, data kept %v; want kept", err, has())
	}
	if err := setup("u1", true); err != nil || has() || !moved("unknown") {
		t.Fatalf("fresh claim over an old directory: %v, data kept %v, moved aside %v; want a new directory, the old one moved aside", err, has(), moved("unknown"))
	}
	write()
	if err := setup("u1", true); err != nil || !has() {
		t.Fatalf("the same pod set up again: %v, data kept %v; want kept", err, has())
	}
	if err := setup("u2", false); err != nil || !has() {
		t.Fatalf("a later pod pinned to the claim: %v, data kept %v; want kept", err, has())
	}

	// Another pod held here mounts the claim: a fresh claim of a new pod waits for it.
	other := &podRecord{Spec: PodSpec{Key: PodKey{Namespace: "shop", Name: "web-0", UID: "u9"},
		Volumes: []Volume{{Name: "data", Local: &LocalVolume{Claim: claim}}}}}
	if err := c.saveRecord(other); err != nil {
		t.Fatal(err)
	}
	if err := setup("u3", true); err == nil || !strings.Contains(err.Error(), "web-0") || !has() {
		t.Fatalf("fresh claim mounted by another pod: %v, data kept %v; want refused, kept", err, has())
	}
	if err := os.RemoveAll(c.podDir("u9")); err != nil {
		t.Fatal(err)
	}

	// A pod record here that cannot be read may be a pod mounting the claim: refused too, and
	// the error names the claim.
	if err := os.MkdirAll(c.podDir("u8"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(c.podDir("u8"), "pod.json"), []byte("{"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := setup("u3", true); err == nil || !strings.Contains(err.Error(), claim) || !strings.Contains(err.Error(), "u8") || !has() {
		t.Fatalf("fresh claim with an unreadable pod record: %v, data kept %v; want refused naming the claim and the record, kept", err, has())
	}
	if err := os.RemoveAll(c.podDir("u8")); err != nil {
		t.Fatal(err)
	}
	// A pod directory without a record (being made, or being removed) holds nothing.
	if err := os.MkdirAll(c.podDir("u7"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := setup("u3", true); err != nil || has() || !moved("u1") {
		t.Fatalf("fresh claim of a new pod: %v, data kept %v, moved aside %v; want a new directory, u1's moved aside", err, has(), moved("u1"))
	}
	if err := setup("u3", true); err != nil || !moved("u1") {
		t.Fatalf("the same pod set up again: %v; u1's data still aside %v", err, moved("u1"))
	}

	if err := c.DeleteLocalVolume("shop", claim); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{dir, c.localVolumeMaker("shop", claim), filepath.Dir(c.localVolumeMaker("shop", claim))} {
		if _, err := os.Stat(p); !os.IsNotExist(err) {
			t.Errorf("%s after DeleteLocalVolume: %v; want it gone", p, err)
		}
	}
}

// TestFreshClaim: the annotation lists claims, comma-separated.
func TestFreshClaim(t *testing.T) {
	a := map[string]string{AnnotationFreshClaims: "data-db-0,logs-db-0"}
	if !FreshClaim(a, "logs-db-0") || FreshClaim(a, "db-0") || FreshClaim(nil, "data-db-0") {
		t.Errorf("FreshClaim(%v) is wrong", a)
	}
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimSuffix(string(p), "\n"))
	return len(p), nil
}

// TestDownwardAnnotationsHideFreshClaims: the annotation the node agent adds for the runtime
// (AnnotationFreshClaims) is not in the pod's downward-API metadata.annotations, whole or by
// key; the manifest's annotations are.
func TestDownwardAnnotationsHideFreshClaims(t *testing.T) {
	pod := PodSpec{Key: PodKey{Namespace: "shop", Name: "db-0", UID: "u1"},
		Annotations: map[string]string{"team": "a", AnnotationFreshClaims: "data-db-0"}}
	if v, err := fieldValue(pod, "", "metadata.annotations"); err != nil || v != `team="a"` {
		t.Errorf("metadata.annotations = %q, %v; want team only", v, err)
	}
	if v, err := fieldValue(pod, "", "metadata.annotations['"+AnnotationFreshClaims+"']"); err != nil || v != "" {
		t.Errorf("metadata.annotations['%s'] = %q, %v; want empty", AnnotationFreshClaims, v, err)
	}
	if v, err := fieldValue(pod, "", "metadata.annotations['team']"); err != nil || v != "a" {
		t.Errorf("metadata.annotations['team'] = %q, %v; want a", v, err)
	}
	if pod.Annotations[AnnotationFreshClaims] != "data-db-0" {
		t.Error("the pod's annotations were changed")
	}
}

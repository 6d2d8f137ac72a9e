package agent

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"testing/fstest"
	"time"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/secrets"
	"github.com/shoal-dev/shoal/state"
)

// The plaintext values of the test Secrets: no error, log line or hash may contain them.
const (
	testPassword = "pw-7f3c9-do-not-leak"
	testUser     = "user-a41e-do-not-leak"
)

// ageKey makes an age identity file in a temporary directory and returns its path and public key.
func ageKey(t testing.TB) (file, recipient string) {
	t.Helper()
	key, recipient, err := secrets.GenerateIdentity(time.Unix(0, 0))
	if err != nil {
		t.Fatal(err)
	}
	file = filepath.Join(t.TempDir(), "node.agekey")
	if err := os.WriteFile(file, key, 0o600); err != nil {
		t.Fatal(err)
	}
	return file, recipient
}

func secretYAML(name string, values map[string]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: Secret\nmetadata:\n  name: " + name + "\n  namespace: default\nstringData:\n")
	for k, v := range values {
		b.WriteString("  " + k + ": " + v + "\n")
	}
	return b.String()
}

// encryptedSecret is a Secret encrypted to recipient, as `shoal secret encrypt` writes it.
func encryptedSecret(t testing.TB, file, name string, values map[string]string, recipient string) string {
	t.Helper()
	out, err := secrets.Encrypt(file, []byte(secretYAML(name, values)), secrets.EncryptOptions{Recipients: []string{recipient}})
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

func configMapYAML(name string, data map[string]string) string {
	var b strings.Builder
	b.WriteString("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: " + name + "\n  namespace: default\ndata:\n")
	for k, v := range data {
		b.WriteString("  " + k + ": \"" + v + "\"\n")
	}
	return b.String()
}

// mapTree serves commits from in-memory trees, as the node's clone would.
func mapTree(t testing.TB, commits map[string]map[string]string) commitTree {
	t.Helper()
	type tree struct {
		fsys fs.FS
		set  *manifest.Set
	}
	trees := map[string]tree{}
	for c, files := range commits {
		fsys := fstest.MapFS{}
		for n, s := range files {
			fsys[n] = &fstest.MapFile{Data: []byte(s)}
		}
		set, errs := manifest.Load(fsys, ".")
		if len(errs) > 0 {
			t.Fatalf("commit %s: %v", c, errs)
		}
		trees[c] = tree{fsys, set}
	}
	return func(_ context.Context, commit string) (fs.FS, *manifest.Set, error) {
		tr, ok := trees[commit]
		if !ok {
			return nil, nil, errors.New("no such commit " + commit)
		}
		return tr.fsys, tr.set, nil
	}
}

func newTestValues(t testing.TB, tree commitTree, keyFile string) *nodeValues {
	t.Helper()
	n, err := newNodeValues(tree, keyFile, testKey)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// noLeak fails when s holds a plaintext test value.
func noLeak(t testing.TB, what, s string) {
	t.Helper()
	for _, v := range []string{testPassword, testUser} {
		if strings.Contains(s, v) {
			t.Errorf("%s leaks a plaintext value: %s", what, s)
		}
	}
}

func TestValuesConfigMap(t *testing.T) {
	n := newTestValues(t, mapTree(t, map[string]map[string]string{
		"c1": {"cm.yaml": configMapYAML("app", map[string]string{"mode": "blue"})},
		"c2": {"cm.yaml": configMapYAML("app", map[string]string{"mode": "green"})},
	}), "")
	for commit, want := range map[string]string{"c1": "blue", "c2": "green"} {
		got, err := n.ConfigMap(withPodCommit(context.Background(), commit), "default", "app")
		if err != nil || string(got["mode"]) != want {
			t.Errorf("ConfigMap at %s: %q, %v; want mode=%s", commit, got["mode"], err, want)
		}
	}
	_, err := n.ConfigMap(withPodCommit(context.Background(), "c1"), "default", "missing")
	if !errors.Is(err, runtime.ErrValueNotFound) || !strings.Contains(err.Error(), "ConfigMap default/missing") {
		t.Errorf("missing ConfigMap: %v, want ErrValueNotFound naming it", err)
	}
	if _, err := n.ConfigMap(context.Background(), "default", "app"); err == nil || !strings.Contains(err.Error(), "no commit") {
		t.Errorf("without the pod's commit: %v", err)
	}
}

func TestValuesSecret(t *testing.T) {
	keyFile, recipient := ageKey(t)
	values := map[string]string{"password": testPassword, "user": testUser}
	files := map[string]string{
		"db.yaml":    encryptedSecret(t, "db.yaml", "db", values, recipient),
		"other.yaml": encryptedSecret(t, "other.yaml", "other", values, recipient),
		"third.yaml": encryptedSecret(t, "third.yaml", "third", values, recipient),
	}
	n := newTestValues(t, mapTree(t, map[string]map[string]string{"c1": files}), keyFile)
	ctx := withPodCommit(context.Background(), "c1")

	got, err := n.Secret(ctx, "default", "db")
	if err != nil {
		t.Fatal(err)
	}
	if string(got["password"]) != testPassword || string(got["user"]) != testUser {
		t.Fatalf("decrypted keys %v", secrets.Values(got))
	}
	// The caller's copy is its own: wiping it leaves the cache intact.
	secrets.Values(got).Wipe()
	again, err := n.Secret(ctx, "default", "db")
	if err != nil || string(again["password"]) != testPassword {
		t.Fatalf("cached Secret: %v, %v", secrets.Values(again), err)
	}
	if c := n.cachedCount(); c != 1 {
		t.Errorf("%d Secrets cached, want 1", c)
	}

	_, err = n.Secret(ctx, "default", "missing")
	if !errors.Is(err, runtime.ErrValueNotFound) || !strings.Contains(err.Error(), "Secret default/missing") {
		t.Errorf("missing Secret: %v, want ErrValueNotFound naming it", err)
	}

	// The cache is bounded, least recently used out.
	n.max = 2
	for _, name := range []string{"other", "third"} {
		if _, err := n.Secret(ctx, "default", name); err != nil {
			t.Fatal(err)
		}
	}
	if c := n.cachedCount(); c != 2 {
		t.Errorf("%d Secrets cached with a bound of 2", c)
	}
	if _, ok := n.cachedHash(valueKey{"c1", "default", "db"}); ok {
		t.Error("the least recently used Secret was not evicted")
	}

	// A commit no longer pinned and run by no pod here: its Secrets are dropped.
	n.retain(map[string]bool{"c2": true})
	if c := n.cachedCount(); c != 0 {
		t.Errorf("%d Secrets cached after their commit went", c)
	}
}

func TestValuesSecretErrors(t *testing.T) {
	keyFile, recipient := ageKey(t)
	otherKey, _ := ageKey(t)
	values := map[string]string{"password": testPassword}
	enc := encryptedSecret(t, "secrets/db.yaml", "db", values, recipient)
	// One encrypted value changed: the file fails authentication at that value.
	i := strings.Index(enc, "password: ENC[AES256_GCM,data:") + len("password: ENC[AES256_GCM,data:")
	b := []byte(enc)
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	tampered := string(b)
	tree := mapTree(t, map[string]map[string]string{
		"good":     {"secrets/db.yaml": enc},
		"tampered": {"secrets/db.yaml": tampered},
	})

	cases := []struct {
		name, keyFile, commit string
		want                  []string
	}{
		{"no age key", "", "good", []string{"secrets/db.yaml", "Secret default/db", "no age key is configured", "--age-key-file"}},
		{"not a recipient", otherKey, "good", []string{"secrets/db.yaml", "Secret default/db", "no age identity of this node can decrypt", recipient}},
		{"tampered value", keyFile, "tampered", []string{"secrets/db.yaml", "Secret default/db", "fails verification", "password"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			n := newTestValues(t, tree, tc.keyFile)
			_, err := n.Secret(withPodCommit(context.Background(), tc.commit), "default", "db")
			if err == nil {
				t.Fatal("no error")
			}
			if errors.Is(err, runtime.ErrValueNotFound) {
				t.Errorf("reported as missing (an optional reference would skip it): %v", err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not say %q", err, w)
				}
			}
			t.Log(err)
			noLeak(t, "the error", err.Error())
			if c := n.cachedCount(); c != 0 {
				t.Errorf("%d Secrets cached after a failure", c)
			}
		})
	}
}

func TestValuesKeyFile(t *testing.T) {
	tree := mapTree(t, nil)
	if _, err := newNodeValues(tree, filepath.Join(t.TempDir(), "absent.agekey"), testKey); err == nil {
		t.Error("a missing age key file is accepted")
	}
	// A damaged key file: the error names the file, never a line of it.
	const secretLine = "AGE-SECRET-KEY-1NOTAREALKEYBUTITLOOKSLIKEONEQQQQQQQQQQQQQQQQQQQQQQQQQQQQQQ"
	bad := filepath.Join(t.TempDir(), "bad.agekey")
	if err := os.WriteFile(bad, []byte("# a comment\n"+secretLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	_, err := newNodeValues(tree, bad, testKey)
	if err == nil || !strings.Contains(err.Error(), bad) || strings.Contains(err.Error(), "NOTAREALKEY") {
		t.Errorf("damaged key file: %v", err)
	}
	empty := filepath.Join(t.TempDir(), "empty.agekey")
	if err := os.WriteFile(empty, []byte("# nothing\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := newNodeValues(tree, empty, testKey); err == nil {
		t.Error("a key file without identities is accepted")
	}
	good, _ := ageKey(t)
	n := newTestValues(t, tree, good)
	if n.keyring.Len() != 1 {
		t.Errorf("%d identities loaded", n.keyring.Len())
	}
}

func TestConfigAgeKeyFile(t *testing.T) {
	f := filepath.Join(t.TempDir(), "agent.yaml")
	if err := os.WriteFile(f, []byte("repo: /r\nageKeyFile: /etc/shoal/cluster.agekey\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := LoadConfigFile(f)
	if err != nil || c.AgeKeyFile != "/etc/shoal/cluster.agekey" {
		t.Errorf("ageKeyFile from the config file: %q, %v", c.AgeKeyFile, err)
	}
}

// resolvingRuntime is the fake runtime plus what the containerd runtime does with Config.Values
// before it starts a pod: it resolves each ConfigMap and Secret volume, and fails the pod on the
// first error, wrapped as the runtime wraps it.
type resolvingRuntime struct {
	*runtime.Fake
	res runtime.ValueResolver
	mu  sync.Mutex
	got map[string]map[string][]byte // volume name → values
}

func (r *resolvingRuntime) RunPod(ctx context.Context, spec runtime.PodSpec) (runtime.PodStatus, error) {
	for _, v := range spec.Volumes {
		var vals map[string][]byte
		var err error
		switch {
		case v.Secret != nil:
			vals, err = r.res.Secret(ctx, spec.Key.Namespace, v.Secret.Name)
		case v.ConfigMap != nil:
			vals, err = r.res.ConfigMap(ctx, spec.Key.Namespace, v.ConfigMap.Name)
		default:
			continue
		}
		if err != nil {
			return runtime.PodStatus{}, fmt.Errorf("run pod %s/%s: volume %s: %w", spec.Key.Namespace, spec.Key.Name, v.Name, err)
		}
		r.mu.Lock()
		r.got[v.Name] = vals
		r.mu.Unlock()
	}
	return r.Fake.RunPod(ctx, spec)
}

// TestExecuteResolvesValues runs a pod through the pod loop's execute against a real
// repository: its ConfigMap and Secret are read at the pod's commit, not the newest one, and
// without an age key the pod reports CreateContainerConfigError naming the Secret.
func TestExecuteResolvesValues(t *testing.T) {
	keyFile, recipient := ageKey(t)
	pod := `apiVersion: v1
kind: Pod
metadata: {name: app, namespace: default}
spec:
  containers:
    - name: app
      image: example.com/app:1
      volumeMounts:
        - {name: conf, mountPath: /conf}
        - {name: creds, mountPath: /creds}
  volumes:
    - {name: conf, configMap: {name: app}}
    - {name: creds, secret: {secretName: db}}
`
	repo := newTestRepo(t)
	c1 := repo.commit("blue", map[string]string{
		"pod.yaml": pod,
		"app.yaml": configMapYAML("app", map[string]string{"mode": "blue"}),
		"db.yaml":  encryptedSecret(t, "db.yaml", "db", map[string]string{"password": testPassword}, recipient),
	})
	repo.commit("green", map[string]string{
		"pod.yaml": pod,
		"app.yaml": configMapYAML("app", map[string]string{"mode": "green"}),
		"db.yaml":  encryptedSecret(t, "db.yaml", "db", map[string]string{"password": "changed"}, recipient),
	})
	rec := &state.Pod{UID: "uid-1", Namespace: "default", Name: "app", Commit: c1, Desired: state.DesiredRun}
	act := PodAction{Op: OpRun, Key: runtime.PodKey{Namespace: "default", Name: "app", UID: rec.UID}, Pod: rec}

	for _, tc := range []struct {
		name, keyFile string
	}{{"with the age key", keyFile}, {"without an age key", ""}} {
		t.Run(tc.name, func(t *testing.T) {
			a, _ := pinAgent(t, repo)
			a.src.refresh(context.Background())
			a.vals = newTestValues(t, a.src.tree, tc.keyFile)
			rt := &resolvingRuntime{Fake: runtime.NewFake(runtime.FakeConfig{}), res: a.vals, got: map[string]map[string][]byte{}}
			empty, err := state.NewStore()
			if err != nil {
				t.Fatal(err)
			}
			st, failed := a.execute(context.Background(), rt, empty.Snapshot(), act)
			if tc.keyFile == "" {
				if !failed || st.Reason != runtime.ReasonCreateContainerConfigError {
					t.Fatalf("status %+v, want %s", st, runtime.ReasonCreateContainerConfigError)
				}
				for _, w := range []string{"Secret default/db", "no age key is configured", "db.yaml"} {
					if !strings.Contains(st.Message, w) {
						t.Errorf("message %q does not say %q", st.Message, w)
					}
				}
				noLeak(t, "the status", st.Message)
				return
			}
			if failed {
				t.Fatalf("pod failed: %+v", st)
			}
			if got := string(rt.got["conf"]["mode"]); got != "blue" {
				t.Errorf("ConfigMap read at the newest commit: mode=%s, want blue (the pod's commit)", got)
			}
			if got := string(rt.got["creds"]["password"]); got != testPassword {
				t.Error("Secret not read at the pod's commit")
			}
		})
	}
}

// TestValuesCurrentFallback: what the runtime reads as current (imagePullSecrets, marked
// runtime.WithCurrentValues) is read at the pinned commit, and at the pod's commit when the
// pinned one cannot be read, which is logged once per pinned commit; a pull then uses the pod's
// revision's credentials rather than none.
func TestValuesCurrentFallback(t *testing.T) {
	keyFile, recipient := ageKey(t)
	regcred := func(user string) map[string]string {
		return map[string]string{
			"regcred.yaml": encryptedSecret(t, "regcred.yaml", "regcred", map[string]string{"user": user}, recipient),
			"cm.yaml":      configMapYAML("app", map[string]string{"user": user}),
		}
	}
	n := newTestValues(t, mapTree(t, map[string]map[string]string{"c1": regcred("u1"), "c2": regcred("u2")}), keyFile)
	var logs strings.Builder
	n.log = slog.New(slog.NewTextHandler(&logs, nil))
	current := func(pod, pinned string) context.Context {
		return runtime.WithCurrentValues(context.WithValue(withPodCommit(context.Background(), pod), pinnedCommitKey{}, pinned))
	}
	read := func(ctx context.Context) (string, string, error) {
		s, err := n.Secret(ctx, "default", "regcred")
		if err != nil {
			return "", "", err
		}
		cm, err := n.ConfigMap(ctx, "default", "app")
		return string(s["user"]), string(cm["user"]), err
	}

	if s, cm, err := read(current("c1", "c2")); err != nil || s != "u2" || cm != "u2" {
		t.Errorf("pinned c2 readable: %q %q %v, want u2 (the pinned commit's)", s, cm, err)
	}
	if logs.Len() != 0 {
		t.Errorf("logged with the pinned commit readable:\n%s", logs.String())
	}
	for range 2 {
		if s, cm, err := read(current("c1", "c9")); err != nil || s != "u1" || cm != "u1" {
			t.Errorf("pinned c9 unreadable: %q %q %v, want u1 (the pod's commit's)", s, cm, err)
		}
	}
	if w := strings.Count(logs.String(), "level=WARN"); w != 1 || !strings.Contains(logs.String(), "pinned=c9") {
		t.Errorf("logged %d times, want once naming c9:\n%s", w, logs.String())
	}
	noLeak(t, "log", logs.String())
	if _, _, err := read(current("c1", "c8")); err != nil {
		t.Fatal(err)
	}
	if w := strings.Count(logs.String(), "level=WARN"); w != 2 {
		t.Errorf("another unreadable pinned commit: logged %d times in all, want 2", w)
	}
	// No fallback for the pod's own values, nor when the pod's commit cannot be read either.
	if _, err := n.Secret(withPodCommit(context.Background(), "c9"), "default", "regcred"); err == nil {
		t.Error("the pod's own unreadable commit read without error")
	}
	if _, err := n.Secret(current("c7", "c9"), "default", "regcred"); err == nil || !strings.Contains(err.Error(), "c9") {
		t.Errorf("neither commit readable: %v, want the pinned commit's error", err)
	}
}

package agent

import (
	"context"
	"fmt"
	"reflect"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// lateResolver is a fake runtime's ValueResolver that answers once the agent it belongs to has
// started (set): the agent makes its resolver in Start, the runtime is made before.
type lateResolver struct {
	ready chan struct{}
	res   runtime.ValueResolver
}

func newLateResolver() *lateResolver { return &lateResolver{ready: make(chan struct{})} }

func (l *lateResolver) set(res runtime.ValueResolver) {
	select {
	case <-l.ready: // a restarted agent: the first resolver stays, with the first agent's keys
	default:
		l.res = res
		close(l.ready)
	}
}

func (l *lateResolver) wait(ctx context.Context) error {
	select {
	case <-l.ready:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

func (l *lateResolver) ConfigMap(ctx context.Context, ns, name string) (map[string][]byte, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.res.ConfigMap(ctx, ns, name)
}

func (l *lateResolver) Secret(ctx context.Context, ns, name string) (map[string][]byte, error) {
	if err := l.wait(ctx); err != nil {
		return nil, err
	}
	return l.res.Secret(ctx, ns, name)
}

// volumeDeploymentYAML is a Deployment of two pods that mount ConfigMap cm and Secret secret.
func volumeDeploymentYAML(name, cm, secret, annotations string) string {
	return `apiVersion: apps/v1
kind: Deployment
metadata:
  name: ` + name + `
  namespace: default
  annotations: {` + annotations + `}
spec:
  replicas: 2
  selector:
    matchLabels: {app: ` + name + `}
  template:
    metadata:
      labels: {app: ` + name + `}
    spec:
      containers:
        - name: app
          image: example.com/` + name + `:1
          resources:
            requests: {cpu: 100m, memory: 64Mi}
          volumeMounts:
            - {name: cfg, mountPath: /etc/app}
            - {name: creds, mountPath: /creds}
      volumes:
        - name: cfg
          configMap: {name: ` + cm + `}
        - name: creds
          secret: {secretName: ` + secret + `}
`
}

// TestMountedConfigUpdatedInPlace runs a one-node cluster on a real Git repository: Deployment
// quiet opts out of rolling on config changes, web does not; both mount ConfigMap app and the
// encrypted Secret db. A commit that changes both rolls web (its new pods start with the new
// content) and leaves quiet's pods running, their mounted files updated in place.
func TestMountedConfigUpdatedInPlace(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an agent")
	}
	keyFile, recipient := ageKey(t)
	files := map[string]string{
		"quiet.yaml": volumeDeploymentYAML("quiet", "app", "db", manifest.AnnotationRolloutOnConfigChange+`: "false"`),
		"web.yaml":   volumeDeploymentYAML("web", "app", "db", ""),
		"app.yaml":   configMapYAML("app", map[string]string{"mode": "blue"}),
		"db.yaml":    encryptedSecret(t, "db.yaml", "db", map[string]string{"password": testPassword}, recipient),
	}
	repo := newTestRepo(t)
	c1 := repo.commit("quiet and web", files)

	c := newTestCluster(t, repo, 1)
	c.values = true
	c.configure = func(cfg *Config) { cfg.AgeKeyFile = keyFile }
	n1 := c.start("n1")
	all := c.live()
	var web1 string
	waitState(t, "quiet and web running", all, func(v *state.Snapshot) error {
		if err := pinned(v, c1); err != nil {
			return err
		}
		if _, err := deploymentAt(v, "quiet", 2); err != nil {
			return err
		}
		var err error
		web1, err = deploymentAt(v, "web", 2)
		return err
	})
	quiet := map[string]bool{}
	for _, p := range n1.Store().Snapshot().PodsByOwner("default", "Deployment", "quiet") {
		quiet[p.UID] = true
	}
	contents := func(uid string) (map[string]string, map[string]string) {
		return n1.rt.VolumeFiles(uid, "cfg"), n1.rt.VolumeFiles(uid, "creds")
	}
	blue, green := map[string]string{"mode": "blue"}, map[string]string{"mode": "green"}
	pw1, pw2 := map[string]string{"password": testPassword}, map[string]string{"password": testPassword + "-2"}
	for uid := range quiet {
		if cfg, creds := contents(uid); !reflect.DeepEqual(cfg, blue) || !reflect.DeepEqual(creds, pw1) {
			t.Fatalf("quiet pod %s starts with %v and a Secret of keys %d, want %v", uid, cfg, len(creds), blue)
		}
	}

	files["app.yaml"] = configMapYAML("app", map[string]string{"mode": "green"})
	files["db.yaml"] = encryptedSecret(t, "db.yaml", "db", map[string]string{"password": testPassword + "-2"}, recipient)
	c2 := repo.commit("app and db changed", files)
	waitState(t, "web rolled", all, func(v *state.Snapshot) error {
		if err := pinned(v, c2); err != nil {
			return err
		}
		h, err := deploymentAt(v, "web", 2)
		if err == nil && h == web1 {
			err = fmt.Errorf("web still at %s", h)
		}
		return err
	})
	waitRuntime(t, n1.rt, "quiet's volumes updated in place", func() error {
		for uid := range quiet {
			if cfg, creds := contents(uid); !reflect.DeepEqual(cfg, green) || !reflect.DeepEqual(creds, pw2) {
				return fmt.Errorf("quiet pod %s has %v", uid, cfg)
			}
		}
		return nil
	})
	v := n1.Store().Snapshot()
	for _, p := range v.PodsByOwner("default", "Deployment", "quiet") {
		if !quiet[p.UID] || p.Desired != state.DesiredRun {
			t.Errorf("quiet pod %s (%s): replaced or stopped; it opted out of rolling", p.Name, p.UID)
		}
		if n := n1.rt.runCount(p.UID); n != 1 {
			t.Errorf("quiet pod %s ran %d times, want once", p.Name, n)
		}
		if p.Commit != c1 {
			t.Errorf("quiet pod %s reads its manifest at %s, want %s still", p.Name, p.Commit, c1)
		}
	}
	for _, p := range v.PodsByOwner("default", "Deployment", "web") {
		if cfg, creds := contents(p.UID); !reflect.DeepEqual(cfg, green) || !reflect.DeepEqual(creds, pw2) {
			t.Errorf("new web pod %s starts with %v, want %v", p.Name, cfg, green)
		}
	}
	for _, call := range n1.rt.Calls() {
		if strings.HasPrefix(call, "RefreshVolumes") && !strings.Contains(call, "default/quiet-") {
			t.Errorf("%s: only pods that do not roll are refreshed", call)
		}
	}
}

// TestVolumeRefreshes decides which pods get their volumes projected again: running pods that do
// not roll on config changes, with a configMap or secret volume, projected from another commit.
func TestVolumeRefreshes(t *testing.T) {
	s, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := strings.Repeat("1", 40), strings.Repeat("2", 40)
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	mustApply(t, s, &state.PinRevision{Commit: c1, Time: t0})
	pod := func(name, configHash string) state.Pod {
		return state.Pod{UID: "uid-" + name, Namespace: "default", Name: name, Commit: c1, ConfigHash: configHash,
			Owner: state.Owner{Kind: "Deployment", Name: name}, Desired: state.DesiredRun}
	}
	pods := []state.Pod{pod("quiet", ""), pod("rolls", "h1"), pod("novol", ""), pod("stopped", ""), pod("deleting", ""), pod("elsewhere", "")}
	mustApply(t, s, &state.CreatePods{Pods: pods, Time: t0})
	var binds []state.Binding
	for _, p := range pods {
		if p.Name != "elsewhere" {
			binds = append(binds, state.Binding{UID: p.UID, Node: "n1"})
		}
	}
	mustApply(t, s, &state.BindPods{Bindings: binds})
	mustApply(t, s, &state.SetPodsDesired{Changes: []state.DesiredChange{{UID: "uid-deleting", Desired: state.DesiredDelete}}})

	withVol := runtime.PodSpec{Volumes: []runtime.Volume{{Name: "c", Secret: &runtime.ObjectVolume{Name: "db"}}}}
	noVol := runtime.PodSpec{Volumes: []runtime.Volume{{Name: "e", EmptyDir: &runtime.EmptyDirVolume{}}}}
	var actual []runtime.PodStatus
	specs := map[string]runtime.PodSpec{}
	for _, p := range pods {
		st := runtime.PodStatus{Key: runtime.PodKey{Namespace: "default", Name: p.Name, UID: p.UID},
			Containers: []runtime.ContainerStatus{{Name: "app", State: runtime.StateRunning}}}
		if p.Name == "stopped" {
			st.Stopped, st.Containers[0].State = true, runtime.StateTerminated
		}
		actual = append(actual, st)
		specs[p.UID] = withVol
	}
	specs["uid-novol"] = noVol
	delete(specs, "uid-deleting") // podSpecs leaves out pods that should not run

	names := func(keys []runtime.PodKey) []string {
		var out []string
		for _, k := range keys {
			out = append(out, k.Name)
		}
		return out
	}
	done := map[string]string{}
	if commit, keys := VolumeRefreshes("n1", s.Snapshot(), actual, specs, done); commit != c1 || len(keys) != 0 {
		t.Errorf("at the pods' own commit: %s %v, want nothing", commit, names(keys))
	}
	mustApply(t, s, &state.PinRevision{Commit: c2, Time: t0})
	commit, keys := VolumeRefreshes("n1", s.Snapshot(), actual, specs, done)
	if commit != c2 || !reflect.DeepEqual(names(keys), []string{"quiet"}) {
		t.Errorf("after a new pin: %s %v, want [quiet] from %s", commit, names(keys), c2)
	}
	done["uid-quiet"] = c2
	if _, keys := VolumeRefreshes("n1", s.Snapshot(), actual, specs, done); len(keys) != 0 {
		t.Errorf("once projected from the pinned commit: %v, want nothing", names(keys))
	}
}

package agent

import (
	"context"
	"fmt"
	"log/slog"
	"reflect"
	"slices"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/secrets"
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

// inPlaceWorkloads are the owners of TestVolumeRefreshes' pods, as the pinned commit has them.
const inPlaceWorkloads = `apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  selector: {app: db}
---
` + stsYAML + `
---
` + dsYAML

// jobsYAML holds Job job and CronJob cron.
const jobsYAML = `apiVersion: batch/v1
kind: Job
metadata: {name: job, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: app, image: example.com/app:1}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: cron, namespace: default}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: app, image: example.com/app:1}]`

// stsYAML holds three StatefulSets: od (OnDelete), db (RollingUpdate, partition 2) and ru
// (RollingUpdate, no partition).
const stsYAML = `apiVersion: apps/v1
kind: StatefulSet
metadata: {name: od, namespace: default}
spec:
  serviceName: db
  replicas: 2
  updateStrategy: {type: OnDelete}
  selector: {matchLabels: {app: od}}
  template:
    metadata: {labels: {app: od}}
    spec:
      containers: [{name: app, image: example.com/app:1}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: db
  replicas: 3
  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: app, image: example.com/app:1}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: ru, namespace: default}
spec:
  serviceName: db
  replicas: 1
  selector: {matchLabels: {app: ru}}
  template:
    metadata: {labels: {app: ru}}
    spec:
      containers: [{name: app, image: example.com/app:1}]`

// dsYAML holds two DaemonSets: agent-od (OnDelete) and agent-ru (RollingUpdate, the default).
const dsYAML = `apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent-od, namespace: default}
spec:
  updateStrategy: {type: OnDelete}
  selector: {matchLabels: {app: agent-od}}
  template:
    metadata: {labels: {app: agent-od}}
    spec:
      containers: [{name: app, image: example.com/app:1}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent-ru, namespace: default}
spec:
  selector: {matchLabels: {app: agent-ru}}
  template:
    metadata: {labels: {app: agent-ru}}
    spec:
      containers: [{name: app, image: example.com/app:1}]`

// TestVolumeRefreshes decides which pods get their ConfigMaps and Secrets read again from a new
// pinned commit: running pods their owner will not replace for a config change, read at another
// commit. Those are the pods the kubelet would update in place; a pod that rolls keeps its
// revision's values until it is replaced.
func TestVolumeRefreshes(t *testing.T) {
	s, err := state.NewStore()
	if err != nil {
		t.Fatal(err)
	}
	c1, c2 := strings.Repeat("1", 40), strings.Repeat("2", 40)
	_, set, err := mapTree(t, map[string]map[string]string{c2: {"w.yaml": inPlaceWorkloads, "j.yaml": jobsYAML}})(context.Background(), c2)
	if err != nil {
		t.Fatal(err)
	}
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	mustApply(t, s, &state.PinRevision{Commit: c1, Time: t0})

	type pod struct {
		name, configHash, ownerKind, owner string
		want                               bool // refreshed from c2
	}
	cases := []pod{
		{"quiet", "", "Deployment", "quiet", true},    // opted out of rolling
		{"bare", "", "", "", true},                    // a bare Pod
		{"novol", "", "Deployment", "novol", true},    // nothing mounted: its restarts' env moves
		{"rolls", "h1", "Deployment", "rolls", false}, // rolls: the new pods have the new values
		{"job-x", "h1", "Job", "job", true},           // a Job's pods are never replaced
		{"cron-1-x", "h1", "CronJob", "cron", true},   // nor a CronJob's
		{"oldjob-x", "h1", "Job", "oldjob", false},    // Job deleted: its pods go with it
		{"oldcron-1-x", "h1", "CronJob", "oldcron", false},
		{"agent-od-x", "h1", "DaemonSet", "agent-od", true},
		{"agent-ru-x", "h1", "DaemonSet", "agent-ru", false},
		{"od-1", "h1", "StatefulSet", "od", true},      // OnDelete
		{"db-0", "h1", "StatefulSet", "db", true},      // below the partition
		{"db-1", "h1", "StatefulSet", "db", true},      //
		{"db-2", "h1", "StatefulSet", "db", false},     // at the partition: rolls
		{"ru-0", "h1", "StatefulSet", "ru", false},     // RollingUpdate, no partition
		{"gone-0", "h1", "StatefulSet", "gone", false}, // owner deleted: the pod goes with it
		{"stopped", "", "Deployment", "stopped", false},
		{"deleting", "", "Deployment", "deleting", false},
		{"elsewhere", "", "Deployment", "elsewhere", false},
	}
	var pods []state.Pod
	for _, p := range cases {
		pods = append(pods, state.Pod{UID: "uid-" + p.name, Namespace: "default", Name: p.name, Commit: c1, ConfigHash: p.configHash,
			Owner: state.Owner{Kind: p.ownerKind, Name: p.owner}, Desired: state.DesiredRun})
	}
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
		out := []string{}
		for _, k := range keys {
			out = append(out, k.Name)
		}
		sort.Strings(out)
		return out
	}
	done := map[string]string{}
	if commit, keys := VolumeRefreshes("n1", s.Snapshot(), set, actual, specs, done); commit != c1 || len(keys) != 0 {
		t.Errorf("at the pods' own commit: %s %v, want nothing", commit, names(keys))
	}
	mustApply(t, s, &state.PinRevision{Commit: c2, Time: t0})
	v := s.Snapshot()
	commit, keys := VolumeRefreshes("n1", v, set, actual, specs, done)
	want := []string{}
	for _, p := range cases {
		if p.want {
			want = append(want, p.name)
		}
		if got := RefreshedInPlace(v.Pod("uid-"+p.name), set); got != p.want && p.name != "stopped" && p.name != "deleting" && p.name != "elsewhere" {
			t.Errorf("RefreshedInPlace(%s) = %v, want %v", p.name, got, p.want)
		}
	}
	sort.Strings(want)
	if commit != c2 || !reflect.DeepEqual(names(keys), want) {
		t.Errorf("after a new pin: %s %v, want %v from %s", commit, names(keys), want, c2)
	}
	for _, k := range keys {
		done[k.UID] = c2
	}
	if _, keys := VolumeRefreshes("n1", v, set, actual, specs, done); len(keys) != 0 {
		t.Errorf("once projected from the pinned commit: %v, want nothing", names(keys))
	}
	// A container restarting reads its values where its volumes are: the pinned commit once
	// refreshed, its record's commit for a pod that rolls.
	if c := podValuesCommit(v.Pod("uid-quiet"), done); c != c2 {
		t.Errorf("quiet restarts at %s, want %s", c, c2)
	}
	if c := podValuesCommit(v.Pod("uid-rolls"), done); c != c1 {
		t.Errorf("rolls restarts at %s, want its own %s", c, c1)
	}
}

// TestRestartReadsCurrentValues runs a bare Pod (it never rolls) that pulls its :latest image
// with an imagePullSecret and reads ConfigMap app as env and as a volume. A commit rotates the
// registry password and changes app: the pod is not replaced, its volume is updated in place,
// and when its container restarts the pull uses the rotated credentials (pull secrets are read
// at pull time) and the environment has the new value, from the commit its files come from.
func TestRestartReadsCurrentValues(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an agent")
	}
	keyFile, recipient := ageKey(t)
	const pod = `apiVersion: v1
kind: Pod
metadata: {name: app, namespace: default}
spec:
  imagePullSecrets: [{name: regcred}]
  containers:
    - name: app
      image: registry.example.com/team/app:latest
      resources:
        requests: {cpu: 100m, memory: 64Mi}
      env:
        - name: MODE
          valueFrom: {configMapKeyRef: {name: app, key: mode}}
      volumeMounts:
        - {name: cfg, mountPath: /etc/app}
  volumes:
    - name: cfg
      configMap: {name: app}
`
	regcred := func(user string) string {
		doc := "apiVersion: v1\nkind: Secret\nmetadata: {name: regcred, namespace: default}\ntype: kubernetes.io/dockerconfigjson\nstringData:\n  " +
			runtime.DockerConfigJSONKey + `: '{"auths": {"registry.example.com": {"username": "` + user + `", "password": "` + testPassword + `"}}}'` + "\n"
		out, err := secrets.Encrypt("regcred.yaml", []byte(doc), secrets.EncryptOptions{Recipients: []string{recipient}})
		if err != nil {
			t.Fatal(err)
		}
		return string(out)
	}
	files := map[string]string{
		"pod.yaml":     pod,
		"app.yaml":     configMapYAML("app", map[string]string{"mode": "blue"}),
		"regcred.yaml": regcred("u1"),
	}
	repo := newTestRepo(t)
	c1 := repo.commit("app", files)
	c := newTestCluster(t, repo, 1)
	c.values = true
	c.configure = func(cfg *Config) { cfg.AgeKeyFile = keyFile }
	n1 := c.start("n1")
	all := c.live()
	waitState(t, "app running", all, func(v *state.Snapshot) error {
		if err := pinned(v, c1); err != nil {
			return err
		}
		return running(v, "app")
	})
	p := podNamed(n1.Store().Snapshot(), "app")
	key := runtime.PodKey{Namespace: p.Namespace, Name: p.Name, UID: p.UID}
	lastPull := func() runtime.FakePull {
		pulls := n1.rt.Pulls()
		if len(pulls) == 0 {
			return runtime.FakePull{}
		}
		return pulls[len(pulls)-1]
	}
	if pl := lastPull(); pl.Secret != "default/regcred" || pl.Username != "u1" {
		t.Fatalf("first pull %+v, want default/regcred as u1", pl)
	}
	if env := n1.rt.Env(p.UID, "app"); !slices.Contains(env, "MODE=blue") {
		t.Fatalf("env at start %v, want MODE=blue", env)
	}

	files["app.yaml"] = configMapYAML("app", map[string]string{"mode": "green"})
	files["regcred.yaml"] = regcred("u2")
	c2 := repo.commit("rotate the registry password, app green", files)
	waitState(t, "c2 pinned", all, func(v *state.Snapshot) error { return pinned(v, c2) })
	waitRuntime(t, n1.rt, "app's volume updated in place", func() error {
		if got := n1.rt.VolumeFiles(p.UID, "cfg"); got["mode"] != "green" {
			return fmt.Errorf("cfg is %v", got)
		}
		return nil
	})
	if err := n1.rt.Exit(key, "app", 1); err != nil {
		t.Fatal(err)
	}
	waitState(t, "app restarted", all, func(v *state.Snapshot) error {
		q := podNamed(v, "app")
		if q == nil || q.UID != p.UID {
			return fmt.Errorf("app replaced: %+v", q)
		}
		if len(q.Status.Containers) != 1 || q.Status.Containers[0].Restarts != 1 || q.Status.Containers[0].State != "running" {
			return fmt.Errorf("app: %+v", q.Status)
		}
		return nil
	})
	if pl := lastPull(); pl.Secret != "default/regcred" || pl.Username != "u2" {
		t.Errorf("pull on restart %+v, want default/regcred as u2 (the rotated Secret)", pl)
	}
	if env := n1.rt.Env(p.UID, "app"); !slices.Contains(env, "MODE=green") {
		t.Errorf("env after restart %v, want MODE=green (as its mounted files)", env)
	}
	if q := podNamed(n1.Store().Snapshot(), "app"); q.Commit != c1 {
		t.Errorf("app's record moved to %s; it does not roll", q.Commit)
	}
}

// flatRuntime answers RefreshVolumes as containerd does for a pod set up before the ..data
// layout, and counts the calls.
type flatRuntime struct {
	*runtime.Fake
	calls int
}

func (f *flatRuntime) RefreshVolumes(context.Context, runtime.PodKey) ([]string, error) {
	f.calls++
	return nil, fmt.Errorf("pod default/old: %w", runtime.ErrNotUpdatableInPlace)
}

// TestRefreshVolumesNotUpdatable: a pod whose volumes cannot be updated in place is asked once,
// logged once, and then left alone (its restarts keep reading its own commit) until it goes.
func TestRefreshVolumesNotUpdatable(t *testing.T) {
	repo := newTestRepo(t)
	c1 := repo.commit("old", map[string]string{"old.yaml": podYAML("old", "example.com/old:1")})
	c2 := repo.commit("again", map[string]string{"old.yaml": podYAML("old", "example.com/old:1"), "x.yaml": configMapYAML("x", nil)})
	a, s := pinAgent(t, repo)
	ctx := context.Background()
	a.src.refresh(ctx)
	a.cfg.NodeName = "n1"
	a.volCommits = newVolumeCommits()
	var logs strings.Builder
	a.log = slog.New(slog.NewTextHandler(&logs, nil))
	mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
	mustApply(t, s, &state.PinRevision{Commit: c1, Time: t0})
	rec := state.Pod{UID: "uid-old", Namespace: "default", Name: "old", Commit: c1, Desired: state.DesiredRun}
	mustApply(t, s, &state.CreatePods{Pods: []state.Pod{rec}, Time: t0})
	mustApply(t, s, &state.BindPods{Bindings: []state.Binding{{UID: rec.UID, Node: "n1"}}})
	mustApply(t, s, &state.PinRevision{Commit: c2, Time: t0})

	rt := &flatRuntime{Fake: runtime.NewFake(runtime.FakeConfig{})}
	key := runtime.PodKey{Namespace: "default", Name: "old", UID: rec.UID}
	actual := []runtime.PodStatus{{Key: key, Containers: []runtime.ContainerStatus{{Name: "app", State: runtime.StateRunning}}}}
	specs := map[string]runtime.PodSpec{rec.UID: {Volumes: []runtime.Volume{{Name: "c", ConfigMap: &runtime.ObjectVolume{Name: "x"}}}}}
	for range 3 {
		a.refreshVolumes(ctx, rt, s.Snapshot(), actual, specs)
	}
	if rt.calls != 1 {
		t.Errorf("RefreshVolumes called %d times over 3 rounds, want once", rt.calls)
	}
	if n := strings.Count(logs.String(), "level=WARN"); n != 1 {
		t.Errorf("logged %d times, want once:\n%s", n, logs.String())
	}
	if c := podValuesCommit(s.Snapshot().Pod(rec.UID), a.volCommits.done); c != c1 {
		t.Errorf("its restarts read at %s, want its own commit %s", c, c1)
	}
	// Gone from the runtime: forgotten.
	a.refreshVolumes(ctx, rt, s.Snapshot(), nil, specs)
	if len(a.volCommits.stuck) != 0 {
		t.Errorf("a pod that left is remembered: %v", a.volCommits.stuck)
	}
}

// TestRefreshVolumesPinnedLoad: the pod loop reads the pinned commit's objects only when a pod
// here may be refreshed in place, and when they cannot be read (a commit the clone lacks and
// cannot fetch) it logs that once per commit and reads again with back-off, not every round.
// Each read of a commit the clone lacks logs "fetching a commit this clone lacks" (source.load),
// which is what is counted.
func TestRefreshVolumesPinnedLoad(t *testing.T) {
	repo := newTestRepo(t)
	c1 := repo.commit("one", map[string]string{"x.yaml": configMapYAML("x", nil)})
	missing, missing2 := strings.Repeat("3", 40), strings.Repeat("4", 40) // never fetchable
	vol := runtime.PodSpec{Volumes: []runtime.Volume{{Name: "c", ConfigMap: &runtime.ObjectVolume{Name: "x"}}}}

	type pod struct {
		name, configHash, ownerKind, commit string
		running                             bool
	}
	cases := []struct {
		name  string
		pods  []pod
		loads bool
	}{
		{"no pods", nil, false},
		{"a pod that rolls", []pod{{"rolls", "h1", "Deployment", c1, true}}, false},
		{"a ReplicaSet's", []pod{{"rs", "h1", "ReplicaSet", c1, true}}, false},
		{"already at the pin", []pod{{"bare", "", "", missing, true}}, false},
		{"not running", []pod{{"bare", "", "", c1, false}}, false},
		{"a bare pod", []pod{{"bare", "", "", c1, true}}, true},
		{"a StatefulSet's", []pod{{"rolls", "h1", "Deployment", c1, true}, {"db-0", "h1", "StatefulSet", c1, true}}, true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			a, s := pinAgent(t, repo)
			ctx := context.Background()
			a.src.refresh(ctx)
			a.cfg.NodeName = "n1"
			a.volCommits = newVolumeCommits()
			now := t0
			a.now = func() time.Time { return now }
			var logs strings.Builder
			a.log = slog.New(slog.NewTextHandler(&logs, nil))
			a.src.log = a.log
			mustApply(t, s, &state.UpsertNode{Node: testNode("n1")})
			mustApply(t, s, &state.PinRevision{Commit: c1, Time: t0})
			var actual []runtime.PodStatus
			specs := map[string]runtime.PodSpec{}
			for _, p := range tc.pods {
				rec := state.Pod{UID: "uid-" + p.name, Namespace: "default", Name: p.name, Commit: p.commit, ConfigHash: p.configHash,
					Owner: state.Owner{Kind: p.ownerKind, Name: "owner"}, Desired: state.DesiredRun}
				mustApply(t, s, &state.CreatePods{Pods: []state.Pod{rec}, Time: t0})
				mustApply(t, s, &state.BindPods{Bindings: []state.Binding{{UID: rec.UID, Node: "n1"}}})
				st := runtime.PodStatus{Key: runtime.PodKey{Namespace: "default", Name: p.name, UID: rec.UID},
					Containers: []runtime.ContainerStatus{{Name: "app", State: runtime.StateRunning}}}
				if !p.running {
					st.Stopped, st.Containers[0].State = true, runtime.StateTerminated
				}
				actual = append(actual, st)
				specs[rec.UID] = vol
			}
			mustApply(t, s, &state.PinRevision{Commit: missing, Time: t0})
			rt := runtime.NewFake(runtime.FakeConfig{})
			count := func(what string) int { return strings.Count(logs.String(), what) }
			const fetch, warn = "fetching a commit this clone lacks", "level=WARN"

			for range 3 {
				a.refreshVolumes(ctx, rt, s.Snapshot(), actual, specs)
			}
			if !tc.loads {
				if n := count(fetch); n != 0 || logs.Len() != 0 {
					t.Fatalf("read the pinned commit %d times with no pod to refresh; logged:\n%s", n, logs.String())
				}
				return
			}
			if n, w := count(fetch), count(warn); n != 1 || w != 1 {
				t.Fatalf("3 rounds at once: read %d times, warned %d times, want once each:\n%s", n, w, logs.String())
			}
			now = now.Add(loadRetry(1) - time.Second)
			a.refreshVolumes(ctx, rt, s.Snapshot(), actual, specs)
			if n := count(fetch); n != 1 {
				t.Errorf("read again before the back-off: %d reads", n)
			}
			now = now.Add(time.Second)
			a.refreshVolumes(ctx, rt, s.Snapshot(), actual, specs)
			if n, w := count(fetch), count(warn); n != 2 || w != 1 {
				t.Errorf("after the back-off: read %d times, warned %d times, want 2 and 1:\n%s", n, w, logs.String())
			}
			now = now.Add(loadRetry(2) - time.Second) // the wait doubled
			a.refreshVolumes(ctx, rt, s.Snapshot(), actual, specs)
			if n := count(fetch); n != 2 {
				t.Errorf("read again before the doubled back-off: %d reads", n)
			}
			// A new pinned commit is read at once, and its failure logged once.
			mustApply(t, s, &state.PinRevision{Commit: missing2, Time: t0})
			a.refreshVolumes(ctx, rt, s.Snapshot(), actual, specs)
			a.refreshVolumes(ctx, rt, s.Snapshot(), actual, specs)
			if n, w := count(fetch), count(warn); n != 3 || w != 2 {
				t.Errorf("a new pin: read %d times, warned %d times, want 3 and 2:\n%s", n, w, logs.String())
			}
		})
	}
}

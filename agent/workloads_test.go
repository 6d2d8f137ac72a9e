package agent

import (
	"fmt"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/state"
)

func deploymentYAML(name, image string, replicas int) string {
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: %[1]s
  namespace: default
spec:
  replicas: %[3]d
  strategy:
    type: RollingUpdate
    rollingUpdate: {maxSurge: 1, maxUnavailable: 0}
  selector:
    matchLabels: {app: %[1]s}
  template:
    metadata:
      labels: {app: %[1]s}
      annotations: {note: from-template}
    spec:
      containers:
        - name: app
          image: %[2]s
          resources:
            requests: {cpu: 100m, memory: 64Mi}
`, name, image, replicas)
}

const workloadsYAML = `apiVersion: v1
kind: Service
metadata: {name: db-headless, namespace: default}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{port: 5432}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: db-headless
  replicas: 2
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers: [{name: db, image: "db:1"}]
---
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: agent, namespace: default}
spec:
  selector: {matchLabels: {app: agent}}
  template:
    metadata: {labels: {app: agent}}
    spec:
      containers: [{name: agent, image: "agent:1"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: shards, namespace: default}
spec:
  completions: 3
  parallelism: 3
  completionMode: Indexed
  template:
    spec:
      restartPolicy: Never
      initContainers: [{name: init, image: "init:1"}]
      containers: [{name: work, image: "work:1"}]
---
apiVersion: batch/v1
kind: Job
metadata: {name: once, namespace: default}
spec:
  template:
    spec:
      restartPolicy: Never
      containers: [{name: work, image: "once:1"}]
---
apiVersion: batch/v1
kind: CronJob
metadata: {name: nightly, namespace: default}
spec:
  schedule: "0 3 * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers: [{name: backup, image: "backup:1"}]
---
apiVersion: v1
kind: Pod
metadata: {name: solo, namespace: default}
spec:
  containers: [{name: app, image: "solo:1"}]
`

func loadSet(t *testing.T, files map[string]string) *manifest.Set {
	t.Helper()
	fsys := fstest.MapFS{}
	for n, c := range files {
		fsys[n] = &fstest.MapFile{Data: []byte(c)}
	}
	set, errs := manifest.Load(fsys, ".")
	if len(errs) > 0 {
		t.Fatalf("load: %v", errs)
	}
	return set
}

func TestPodManifest(t *testing.T) {
	set := loadSet(t, map[string]string{"web.yaml": deploymentYAML("web", "web:2", 3), "all.yaml": workloadsYAML})
	env := func(p *corev1.Pod, container string) []corev1.EnvVar {
		for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
			for _, c := range cs {
				if c.Name == container {
					return c.Env
				}
			}
		}
		t.Fatalf("no container %s", container)
		return nil
	}
	idx := []corev1.EnvVar{{Name: "JOB_COMPLETION_INDEX", Value: "2"}}
	tests := []struct {
		name  string
		rec   state.Pod
		err   string // substring of the error, "" for none
		check func(t *testing.T, p *corev1.Pod)
	}{
		{name: "bare pod", rec: state.Pod{Name: "solo"}, check: func(t *testing.T, p *corev1.Pod) {
			if p.Spec.Containers[0].Image != "solo:1" {
				t.Errorf("image %s", p.Spec.Containers[0].Image)
			}
		}},
		{name: "bare pod missing", rec: state.Pod{Name: "other"}, err: "pod default/other is not in commit"},
		{name: "deployment", rec: state.Pod{Name: "web-abc-xyz", Owner: state.Owner{Kind: "Deployment", Name: "web"},
			Labels: map[string]string{"app": "web", reconciler.LabelTemplateHash: "abc"}},
			check: func(t *testing.T, p *corev1.Pod) {
				if p.Name != "web-abc-xyz" || p.Namespace != "default" || p.UID != "uid-1" {
					t.Errorf("identity %s/%s %s", p.Namespace, p.Name, p.UID)
				}
				if !reflect.DeepEqual(p.Labels, map[string]string{"app": "web", reconciler.LabelTemplateHash: "abc"}) {
					t.Errorf("labels %v", p.Labels)
				}
				if p.Annotations["note"] != "from-template" {
					t.Errorf("annotations %v", p.Annotations)
				}
				if p.Spec.Containers[0].Image != "web:2" || p.Spec.Hostname != "" || len(p.Spec.Containers[0].Env) != 0 {
					t.Errorf("spec %+v", p.Spec)
				}
			}},
		{name: "statefulset", rec: state.Pod{Name: "db-1", Owner: state.Owner{Kind: "StatefulSet", Name: "db"}},
			check: func(t *testing.T, p *corev1.Pod) {
				if p.Spec.Hostname != "db-1" || p.Spec.Subdomain != "db-headless" || p.Spec.Containers[0].Image != "db:1" {
					t.Errorf("hostname %q subdomain %q image %s", p.Spec.Hostname, p.Spec.Subdomain, p.Spec.Containers[0].Image)
				}
			}},
		{name: "daemonset", rec: state.Pod{Name: "agent-n1", Owner: state.Owner{Kind: "DaemonSet", Name: "agent"}},
			check: func(t *testing.T, p *corev1.Pod) {
				if p.Spec.Containers[0].Image != "agent:1" || p.Spec.Hostname != "" {
					t.Errorf("spec %+v", p.Spec)
				}
			}},
		{name: "indexed job", rec: state.Pod{Name: "shards-2-abcde", Owner: state.Owner{Kind: "Job", Name: "shards"},
			Labels: map[string]string{reconciler.LabelJobCompletionIdx: "2"}},
			check: func(t *testing.T, p *corev1.Pod) {
				if got := env(p, "work"); !reflect.DeepEqual(got, idx) {
					t.Errorf("work env %v", got)
				}
				if got := env(p, "init"); !reflect.DeepEqual(got, idx) {
					t.Errorf("init env %v", got)
				}
			}},
		{name: "indexed job without its label", rec: state.Pod{Name: "shards-x", Owner: state.Owner{Kind: "Job", Name: "shards"}},
			err: "has no batch.kubernetes.io/job-completion-index label"},
		{name: "non-indexed job", rec: state.Pod{Name: "once-abcde", Owner: state.Owner{Kind: "Job", Name: "once"},
			Labels: map[string]string{reconciler.LabelJobCompletionIdx: "0"}},
			check: func(t *testing.T, p *corev1.Pod) {
				if len(env(p, "work")) != 0 {
					t.Errorf("env %v", env(p, "work"))
				}
			}},
		{name: "cronjob", rec: state.Pod{Name: "nightly-29000000-abcde", Owner: state.Owner{Kind: "CronJob", Name: "nightly"}},
			check: func(t *testing.T, p *corev1.Pod) {
				if p.Spec.Containers[0].Image != "backup:1" || p.Spec.RestartPolicy != corev1.RestartPolicyOnFailure {
					t.Errorf("spec %+v", p.Spec)
				}
			}},
		{name: "owner missing", rec: state.Pod{Name: "api-1", Owner: state.Owner{Kind: "Deployment", Name: "api"}},
			err: "owner Deployment/default/api is not in commit"},
		{name: "owner of another kind", rec: state.Pod{Name: "web-1", Owner: state.Owner{Kind: "StatefulSet", Name: "web"}},
			err: "owner StatefulSet/default/web is not in commit"},
		{name: "unknown owner kind", rec: state.Pod{Name: "x", Owner: state.Owner{Kind: "ReplicaSet", Name: "x"}},
			err: `unknown owner kind "ReplicaSet"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rec := tc.rec
			rec.Namespace, rec.UID, rec.Commit = "default", "uid-1", "c0ffee"
			p, err := podManifest(set, &rec)
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("error %v, want %q", err, tc.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			tc.check(t, p)
		})
	}

	// The set is shared: materialising must not write into it.
	rec := state.Pod{Namespace: "default", Name: "shards-1-x", Owner: state.Owner{Kind: "Job", Name: "shards"},
		Labels: map[string]string{reconciler.LabelJobCompletionIdx: "1"}}
	p, err := podManifest(set, &rec)
	if err != nil {
		t.Fatal(err)
	}
	p.Labels["mutated"] = "yes"
	again, _ := podManifest(set, &rec)
	if n := len(env(again, "work")); n != 1 {
		t.Errorf("the template was modified: %d env vars after two materialisations", n)
	}
	if _, ok := rec.Labels["mutated"]; ok {
		t.Error("the record's labels were modified")
	}
	if _, err := podManifest(nil, &rec); err == nil {
		t.Error("no error without a set")
	}
}

func TestPreviousPinned(t *testing.T) {
	revs := []*state.Revision{
		{Seq: 3, Commit: "c3", Refused: true},
		{Seq: 1, Commit: "c1"},
		{Seq: 4, Commit: "c4"},
		{Seq: 2, Commit: "c2"},
		{Seq: 5, Commit: "c5", Refused: true},
	}
	for _, tc := range []struct {
		pinned uint64
		want   string
	}{{4, "c2"}, {2, "c1"}, {1, ""}} {
		var p *state.Revision
		for _, r := range revs {
			if r.Seq == tc.pinned {
				p = r
			}
		}
		if got := previousPinned(revs, p); got != tc.want {
			t.Errorf("before seq %d: %q, want %q", tc.pinned, got, tc.want)
		}
	}
}

package plan

import (
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/shoal-dev/shoal/manifest"
)

// consequenceCase is one commit: base and head repositories (lists of files) and what the plan
// must say about one object.
type consequenceCase struct {
	name       string
	base, head []string
	key        manifest.Key
	want       []string
	// wantErr, when set, is the field of the one plan error the change must raise.
	wantErr string
}

func files(docs ...string) []string { return docs }

func key(kind, ns, name string) manifest.Key {
	return manifest.Key{Kind: kind, Namespace: ns, Name: name}
}

var (
	web     = key("Deployment", "shop", "web")
	db      = key("StatefulSet", "shop", "db")
	logDS   = key("DaemonSet", "shop", "log")
	migrate = key("Job", "shop", "migrate")
	settle  = key("CronJob", "shop", "settle")
	svcWeb  = key("Service", "shop", "web")
	cfgWeb  = key("ConfigMap", "shop", "web-config")
	secDB   = key("Secret", "shop", "db-credentials")
	nsShop  = key("Namespace", "", "shop")
	debug   = key("Pod", "shop", "debug")
	hpa     = key("HorizontalPodAutoscaler", "shop", "web")
)

func runConsequenceCases(t *testing.T, cases []consequenceCase) {
	t.Helper()
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute(decodeSet(t, tc.base...), decodeSet(t, tc.head...), nil)
			var got *Change
			for i := range p.Changes {
				if p.Changes[i].Key == tc.key {
					got = &p.Changes[i]
				}
			}
			if got == nil {
				t.Fatalf("no change for %s; plan: %+v", tc.key, p.Changes)
			}
			if strings.Join(got.Consequences, "\n") != strings.Join(tc.want, "\n") {
				t.Errorf("consequences of %s:\n  got  %q\n  want %q\nfields: %+v", tc.key, got.Consequences, tc.want, got.Fields)
			}
			switch {
			case tc.wantErr == "" && len(p.Errors) > 0:
				t.Errorf("unexpected plan errors: %v", p.Errors)
			case tc.wantErr != "" && (len(p.Errors) != 1 || p.Errors[0].Field != tc.wantErr || p.Errors[0].Object != tc.key):
				t.Errorf("plan errors = %v, want one on %s %s", p.Errors, tc.key, tc.wantErr)
			case tc.wantErr != "" && p.ExitCode() != 1:
				t.Errorf("ExitCode = %d, want 1 for a forbidden change", p.ExitCode())
			}
		})
	}
}

func TestDeploymentConsequences(t *testing.T) {
	rolling := func(replicas, surge, unavail string) string {
		return edit(deployWeb, "replicas: 3", "replicas: "+replicas+"\n  strategy: {rollingUpdate: {maxSurge: "+surge+", maxUnavailable: "+unavail+"}}")
	}
	image2 := func(doc string) string { return edit(doc, "shop/web:1", "shop/web:2") }
	runConsequenceCases(t, []consequenceCase{
		{name: "added", head: files(deployWeb), key: web, want: []string{"create 3 pods"}},
		{name: "added paused", head: files(edit(deployWeb, "replicas: 3", "replicas: 3\n  paused: true")), key: web,
			want: []string{"created paused: no pods start until it is unpaused"}},
		{name: "removed", base: files(deployWeb), key: web, want: []string{"delete 3 pods"}},
		{name: "removed with prune disabled", base: files(edit(deployWeb, "{note: v1}", "{shoal.dev/prune: disabled}")), key: web,
			want: []string{"kept: prune disabled; shoal stops managing it"}},
		{name: "scale up", base: files(deployWeb), head: files(edit(deployWeb, "replicas: 3", "replicas: 5")), key: web,
			want: []string{"scale up 3 → 5"}},
		{name: "scale down to zero", base: files(deployWeb), head: files(edit(deployWeb, "replicas: 3", "replicas: 0")), key: web,
			want: []string{"scale down 3 → 0"}},
		{name: "rolling update, integers", base: files(rolling("5", "2", "1")), head: files(image2(rolling("5", "2", "1"))), key: web,
			want: []string{"rolling update of 5 pods, maxSurge 2, maxUnavailable 1"}},
		{name: "rolling update, defaults 25% of 10: surge rounds up, unavailable down",
			base: files(edit(deployWeb, "replicas: 3", "replicas: 10")), head: files(image2(edit(deployWeb, "replicas: 3", "replicas: 10"))), key: web,
			want: []string{"rolling update of 10 pods, maxSurge 3, maxUnavailable 2"}},
		{name: "rolling update, both resolve to 0 so maxUnavailable is 1",
			base: files(rolling("3", "0", "10%")), head: files(image2(rolling("3", "0", "10%"))), key: web,
			want: []string{"rolling update of 3 pods, maxSurge 0, maxUnavailable 1"}},
		{name: "scale and roll together", base: files(deployWeb), head: files(image2(edit(deployWeb, "replicas: 3", "replicas: 5"))), key: web,
			want: []string{"scale up 3 → 5", "rolling update of 5 pods, maxSurge 2, maxUnavailable 1"}},
		{name: "recreate",
			base: files(edit(deployWeb, "replicas: 3", "replicas: 5\n  strategy: {type: Recreate}")),
			head: files(image2(edit(deployWeb, "replicas: 3", "replicas: 5\n  strategy: {type: Recreate}"))), key: web,
			want: []string{"recreate: stop all 5 pods, then start 5"}},
		{name: "paused template change", base: files(deployWeb),
			head: files(image2(edit(deployWeb, "replicas: 3", "replicas: 3\n  paused: true"))), key: web,
			want: []string{"paused: the new template is recorded, no rollout until unpaused"}},
		{name: "unpaused", base: files(edit(deployWeb, "replicas: 3", "replicas: 3\n  paused: true")), head: files(deployWeb), key: web,
			want: []string{"unpaused: a template change recorded while paused rolls out now"}},
		{name: "strategy only", base: files(deployWeb), head: files(rolling("3", "1", "0")), key: web,
			want: []string{"rollout settings changed, pods untouched"}},
		{name: "written defaults are no change, annotations only are", base: files(deployWeb),
			head: files(edit(rolling("3", "25%", "25%"), "{note: v1}", "{note: v2}", "image: shop/web:1", "image: shop/web:1\n          imagePullPolicy: IfNotPresent")),
			key:  web, want: []string{"labels/annotations only: nothing restarts"}},
		{name: "prune disabled", base: files(deployWeb), head: files(edit(deployWeb, "{note: v1}", "{note: v1, shoal.dev/prune: disabled}")), key: web,
			want: []string{"prune disabled: if it is removed from Git, shoal leaves it running"}},
		{name: "selector cannot change",
			base: files(deployWeb), head: files(strings.ReplaceAll(deployWeb, "app: web", "app: web2")), key: web,
			want: []string{
				"error: spec.selector: cannot change; delete and recreate the Deployment",
				"rolling update of 3 pods, maxSurge 1, maxUnavailable 0",
			},
			wantErr: "spec.selector"},
	})
}

func TestStatefulSetConsequences(t *testing.T) {
	replicas := func(n string) string { return edit(statefulDB, "replicas: 3", "replicas: "+n) }
	image2 := func(doc string) string { return edit(doc, "shop/db:1", "shop/db:2") }
	withStrategy := func(doc, s string) string {
		return edit(doc, "  serviceName: db", "  serviceName: db\n  updateStrategy: "+s)
	}
	runConsequenceCases(t, []consequenceCase{
		{name: "added", head: files(statefulDB), key: db, want: []string{
			"create db-0, db-1, db-2 in order",
			"each pod gets its own volume from volumeClaimTemplates: data",
		}},
		{name: "added parallel", head: files(edit(statefulDB, "serviceName: db", "serviceName: db\n  podManagementPolicy: Parallel")), key: db,
			want: []string{"create db-0, db-1, db-2 at once", "each pod gets its own volume from volumeClaimTemplates: data"}},
		{name: "added large", head: files(replicas("100")), key: db, want: []string{
			"create db-0, db-1, …, db-99 (100 pods) in order",
			"each pod gets its own volume from volumeClaimTemplates: data",
		}},
		{name: "removed", base: files(statefulDB), key: db, want: []string{"delete db-2, db-1, db-0", "their volumes are kept"}},
		{name: "template", base: files(statefulDB), head: files(image2(statefulDB)), key: db,
			want: []string{"rolling update of db-2, db-1, db-0 in reverse order"}},
		{name: "template with partition",
			base: files(withStrategy(replicas("5"), "{rollingUpdate: {partition: 2}}")),
			head: files(image2(withStrategy(replicas("5"), "{rollingUpdate: {partition: 2}}"))), key: db,
			want: []string{"rolling update of pods with ordinal ≥ 2 in reverse order: db-4, db-3, db-2; db-0, db-1 keep the old template"}},
		{name: "partition above every ordinal",
			base: files(withStrategy(statefulDB, "{rollingUpdate: {partition: 3}}")),
			head: files(image2(withStrategy(statefulDB, "{rollingUpdate: {partition: 3}}"))), key: db,
			want: []string{"template recorded; no pod is updated: every ordinal is below partition 3"}},
		{name: "on delete",
			base: files(withStrategy(statefulDB, "{type: OnDelete}")), head: files(image2(withStrategy(statefulDB, "{type: OnDelete}"))), key: db,
			want: []string{"pods pick up the new template only when deleted"}},
		{name: "scale up", base: files(statefulDB), head: files(replicas("5")), key: db,
			want: []string{"scale up 3 → 5: create db-3, db-4 in order"}},
		{name: "scale down", base: files(replicas("5")), head: files(statefulDB), key: db,
			want: []string{"scale down 5 → 3: delete db-4, db-3; their volumes are kept"}},
		{name: "scale down in parallel, volumes deleted",
			base: files(edit(replicas("5"), "serviceName: db", "serviceName: db\n  podManagementPolicy: Parallel\n  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}")),
			head: files(edit(statefulDB, "serviceName: db", "serviceName: db\n  podManagementPolicy: Parallel\n  persistentVolumeClaimRetentionPolicy: {whenScaled: Delete}")), key: db,
			want: []string{"scale down 5 → 3: delete db-4, db-3 at once; their volumes are deleted"}},
		{name: "rolling update with maxUnavailable",
			base: files(withStrategy(replicas("4"), "{rollingUpdate: {maxUnavailable: 50%}}")),
			head: files(image2(withStrategy(replicas("4"), "{rollingUpdate: {maxUnavailable: 50%}}"))), key: db,
			want: []string{"rolling update of db-3, db-2, db-1, db-0 in reverse order, up to 2 at a time"}},
		{name: "scale up and update: new pods start updated", base: files(statefulDB), head: files(image2(replicas("5"))), key: db,
			want: []string{"scale up 3 → 5: create db-3, db-4 in order", "rolling update of db-2, db-1, db-0 in reverse order"}},
		{name: "strategy only", base: files(statefulDB), head: files(withStrategy(statefulDB, "{rollingUpdate: {partition: 1}}")), key: db,
			want: []string{settingsOnly}},
		{name: "volumeClaimTemplates cannot change", base: files(statefulDB), head: files(edit(statefulDB, "storage: 1Gi", "storage: 2Gi")), key: db,
			want:    []string{"error: spec.volumeClaimTemplates: cannot change; delete and recreate the StatefulSet"},
			wantErr: "spec.volumeClaimTemplates"},
	})
}

func TestOtherWorkloadConsequences(t *testing.T) {
	runConsequenceCases(t, []consequenceCase{
		{name: "daemonset added", head: files(daemonLog), key: logDS, want: []string{"one pod on every eligible node (nodeSelector disktype=ssd)"}},
		{name: "daemonset removed", base: files(daemonLog), key: logDS, want: []string{"delete its pod on every node"}},
		{name: "daemonset template", base: files(daemonLog), head: files(edit(daemonLog, "shop/log:1", "shop/log:2")), key: logDS,
			want: []string{"rolling update node by node, maxUnavailable 1"}},
		{name: "daemonset on delete",
			base: files(edit(daemonLog, "  selector:", "  updateStrategy: {type: OnDelete}\n  selector:")),
			head: files(edit(daemonLog, "  selector:", "  updateStrategy: {type: OnDelete}\n  selector:", "shop/log:1", "shop/log:2")), key: logDS,
			want: []string{"pods pick up the new template only when deleted"}},
		{name: "job added", head: files(jobMigrate), key: migrate, want: []string{"start: 5 completions, 2 at a time"}},
		{name: "job changed", base: files(jobMigrate), head: files(edit(jobMigrate, "shop/migrate:1", "shop/migrate:2")), key: migrate,
			want: []string{"a new run starts: 5 completions, 2 at a time; the previous run and its pods are deleted"}},
		{name: "job labels only", base: files(jobMigrate), head: files(edit(jobMigrate, "namespace: shop}", "namespace: shop, labels: {team: data}}")), key: migrate,
			want: []string{"labels/annotations only: nothing restarts"}},
		{name: "job removed", base: files(jobMigrate), key: migrate, want: []string{"delete the Job and its pods"}},
		{name: "cronjob added", head: files(cronSettle), key: settle, want: []string{"runs on schedule 0 * * * *"}},
		{name: "cronjob schedule", base: files(cronSettle), head: files(edit(cronSettle, `"0 * * * *"`, `"*/5 * * * *"`)), key: settle,
			want: []string{"schedule 0 * * * * → */5 * * * *"}},
		{name: "cronjob suspend", base: files(cronSettle), head: files(edit(cronSettle, "  schedule:", "  suspend: true\n  schedule:")), key: settle,
			want: []string{"suspended: no new runs; running Jobs continue"}},
		{name: "cronjob template", base: files(cronSettle), head: files(edit(cronSettle, "shop/batch:1", "shop/batch:2")), key: settle,
			want: []string{"later runs use the new Job template; running Jobs are not changed"}},
		{name: "cronjob removed", base: files(cronSettle), key: settle, want: []string{"no more runs; running Jobs deleted"}},
		{name: "pod changed", base: files(podDebug), head: files(edit(podDebug, "busybox:1", "busybox:2")), key: debug,
			want: []string{"replace the pod: it is deleted, then started with the new spec"}},
		{name: "hpa added", head: files(hpaWeb), key: hpa, want: []string{"keep Deployment shop/web between 2 and 10 pods, on cpu 80% utilization"}},
		{name: "hpa bounds", base: files(hpaWeb), head: files(edit(hpaWeb, "minReplicas: 2", "minReplicas: 3", "maxReplicas: 10", "maxReplicas: 20")), key: hpa,
			want: []string{"minimum 2 → 3 pods", "maximum 10 → 20 pods"}},
		{name: "hpa removed", base: files(hpaWeb), key: hpa, want: []string{"autoscaling of Deployment shop/web stops"}},
	})
}

func TestServiceConsequences(t *testing.T) {
	nodePort := edit(serviceWeb, "  selector:", "  type: NodePort\n  selector:")
	runConsequenceCases(t, []consequenceCase{
		{name: "added", head: files(serviceWeb), key: svcWeb, want: []string{"allocate a ClusterIP"}},
		{name: "added with clusterIP", head: files(edit(serviceWeb, "  selector:", "  clusterIP: 10.96.0.10\n  selector:")), key: svcWeb,
			want: []string{"keeps ClusterIP 10.96.0.10 (as written)"}},
		{name: "added headless", head: files(edit(serviceWeb, "  selector:", "  clusterIP: None\n  selector:")), key: svcWeb,
			want: []string{"headless: DNS only"}},
		{name: "added NodePort", head: files(nodePort), key: svcWeb, want: []string{"allocate a ClusterIP", "allocate a NodePort for port 80"}},
		{name: "added NodePort given", head: files(edit(nodePort, "targetPort: 8080", "targetPort: 8080, nodePort: 30080")), key: svcWeb,
			want: []string{"allocate a ClusterIP", "keeps NodePort 30080 for port 80 (as written)"}},
		{name: "removed", base: files(serviceWeb), key: svcWeb, want: []string{"its ClusterIP is released"}},
		{name: "removed NodePort", base: files(nodePort), key: svcWeb,
			want: []string{"its ClusterIP is released", "its NodePorts are released: port 80"}},
		{name: "ports", base: files(serviceWeb), head: files(edit(serviceWeb, "targetPort: 8080", "targetPort: 9090")), key: svcWeb,
			want: []string{"rules updated on every node"}},
		{name: "type", base: files(serviceWeb), head: files(nodePort), key: svcWeb,
			want: []string{"type ClusterIP → NodePort", "allocate a NodePort for port 80", "rules updated on every node"}},
	})
}

func TestConfigConsequences(t *testing.T) {
	optedOut := edit(statefulDB, "metadata: {name: db, namespace: shop}",
		"metadata:\n  name: db\n  namespace: shop\n  annotations: {shoal.dev/rollout-on-config-change: \"false\"}")
	cfg2 := edit(configWeb, "TITLE: The shop", "TITLE: The new shop\n  EXTRA: x")
	secret2 := edit(secretDB, "data:b2xkLWNpcGhlcg==", "data:bmV3LWNpcGhlcg==")
	onDelete := edit(statefulDB, "  serviceName: db", "  serviceName: db\n  updateStrategy: {type: OnDelete}")
	partitioned := edit(statefulDB, "  serviceName: db", "  serviceName: db\n  updateStrategy: {type: RollingUpdate, rollingUpdate: {partition: 2}}")
	pulls := edit(deployWeb, "      containers:", "      imagePullSecrets: [{name: db-credentials}]\n      containers:")
	runConsequenceCases(t, []consequenceCase{
		{name: "configmap rolls its users", base: files(configWeb, deployWeb, statefulDB, cronSettle), head: files(cfg2, deployWeb, statefulDB, cronSettle),
			key: cfgWeb, want: []string{
				"keys changed: TITLE; keys added: EXTRA",
				"workloads that use it roll: Deployment shop/web, StatefulSet shop/db",
				"runs started from now on see the new contents: CronJob shop/settle",
			}},
		{name: "opted out", base: files(configWeb, deployWeb, optedOut), head: files(cfg2, deployWeb, optedOut), key: cfgWeb, want: []string{
			"keys changed: TITLE; keys added: EXTRA",
			"workloads that use it roll: Deployment shop/web",
			"StatefulSet shop/db not rolled (opted out); mounted files are updated in place (subPath mounts only when its pods are recreated)",
		}},
		{name: "on delete", base: files(configWeb, onDelete), head: files(cfg2, onDelete), key: cfgWeb, want: []string{
			"keys changed: TITLE; keys added: EXTRA",
			"StatefulSet shop/db updates on delete: not rolled; mounted files are updated in place (subPath mounts only when its pods are recreated)",
		}},
		{name: "partition", base: files(configWeb, partitioned), head: files(cfg2, partitioned), key: cfgWeb, want: []string{
			"keys changed: TITLE; keys added: EXTRA",
			"workloads that use it roll: StatefulSet shop/db",
			"StatefulSet shop/db rolls from ordinal 2; below it: mounted files are updated in place (subPath mounts only when its pods are recreated)",
		}},
		{name: "a workload added with it is created, not rolled", base: files(configWeb), head: files(cfg2, deployWeb), key: cfgWeb, want: []string{
			"keys changed: TITLE; keys added: EXTRA",
			"no existing workload uses it",
		}},
		{name: "multi-line value", base: files(configWeb), head: files(edit(configWeb, "listen 80;", "listen 8080;")), key: cfgWeb, want: []string{
			"keys changed: nginx.conf",
			"no existing workload uses it",
		}},
		{name: "secret", base: files(secretDB, podDebug, pulls), head: files(secret2, podDebug, pulls), key: secDB, want: []string{
			"keys changed: password",
			"Deployment shop/web not rolled (uses it as an imagePullSecret); image pulls use it from now on",
			"Pod shop/debug not replaced (a bare Pod); environment variables change only when its pods restart",
		}},
		{name: "configmap added", head: files(configWeb, deployWeb), key: cfgWeb, want: []string{"used by Deployment shop/web"}},
		{name: "configmap removed while used", base: files(configWeb, deployWeb), head: files(deployWeb), key: cfgWeb,
			want: []string{"still used by Deployment shop/web: their new pods cannot start without it"}},
		{name: "namespace removed", base: files(namespaceShop, deployWeb, configWeb), key: nsShop,
			want: []string{"deletes everything it held: 2 objects: ConfigMap shop/web-config, Deployment shop/web"}},
		{name: "namespace removed with a prune-disabled object",
			base: files(namespaceShop, edit(deployWeb, "{note: v1}", "{shoal.dev/prune: disabled}")), key: nsShop,
			want: []string{
				"deletes everything it held: 1 object: Deployment shop/web",
				"including 1 object with prune disabled: a namespace takes everything in it",
			}},
		{name: "prune disabled does not survive its namespace",
			base: files(namespaceShop, edit(deployWeb, "{note: v1}", "{shoal.dev/prune: disabled}")), key: web,
			want: []string{"deleted with Namespace shop, despite prune disabled"}},
		{name: "namespace added", head: files(namespaceShop), key: nsShop, want: []string{"create the namespace"}},
	})
}

func TestExitCode(t *testing.T) {
	invalid := manifest.ErrorList{{Source: manifest.Source{File: "a.yaml", Line: 3}, Message: "bad"}}
	for _, tc := range []struct {
		name       string
		base, head []string
		errs       manifest.ErrorList
		want       int
	}{
		{name: "nothing", want: 0},
		{name: "no change", base: files(deployWeb, serviceWeb), head: files(serviceWeb, deployWeb), want: 0},
		{name: "a change", base: files(deployWeb), head: files(edit(deployWeb, "replicas: 3", "replicas: 4")), want: 2},
		{name: "invalid without change", base: files(deployWeb), head: files(deployWeb), errs: invalid, want: 1},
		{name: "invalid wins over a change", base: files(deployWeb), errs: invalid, want: 1},
		{name: "forbidden change", base: files(statefulDB), head: files(edit(statefulDB, "storage: 1Gi", "storage: 2Gi")), want: 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := Compute(decodeSet(t, tc.base...), decodeSet(t, tc.head...), tc.errs)
			if got := p.ExitCode(); got != tc.want {
				t.Errorf("ExitCode = %d, want %d (changes %d, errors %v)", got, tc.want, len(p.Changes), p.Errors)
			}
		})
	}
}

func TestComputeDoesNotModifyHeadErrors(t *testing.T) {
	errs := manifest.ErrorList{
		{Source: manifest.Source{File: "b.yaml", Line: 1}, Message: "second"},
		{Source: manifest.Source{File: "a.yaml", Line: 1}, Message: "first"},
	}
	p := Compute(nil, nil, errs)
	if errs[0].Message != "second" {
		t.Errorf("Compute reordered the caller's error list")
	}
	if len(p.Errors) != 2 || p.Errors[0].Message != "first" {
		t.Errorf("plan errors = %v, want both, sorted", p.Errors)
	}
	if p.Changes != nil || p.Summary.Total() != 0 {
		t.Errorf("changes of two empty sets = %+v", p.Changes)
	}
}

func TestEveryChangeHasConsequences(t *testing.T) {
	all := files(deployWeb, statefulDB, daemonLog, jobMigrate, cronSettle, serviceWeb, configWeb, secretDB, namespaceShop, podDebug, hpaWeb)
	for _, p := range []*Plan{
		Compute(nil, decodeSet(t, all...), nil),
		Compute(decodeSet(t, all...), nil, nil),
	} {
		for _, c := range p.Changes {
			if len(c.Consequences) == 0 {
				t.Errorf("%s %s has no consequences", c.Op, c.Key)
			}
		}
	}
}

func TestUndecodableHeadObjectIsNotRemoved(t *testing.T) {
	base := decodeSet(t, deployWeb, serviceWeb)
	// A YAML syntax error in HEAD's copy of the Deployment's file loses the whole file; the
	// error names the file only.
	objs, errs := manifest.Decode("f0.yaml", []byte(deployWeb+"\n  bad: [unclosed\n"))
	if len(objs) != 0 || len(errs) == 0 || !errs[0].Object.IsZero() {
		t.Fatalf("fixture: want a file-level decode error, got objects %v errors %v", objs, errs)
	}
	svc, _ := manifest.Decode("f1.yaml", []byte(serviceWeb))
	head, _ := manifest.NewSet(svc)
	// An error naming an object that did not decode, as Decode reports a document it could
	// identify but not convert.
	named := manifest.ErrorList{{Source: manifest.Source{File: "f0.yaml", Line: 1}, Object: web, Message: "cannot decode"}}

	for name, headErrs := range map[string]manifest.ErrorList{"file error": errs, "object error": named} {
		p := Compute(base, head, headErrs)
		if len(p.Changes) != 0 || p.ExitCode() != 1 {
			t.Errorf("%s: changes %+v exit %d; want the Deployment left out (not removed) and exit 1", name, p.Changes, p.ExitCode())
		}
	}
	// Without errors, the same head does remove the Deployment.
	if p := Compute(base, head, nil); len(p.Changes) != 1 || p.Changes[0].Op != manifest.Removed {
		t.Errorf("valid head: changes %+v, want the Deployment removed", p.Changes)
	}
}

func TestFenceposts(t *testing.T) {
	for _, tc := range []struct {
		surge, unavail string // "" for unset (25%)
		replicas       int
		wantS, wantU   int
	}{
		{"", "", 4, 1, 1},
		{"", "", 10, 3, 2},
		{"", "", 1, 1, 0},
		{"", "", 0, 0, 1},
		{"50%", "0", 3, 2, 0},
		{"0", "33%", 2, 0, 1},
		{"2", "1", 5, 2, 1},
	} {
		parse := func(s string) *intstr.IntOrString {
			if s == "" {
				return nil
			}
			v := intstr.Parse(s)
			return &v
		}
		s, u, err := fenceposts(parse(tc.surge), parse(tc.unavail), tc.replicas)
		if err != nil || s != tc.wantS || u != tc.wantU {
			t.Errorf("fenceposts(%q, %q, %d) = %d, %d, %v; want %d, %d", tc.surge, tc.unavail, tc.replicas, s, u, err, tc.wantS, tc.wantU)
		}
	}
}

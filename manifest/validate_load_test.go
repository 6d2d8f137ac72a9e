package manifest

import (
	"os"
	"strings"
	"testing"
)

// TestValidateThroughLoad decodes and validates the YAML under testdata/validate/broken, which
// breaks one rule per marked line, and checks each problem is reported at its file and line.
func TestValidateThroughLoad(t *testing.T) {
	_, errs := Load(os.DirFS("testdata/validate/broken"), ".")
	want := []string{
		"batch.yaml:7: CronJob shop/settle: spec.schedule: a time zone in the schedule",
		"batch.yaml:8: CronJob shop/settle: spec.timeZone: unknown time zone \"Europe/Atlantis\"",
		"batch.yaml:12: CronJob shop/settle: spec.jobTemplate.spec.template.spec.restartPolicy: is required for a Job's pods",
		"batch.yaml:23: StatefulSet shop/db: spec.serviceName: Service \"web\" (web.yaml:45) is not headless",
		"batch.yaml:38: StatefulSet shop/db: spec.template.spec.containers[0].volumeMounts[1].name: no volume named \"logs\"",
		"batch.yaml:39: StatefulSet shop/db: spec.template.spec.containers[0].volumeMounts[1].mountPath: duplicate mountPath \"/data\"",
		"config.yaml:5: ConfigMap billing/settings: metadata.namespace: namespace \"billing\" is not defined",
		"config.yaml:7: ConfigMap billing/settings: data[bad key]: invalid key \"bad key\"",
		"config.yaml:9: Secret shop/db: data: a Secret of type kubernetes.io/tls must have the key \"tls.crt\"",
		"config.yaml:9: Secret shop/db: data: a Secret of type kubernetes.io/tls must have the key \"tls.key\"",
		"namespace.yaml:10: Namespace kube-system: metadata.name: namespace \"kube-system\" is reserved",
		"web.yaml:7: Deployment shop/web: metadata.labels[app.kubernetes.io/name]: invalid value \"web app\"",
		"web.yaml:9: Deployment shop/web: spec.replicas: must be at least 0",
		"web.yaml:15: Deployment shop/web: spec.template.metadata.labels: the pod template's labels do not match spec.selector (app=web)",
		"web.yaml:18: Deployment shop/web: spec.template.spec.restartPolicy: restartPolicy \"Never\" is not allowed here",
		"web.yaml:25: Deployment shop/web: spec.template.spec.containers[0].ports[0].protocol: protocol SCTP is not supported by shoal",
		"web.yaml:28: Deployment shop/web: spec.template.spec.containers[0].envFrom[0].configMapRef.name: ConfigMap \"web-config\" not found in namespace \"shop\"",
		"web.yaml:34: Deployment shop/web: spec.template.spec.containers[0].env[0].valueFrom.secretKeyRef.key: Secret shop/db has no key \"passwd\" (it has keys password)",
		"web.yaml:38: Deployment shop/web: spec.template.spec.containers[0].readinessProbe.httpGet.port: port \"metrics\" is not defined by this container",
		"web.yaml:41: Deployment shop/web: spec.template.spec.containers[0].resources.requests[memory]: request 1Gi is more than limit 128Mi",
		"web.yaml:51: Service shop/web: spec.type: type LoadBalancer is not supported by shoal",
		"web.yaml:58: Service shop/web: spec.ports[0].targetPort: no pod selected by this Service defines a port named \"www\" (selected: Deployment shop/web)",
		"web.yaml:66: Service shop/web-internal: spec.clusterIP: clusterIP 10.96.0.10 is already used by Service shop/web (web.yaml:52)",
		"web.yaml:71: Service shop/web-internal: spec.ports[0].nodePort: may only be set when spec.type is NodePort",
	}
	if len(errs) != len(want) {
		t.Errorf("got %d errors, want %d:\n%v", len(errs), len(want), errs)
	}
	for i := 0; i < len(want) && i < len(errs); i++ {
		if got := errs[i].Error(); !strings.HasPrefix(got, want[i]) {
			t.Errorf("error %d:\n got %s\nwant %s…", i, got, want[i])
		}
	}
}

// TestValidateGoodTestdataThroughLoad checks validation accepts the decoder's valid fixtures,
// which use every kind: a rule that rejects them is wrong, not the fixtures.
func TestValidateGoodTestdataThroughLoad(t *testing.T) {
	s, errs := Load(os.DirFS("testdata/good"), ".")
	if len(errs) > 0 {
		t.Fatalf("want no errors, got:\n%v", errs)
	}
	if s.Len() == 0 {
		t.Fatal("testdata/good loaded no objects")
	}
}

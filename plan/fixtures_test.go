package plan

import (
	"fmt"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifest"
)

// Fixtures are YAML, decoded by manifest.Decode, so that they carry Kubernetes' defaults exactly
// as a repository's objects do. edit derives a variant from a document by literal replacement,
// so a test shows exactly what a commit changed.

// decodeSet decodes docs (each one file's contents, possibly several documents, named
// "f<i>.yaml") into a Set. Any decode problem fails the test: fixtures must decode.
func decodeSet(t *testing.T, docs ...string) *manifest.Set {
	t.Helper()
	var objs []*manifest.Object
	for i, d := range docs {
		o, errs := manifest.Decode(fmt.Sprintf("f%d.yaml", i), []byte(strings.TrimLeft(d, "\n")))
		if len(errs) > 0 {
			t.Fatalf("fixture %d does not decode:\n%v\n%s", i, errs, d)
		}
		objs = append(objs, o...)
	}
	s, errs := manifest.NewSet(objs)
	if len(errs) > 0 {
		t.Fatalf("fixture set: %v", errs)
	}
	return s
}

// edit replaces each old with new, in order, once; old must occur in doc.
func edit(doc string, oldNew ...string) string {
	if len(oldNew)%2 != 0 {
		panic("edit: odd number of arguments")
	}
	for i := 0; i < len(oldNew); i += 2 {
		if !strings.Contains(doc, oldNew[i]) {
			panic(fmt.Sprintf("edit: %q not in fixture:\n%s", oldNew[i], doc))
		}
		doc = strings.Replace(doc, oldNew[i], oldNew[i+1], 1)
	}
	return doc
}

const deployWeb = `
apiVersion: apps/v1
kind: Deployment
metadata:
  name: web
  namespace: shop
  annotations: {note: v1}
spec:
  replicas: 3
  selector: {matchLabels: {app: web}}
  template:
    metadata: {labels: {app: web}}
    spec:
      containers:
        - name: web
          image: shop/web:1
          envFrom: [{configMapRef: {name: web-config}}]
`

const statefulDB = `
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: shop}
spec:
  serviceName: db
  replicas: 3
  selector: {matchLabels: {app: db}}
  template:
    metadata: {labels: {app: db}}
    spec:
      containers:
        - name: db
          image: shop/db:1
          volumeMounts: [{name: data, mountPath: /data}, {name: conf, mountPath: /etc/db}]
      volumes: [{name: conf, configMap: {name: web-config}}]
  volumeClaimTemplates:
    - metadata: {name: data}
      spec:
        accessModes: [ReadWriteOnce]
        resources: {requests: {storage: 1Gi}}
`

const daemonLog = `
apiVersion: apps/v1
kind: DaemonSet
metadata: {name: log, namespace: shop}
spec:
  selector: {matchLabels: {app: log}}
  template:
    metadata: {labels: {app: log}}
    spec:
      nodeSelector: {disktype: ssd}
      containers: [{name: log, image: "shop/log:1"}]
`

const jobMigrate = `
apiVersion: batch/v1
kind: Job
metadata: {name: migrate, namespace: shop}
spec:
  completions: 5
  parallelism: 2
  template:
    spec:
      restartPolicy: Never
      containers: [{name: migrate, image: "shop/migrate:1"}]
`

const cronSettle = `
apiVersion: batch/v1
kind: CronJob
metadata: {name: settle, namespace: shop}
spec:
  schedule: "0 * * * *"
  jobTemplate:
    spec:
      template:
        spec:
          restartPolicy: OnFailure
          containers:
            - name: settle
              image: shop/batch:1
              envFrom: [{configMapRef: {name: web-config}}]
`

const serviceWeb = `
apiVersion: v1
kind: Service
metadata: {name: web, namespace: shop}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: 8080}]
`

const configWeb = `
apiVersion: v1
kind: ConfigMap
metadata: {name: web-config, namespace: shop}
data:
  TITLE: The shop
  nginx.conf: |
    server {
      listen 80;
    }
`

const secretDB = `
apiVersion: v1
kind: Secret
metadata: {name: db-credentials, namespace: shop}
type: Opaque
stringData:
  password: ENC[AES256_GCM,data:b2xkLWNpcGhlcg==,iv:aXYx,tag:dGFnMQ==,type:str]
  user: ENC[AES256_GCM,data:dXNlci1jaXBoZXI=,iv:aXYy,tag:dGFnMg==,type:str]
sops:
  age:
    - recipient: age1p663tau083de2wwc5jwl0arfrwur93hpu99vc69y2jdjrzkea46qu974ng
      enc: "-----BEGIN AGE ENCRYPTED FILE-----"
  version: 3.13.3
`

const namespaceShop = `
apiVersion: v1
kind: Namespace
metadata: {name: shop}
`

const podDebug = `
apiVersion: v1
kind: Pod
metadata: {name: debug, namespace: shop}
spec:
  containers:
    - name: debug
      image: busybox:1
      env: [{name: PASSWORD, valueFrom: {secretKeyRef: {name: db-credentials, key: password}}}]
`

const hpaWeb = `
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web, namespace: shop}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 2
  maxReplicas: 10
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 80}}
`

package manifest

import (
	"fmt"
	"strings"
	"testing"
	"testing/fstest"
)

// benchRepo generates a repository of n manifests in files of perFile documents: per app, a
// Deployment (probes, resources, env from a ConfigMap), its Service and its ConfigMap, spread
// over ten declared namespaces, the way a large GitOps repository looks.
func benchRepo(n, perFile int) fstest.MapFS {
	fsys := fstest.MapFS{}
	var ns strings.Builder
	for i := range 10 {
		fmt.Fprintf(&ns, "---\napiVersion: v1\nkind: Namespace\nmetadata:\n  name: team-%d\n", i)
	}
	fsys["namespaces.yaml"] = &fstest.MapFile{Data: []byte(ns.String())}
	var b strings.Builder
	file, docs := 0, 0
	flush := func() {
		if docs > 0 {
			fsys[fmt.Sprintf("apps/team-%d/app-%04d.yaml", file%10, file)] = &fstest.MapFile{Data: []byte(b.String())}
			b.Reset()
			file++
			docs = 0
		}
	}
	for i := 0; i < n; i++ {
		app := i / 3
		ns := fmt.Sprintf("team-%d", app%10)
		switch i % 3 { // the ConfigMap first, so a cut-off last app has no dangling reference
		case 0:
			fmt.Fprintf(&b, benchConfigMap, app, ns, app)
		case 1:
			fmt.Fprintf(&b, benchDeployment, app, ns, app, app, app, app, app, app)
		case 2:
			fmt.Fprintf(&b, benchService, app, ns, app)
		}
		if docs++; docs == perFile {
			flush()
		}
	}
	flush()
	return fsys
}

const benchDeployment = `---
apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%d
  namespace: %s
  labels:
    app.kubernetes.io/name: app-%d
    app.kubernetes.io/part-of: shop
  annotations:
    shoal.dev/owner: "team"
spec:
  replicas: 3
  selector:
    matchLabels:
      app.kubernetes.io/name: app-%d
  strategy:
    type: RollingUpdate
    rollingUpdate:
      maxSurge: 1
      maxUnavailable: 0
  template:
    metadata:
      labels:
        app.kubernetes.io/name: app-%d
    spec:
      terminationGracePeriodSeconds: 20
      containers:
        - name: web
          image: registry.example.com/shop/web:1.4.2
          args: ["--listen=:8080", "--log-format=json"]
          ports:
            - name: http
              containerPort: 8080
          env:
            - name: LOG_LEVEL
              value: info
            - name: POD_NAME
              valueFrom:
                fieldRef:
                  fieldPath: metadata.name
            - name: FEATURE_FLAGS
              valueFrom:
                configMapKeyRef:
                  name: app-%d
                  key: flags
          envFrom:
            - configMapRef:
                name: app-%d
              prefix: APP_
          resources:
            requests:
              cpu: 100m
              memory: 128Mi
            limits:
              memory: 256Mi
          readinessProbe:
            httpGet:
              path: /healthz
              port: http
            periodSeconds: 5
          livenessProbe:
            tcpSocket:
              port: 8080
            initialDelaySeconds: 10
          volumeMounts:
            - name: config
              mountPath: /etc/app
              readOnly: true
      volumes:
        - name: config
          configMap:
            name: app-%d
`

const benchService = `---
apiVersion: v1
kind: Service
metadata:
  name: app-%d
  namespace: %s
spec:
  selector:
    app.kubernetes.io/name: app-%d
  ports:
    - name: http
      port: 80
      targetPort: http
`

const benchConfigMap = `---
apiVersion: v1
kind: ConfigMap
metadata:
  name: app-%d
  namespace: %s
data:
  flags: "checkout,search"
  LOG_FORMAT: json
  config.yaml: |
    server:
      port: 8080
    upstream: http://app-%d.example:80
`

// BenchmarkLoad10k loads (decodes and validates) 10,000 manifests in 1,000 files. The goal is
// at most one second per load on a 2-core machine; see docs/benchmarks.md.
func BenchmarkLoad10k(b *testing.B) {
	fsys := benchRepo(10000, 10)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		set, errs := Load(fsys, ".")
		if len(errs) > 0 {
			b.Fatalf("%d errors, first: %v", len(errs), errs[0])
		}
		if set.Len() != 10010 {
			b.Fatalf("loaded %d objects, want 10010", set.Len())
		}
	}
}

// BenchmarkDecodeDeployment decodes one Deployment document: the unit cost behind Load.
func BenchmarkDecodeDeployment(b *testing.B) {
	data := []byte(fmt.Sprintf(benchDeployment, 1, "team-1", 1, 1, 1, 1, 1, 1))
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	for b.Loop() {
		if _, errs := Decode("app.yaml", data); len(errs) > 0 {
			b.Fatal(errs)
		}
	}
}

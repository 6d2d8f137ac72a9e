package agent

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/state"
	"github.com/shoal-dev/shoal/svcproxy"
)

const servicesYAML = `apiVersion: apps/v1
kind: Deployment
metadata: {name: web, namespace: default}
spec:
  replicas: 3
  selector:
    matchLabels: {app: web}
  template:
    metadata:
      labels: {app: web}
    spec:
      containers:
        - name: app
          image: example.com/web:1
          ports: [{name: http, containerPort: 8080}]
          resources:
            requests: {cpu: 100m, memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata: {name: web, namespace: default}
spec:
  type: NodePort
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
---
apiVersion: apps/v1
kind: StatefulSet
metadata: {name: db, namespace: default}
spec:
  serviceName: db
  replicas: 2
  selector:
    matchLabels: {app: db}
  template:
    metadata:
      labels: {app: db}
    spec:
      containers:
        - name: pg
          image: example.com/pg:1
          ports: [{name: pg, containerPort: 5432}]
          resources:
            requests: {cpu: 100m, memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata: {name: db, namespace: default}
spec:
  clusterIP: None
  selector: {app: db}
  ports: [{name: pg, port: 5432, targetPort: pg}]
`

const apiYAML = `apiVersion: v1
kind: Service
metadata: {name: api, namespace: default}
spec:
  clusterIP: 10.96.0.50
  selector: {app: web}
  ports: [{port: 8080}]
`

// clashYAML asks for the ClusterIP web was given.
const clashYAML = `apiVersion: v1
kind: Service
metadata: {name: clash, namespace: default}
spec:
  clusterIP: 10.96.0.2
  selector: {app: web}
  ports: [{port: 81}]
`

// waitView waits until cond holds on the Service view every agent given
// builds from its own replica, re-checking after each change of it.
func waitView(t *testing.T, what string, agents []*testAgent, cond func(view map[string]svcproxy.Service) error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), guard)
	defer cancel()
	for _, a := range agents {
		nets := map[string]PodNet{}
		for {
			v := a.Store().Snapshot()
			view, _, err := a.serviceView(ctx, v, nets)
			if err == nil {
				byKey := map[string]svcproxy.Service{}
				for _, s := range view {
					byKey[s.Key()] = s
				}
				err = cond(byKey)
			}
			if err == nil {
				break
			}
			if werr := v.Wait(ctx); werr != nil {
				t.Fatalf("%s: not reached on %s within %s: %v", what, a.name, guard, err)
			}
		}
	}
}

func readyEndpoints(s svcproxy.Service) []svcproxy.Endpoint {
	var out []svcproxy.Endpoint
	for _, e := range s.Endpoints {
		if e.Ready {
			out = append(out, e)
		}
	}
	return out
}

func TestServicesAcrossTheCluster(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 3-agent cluster")
	}
	repo := newTestRepo(t)
	c1 := repo.commit("services", map[string]string{"app.yaml": servicesYAML, "api.yaml": apiYAML})
	c := newTestCluster(t, repo, 3)
	for _, n := range []string{"n1", "n2", "n3"} {
		c.start(n)
	}
	all := c.live()

	// The leader allocates: the lowest free ClusterIP (.0 and .1 reserved),
	// the explicit one, and a node port from the range.
	waitState(t, "addresses allocated", all, func(v *state.Snapshot) error {
		if err := pinned(v, c1); err != nil {
			return err
		}
		for _, w := range []state.Allocation{ipAl("10.96.0.2", "default/web"), ipAl("10.96.0.50", "default/api"), portAl("30000", "default/web/http")} {
			if got := v.Allocation(w.Kind, w.Value); got == nil || got.Owner != w.Owner {
				return fmt.Errorf("%s %s: held by %+v, want %s", w.Kind, w.Value, got, w.Owner)
			}
		}
		if n := len(v.Allocations(state.AllocClusterIP)); n != 2 {
			return fmt.Errorf("%d ClusterIPs allocated, want 2 (db is headless)", n)
		}
		return nil
	})

	// Every node sees every Service with every ready pod, named ports
	// resolved per endpoint and the StatefulSet pods' hostnames.
	waitView(t, "every node's view holds the endpoints", all, func(view map[string]svcproxy.Service) error {
		web, ok := view["default/web"]
		if !ok {
			return fmt.Errorf("no default/web in %v", view)
		}
		if web.ClusterIP != netip.MustParseAddr("10.96.0.2") || web.Type != svcproxy.TypeNodePort || len(web.Ports) != 1 ||
			web.Ports[0].NodePort != 30000 || web.Ports[0].TargetPort.Name != "http" {
			return fmt.Errorf("web: %+v", web)
		}
		if eps := readyEndpoints(web); len(eps) != 3 {
			return fmt.Errorf("web: %d ready endpoints, want 3: %+v", len(eps), web.Endpoints)
		}
		for _, e := range web.Endpoints {
			if e.Ports["http"] != 8080 || e.NodeName == "" {
				return fmt.Errorf("web endpoint %+v: want port http=8080 and a node", e)
			}
		}
		api := view["default/api"]
		if api.ClusterIP != netip.MustParseAddr("10.96.0.50") || len(readyEndpoints(api)) != 3 {
			return fmt.Errorf("api: %+v", api)
		}
		db, ok := view["default/db"]
		if !ok || db.ClusterIP.IsValid() {
			return fmt.Errorf("db (headless): %+v", db)
		}
		var hosts []string
		for _, e := range readyEndpoints(db) {
			hosts = append(hosts, e.Hostname)
		}
		if strings.Join(hosts, ",") != "db-0,db-1" {
			return fmt.Errorf("db endpoints' hostnames %v, want db-0,db-1", hosts)
		}
		return nil
	})
	for _, a := range all {
		v := a.Store().Snapshot()
		view, problems, err := a.serviceView(context.Background(), v, map[string]PodNet{})
		if err != nil || len(problems) > 0 {
			t.Errorf("%s: view problems %v %v", a.name, err, problems)
		}
		for _, s := range view {
			if err := s.Validate(); err != nil {
				t.Errorf("%s: svcproxy refuses %v", a.name, err)
			}
		}
	}

	// The status API shows the same, for `shoal get services`.
	list, err := (&Client{Server: all[0].StatusAddr()}).Services(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, s := range list.Services {
		ready := 0
		for _, e := range s.Endpoints {
			if e.Ready {
				ready++
			}
		}
		ports := ""
		for _, p := range s.Ports {
			ports += fmt.Sprintf("%d:%d/%s>%s", p.Port, p.NodePort, p.Protocol, p.TargetPort)
		}
		got = append(got, fmt.Sprintf("%s %s %s %s %d", s.Name, s.Type, s.ClusterIP, ports, ready))
	}
	if want := "api ClusterIP 10.96.0.50 8080:0/TCP>8080 3|db ClusterIP  5432:0/TCP>pg 2|web NodePort 10.96.0.2 80:30000/TCP>http 3"; strings.Join(got, "|") != want {
		t.Errorf("GET /v1/services:\n%s\nwant\n%s", strings.Join(got, "|"), want)
	}

	// api leaves Git: its address is released. clash asks for web's
	// address: refused with an event naming both, and left out of the view.
	c2 := repo.commit("api gone, clash", map[string]string{"app.yaml": servicesYAML, "clash.yaml": clashYAML})
	waitState(t, "api released, clash reported", all, func(v *state.Snapshot) error {
		if err := pinned(v, c2); err != nil {
			return err
		}
		if al := v.Allocation(state.AllocClusterIP, "10.96.0.50"); al != nil {
			return fmt.Errorf("10.96.0.50 still held by %s", al.Owner)
		}
		if al := v.Allocation(state.AllocClusterIP, "10.96.0.2"); al == nil || al.Owner != "default/web" {
			return fmt.Errorf("10.96.0.2 held by %+v, want default/web", al)
		}
		evs := v.Events("Service/default/clash")
		if len(evs) == 0 {
			return fmt.Errorf("no event for Service default/clash")
		}
		if e := evs[len(evs)-1]; e.Reason != "ClusterIPConflict" || !strings.Contains(e.Message, "default/web") || e.Type != "Warning" {
			return fmt.Errorf("event %+v", e)
		}
		return nil
	})
	waitView(t, "clash left out, api gone", all, func(view map[string]svcproxy.Service) error {
		if _, ok := view["default/api"]; ok {
			return fmt.Errorf("api still in the view")
		}
		if s, ok := view["default/clash"]; ok {
			return fmt.Errorf("clash in the view: %+v", s)
		}
		if web := view["default/web"]; web.ClusterIP != netip.MustParseAddr("10.96.0.2") {
			return fmt.Errorf("web: %+v", web)
		}
		return nil
	})
	// The conflict is in the status API's events, for `shoal get events`.
	evs, err := (&Client{Server: all[1].StatusAddr()}).Events(context.Background(), "default")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.ContainsFunc(evs.Events, func(e *state.Event) bool {
		return e.Key == "Service/default/clash" && e.Reason == "ClusterIPConflict"
	}) {
		t.Errorf("GET /v1/events?namespace=default lacks the conflict: %+v", evs.Events)
	}
}

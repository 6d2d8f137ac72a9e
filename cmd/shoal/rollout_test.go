package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/shoal-dev/shoal/agent"
	"github.com/shoal-dev/shoal/state"
)

func TestRolloutStatusCommand(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.URL.Path != "/v1/rollout" || q.Get("kind") != "Deployment" || q.Get("namespace") != "hello" || q.Get("name") != "web" {
			http.Error(w, "unexpected "+r.URL.String(), http.StatusBadRequest)
			return
		}
		st := agent.RolloutStatus{Kind: "Deployment", Namespace: "hello", Name: "web", Commit: "0123456789abcdef", Desired: 3,
			Events: []*state.Event{{Reason: "ScalingReplicaSet", Message: "Scaled up revision r2 from 0 to 1"}}}
		switch calls.Add(1) {
		case 1:
			st.Updated, st.Old = 1, 3
		case 2:
			st.Updated, st.Ready, st.Old = 3, 3, 1
			st.Events = append(st.Events, &state.Event{Reason: "ScalingReplicaSet", Message: "Scaled down revision r1 from 1 to 0"})
		default:
			st.Updated, st.Ready, st.Complete = 3, 3, true
		}
		json.NewEncoder(w).Encode(st)
	}))
	defer srv.Close()
	code, out, errOut := shoal(t, "rollout", "status", "deploy/web", "-n", "hello", "--server", srv.URL)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errOut)
	}
	for _, want := range []string{
		"Scaled up revision r2 from 0 to 1",
		`Waiting for deployment "web" rollout to finish: 1 out of 3 new replicas have been updated...`,
		"Scaled down revision r1 from 1 to 0",
		`Waiting for deployment "web" rollout to finish: 1 old replicas are pending termination...`,
		`deployment "web" successfully rolled out (3/3 ready at 0123456789ab)`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Scaled up revision r2") != 1 {
		t.Errorf("an event shown twice:\n%s", out)
	}
	calls.Store(0)
	if code, _, _ := shoal(t, "rollout", "status", "deploy/web", "-n", "hello", "--watch=false", "--server", srv.URL); code != 1 {
		t.Errorf("--watch=false on an unfinished rollout: exit %d, want 1", code)
	}
	if code, _, errOut := shoal(t, "rollout", "status", "job/x", "--server", srv.URL); code != 1 || !strings.Contains(errOut, "has no rollout") {
		t.Errorf("job: exit %d %q", code, errOut)
	}
}

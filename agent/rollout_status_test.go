package agent

import (
	"context"
	"fmt"
	"testing"
	"time"
)

// TestRolloutStatus: GET /v1/rollout follows a Deployment from its new
// template's commit to complete, counting updated, ready and old pods.
func TestRolloutStatus(t *testing.T) {
	if testing.Short() {
		t.Skip("starts an agent")
	}
	repo := newTestRepo(t)
	repo.commit("web", map[string]string{"web.yaml": rolloutYAML(1)})
	c := newTestCluster(t, repo, 1)
	c.startDelay = 300 * time.Millisecond // each new pod takes a moment: the rollout is seen under way
	n1 := c.start("n1")
	client := &Client{Server: n1.StatusAddr()}
	ctx := context.Background()
	waitRollout := func(what string, cond func(RolloutStatus) bool) RolloutStatus {
		t.Helper()
		deadline := time.Now().Add(guard)
		for {
			st, err := client.Rollout(ctx, "Deployment", "default", "web")
			if err == nil && cond(st) {
				return st
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: last %+v %v", what, st, err)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	st := waitRollout("first rollout complete", func(s RolloutStatus) bool { return s.Complete })
	if st.Desired != 10 || st.Updated != 10 || st.Ready != 10 || st.Old != 0 || st.Revision == "" {
		t.Errorf("complete: %+v", st)
	}
	first := st.Revision
	commit := repo.commit("version 2", map[string]string{"web.yaml": rolloutYAML(2)})
	under := waitRollout("the new template under way", func(s RolloutStatus) bool {
		return s.Commit == commit && !s.Complete && s.Old > 0
	})
	if under.Revision == first || under.Updated >= 10 {
		t.Errorf("under way: %+v", under)
	}
	done := waitRollout("the new template rolled out", func(s RolloutStatus) bool { return s.Commit == commit && s.Complete })
	if done.Updated != 10 || done.Old != 0 || len(done.Events) == 0 {
		t.Errorf("done: %+v", done)
	}
	if msg := done.Message(); msg != fmt.Sprintf(`deployment "web" successfully rolled out (10/10 ready at %s)`, commit[:12]) {
		t.Errorf("message %q", msg)
	}
	if _, err := client.Rollout(ctx, "Deployment", "default", "nope"); err == nil {
		t.Error("an unknown Deployment has a rollout")
	}
}

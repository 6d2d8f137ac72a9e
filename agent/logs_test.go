package agent

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/runtime"
	"github.com/shoal-dev/shoal/state"
)

// TestLogsAPI: the node that runs a pod serves its container's log; any
// other node names it (421 with its address); an unknown pod is 404.
func TestLogsAPI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a 2-agent cluster")
	}
	repo := newTestRepo(t)
	repo.commit("a pod", map[string]string{"a.yaml": podYAML("a", "a:1")})
	c := newTestCluster(t, repo, 2)
	c.start("n1")
	c.start("n2")
	all := c.live()
	var pod *state.Pod
	waitState(t, "pod a running", all, func(v *state.Snapshot) error {
		pod = v.PodByName("default", "a")
		if pod == nil || pod.Status.Phase != state.PhaseRunning {
			return fmt.Errorf("pod a: %+v", pod)
		}
		return nil
	})
	var on, other *testAgent
	for _, a := range all {
		if a.name == pod.NodeName {
			on = a
		} else {
			other = a
		}
	}
	key := runtime.PodKey{Namespace: "default", Name: "a", UID: pod.UID}
	if err := on.rt.WriteLog(key, "app", "first line\nsecond line\n"); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	var out bytes.Buffer
	if err := (&Client{Server: on.StatusAddr()}).Logs(ctx, "default", "a", "", false, &out); err != nil || out.String() != "first line\nsecond line\n" {
		t.Errorf("logs from %s: %q %v", on.name, out.String(), err)
	}
	err := (&Client{Server: other.StatusAddr()}).Logs(ctx, "default", "a", "", false, &out)
	var mis *MisdirectedError
	if !errors.As(err, &mis) || mis.NodeAddr != "127.0.0.1" || !strings.Contains(mis.Message, "runs on node "+on.name) {
		t.Errorf("logs from %s, which does not run it: %v", other.name, err)
	}
	if err := (&Client{Server: on.StatusAddr()}).Logs(ctx, "default", "nope", "", false, &out); err == nil || !strings.Contains(err.Error(), "404") {
		t.Errorf("an unknown pod: %v", err)
	}
	if err := (&Client{Server: on.StatusAddr()}).Logs(ctx, "default", "a", "other", false, &out); err == nil {
		t.Error("an unknown container has a log")
	}
}

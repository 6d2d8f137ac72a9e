package runtime

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
)

func TestExecArgs(t *testing.T) {
	helper := []string{ExecHelperPath, ExecEnvArg, ExecEnvDir + "/" + execEnvFile}
	for _, tc := range []struct {
		process, cmd, want []string
	}{
		{[]string{"/web"}, []string{"/check", "-x"}, []string{"/check", "-x"}},
		{helper, []string{"/check", "-x"}, append(slices.Clone(helper), "--", "/check", "-x")},
		// Only the helper's exact form: a user's command that merely starts like it is the user's.
		{append(slices.Clone(helper), "extra"), []string{"/check"}, []string{"/check"}},
	} {
		if got := execArgs(tc.process, tc.cmd); !slices.Equal(got, tc.want) {
			t.Errorf("execArgs(%q, %q) = %q, want %q", tc.process, tc.cmd, got, tc.want)
		}
	}
}

// TestContainerdExecProbeSeesSecretEnv: an exec probe in a container whose
// environment holds a Secret's value runs with that environment, as the
// kubelet's does, although the value is not in the container's spec. The
// batch program exits with $EXIT_CODE, so the probe's exit code shows which
// environment it ran with.
func TestContainerdExecProbeSeesSecretEnv(t *testing.T) {
	n := newTestNode(t)
	res := &mapResolver{secrets: map[string]map[string][]byte{"default/codes": {"exit": []byte("3")}}}
	n.reopenWith(t, func(c *Config) { c.Values = res })
	ctx := context.Background()
	batch := n.env.images["batch"]
	spec := podSpec("probe-env",
		ContainerSpec{Name: "secret", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h", "-exit-code=0"},
			Env: []EnvVar{{Name: "EXIT_CODE", From: &EnvSource{SecretKey: &ObjectKeyRef{Name: "codes", Key: "exit"}}}}},
		ContainerSpec{Name: "plain", Image: batch, PullPolicy: corev1.PullIfNotPresent, Args: []string{"-sleep=1h", "-exit-code=0"},
			Env: []EnvVar{{Name: "EXIT_CODE", Value: "4"}}},
	)
	spec.TerminationGracePeriod = 2 * time.Second
	st, err := n.RunPod(ctx, spec)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []string{"secret", "plain"} {
		if cs, _ := st.Container(c); cs.State != StateRunning {
			t.Fatalf("%s: %+v", c, cs)
		}
	}
	probe := Probe{Exec: &ExecProbe{Command: []string{"/batch"}}, Timeout: 10 * time.Second}
	for c, code := range map[string]string{"secret": "exited with 3", "plain": "exited with 4"} {
		r := n.Probe(ctx, spec.Key, c, probe)
		if r.Success || !strings.Contains(r.Message, code) {
			t.Errorf("%s: probe %+v, want a failure that %s", c, r, code)
		}
		if !strings.Contains(r.Message, `"/batch"`) || strings.Contains(r.Message, ExecHelperPath) {
			t.Errorf("%s: the message should name the probe's command, not the helper: %q", c, r.Message)
		}
	}
	if err := n.RemovePod(ctx, spec.Key); err != nil {
		t.Fatal(err)
	}
}

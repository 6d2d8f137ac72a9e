package runtime

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/internal/testimages"
)

// TestContainerdImagePullSecrets pulls from an in-process registry that
// demands HTTP Basic credentials: a pod whose imagePullSecret holds them
// pulls and runs; one with none, a wrong password or a missing Secret
// fails with ErrImagePull (ImagePullBackOff on its next attempt) and a
// message naming the Secrets, never the password. Nothing the runtime
// writes holds the password.
func TestContainerdImagePullSecrets(t *testing.T) {
	n := newTestNode(t)
	ctx := context.Background()
	reg, err := testimages.StartAuthRegistry("puller", testPullPassword)
	if err != nil {
		t.Fatal(err)
	}
	defer reg.Close()
	img, err := n.env.builder.Build(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	private, err := reg.Push(ctx, img, "shoal/private-web:v1")
	if err != nil {
		t.Fatal(err)
	}
	dockerConfig := func(key, user, pass string) map[string][]byte {
		return map[string][]byte{DockerConfigJSONKey: []byte(`{"auths":{"` + key + `":{"auth":"` + b64(user+":"+pass) + `"}}}`)}
	}
	res := &mapResolver{secrets: map[string]map[string][]byte{
		"default/regcred": dockerConfig("http://"+reg.Host+"/v2/", "puller", testPullPassword),
		"default/wrong":   dockerConfig(reg.Host, "puller", "not-"+testPullPassword),
	}}
	n.reopenWith(t, func(c *Config) { c.Values = res })

	run := func(name string, secrets ...string) ContainerStatus {
		t.Helper()
		spec := podSpec(name, ContainerSpec{Name: "web", Image: private, PullPolicy: corev1.PullAlways})
		spec.ImagePullSecrets = secrets
		st, err := n.RunPod(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := st.Container("web")
		if strings.Contains(c.Message, testPullPassword) {
			t.Errorf("%s: the message quotes the password: %s", name, c.Message)
		}
		t.Logf("%s: %s %s %s", name, c.State, c.Reason, c.Message)
		return c
	}

	if c := run("anonymous"); c.Reason != ReasonErrImagePull || !strings.Contains(c.Message, "401") {
		t.Errorf("no imagePullSecret: %+v, want ErrImagePull with the registry's 401", c)
	}
	c := run("wrong", "missing", "wrong")
	if c.Reason != ReasonErrImagePull || !strings.Contains(c.Message, "default/wrong:") || !strings.Contains(c.Message, "default/missing not used: not found") {
		t.Errorf("wrong password: %+v, want ErrImagePull naming default/wrong and default/missing", c)
	}
	// Retried, it fails again and then waits: ImagePullBackOff, still naming the secret.
	wrong := podSpec("wrong").Key
	st, err := n.RestartContainer(ctx, wrong, "web", 10*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	c, _ = st.Container("web")
	plan := PlanRestarts(corev1.RestartPolicyAlways, st, DefaultBackoff(), c.FailedAt.Add(time.Second))
	if pc, _ := plan.Status.Container("web"); pc.Reason != ReasonImagePullBackOff || !strings.Contains(pc.Message, "default/wrong") ||
		strings.Contains(pc.Message, testPullPassword) {
		t.Errorf("after a second failed pull: %s %q, want ImagePullBackOff naming the secret", pc.Reason, pc.Message)
	}

	if c := run("good", "wrong", "regcred"); c.State != StateRunning {
		t.Fatalf("with the right secret (second): %+v, want Running", c)
	}
	st, err = n.PodStatus(ctx, podSpec("good").Key)
	if err != nil {
		t.Fatal(err)
	}
	if got := waitHTTP(t, st.PodIP, "/"); !strings.Contains(got, "hello from good") {
		t.Errorf("the pulled image answers %q", got)
	}

	// The password is nowhere on the node's disk.
	err = filepath.WalkDir(n.cfg.DataDir, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		if d.Type().IsRegular() {
			if b, err := os.ReadFile(p); err == nil && strings.Contains(string(b), testPullPassword) {
				t.Errorf("the password is in %s", p)
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"anonymous", "wrong", "good"} {
		if err := n.RemovePod(ctx, podSpec(name).Key); err != nil {
			t.Fatal(err)
		}
	}
}

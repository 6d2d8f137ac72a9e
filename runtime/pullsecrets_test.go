package runtime

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

const testPullPassword = "pull-Pa55-Xk2"

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestParseDockerConfigJSON(t *testing.T) {
	for _, tc := range []struct {
		name string
		in   string
		want DockerConfig
		err  string
	}{
		{name: "auth", in: `{"auths":{"reg:5000":{"auth":"` + b64("alice:"+testPullPassword) + `"}}}`,
			want: DockerConfig{"reg:5000": {Username: "alice", Password: testPullPassword}}},
		{name: "auth wins over username and password",
			in:   `{"auths":{"r":{"auth":"` + b64("alice:a:b") + `","username":"bob","password":"x","email":"e@x"}}}`,
			want: DockerConfig{"r": {Username: "alice", Password: "a:b"}}},
		{name: "username and password", in: `{"auths":{"https://index.docker.io/v1/":{"username":"u","password":"p"}}}`,
			want: DockerConfig{"https://index.docker.io/v1/": {Username: "u", Password: "p"}}},
		{name: "identity token", in: `{"auths":{"r":{"identitytoken":"tok"}}}`,
			want: DockerConfig{"r": {IdentityToken: "tok"}}},
		{name: "several", in: `{"auths":{"a":{"username":"u","password":"p"},"b":{"auth":"` + b64("v:q") + `"}}}`,
			want: DockerConfig{"a": {Username: "u", Password: "p"}, "b": {Username: "v", Password: "q"}}},
		{name: "empty auths", in: `{"auths":{}}`, want: DockerConfig{}},
		{name: "no auths", in: `{"r":{"auth":"x"}}`, err: `no "auths" object`},
		{name: "not JSON", in: `{"auths": ` + testPullPassword, err: "not valid JSON"},
		{name: "bad base64", in: `{"auths":{"r":{"auth":"%%` + testPullPassword + `"}}}`, err: "not base64"},
		{name: "no colon", in: `{"auths":{"r":{"auth":"` + b64(testPullPassword) + `"}}}`, err: "no ':'"},
		{name: "no credentials", in: `{"auths":{"r":{"email":"e@x"}}}`, err: "neither auth"},
		{name: "wrong type", in: `{"auths":{"r":{"password":12}}}`, err: "must be string"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := ParseDockerConfigJSON([]byte(tc.in))
			if tc.err != "" {
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Fatalf("err %v, want one containing %q", err, tc.err)
				}
				if strings.Contains(err.Error(), testPullPassword) || strings.Contains(err.Error(), "Pa55") {
					t.Errorf("error quotes the content: %v", err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

func TestRegistryAuthPrintsNoSecret(t *testing.T) {
	a := RegistryAuth{Username: "alice", Password: testPullPassword, IdentityToken: "tok-" + testPullPassword}
	for _, s := range []string{fmt.Sprint(a), fmt.Sprintf("%v %+v %#v %s", a, a, a, a), fmt.Sprint(DockerConfig{"r": a}),
		fmt.Sprintf("%+v", PullSecret{Name: "ns/x", Config: DockerConfig{"r": a}})} {
		if strings.Contains(s, testPullPassword) {
			t.Errorf("printed a secret: %s", s)
		}
	}
}

// TestCredentialsFor matches images to dockerconfigjson keys as the kubelet does.
func TestCredentialsFor(t *testing.T) {
	cred := func(user string) RegistryAuth { return RegistryAuth{Username: user, Password: "p"} }
	one := func(key string) []PullSecret {
		return []PullSecret{{Name: "ns/s", Config: DockerConfig{key: cred("u")}}}
	}
	for _, tc := range []struct {
		image, key string
		match      bool
	}{
		// Docker Hub and its aliases.
		{"nginx", "index.docker.io", true},
		{"nginx", "https://index.docker.io/v1/", true},
		{"docker.io/library/nginx:1", "registry-1.docker.io", true},
		{"library/nginx", "docker.io", true},
		{"someone/app", "https://index.docker.io/v1/", true},
		{"nginx", "quay.io", false},
		{"quay.io/team/app", "index.docker.io", false},
		// host:port, with and without a scheme or /v2/.
		{"127.0.0.1:5000/shoal/web:v1", "127.0.0.1:5000", true},
		{"127.0.0.1:5000/shoal/web:v1", "http://127.0.0.1:5000", true},
		{"127.0.0.1:5000/shoal/web:v1", "https://127.0.0.1:5000/v2/", true},
		{"127.0.0.1:5000/shoal/web:v1", "127.0.0.1:5001", false},
		{"127.0.0.1:5000/shoal/web:v1", "127.0.0.1", false},
		{"reg.example.com/app", "reg.example.com:443", false},
		// Path prefixes and globs.
		{"quay.io/team/app:1", "quay.io/team", true},
		{"quay.io/team/app@sha256:" + strings.Repeat("a", 64), "quay.io/team/app", true},
		{"quay.io/other/app", "quay.io/team", false},
		{"eu.gcr.io/proj/app", "*.gcr.io", true},
		{"gcr.io/proj/app", "*.gcr.io", false},
		{"a.b.gcr.io/proj/app", "*.gcr.io", false},
		{"Quay.IO/team/app", "quay.io", true},
	} {
		got := credentialsFor(tc.image, one(tc.key))
		if (len(got) > 0) != tc.match {
			t.Errorf("image %s, key %s: matched=%v, want %v", tc.image, tc.key, len(got) > 0, tc.match)
		}
	}

	// Order: secrets in order; in one, the most specific key first; unreadable secrets skipped.
	secrets := []PullSecret{
		{Name: "ns/missing", Problem: "not found"},
		{Name: "ns/a", Config: DockerConfig{"quay.io": cred("a-host"), "quay.io/team": cred("a-team"), "gcr.io": cred("a-gcr")}},
		{Name: "ns/b", Config: DockerConfig{"https://quay.io/v1/": cred("b-host")}},
	}
	var got []string
	for _, c := range credentialsFor("quay.io/team/app:1", secrets) {
		got = append(got, c.secret+"="+c.auth.Username)
	}
	want := []string{"ns/a=a-team", "ns/a=a-host", "ns/b=b-host"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
}

// TestCredentialsMostSpecificFirst: within one Secret, the keys are tried
// by specificity of their normalised form (longest path, then an exact
// host before a glob), whatever their scheme or spelling.
func TestCredentialsMostSpecificFirst(t *testing.T) {
	cred := func(user string) RegistryAuth { return RegistryAuth{Username: user, Password: "p"} }
	secrets := []PullSecret{{Name: "ns/s", Config: DockerConfig{
		"quay.io":                  cred("host"),
		"https://quay.io/team":     cred("team"),
		"quay.io/team/app":         cred("app"),
		"*.io":                     cred("glob"),
		"https://quay.io/v2/team/": cred("team-v2"),
		"quay.io/teamevil":         cred("evil"), // a string prefix, as in the kubelet: not for team/app
	}}}
	var got []string
	for _, c := range credentialsFor("quay.io/team/app:1", secrets) {
		got = append(got, c.auth.Username)
	}
	want := []string{"app", "team", "team-v2", "host", "glob"}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("order %v, want %v", got, want)
	}
	// The kubelet's prefix match: quay.io/team also serves quay.io/teamevil.
	got = nil
	for _, c := range credentialsFor("quay.io/teamevil/app", secrets) {
		got = append(got, c.auth.Username)
	}
	if want := []string{"evil", "team", "team-v2", "host", "glob"}; !reflect.DeepEqual(got, want) {
		t.Errorf("quay.io/teamevil/app: %v, want %v", got, want)
	}
}

// TestCredsFuncOnlyForTheImageRegistry: the authorizer gets the credentials
// for the image's registry only, never for a host it is sent to elsewhere.
func TestCredsFuncOnlyForTheImageRegistry(t *testing.T) {
	a := RegistryAuth{Username: "u", Password: testPullPassword}
	for _, tc := range []struct {
		image, host string
		want        bool
	}{
		{"127.0.0.1:5000/x/y:1", "127.0.0.1:5000", true},
		{"127.0.0.1:5000/x/y:1", "127.0.0.1:5001", false},
		{"127.0.0.1:5000/x/y:1", "evil.example.com", false},
		{"nginx", "registry-1.docker.io", true},
		{"nginx", "auth.docker.io", false},
	} {
		u, p, err := credsFunc(tc.image, a)(tc.host)
		if err != nil {
			t.Fatal(err)
		}
		if got := u != "" && p != ""; got != tc.want {
			t.Errorf("image %s, host %s: creds given=%v, want %v", tc.image, tc.host, got, tc.want)
		}
	}
	u, p, _ := credsFunc("r.io/x", RegistryAuth{IdentityToken: "tok"})("r.io")
	if u != "" || p != "tok" {
		t.Errorf("identity token: %q %q, want the token as the secret with no username", u, p)
	}
}

// TestFakePullSecrets checks the plumbing without containerd: FromPod keeps
// imagePullSecrets, the Fake resolves them and a guarded registry accepts
// only the right credentials.
func TestFakePullSecrets(t *testing.T) {
	cfgJSON := func(user, pass string) []byte {
		return []byte(`{"auths":{"reg.example.com":{"auth":"` + b64(user+":"+pass) + `"}}}`)
	}
	res := &mapResolver{secrets: map[string]map[string][]byte{
		"shop/regcred": {DockerConfigJSONKey: cfgJSON("alice", testPullPassword)},
		"shop/wrong":   {DockerConfigJSONKey: cfgJSON("alice", "not-"+testPullPassword)},
		"shop/other":   {DockerConfigJSONKey: []byte(`{"auths":{"quay.io":{"username":"x","password":"y"}}}`)},
		"shop/opaque":  {"token": []byte(testPullPassword)},
	}}
	f := NewFake(FakeConfig{Values: res, RegistryAuth: map[string]RegistryAuth{"reg.example.com": {Username: "alice", Password: testPullPassword}}})
	ctx := context.Background()
	run := func(name string, secrets ...string) ContainerStatus {
		t.Helper()
		pod := &corev1.Pod{}
		pod.Namespace, pod.Name, pod.UID = "shop", name, types.UID("uid-"+name)
		pod.Spec.Containers = []corev1.Container{{Name: "app", Image: "reg.example.com/shop/app:1", ImagePullPolicy: corev1.PullAlways}}
		for _, s := range secrets {
			pod.Spec.ImagePullSecrets = append(pod.Spec.ImagePullSecrets, corev1.LocalObjectReference{Name: s})
		}
		spec, err := FromPod(pod, PodOptions{})
		if err != nil {
			t.Fatalf("FromPod: %v", err)
		}
		if !reflect.DeepEqual(spec.ImagePullSecrets, secrets) && len(secrets) > 0 {
			t.Errorf("spec.ImagePullSecrets = %v, want %v", spec.ImagePullSecrets, secrets)
		}
		st, err := f.RunPod(ctx, spec)
		if err != nil {
			t.Fatal(err)
		}
		c, _ := st.Container("app")
		if strings.Contains(c.Message, testPullPassword) {
			t.Errorf("%s: message quotes the password: %s", name, c.Message)
		}
		return c
	}

	if c := run("anon"); c.Reason != ReasonErrImagePull || !strings.Contains(c.Message, "401") {
		t.Errorf("no secret: %+v, want ErrImagePull 401", c)
	}
	c := run("bad", "missing", "opaque", "other", "wrong")
	if c.Reason != ReasonErrImagePull {
		t.Errorf("wrong secrets: %+v, want ErrImagePull", c)
	}
	t.Logf("message: %s", c.Message)
	for _, want := range []string{"shop/wrong: 401", "shop/missing not used: not found", "shop/opaque not used: has no .dockerconfigjson"} {
		if !strings.Contains(c.Message, want) {
			t.Errorf("message %q does not say %q", c.Message, want)
		}
	}
	if strings.Contains(c.Message, "shop/other:") {
		t.Errorf("message %q: shop/other has no credentials for the registry and was not tried", c.Message)
	}
	if c := run("good", "wrong", "regcred"); c.ID == "" || c.State != StateRunning {
		t.Errorf("right secret second: %+v, want created", c)
	}
	pulls := f.Pulls()
	if len(pulls) != 1 || pulls[0] != (FakePull{Image: "reg.example.com/shop/app:1", Secret: "shop/regcred", Username: "alice"}) {
		t.Errorf("pulls %+v, want one with shop/regcred", pulls)
	}
	if _, err := f.EnsureImage(ctx, "reg.example.com/shop/app:2", corev1.PullAlways); !errors.Is(err, ErrImagePull) {
		t.Errorf("EnsureImage without secrets: %v, want ErrImagePull", err)
	}
}

// currentResolver answers a Secret read marked WithCurrentValues with the rotated credentials,
// and any other read with the pod's own.
type currentResolver struct{}

func (currentResolver) ConfigMap(context.Context, string, string) (map[string][]byte, error) {
	return nil, ErrValueNotFound
}

func (currentResolver) Secret(ctx context.Context, _, _ string) (map[string][]byte, error) {
	user := "old"
	if CurrentValues(ctx) {
		user = "rotated"
	}
	return map[string][]byte{DockerConfigJSONKey: []byte(`{"auths": {"r.io": {"username": "` + user + `", "password": "p"}}}`)}, nil
}

// TestPullSecretsReadAsCurrent: pull secrets are read as the node has them now, on RunPod and
// on RestartContainer alike, whatever commit the pod's other values come from.
func TestPullSecretsReadAsCurrent(t *testing.T) {
	got := resolvePullSecrets(context.Background(), currentResolver{}, "ns", []string{"regcred"})
	if len(got) != 1 || got[0].Config["r.io"].Username != "rotated" {
		t.Fatalf("resolved %+v, want the rotated credentials", got)
	}
	f := NewFake(FakeConfig{Values: currentResolver{}})
	spec := podSpec("p", ContainerSpec{Name: "c", Image: "r.io/app:latest", PullPolicy: corev1.PullAlways})
	spec.ImagePullSecrets = []string{"regcred"}
	ctx := context.Background()
	if _, err := f.RunPod(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if _, err := f.RestartContainer(ctx, spec.Key, "c", 0); err != nil {
		t.Fatal(err)
	}
	for _, p := range f.Pulls() {
		if p.Username != "rotated" {
			t.Errorf("pull %+v, want the rotated credentials", p)
		}
	}
	if n := len(f.Pulls()); n != 2 {
		t.Errorf("%d pulls, want 2 (start and restart)", n)
	}
}

package runtime

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

func testPod() *corev1.Pod {
	grace := int64(7)
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Namespace: "shop", Name: "web-0", UID: "0b5e"},
		Spec: corev1.PodSpec{
			TerminationGracePeriodSeconds: &grace,
			DNSPolicy:                     corev1.DNSClusterFirst,
			Subdomain:                     "web",
			SecurityContext:               &corev1.PodSecurityContext{},
			Containers: []corev1.Container{{
				Name: "web", Image: "nginx", Command: []string{"/bin/sh"}, Args: []string{"-c", "true"},
				Env:        []corev1.EnvVar{{Name: "A", Value: "1"}},
				WorkingDir: "/srv",
				Ports:      []corev1.ContainerPort{{ContainerPort: 80, HostPort: 8080}},
				Resources:  corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("100m")}},
			}, {
				Name: "side", Image: "registry.example/side:1.2", ImagePullPolicy: corev1.PullNever,
			}},
		},
	}
}

func TestFromPod(t *testing.T) {
	dns := &DNSConfig{Nameservers: []string{"10.96.0.10"}}
	spec, err := FromPod(testPod(), PodOptions{ClusterDNS: dns})
	if err != nil {
		t.Fatal(err)
	}
	if spec.Key != (PodKey{Namespace: "shop", Name: "web-0", UID: "0b5e"}) || spec.Hostname != "web-0" || spec.Subdomain != "web" {
		t.Errorf("identity: %+v", spec)
	}
	if spec.TerminationGracePeriod != 7*time.Second || spec.DNS != dns {
		t.Errorf("grace %v dns %v", spec.TerminationGracePeriod, spec.DNS)
	}
	web, side := spec.Containers[0], spec.Containers[1]
	if web.PullPolicy != corev1.PullAlways || side.PullPolicy != corev1.PullNever {
		t.Errorf("pull policies %s %s", web.PullPolicy, side.PullPolicy)
	}
	if strings.Join(web.Command, " ") != "/bin/sh" || strings.Join(web.Args, " ") != "-c true" || web.WorkingDir != "/srv" ||
		len(web.Env) != 1 || web.Env[0] != (EnvVar{Name: "A", Value: "1"}) {
		t.Errorf("web: %+v", web)
	}
	if len(web.Ports) != 1 || web.Ports[0].HostPort != 8080 || web.Ports[0].Protocol != corev1.ProtocolTCP {
		t.Errorf("ports: %+v", web.Ports)
	}
	if err := spec.Validate(); err != nil {
		t.Error(err)
	}
}

func TestFromPodRefusesWhatIsNotBuilt(t *testing.T) {
	pod := testPod()
	always := corev1.ContainerRestartPolicyAlways
	pod.Spec.InitContainers = []corev1.Container{{Name: "init", Image: "busybox", RestartPolicy: &always}}
	pod.Spec.Volumes = []corev1.Volume{{Name: "data", VolumeSource: corev1.VolumeSource{NFS: &corev1.NFSVolumeSource{Server: "n", Path: "/x"}}}}
	c := &pod.Spec.Containers[0]
	c.ReadinessProbe = &corev1.Probe{ProbeHandler: corev1.ProbeHandler{GRPC: &corev1.GRPCAction{Port: 9000}}}
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceEphemeralStorage: resource.MustParse("64Mi")}
	c.Env = append(c.Env, corev1.EnvVar{Name: "B", ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.hostIP"}}})
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{Sysctls: []corev1.Sysctl{{Name: "net.core.somaxconn", Value: "1024"}}}
	_, err := FromPod(pod, PodOptions{})
	if err == nil {
		t.Fatal("FromPod accepted fields the runtime does not implement")
	}
	for _, field := range []string{"spec.initContainers[0].restartPolicy", "spec.volumes[0] (nfs)", "spec.securityContext.sysctls",
		"spec.containers[0].readinessProbe.grpc", "spec.containers[0].resources.limits.ephemeral-storage", "spec.containers[0].env[1].valueFrom.fieldRef (status.hostIP)"} {
		if !strings.Contains(err.Error(), field) {
			t.Errorf("error does not name %s: %v", field, err)
		}
	}
}

func TestPodSpecValidate(t *testing.T) {
	good := podSpec("p", ContainerSpec{Name: "a", Image: "x"})
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*PodSpec){
		"uid with slash": func(s *PodSpec) { s.Key.UID = "../etc" },
		"no containers":  func(s *PodSpec) { s.Containers = nil },
		"dup container":  func(s *PodSpec) { s.Containers = append(s.Containers, s.Containers[0]) },
		"no image":       func(s *PodSpec) { s.Containers[0].Image = "" },
	} {
		s := podSpec("p", ContainerSpec{Name: "a", Image: "x"})
		mut(&s)
		if err := s.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestDefaultPullPolicy(t *testing.T) {
	for image, want := range map[string]corev1.PullPolicy{
		"nginx": corev1.PullAlways, "nginx:latest": corev1.PullAlways, "nginx:1.27": corev1.PullIfNotPresent,
		"127.0.0.1:5000/web": corev1.PullAlways, "127.0.0.1:5000/web:v1": corev1.PullIfNotPresent,
		"nginx@sha256:0000000000000000000000000000000000000000000000000000000000000000": corev1.PullIfNotPresent,
	} {
		if got := defaultPullPolicy(image); got != want {
			t.Errorf("%s: %s, want %s", image, got, want)
		}
	}
}

func TestNormaliseRef(t *testing.T) {
	for in, want := range map[string]string{
		"nginx":                 "docker.io/library/nginx:latest",
		"user/app:2":            "docker.io/user/app:2",
		"127.0.0.1:5000/web:v1": "127.0.0.1:5000/web:v1",
		"ghcr.io/org/img":       "ghcr.io/org/img:latest",
		"localhost/img:1":       "localhost/img:1",
	} {
		got, err := normaliseRef(in)
		if err != nil || got != want {
			t.Errorf("normaliseRef(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	if _, err := normaliseRef("Bad//Name"); !errors.Is(err, ErrInvalidImageName) {
		t.Errorf("bad name: %v", err)
	}
}

func TestPlainHTTPHosts(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost": true, "localhost:5000": true, "127.0.0.1:41000": true, "[::1]:5000": true,
		"registry-1.docker.io": false, "10.0.0.5:5000": false,
	} {
		if got := isLoopbackHost(host); got != want {
			t.Errorf("isLoopbackHost(%q) = %v", host, got)
		}
	}
}

func TestDerivePhase(t *testing.T) {
	run := ContainerStatus{State: StateRunning}
	wait := ContainerStatus{State: StateWaiting}
	ok := ContainerStatus{State: StateTerminated}
	bad := ContainerStatus{State: StateTerminated, ExitCode: 2}
	for _, tc := range []struct {
		cs   []ContainerStatus
		want corev1.PodPhase
	}{
		{nil, corev1.PodPending},
		{[]ContainerStatus{wait, run}, corev1.PodPending},
		{[]ContainerStatus{run, ok}, corev1.PodRunning},
		{[]ContainerStatus{ok, ok}, corev1.PodSucceeded},
		{[]ContainerStatus{ok, bad}, corev1.PodFailed},
	} {
		if got := derivePhase(corev1.RestartPolicyNever, tc.cs); got != tc.want {
			t.Errorf("%+v: %s, want %s", tc.cs, got, tc.want)
		}
	}
}

func TestWritePodFiles(t *testing.T) {
	dir := t.TempDir()
	spec := podSpec("web-0", ContainerSpec{Name: "a", Image: "x"})
	spec.Subdomain = "web"
	spec.HostAliases = []corev1.HostAlias{{IP: "10.1.2.3", Hostnames: []string{"db", "db.local"}}}
	err := writePodFiles(dir, spec, netip.MustParseAddr("10.244.0.7"),
		DNSConfig{Nameservers: []string{"10.96.0.10"}, Searches: []string{"default.svc.cluster.local"}, Options: []string{"ndots:5"}}, "cluster.local")
	if err != nil {
		t.Fatal(err)
	}
	hosts, _ := os.ReadFile(filepath.Join(dir, "hosts"))
	for _, want := range []string{"127.0.0.1\tlocalhost", "10.244.0.7\tweb-0.web.default.svc.cluster.local\tweb-0", "10.1.2.3\tdb db.local"} {
		if !strings.Contains(string(hosts), want) {
			t.Errorf("hosts lacks %q:\n%s", want, hosts)
		}
	}
	rc, _ := os.ReadFile(filepath.Join(dir, "resolv.conf"))
	if string(rc) != "nameserver 10.96.0.10\nsearch default.svc.cluster.local\noptions ndots:5\n" {
		t.Errorf("resolv.conf:\n%s", rc)
	}
	hn, _ := os.ReadFile(filepath.Join(dir, "hostname"))
	if string(hn) != "web-0\n" {
		t.Errorf("hostname %q", hn)
	}
}

func TestHostDNSDropsLoopbackResolvers(t *testing.T) {
	p := filepath.Join(t.TempDir(), "resolv.conf")
	os.WriteFile(p, []byte("# c\nnameserver 127.0.0.53\nnameserver 192.0.2.1\nsearch a.example b.example\noptions edns0\n"), 0o644)
	d := hostDNS(p)
	if strings.Join(d.Nameservers, ",") != "192.0.2.1" || strings.Join(d.Searches, ",") != "a.example,b.example" || strings.Join(d.Options, ",") != "edns0" {
		t.Errorf("%+v", d)
	}
}

func TestConfigValidate(t *testing.T) {
	good := Config{Address: "/run/c.sock", DataDir: "/var/lib/shoal", PodCIDR: netip.MustParsePrefix("10.244.1.0/24")}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	bad := Config{DataDir: "rel", BridgeName: "a-bridge-name-too-long"}
	err := bad.Validate()
	for _, want := range []string{"Address", "DataDir", "PodCIDR", "BridgeName"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate does not name %s: %v", want, err)
		}
	}
}

func TestFollowerReadsWhatIsAppended(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	w, err := os.Create(p)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString("one\n")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := newFollower(ctx, f, time.Millisecond)
	defer r.Close()
	buf := make([]byte, 64)
	n, err := r.Read(buf)
	if err != nil || string(buf[:n]) != "one\n" {
		t.Fatalf("first read %q %v", buf[:n], err)
	}
	got := make(chan string)
	go func() {
		n, _ := r.Read(buf)
		got <- string(buf[:n])
	}()
	w.WriteString("two\n")
	if s := <-got; s != "two\n" {
		t.Errorf("followed read %q", s)
	}
	cancel()
	if _, err := r.Read(buf); err != io.EOF {
		t.Errorf("read after cancel: %v, want EOF", err)
	}
}

func TestFollowerFollowsATruncatedFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	w, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	w.WriteString("a long first line\n")
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	r := newFollower(context.Background(), f, time.Millisecond)
	defer r.Close()
	buf := make([]byte, 64)
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "a long first line\n" {
		t.Fatalf("first read %q %v", buf[:n], err)
	}
	if err := os.Truncate(p, 0); err != nil { // as RotateLogs does
		t.Fatal(err)
	}
	w.WriteString("new\n")
	if n, err := r.Read(buf); err != nil || string(buf[:n]) != "new\n" {
		t.Errorf("read after truncation %q %v", buf[:n], err)
	}
}

package runtime

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// mapResolver is a ValueResolver over in-memory objects, by namespace/name.
type mapResolver struct {
	configMaps, secrets map[string]map[string][]byte
	calls               int
}

func (m *mapResolver) get(objs map[string]map[string][]byte, kind, ns, name string) (map[string][]byte, error) {
	m.calls++
	v, ok := objs[ns+"/"+name]
	if !ok {
		return nil, fmt.Errorf("%s %s/%s: %w", kind, ns, name, ErrValueNotFound)
	}
	return v, nil
}

func (m *mapResolver) ConfigMap(_ context.Context, ns, name string) (map[string][]byte, error) {
	return m.get(m.configMaps, "ConfigMap", ns, name)
}

func (m *mapResolver) Secret(_ context.Context, ns, name string) (map[string][]byte, error) {
	return m.get(m.secrets, "Secret", ns, name)
}

func TestExpandVars(t *testing.T) {
	vars := map[string]string{"A": "x", "EMPTY": "", "B": "$(A)"}
	lookup := func(n string) (string, bool) { v, ok := vars[n]; return v, ok }
	for in, want := range map[string]string{
		"plain":            "plain",
		"$(A)":             "x",
		"pre-$(A)-post":    "pre-x-post",
		"$(A)$(A)":         "xx",
		"$(EMPTY)|":        "|",
		"$(MISSING)":       "$(MISSING)",
		"$$(A)":            "$(A)",
		"$$$(A)":           "$x",
		"$(A":              "$(A",
		"$A":               "$A",
		"cost $5":          "cost $5",
		"trailing $":       "trailing $",
		"$(B)":             "$(A)", // values are not expanded again
		"$()":              "$()",
		"$(A)$(MISSING)$$": "x$(MISSING)$",
	} {
		if got := expandVars(in, lookup); got != want {
			t.Errorf("expandVars(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestContainerEnv(t *testing.T) {
	res := &mapResolver{
		configMaps: map[string]map[string][]byte{"shop/cfg": {"greeting": []byte("hello"), "color": []byte("blue"), "bad=key": []byte("skipped")}},
		secrets:    map[string]map[string][]byte{"shop/sec": {"password": []byte("s3cret")}},
	}
	pod := PodSpec{Key: PodKey{Namespace: "shop", Name: "web-0", UID: "u1"}, Hostname: "web-0",
		Labels: map[string]string{"app": "web"}, Annotations: map[string]string{"team": "a"}, NodeName: "n1",
		NodeAllocatable: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("2Gi")}}
	c := ContainerSpec{Name: "web",
		Command: []string{"/bin/$(GREETING)"}, Args: []string{"--ip=$(POD_IP)", "$$(color)", "$(NOPE)"},
		EnvFrom: []EnvFromSource{{ConfigMap: "cfg", Prefix: "CFG_"}, {Secret: "missing", Optional: true}},
		Env: []EnvVar{
			{Name: "GREETING", From: &EnvSource{ConfigMapKey: &ObjectKeyRef{Name: "cfg", Key: "greeting"}}},
			{Name: "PASSWORD", From: &EnvSource{SecretKey: &ObjectKeyRef{Name: "sec", Key: "password"}}},
			{Name: "MAYBE", From: &EnvSource{SecretKey: &ObjectKeyRef{Name: "sec", Key: "nope", Optional: true}}},
			{Name: "POD_IP", From: &EnvSource{FieldPath: "status.podIP"}},
			{Name: "MSG", Value: "$(GREETING) from $(POD_NAME) on $(NODE)"}, // POD_NAME is defined later
			{Name: "POD_NAME", From: &EnvSource{FieldPath: "metadata.name"}},
			{Name: "NODE", From: &EnvSource{FieldPath: "spec.nodeName"}},
			{Name: "APP", From: &EnvSource{FieldPath: "metadata.labels['app']"}},
			{Name: "TEAM", From: &EnvSource{FieldPath: "metadata.annotations['team']"}},
			{Name: "MEM", From: &EnvSource{Resource: &ResourceRef{Resource: "limits.memory", Divisor: resource.MustParse("1Mi")}}},
			{Name: "CPU_REQ", From: &EnvSource{Resource: &ResourceRef{Resource: "requests.cpu", Divisor: resource.MustParse("1m")}}},
			{Name: "CFG_color", Value: "red"}, // env wins over envFrom
		},
		Resources: corev1.ResourceRequirements{Requests: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("250m")}},
	}
	pod.Containers = []ContainerSpec{c}
	env, cmd, args, secret, err := containerEnv(context.Background(), newObjectCache(res, "shop"), pod, "10.0.0.7", c)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret) != 1 || !secret["PASSWORD"] {
		t.Errorf("secret variables %v, want PASSWORD only", secret)
	}
	want := []string{"HOSTNAME=web-0", "CFG_color=red", "CFG_greeting=hello", "GREETING=hello", "PASSWORD=s3cret",
		"POD_IP=10.0.0.7", "MSG=hello from $(POD_NAME) on $(NODE)", "POD_NAME=web-0", "NODE=n1", "APP=web", "TEAM=a",
		"MEM=2048", "CPU_REQ=250"}
	if strings.Join(env, "\n") != strings.Join(want, "\n") {
		t.Errorf("env:\n%s\nwant:\n%s", strings.Join(env, "\n"), strings.Join(want, "\n"))
	}
	if strings.Join(cmd, " ") != "/bin/hello" || strings.Join(args, " ") != "--ip=10.0.0.7 $(color) $(NOPE)" {
		t.Errorf("cmd %q args %q", cmd, args)
	}
	if res.calls != 3 {
		t.Errorf("resolver called %d times, want once per object (3)", res.calls)
	}

	// A Secret's value reaches other variables and the command line by
	// $(VAR): they are marked too; a plain variable overriding one is not.
	c2 := ContainerSpec{Name: "web", Args: []string{"--pw=$(DB_password)"},
		EnvFrom: []EnvFromSource{{Secret: "sec", Prefix: "DB_"}},
		Env: []EnvVar{
			{Name: "URL", Value: "db://u:$(DB_password)@db"},
			{Name: "PLAIN", Value: "$(HOSTNAME)"},
		}}
	_, _, _, secret2, err := containerEnv(context.Background(), newObjectCache(res, "shop"), pod, "", c2)
	if err != nil {
		t.Fatal(err)
	}
	if len(secret2) != 3 || !secret2["DB_password"] || !secret2["URL"] || !secret2[argvSecret] {
		t.Errorf("secret variables %v, want DB_password, URL and the command line", secret2)
	}
	c2.Args = nil
	c2.Env = append(c2.Env, EnvVar{Name: "DB_password", Value: "overridden"})
	if _, _, _, secret3, err := containerEnv(context.Background(), newObjectCache(res, "shop"), pod, "", c2); err != nil || len(secret3) != 1 || !secret3["URL"] {
		t.Errorf("a Secret variable overridden by a plain one: %v %v, want URL only (made before the override)", secret3, err)
	}

	for name, e := range map[string]EnvVar{
		"missing key":    {Name: "X", From: &EnvSource{ConfigMapKey: &ObjectKeyRef{Name: "cfg", Key: "nope"}}},
		"missing secret": {Name: "X", From: &EnvSource{SecretKey: &ObjectKeyRef{Name: "gone", Key: "k"}}},
		"limit unknown":  {Name: "X", From: &EnvSource{Resource: &ResourceRef{Resource: "limits.cpu", Divisor: resource.MustParse("1")}}},
	} {
		c := ContainerSpec{Name: "web", Env: []EnvVar{e}}
		pod.Containers = []ContainerSpec{c}
		if _, _, _, _, err := containerEnv(context.Background(), newObjectCache(res, "shop"), pod, "", c); err == nil || !strings.Contains(err.Error(), "env X") {
			t.Errorf("%s: %v", name, err)
		}
	}
	c = ContainerSpec{Name: "web", EnvFrom: []EnvFromSource{{ConfigMap: "absent"}}}
	if _, _, _, _, err := containerEnv(context.Background(), newObjectCache(res, "shop"), pod, "", c); err == nil {
		t.Error("a missing non-optional envFrom source was accepted")
	}
	if _, _, _, _, err := containerEnv(context.Background(), newObjectCache(nil, "shop"), pod, "", ContainerSpec{Name: "web",
		Env: []EnvVar{{Name: "X", From: &EnvSource{SecretKey: &ObjectKeyRef{Name: "sec", Key: "password"}}}}}); err == nil ||
		!strings.Contains(err.Error(), "no ValueResolver") {
		t.Errorf("no resolver: %v", err)
	}
}

func TestFormatMapAndFields(t *testing.T) {
	if got := formatMap(map[string]string{"b": `say "hi"`, "a": "1"}); got != "a=\"1\"\nb=\"say \\\"hi\\\"\"" {
		t.Errorf("formatMap = %q", got)
	}
	for p, ok := range map[string]bool{
		"metadata.name": true, "metadata.labels['a.b/c']": true, "metadata.labels": false, "status.podIP": true,
		"status.hostIP": false, "metadata.labels[a]": false, "spec.nodeName": true,
	} {
		if envFieldPath(p) != ok {
			t.Errorf("envFieldPath(%q) = %v", p, !ok)
		}
	}
	if volumeFieldPath("status.podIP") || !volumeFieldPath("metadata.labels") {
		t.Error("volumeFieldPath")
	}
}

func TestFromPodVolumes(t *testing.T) {
	pod := testPod()
	sizeLimit := resource.MustParse("8Mi")
	dirOrCreate := corev1.HostPathDirectoryOrCreate
	mode := int32(0o600)
	pod.Spec.Volumes = []corev1.Volume{
		{Name: "cache", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
		{Name: "mem", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory, SizeLimit: &sizeLimit}}},
		{Name: "host", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "/srv/x/", Type: &dirOrCreate}}},
		{Name: "cfg", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
			LocalObjectReference: corev1.LocalObjectReference{Name: "app"}, Items: []corev1.KeyToPath{{Key: "k", Path: "dir/k.conf", Mode: &mode}}}}},
		{Name: "sec", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s", DefaultMode: &mode}}},
		{Name: "meta", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{Items: []corev1.DownwardAPIVolumeFile{
			{Path: "labels", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "metadata.labels"}},
			{Path: "cpu", ResourceFieldRef: &corev1.ResourceFieldSelector{ContainerName: "web", Resource: "requests.cpu"}}}}}},
		{Name: "data", VolumeSource: corev1.VolumeSource{PersistentVolumeClaim: &corev1.PersistentVolumeClaimVolumeSource{ClaimName: "data-web-0"}}},
	}
	pod.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{
		{Name: "cache", MountPath: "/cache"}, {Name: "cfg", MountPath: "/etc/app", ReadOnly: true}, {Name: "cache", MountPath: "/sub", SubPath: "a/b"},
	}
	spec, err := FromPod(pod, PodOptions{NodeName: "n1"})
	if err != nil {
		t.Fatal(err)
	}
	v := spec.Volumes
	if len(v) != 7 || v[0].EmptyDir == nil || v[0].EmptyDir.Memory || !v[1].EmptyDir.Memory || v[1].EmptyDir.SizeLimit != 8<<20 ||
		v[2].HostPath.Path != "/srv/x" || v[2].HostPath.Type != dirOrCreate || v[3].ConfigMap.Items[0].Path != "dir/k.conf" ||
		v[3].ConfigMap.DefaultMode != 0o644 || v[4].Secret.DefaultMode != 0o600 || len(v[5].DownwardAPI.Items) != 2 ||
		v[6].Local.Claim != "data-web-0" || spec.NodeName != "n1" {
		t.Errorf("volumes %+v", v)
	}
	if m := spec.Containers[0].Mounts; len(m) != 3 || m[1] != (Mount{Volume: "cfg", Path: "/etc/app", ReadOnly: true}) || m[2].SubPath != "a/b" {
		t.Errorf("mounts %+v", m)
	}

	for name, tc := range map[string]struct {
		mut  func(*corev1.Pod)
		want string
	}{
		"unknown volume": {func(p *corev1.Pod) {
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "nope", MountPath: "/x"}}
		}, "spec.containers[0].volumeMounts[0].name"},
		"subPath escapes": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
			p.Spec.Containers[0].VolumeMounts = []corev1.VolumeMount{{Name: "v", MountPath: "/x", SubPath: "../etc"}}
		}, "spec.containers[0].volumeMounts[0].subPath"},
		"disk sizeLimit": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{SizeLimit: &sizeLimit}}}}
		}, "spec.volumes[0].emptyDir.sizeLimit"},
		"relative hostPath": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: "srv"}}}}
		}, "spec.volumes[0].hostPath.path"},
		"projected": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Projected: &corev1.ProjectedVolumeSource{}}}}
		}, "spec.volumes[0] (projected)"},
		"item path escapes": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "s",
				Items: []corev1.KeyToPath{{Key: "k", Path: "../k"}}}}}}
		}, "spec.volumes[0].secret.items[0].path"},
		"podIP in a volume": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "v", VolumeSource: corev1.VolumeSource{DownwardAPI: &corev1.DownwardAPIVolumeSource{
				Items: []corev1.DownwardAPIVolumeFile{{Path: "ip", FieldRef: &corev1.ObjectFieldSelector{FieldPath: "status.podIP"}}}}}}}
		}, "spec.volumes[0].downwardAPI.items[0].fieldRef.fieldPath"},
		"bad volume name": {func(p *corev1.Pod) {
			p.Spec.Volumes = []corev1.Volume{{Name: "../x", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}}}
		}, "spec.volumes[0].name"},
	} {
		p := testPod()
		tc.mut(p)
		if _, err := FromPod(p, PodOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error naming %s", name, err, tc.want)
		}
	}
}

func TestCheckHostPathTypes(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "f")
	if err := os.WriteFile(file, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path string
		typ  corev1.HostPathType
		ok   bool
	}{
		{dir, corev1.HostPathDirectory, true},
		{file, corev1.HostPathDirectory, false},
		{filepath.Join(dir, "nope"), corev1.HostPathDirectory, false},
		{file, corev1.HostPathFile, true},
		{dir, corev1.HostPathFile, false},
		{filepath.Join(dir, "new/dir"), corev1.HostPathDirectoryOrCreate, true},
		{filepath.Join(dir, "new/file"), corev1.HostPathFileOrCreate, true},
		{file, corev1.HostPathDirectoryOrCreate, false},
		{filepath.Join(dir, "nope"), corev1.HostPathUnset, true},
		{file, corev1.HostPathSocket, false},
		{"/dev/null", corev1.HostPathCharDev, true},
		{"/dev/null", corev1.HostPathBlockDev, false},
	} {
		err := checkHostPath(&HostPathVolume{Path: tc.path, Type: tc.typ})
		if (err == nil) != tc.ok {
			t.Errorf("%s %q: %v", tc.typ, tc.path, err)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "new/dir")); err != nil || !st.IsDir() {
		t.Error("DirectoryOrCreate did not create")
	}
	if st, err := os.Stat(filepath.Join(dir, "new/file")); err != nil || !st.Mode().IsRegular() {
		t.Error("FileOrCreate did not create")
	}
}

func TestSubPathSource(t *testing.T) {
	root := t.TempDir()
	if err := os.Symlink("/etc", filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if _, err := subPathSource(root, "escape", true); err == nil {
		t.Error("a symlink out of the volume was followed")
	}
	if p, err := subPathSource(root, "a/b", true); err != nil || !strings.HasSuffix(p, "/a/b") {
		t.Errorf("create: %q %v", p, err)
	}
	if _, err := subPathSource(root, "c", false); err == nil {
		t.Error("a missing subPath of a projected volume was accepted")
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	if got := unescapeMountinfo(`/a\040b\134c`); got != `/a b\c` {
		t.Errorf("got %q", got)
	}
}

func TestFromPodRefusesNodeEnforcedFields(t *testing.T) {
	yes, no, deadline, rc, host := true, false, int64(60), "kata", "h"
	pod := testPod()
	pod.Spec.ShareProcessNamespace = &yes
	pod.Spec.ActiveDeadlineSeconds = &deadline
	pod.Spec.HostUsers = &no
	pod.Spec.ReadinessGates = []corev1.PodReadinessGate{{ConditionType: "x"}}
	pod.Spec.SetHostnameAsFQDN = &yes
	pod.Spec.RuntimeClassName = &rc
	pod.Spec.OS = &corev1.PodOS{Name: corev1.Windows}
	pod.Spec.HostnameOverride = &host
	_, err := FromPod(pod, PodOptions{})
	for _, f := range []string{"spec.shareProcessNamespace", "spec.activeDeadlineSeconds", "spec.hostUsers", "spec.readinessGates",
		"spec.setHostnameAsFQDN", "spec.runtimeClassName", "spec.os.name (windows)", "spec.hostnameOverride"} {
		if err == nil || !strings.Contains(err.Error(), f) {
			t.Errorf("not refused: %s (%v)", f, err)
		}
	}
	pod = testPod()
	pod.Spec.OS = &corev1.PodOS{Name: corev1.Linux}
	pod.Spec.HostUsers = &yes
	if _, err := FromPod(pod, PodOptions{}); err != nil {
		t.Errorf("linux, host users: %v", err)
	}
}

func TestFromPodSecurityAndResources(t *testing.T) {
	uid, uid2, gid := int64(1000), int64(1001), int64(2000)
	yes, no := true, false
	pod := testPod()
	pod.Spec.SecurityContext = &corev1.PodSecurityContext{RunAsUser: &uid, RunAsGroup: &gid, RunAsNonRoot: &yes, SupplementalGroups: []int64{5}}
	c := &pod.Spec.Containers[0]
	c.SecurityContext = &corev1.SecurityContext{RunAsUser: &uid2, ReadOnlyRootFilesystem: &yes, AllowPrivilegeEscalation: &no,
		Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"NET_ADMIN"}, Drop: []corev1.Capability{"ALL"}}}
	c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("1"), corev1.ResourceMemory: resource.MustParse("1Gi")}
	spec, err := FromPod(pod, PodOptions{})
	if err != nil {
		t.Fatal(err)
	}
	s := spec.Containers[0].Security
	if s == nil || *s.RunAsUser != 1001 || *s.RunAsGroup != 2000 || !s.RunAsNonRoot || !s.ReadOnlyRootFilesystem || !s.NoNewPrivileges ||
		len(s.SupplementalGroups) != 1 || strings.Join(s.CapAdd, ",") != "NET_ADMIN" || strings.Join(s.CapDrop, ",") != "ALL" {
		t.Errorf("web security %+v", s)
	}
	if side := spec.Containers[1].Security; side == nil || *side.RunAsUser != 1000 || side.ReadOnlyRootFilesystem {
		t.Errorf("side inherits the pod's only: %+v", side)
	}
	if cpuShares(resource.MustParse("250m")) != 256 || cpuShares(resource.Quantity{}) != 2 {
		t.Error("cpuShares")
	}

	for name, tc := range map[string]struct {
		mut  func(*corev1.Pod)
		want string
	}{
		"privileged without escalation": {func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Privileged: &yes, AllowPrivilegeEscalation: &no}
		}, "contradicts privileged"},
		"nonroot as root": {func(p *corev1.Pod) {
			zero := int64(0)
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{RunAsUser: &zero, RunAsNonRoot: &yes}
		}, "runAsNonRoot contradicts runAsUser 0"},
		"seccomp": {func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{SeccompProfile: &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault}}
		}, "spec.containers[0].securityContext.seccompProfile"},
		"fsGroup": {func(p *corev1.Pod) { p.Spec.SecurityContext = &corev1.PodSecurityContext{FSGroup: &gid} }, "spec.securityContext.fsGroup"},
		"bad capability": {func(p *corev1.Pod) {
			p.Spec.Containers[0].SecurityContext = &corev1.SecurityContext{Capabilities: &corev1.Capabilities{Add: []corev1.Capability{"net-admin"}}}
		}, "not a capability name"},
		"hugepages limit": {func(p *corev1.Pod) {
			p.Spec.Containers[0].Resources.Limits = corev1.ResourceList{"hugepages-2Mi": resource.MustParse("2Mi")}
		}, "spec.containers[0].resources.limits.hugepages-2Mi"},
	} {
		p := testPod()
		tc.mut(p)
		if _, err := FromPod(p, PodOptions{}); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: %v, want an error with %q", name, err, tc.want)
		}
	}
}

package manifest

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
)

func TestValidateRefs(t *testing.T) {
	cfg := fxConfigMap("cfg", map[string]string{"LOG_LEVEL": "info"}, func(o *Object) {
		o.Obj.(*corev1.ConfigMap).BinaryData = map[string][]byte{"logo.png": {1, 2}}
	})
	creds := fxSecret("creds", corev1.SecretTypeOpaque, "password", "username")
	pull := fxSecret("pull", corev1.SecretTypeDockerConfigJson, corev1.DockerConfigJsonKey)
	env := func(src corev1.EnvVarSource) *Object {
		return fxPod("p", fxCtr(func(c *corev1.Container) { c.Env = []corev1.EnvVar{{Name: "X", ValueFrom: &src}} }))
	}
	cmKey := func(name, key string, optional *bool) corev1.EnvVarSource {
		return corev1.EnvVarSource{ConfigMapKeyRef: &corev1.ConfigMapKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key, Optional: optional}}
	}
	secKey := func(name, key string) corev1.EnvVarSource {
		return corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
			LocalObjectReference: corev1.LocalObjectReference{Name: name}, Key: key}}
	}
	envFrom := func(ef corev1.EnvFromSource) *Object {
		return fxPod("p", fxCtr(func(c *corev1.Container) { c.EnvFrom = []corev1.EnvFromSource{ef} }))
	}
	volume := func(src corev1.VolumeSource) *Object {
		return fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.Volumes = []corev1.Volume{{Name: "v", VolumeSource: src}} }))
	}
	pullSecret := func(name string) *Object {
		return fxPod("p", fxSpec(func(s *corev1.PodSpec) { s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: name}} }))
	}
	envPath := "spec.containers[0].env[0].valueFrom"

	fxRunCases(t, []fxCase{
		{name: "configMapKeyRef to a missing ConfigMap", field: envPath + ".configMapKeyRef.name", msg: `ConfigMap "nope" not found in namespace "default"`,
			objs: []*Object{cfg, env(cmKey("nope", "LOG_LEVEL", nil))}},
		{name: "configMapKeyRef to a missing key", field: envPath + ".configMapKeyRef.key", msg: `has no key "LEVEL" (it has keys LOG_LEVEL, logo.png)`,
			objs: []*Object{cfg, env(cmKey("cfg", "LEVEL", nil))}},
		{name: "configMapKeyRef in another namespace", field: envPath + ".configMapKeyRef.name", msg: `not found in namespace "shop"`,
			objs: []*Object{cfg, fxNamespace("shop"), fxPod("p", fxInNS("shop"), fxCtr(func(c *corev1.Container) {
				src := cmKey("cfg", "LOG_LEVEL", nil)
				c.Env = []corev1.EnvVar{{Name: "X", ValueFrom: &src}}
			}))}},
		{name: "secretKeyRef to a missing Secret", field: envPath + ".secretKeyRef.name", msg: `Secret "db" not found`,
			objs: []*Object{creds, env(secKey("db", "password"))}},
		{name: "secretKeyRef to a missing key", field: envPath + ".secretKeyRef.key", msg: `Secret default/creds has no key "pass"`,
			objs: []*Object{creds, env(secKey("creds", "pass"))}},
		{name: "envFrom configMapRef", field: "spec.containers[0].envFrom[0].configMapRef.name", msg: "ConfigMap \"env\" not found",
			objs: []*Object{envFrom(corev1.EnvFromSource{ConfigMapRef: &corev1.ConfigMapEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env"}}})}},
		{name: "envFrom secretRef", field: "spec.containers[0].envFrom[0].secretRef.name", msg: "Secret \"env\" not found",
			objs: []*Object{envFrom(corev1.EnvFromSource{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "env"}}})}},
		{name: "configMap volume", field: "spec.volumes[0].configMap.name", msg: "ConfigMap \"files\" not found",
			objs: []*Object{volume(corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: "files"}}})}},
		{name: "configMap volume item key", field: "spec.volumes[0].configMap.items[0].key", msg: `has no key "app.conf"`,
			objs: []*Object{cfg, volume(corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
				LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "app.conf", Path: "app.conf"}}}})}},
		{name: "secret volume", field: "spec.volumes[0].secret.secretName", msg: "Secret \"tls\" not found",
			objs: []*Object{volume(corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "tls"}})}},
		{name: "secret volume item key", field: "spec.volumes[0].secret.items[0].key", msg: `has no key "tls.crt"`,
			objs: []*Object{creds, volume(corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "creds",
				Items: []corev1.KeyToPath{{Key: "tls.crt", Path: "tls.crt"}}}})}},
		{name: "imagePullSecret must exist", field: "spec.imagePullSecrets[0].name", msg: "Secret \"regcred\" not found",
			objs: []*Object{pullSecret("regcred")}},
		{name: "imagePullSecret type", field: "spec.imagePullSecrets[0].name", msg: "kubernetes.io/dockerconfigjson",
			objs: []*Object{creds, pullSecret("creds")}},
		{name: "ref name required", field: envPath + ".configMapKeyRef.name", msg: "is required",
			objs: []*Object{env(cmKey("", "LOG_LEVEL", nil))}},
	})

	t.Run("optional references may be missing", func(t *testing.T) {
		yes := fxPtr(true)
		objs := []*Object{cfg, creds, pull,
			env(cmKey("nope", "X", yes)),
			fxPod("p2", fxCtr(func(c *corev1.Container) {
				src := cmKey("cfg", "MISSING", yes) // optional: a missing key leaves the variable unset
				c.Env = []corev1.EnvVar{{Name: "X", ValueFrom: &src}}
				c.EnvFrom = []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "nope"}, Optional: yes}}}
			})),
			fxPod("p3", fxSpec(func(s *corev1.PodSpec) {
				s.Volumes = []corev1.Volume{
					{Name: "a", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "nope", Optional: yes}}},
					{Name: "b", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{
						LocalObjectReference: corev1.LocalObjectReference{Name: "cfg"}, Items: []corev1.KeyToPath{{Key: "logo.png", Path: "logo.png"}}}}},
				}
				s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: "pull"}}
			})),
			fxPod("p4", fxCtr(func(c *corev1.Container) {
				src := secKey("creds", "username")
				c.Env = []corev1.EnvVar{{Name: "X", ValueFrom: &src}}
			})),
		}
		if errs := fxValidate(t, objs...); len(errs) > 0 {
			t.Fatalf("want no errors, got:\n%v", errs)
		}
	})
}

func TestValidateConfigMapAndSecret(t *testing.T) {
	fxRunCases(t, []fxCase{
		{name: "configmap key", field: "data[a/b]", msg: "invalid key",
			objs: []*Object{fxConfigMap("c", map[string]string{"a/b": "x"})}},
		{name: "configmap binary key", field: "binaryData[..]", msg: "invalid key",
			objs: []*Object{fxConfigMap("c", nil, func(o *Object) { o.Obj.(*corev1.ConfigMap).BinaryData = map[string][]byte{"..": {0}} })}},
		{name: "configmap key in data and binaryData", field: "binaryData[k]", msg: "both data and binaryData",
			objs: []*Object{fxConfigMap("c", map[string]string{"k": "x"}, func(o *Object) { o.Obj.(*corev1.ConfigMap).BinaryData = map[string][]byte{"k": {0}} })}},
		{name: "configmap size", field: "data", msg: "1 MiB",
			objs: []*Object{fxConfigMap("c", map[string]string{"a": strings.Repeat("x", 600*1024), "b": strings.Repeat("y", 600*1024)})}},
		{name: "secret key", field: "data[a b]", msg: "invalid key",
			objs: []*Object{fxSecret("s", corev1.SecretTypeOpaque, "a b")}},
		{name: "secret type not supported", field: "type", msg: "not supported by shoal",
			objs: []*Object{fxSecret("s", corev1.SecretTypeServiceAccountToken, "token")}},
		{name: "dockerconfigjson key", field: "data", msg: `must have the key ".dockerconfigjson"`,
			objs: []*Object{fxSecret("s", corev1.SecretTypeDockerConfigJson, "config.json")}},
		{name: "tls key", field: "data", msg: `must have the key "tls.key"`,
			objs: []*Object{fxSecret("s", corev1.SecretTypeTLS, "tls.crt")}},
		{name: "basic-auth keys", field: "data", msg: `"username" or "password"`,
			objs: []*Object{fxSecret("s", corev1.SecretTypeBasicAuth, "user")}},
		{name: "ssh-auth key", field: "data", msg: `"ssh-privatekey"`,
			objs: []*Object{fxSecret("s", corev1.SecretTypeSSHAuth, "id_rsa")}},
	})
}

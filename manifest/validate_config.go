package manifest

import (
	corev1 "k8s.io/api/core/v1"
)

// maxConfigSize is Kubernetes' limit on a ConfigMap's or Secret's data (MaxSecretSize, also
// applied to ConfigMaps): 1 MiB.
const maxConfigSize = 1024 * 1024

func (v *validator) configMap(o *Object, cm *corev1.ConfigMap) {
	total := 0
	for k, val := range cm.Data {
		total += len(val)
		v.configKey(o, keyPath("data", k), k)
	}
	for k, val := range cm.BinaryData {
		total += len(val)
		v.configKey(o, keyPath("binaryData", k), k)
		if _, dup := cm.Data[k]; dup {
			v.errorf(o, keyPath("binaryData", k), "key %q is in both data and binaryData (Kubernetes rule): keep it in one", k)
		}
	}
	if total > maxConfigSize {
		v.errorf(o, "data", "holds %d bytes: Kubernetes limits a ConfigMap to %d (1 MiB); split it or ship the data in the image", total, maxConfigSize)
	}
}

// configKey checks a ConfigMap or Secret key: it becomes a file name in a volume and an
// environment variable name with envFrom.
func (v *validator) configKey(o *Object, path, key string) {
	if msgs := configKeyErrs(key); len(msgs) > 0 {
		v.errorf(o, path, "invalid key %q: %s", key, joinMsgs(msgs))
	}
}

// secretKeysRequired lists, per Secret type shoal supports, the keys Kubernetes requires.
// basic-auth is special: it needs username or password, checked in secret.
var secretKeysRequired = map[corev1.SecretType][]string{
	corev1.SecretTypeOpaque:           nil,
	corev1.SecretTypeDockerConfigJson: {corev1.DockerConfigJsonKey},
	corev1.SecretTypeTLS:              {corev1.TLSCertKey, corev1.TLSPrivateKeyKey},
	corev1.SecretTypeBasicAuth:        nil,
	corev1.SecretTypeSSHAuth:          {corev1.SSHAuthPrivateKey},
}

// secret checks a Secret's keys and type. Only key names are known here (SecretInfo) and only
// key names ever appear in a message.
func (v *validator) secret(o *Object, s *corev1.Secret) {
	keys := refKeys(o)
	for _, k := range keys {
		v.configKey(o, secretKeyPath(o, s, k), k)
	}
	typ := s.Type
	if typ == "" {
		typ = corev1.SecretTypeOpaque
	}
	required, ok := secretKeysRequired[typ]
	if !ok {
		v.errorf(o, "type", "Secret type %q is not supported by shoal: use Opaque, kubernetes.io/dockerconfigjson, kubernetes.io/tls, kubernetes.io/basic-auth or kubernetes.io/ssh-auth", typ)
		return
	}
	for _, k := range required {
		if !containsSorted(keys, k) {
			v.errorf(o, "data", "a Secret of type %s must have the key %q (Kubernetes rule): add it", typ, k)
		}
	}
	if typ == corev1.SecretTypeBasicAuth && !containsSorted(keys, corev1.BasicAuthUsernameKey) && !containsSorted(keys, corev1.BasicAuthPasswordKey) {
		v.errorf(o, "data", "a Secret of type %s must have the key %q or %q (Kubernetes rule): add one", typ, corev1.BasicAuthUsernameKey, corev1.BasicAuthPasswordKey)
	}
}

// secretKeyPath is the field path a Secret key was written under: stringData or data.
func secretKeyPath(o *Object, s *corev1.Secret, k string) string {
	if _, ok := s.StringData[k]; ok || o.Written(keyPath("stringData", k)) {
		return keyPath("stringData", k)
	}
	return keyPath("data", k)
}

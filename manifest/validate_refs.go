package manifest

import (
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// A pod refers to ConfigMaps and Secrets by name in its own namespace. shoal has no API to
// create them later, so a reference that the commit does not satisfy can never start: it is an
// error here, unless the reference is optional. Lookups go through the Set's key index.

// objectRef checks that a ConfigMap or Secret named name exists in the pod's namespace, unless
// optional. namePath is the field holding the name. It returns the object, or nil.
func (v *validator) objectRef(pc *podContext, namePath, kind, name string, optional *bool) *Object {
	if name == "" {
		v.errorf(pc.o, namePath, "is required: name the %s to use", kind)
		return nil
	}
	ref := v.set.Get(Key{Kind: kind, Namespace: pc.o.Key.Namespace, Name: name})
	if ref == nil && !isOptional(optional) {
		v.errorf(pc.o, namePath, "%s %q not found in namespace %q: add it to the repository, or set optional: true if the pod should start without it",
			kind, name, nsName(pc.o.Key.Namespace))
	}
	return ref
}

// configMapKeyRef checks an env var's configMapKeyRef: the ConfigMap and its key exist.
func (v *validator) configMapKeyRef(pc *podContext, path string, r *corev1.ConfigMapKeySelector) {
	ref := v.objectRef(pc, path+".name", vkConfigMap, r.Name, r.Optional)
	v.refKey(pc, path+".key", ref, r.Key, r.Optional)
}

// secretKeyRef checks an env var's secretKeyRef: the Secret and its key exist.
func (v *validator) secretKeyRef(pc *podContext, path string, r *corev1.SecretKeySelector) {
	ref := v.objectRef(pc, path+".name", vkSecret, r.Name, r.Optional)
	v.refKey(pc, path+".key", ref, r.Key, r.Optional)
}

// configMapVolumeRef checks a configMap volume (or projection): the ConfigMap and every key
// listed in items exist.
func (v *validator) configMapVolumeRef(pc *podContext, path, name string, items []corev1.KeyToPath, optional *bool) {
	ref := v.objectRef(pc, path+".name", vkConfigMap, name, optional)
	for j, it := range items {
		if it.Key != "" {
			v.refKey(pc, indexPath(path+".items", j)+".key", ref, it.Key, optional)
		}
	}
}

// secretVolumeRef checks a secret volume (or projection): the Secret and every key listed in
// items exist. nameField is where the name is written: secretName in a volume, name in a
// projection.
func (v *validator) secretVolumeRef(pc *podContext, path, nameField, name string, items []corev1.KeyToPath, optional *bool) {
	ref := v.objectRef(pc, path+"."+nameField, vkSecret, name, optional)
	for j, it := range items {
		if it.Key != "" {
			v.refKey(pc, indexPath(path+".items", j)+".key", ref, it.Key, optional)
		}
	}
}

// refKey checks that key exists in the referenced ConfigMap or Secret. An optional reference
// to a missing key is fine: Kubernetes then leaves the variable or file out.
func (v *validator) refKey(pc *podContext, path string, ref *Object, key string, optional *bool) {
	if key == "" {
		v.errorf(pc.o, path, "is required: name the key to read")
		return
	}
	if ref == nil || isOptional(optional) {
		return
	}
	keys := refKeys(ref)
	if containsSorted(keys, key) {
		return
	}
	v.errorf(pc.o, path, "%s has no key %q (it has %s): add the key there or fix the name",
		ref.Key, key, describeKeys(keys))
}

// imagePullSecret checks a pod's imagePullSecrets entry: a Secret of type
// kubernetes.io/dockerconfigjson in the pod's namespace.
func (v *validator) imagePullSecret(pc *podContext, path, name string) {
	ref := v.objectRef(pc, path+".name", vkSecret, name, nil)
	if ref == nil {
		return
	}
	if s, ok := ref.Obj.(*corev1.Secret); ok && s.Type != corev1.SecretTypeDockerConfigJson {
		typ := s.Type
		if typ == "" {
			typ = corev1.SecretTypeOpaque
		}
		v.errorf(pc.o, path+".name", "Secret %q has type %s: an image pull secret must have type kubernetes.io/dockerconfigjson with a .dockerconfigjson key", name, typ)
	}
}

// objectKeys returns the keys of a ConfigMap (data and binaryData) or Secret, sorted. For a
// Secret they come from SecretInfo, which is all the manifest layer knows of it.
func refKeys(o *Object) []string {
	var keys []string
	switch obj := o.Obj.(type) {
	case *corev1.ConfigMap:
		keys = make([]string, 0, len(obj.Data)+len(obj.BinaryData))
		for k := range obj.Data {
			keys = append(keys, k)
		}
		for k := range obj.BinaryData {
			keys = append(keys, k)
		}
	case *corev1.Secret:
		if o.Secret != nil {
			return o.Secret.Keys
		}
		keys = make([]string, 0, len(obj.Data)+len(obj.StringData))
		for k := range obj.Data {
			keys = append(keys, k)
		}
		for k := range obj.StringData {
			if _, dup := obj.Data[k]; !dup {
				keys = append(keys, k)
			}
		}
	}
	sort.Strings(keys)
	return keys
}

// hasKey reports whether sorted keys holds key.
func containsSorted(keys []string, key string) bool {
	i := sort.SearchStrings(keys, key)
	return i < len(keys) && keys[i] == key
}

// describeKeys lists key names (never values) for a message, shortened when there are many.
func describeKeys(keys []string) string {
	const maxListed = 10
	switch {
	case len(keys) == 0:
		return "no keys"
	case len(keys) > maxListed:
		return "keys " + strings.Join(keys[:maxListed], ", ") + ", …"
	default:
		return "keys " + strings.Join(keys, ", ")
	}
}

func isOptional(b *bool) bool { return b != nil && *b }

// nsName renders a Key namespace for messages: an empty one is "default".
func nsName(ns string) string {
	if ns == "" {
		return nsDefault
	}
	return ns
}

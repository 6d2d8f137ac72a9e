package reconciler

import (
	"encoding/json"
	"hash/fnv"
	"sort"
	"sync"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
)

// TemplateHash identifies a revision of a pod template: pods with equal hashes run the same
// thing, so a template that did not change never rolls.
//
// The template is hashed as its canonical JSON: the typed object after Kubernetes' defaults
// (manifest.Decode applies them), with map keys sorted by encoding/json and quantities in
// their canonical form ("0.1" and "100m" are one value). So the hash is the same whatever the
// order maps were written in, whether a default was written out or left implicit, and in
// whichever commit the template appears: a revert to an old template gives the old hash, and
// the old revision's pods are reused.
//
// config folds in the content of the ConfigMaps and Secrets the template references (volumes,
// projected volumes, env valueFrom, envFrom), looked up by Key in namespace; a referenced object
// missing from config contributes nothing, so a nil map gives the hash of the template alone.
// Passing content hashes makes a config change roll the workload like a template change does
// (Kubernetes does not do this; shoal's leader decides whether to pass them).
//
// The result is 10 characters from Kubernetes' safe alphabet (no vowels, no look-alikes), so
// it can appear in pod names and labels.
func TemplateHash(namespace string, t *corev1.PodTemplateSpec, config map[manifest.Key]string) string {
	return foldConfig(jsonHash(t), namespace, t, config)
}

// jsonHash is the FNV-1a hash of the template's canonical JSON.
func jsonHash(t *corev1.PodTemplateSpec) uint64 {
	h := fnv.New64a()
	// Encoding straight into the hash: the same bytes as json.Marshal plus a newline, with no
	// buffer to allocate.
	if err := json.NewEncoder(h).Encode(t); err != nil {
		// A decoded template always encodes; hash its Go rendering rather than fail.
		h.Write([]byte(t.String()))
	}
	return h.Sum64()
}

// foldConfig continues the FNV-1a hash h (FNV's whole state is its value) with the config
// hash of the template, if any, and renders it.
func foldConfig(h uint64, namespace string, t *corev1.PodTemplateSpec, config map[manifest.Key]string) string {
	return foldConfigHash(h, configHash(namespace, &t.Spec, config))
}

// foldConfigHash continues h with a template's config hash, if any, and
// renders it.
func foldConfigHash(h uint64, ch string) string {
	if ch != "" {
		const prime = 1099511628211
		h = (h ^ 0) * prime
		for i := 0; i < len(ch); i++ {
			h = (h ^ uint64(ch[i])) * prime
		}
	}
	return encodeSafe(h, 10)
}

// TemplateHashWithConfigHash is TemplateHash for a template whose config
// hash (ConfigHash, the value a pod records as Pod.ConfigHash) is already
// known: `shoal plan --cluster`, which cannot compute config hashes, checks
// with it whether a live pod runs a template unchanged.
func TemplateHashWithConfigHash(t *corev1.PodTemplateSpec, configHash string) string {
	return foldConfigHash(jsonHash(t), configHash)
}

// Cache memoises the expensive part of template hashes (encoding the template) between
// reconciles. A manifest.Set is immutable, so a template is identified by its address; the
// leader keeps one Cache for as long as it leads and passes it in every Input. Entries not
// used by a reconcile are dropped at its end, so the cache holds one object set's worth.
// It is safe for use by one reconcile at a time; the zero value is ready.
type Cache struct {
	mu   sync.Mutex
	gen  uint64
	json map[*corev1.PodTemplateSpec]cached
}

type cached struct {
	hash uint64
	gen  uint64
}

// templateHash is TemplateHash through the run's cache, if it has one.
func (r *run) templateHash(namespace string, t *corev1.PodTemplateSpec, config map[manifest.Key]string) string {
	c := r.in.Cache
	if c == nil {
		return TemplateHash(namespace, t, config)
	}
	e, ok := c.json[t]
	if !ok {
		e.hash = jsonHash(t)
	}
	e.gen = c.gen
	c.json[t] = e
	return foldConfig(e.hash, namespace, t, config)
}

// begin and end bracket one reconcile's use of the cache.
func (c *Cache) begin() {
	c.mu.Lock()
	c.gen++
	if c.json == nil {
		c.json = map[*corev1.PodTemplateSpec]cached{}
	}
}

func (c *Cache) end() {
	for t, e := range c.json {
		if e.gen != c.gen {
			delete(c.json, t)
		}
	}
	c.mu.Unlock()
}

// ConfigHash is the combined content hash of the ConfigMaps and Secrets a pod references,
// "" when it references none that config knows. It is recorded as state.Pod.ConfigHash.
func ConfigHash(namespace string, spec *corev1.PodSpec, config map[manifest.Key]string) string {
	return configHash(namespace, spec, config)
}

func configHash(namespace string, spec *corev1.PodSpec, config map[manifest.Key]string) string {
	if len(config) == 0 {
		return ""
	}
	refs := ConfigRefs(namespace, spec)
	if len(refs) == 0 {
		return ""
	}
	h := fnv.New64a()
	n := 0
	for _, k := range refs {
		v, ok := config[k]
		if !ok {
			continue
		}
		n++
		h.Write([]byte(k.Kind + "/" + k.Name + "=" + v + "\n"))
	}
	if n == 0 {
		return ""
	}
	return encodeSafe(h.Sum64(), 10)
}

// ConfigRefs lists the ConfigMaps and Secrets a pod spec references, sorted and unique: volumes
// (and projected sources), envFrom and env valueFrom of init and regular containers. These are
// what a template's config hash covers; imagePullSecrets are not among them.
func ConfigRefs(namespace string, spec *corev1.PodSpec) []manifest.Key {
	seen := map[manifest.Key]bool{}
	add := func(kind, name string) {
		if name != "" {
			seen[manifest.Key{Kind: kind, Namespace: namespace, Name: name}] = true
		}
	}
	for _, v := range spec.Volumes {
		if v.ConfigMap != nil {
			add("ConfigMap", v.ConfigMap.Name)
		}
		if v.Secret != nil {
			add("Secret", v.Secret.SecretName)
		}
		if v.Projected != nil {
			for _, s := range v.Projected.Sources {
				if s.ConfigMap != nil {
					add("ConfigMap", s.ConfigMap.Name)
				}
				if s.Secret != nil {
					add("Secret", s.Secret.Name)
				}
			}
		}
	}
	containers := func(cs []corev1.Container) {
		for i := range cs {
			for _, e := range cs[i].EnvFrom {
				if e.ConfigMapRef != nil {
					add("ConfigMap", e.ConfigMapRef.Name)
				}
				if e.SecretRef != nil {
					add("Secret", e.SecretRef.Name)
				}
			}
			for _, e := range cs[i].Env {
				if e.ValueFrom == nil {
					continue
				}
				if e.ValueFrom.ConfigMapKeyRef != nil {
					add("ConfigMap", e.ValueFrom.ConfigMapKeyRef.Name)
				}
				if e.ValueFrom.SecretKeyRef != nil {
					add("Secret", e.ValueFrom.SecretKeyRef.Name)
				}
			}
		}
	}
	containers(spec.InitContainers)
	containers(spec.Containers)
	out := make([]manifest.Key, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

// safeAlphabet is Kubernetes' rand.SafeEncodeString alphabet: no vowels (no words), no 0/1/3
// (no look-alikes).
const safeAlphabet = "bcdfghjklmnpqrstvwxz2456789"

func encodeSafe(v uint64, n int) string {
	b := make([]byte, n)
	for i := range b {
		b[i] = safeAlphabet[v%uint64(len(safeAlphabet))]
		v /= uint64(len(safeAlphabet))
	}
	return string(b)
}

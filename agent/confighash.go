package agent

import (
	"context"
	"sort"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/reconciler"
	"github.com/shoal-dev/shoal/secrets"
)

// Config hashes: reconciler.Input.ConfigHashes, the content hash of each ConfigMap and Secret
// a workload's pod template references at the pinned commit. The reconciler folds those of a
// template into its template hash (unless the workload says
// shoal.dev/rollout-on-config-change: "false"), so that a content change rolls the workload.
//
// What is hashed: the contents, not the file. A Secret's hash is secrets.ContentHasher's
// HMAC-SHA256 over its namespace, name and sorted decrypted keys and values; a ConfigMap's the
// same HMAC over data and binaryData, with the name "ConfigMap/NAME" so that it never equals
// the hash of a Secret of the same name and contents. The ciphertext is not hashed: sops
// encrypts every value with a fresh nonce and `shoal secret rotate` a fresh data key, so
// re-encrypting unchanged values changes every digest of the file, and must not roll anything.
// The HMAC key is derived from the cluster key (secrets.DeriveHashKey, HKDF-SHA256), which every
// node holds, so every node computes the same hashes for the same contents and a change of
// leader rolls nothing; without the cluster key a hash tells nothing about a value.
//
// A Secret this node cannot decrypt (no age key, not a recipient, a file that fails
// verification) is left out of the map, with a warning: every node that can lead needs the age
// key, or workloads using encrypted Secrets roll when leadership moves between a node that can
// decrypt them and one that cannot.

// configHashes returns the content hashes of the ConfigMaps and Secrets referenced by the pod
// templates of set's workloads, and one error per Secret left out. err is set only when the
// commit itself cannot be read.
func (n *nodeValues) configHashes(ctx context.Context, commit string, set *manifest.Set) (hashes map[manifest.Key]string, skipped []error, err error) {
	if n == nil || set == nil {
		return nil, nil, nil
	}
	refs := workloadConfigRefs(set)
	if len(refs) == 0 {
		return nil, nil, nil
	}
	hashes = make(map[manifest.Key]string, len(refs))
	for _, k := range refs {
		obj := set.Get(k)
		if obj == nil {
			continue // referenced but absent: its pods cannot start; the reconciler skips it too
		}
		switch k.Kind {
		case "ConfigMap":
			cm, ok := obj.Obj.(*corev1.ConfigMap)
			if !ok {
				continue
			}
			hashes[k] = n.hasher.Sum(k.Namespace, "ConfigMap/"+k.Name, secrets.ConfigMapValues(cm))
		case "Secret":
			if h, ok := n.cachedHash(valueKey{commit, k.Namespace, k.Name}); ok {
				hashes[k] = h
				continue
			}
			fsys, s, terr := n.tree(ctx, commit)
			if terr != nil {
				return nil, nil, terr
			}
			res, rerr := n.resolve(fsys, s, commit, k.Namespace, k.Name)
			if rerr != nil {
				skipped = append(skipped, rerr)
				continue
			}
			hashes[k] = res.Hash
			// The leader needs the hash only: the values are not kept.
			res.Values.Wipe()
		}
	}
	return hashes, skipped, nil
}

// configHashes is what the workload loop passes to the reconciler for the pinned commit.
func (a *Agent) configHashes(ctx context.Context, commit string, set *manifest.Set) (map[manifest.Key]string, error) {
	hashes, skipped, err := a.vals.configHashes(ctx, commit, set)
	for _, e := range skipped {
		a.log.Warn("config hash: Secret left out, so a change of it does not roll its workloads", "commit", commit, "err", e)
	}
	return hashes, err
}

// workloadConfigRefs lists the ConfigMaps and Secrets the pod templates of set's workloads
// reference, sorted and unique: volumes (and projected sources), envFrom and env valueFrom of
// init and regular containers, as the reconciler reads them when it folds config hashes into
// a template hash (reconciler.ConfigRefs). imagePullSecrets are not among them.
func workloadConfigRefs(set *manifest.Set) []manifest.Key {
	seen := map[manifest.Key]bool{}
	for _, o := range set.Objects() {
		if !ownerKinds[o.Key.Kind] {
			continue
		}
		t, err := podTemplate(o)
		if err != nil {
			continue
		}
		for _, k := range reconciler.ConfigRefs(o.Key.Namespace, &t.Spec) {
			seen[k] = true
		}
	}
	out := make([]manifest.Key, 0, len(seen))
	for k := range seen {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Less(out[j]) })
	return out
}

package manifest

import (
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
	"slices"
	"sort"
	"strings"

	"go.yaml.in/yaml/v3"
)

// Secrets are SOPS-encrypted in Git. Their values are never decoded here: the typed object gets
// the keys with empty values, SecretInfo gets the keys and a digest of each ciphertext, and no
// message ever quotes a value.

// secretData reads a Secret's data or stringData: the keys, and a digest of each ciphertext.
// Values never reach the JSON, the typed object, or a message: the typed object gets each key
// with an empty value.
func (d *decoder) secretData(n *yaml.Node) {
	if n.Kind != yaml.MappingNode {
		d.typeError(n, "a mapping")
		return
	}
	field := string(d.path)
	if !d.sops && !d.plaintextFile && len(n.Content) > 0 {
		d.errs = append(d.errs, &Error{Source: Source{File: d.name, Line: d.lines[field]}, Object: d.key, Field: field,
			Message: fmt.Sprintf("%s holds plaintext values: encrypt it with sops using age recipients (data and stringData values must be ENC[...]), or, for a local development cluster only, allow plaintext Secrets under this path in %s", secretName(d.key), ConfigFile)})
	}
	d.mapping(n, true, func(k, v *yaml.Node) {
		mark := d.pushKey(k.Value)
		d.record(k)
		d.js = appendJSONString(d.js, k.Value)
		d.js = append(d.js, ":null"...)
		if d.sops {
			v = d.deref(v)
			// sops leaves an empty value empty (there is nothing to hide), so "" is accepted.
			if v == nil || v.Kind != yaml.ScalarNode || v.Tag != "!!str" || !(isCiphertext(v.Value) || v.Value == "") {
				d.errorAt(k, string(d.path), fmt.Sprintf("the value of key %q is not encrypted: every data and stringData value of a sops-encrypted Secret must be ENC[...]", k.Value))
			} else if _, dup := d.secret.Digests[k.Value]; !dup || field == "stringData" {
				// stringData wins over data for the same key, as in Kubernetes.
				sum := sha256.Sum256([]byte(v.Value))
				d.secret.Digests[k.Value] = hex.EncodeToString(sum[:])
			}
		} else if d.plaintextFile {
			// An allowed plaintext Secret: the digest of the value as written notices a change;
			// the value itself goes no further than for an encrypted one.
			if v = d.deref(v); v != nil && v.Kind == yaml.ScalarNode {
				if field == "data" {
					if _, err := base64.StdEncoding.DecodeString(v.Value); err != nil {
						d.errorAt(k, string(d.path), fmt.Sprintf("the value of key %q is not base64: data values are base64-encoded (use stringData for text)", k.Value))
					}
				}
				if _, dup := d.secret.Digests[k.Value]; !dup || field == "stringData" {
					sum := sha256.Sum256([]byte(v.Value))
					d.secret.Digests[k.Value] = hex.EncodeToString(sum[:])
				}
			} else {
				d.errorAt(k, string(d.path), fmt.Sprintf("the value of key %q must be a string", k.Value))
			}
		}
		d.secret.Keys = append(d.secret.Keys, k.Value)
		d.path = d.path[:mark]
	})
}

// isCiphertext reports whether v looks like a SOPS-encrypted value: ENC[AES256_GCM,data:...].
func isCiphertext(v string) bool {
	return strings.HasPrefix(v, "ENC[") && strings.HasSuffix(v, "]") && strings.Contains(v, "data:")
}

func secretName(k Key) string {
	if k.IsZero() {
		return "this Secret"
	}
	return k.String()
}

// sortedUnique returns keys sorted and without repeats.
func sortedUnique(keys []string) []string {
	sort.Strings(keys)
	return slices.Compact(keys)
}

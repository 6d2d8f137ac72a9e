package secrets

import (
	"bytes"
	"crypto/rand"
	"crypto/sha512"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// SecretRegex is the encrypted_regex shoal uses for a Secret: only the values under data and
// stringData are encrypted, so kind, name and namespace stay readable for review and for
// `shoal validate`.
const SecretRegex = "^(data|stringData)$"

// EncryptOptions say how to encrypt a file.
type EncryptOptions struct {
	// Recipients are the age public keys (age1...) the data key is encrypted to. At least one.
	Recipients []string
	// EncryptedRegex chooses the encrypted values, as sops' --encrypted-regex; empty means
	// SecretRegex.
	EncryptedRegex string
	// MACOnlyEncrypted computes the MAC over the encrypted values only, as sops'
	// --mac-only-encrypted. Off by default, as in sops.
	MACOnlyEncrypted bool
	// Now is the lastmodified time; zero means the current time.
	Now time.Time
}

// Encrypt encrypts a plaintext YAML file in sops' format, so that the real sops tool decrypts
// it: a fresh data key encrypted to each recipient with age, every chosen value encrypted with
// AES-256-GCM, and the MAC over all values. Comments inside encrypted parts are dropped (sops
// would encrypt them; shoal writes no encrypted comments). YAML anchors and aliases are refused:
// sops expands them, and a Secret has no need of them. file names the file in errors.
//
// The output is YAML: a JSON file is refused, since a .json file holding YAML would not load
// (sops writes JSON for JSON; use it for those).
func Encrypt(file string, plaintext []byte, opts EncryptOptions) ([]byte, error) {
	if isJSON(file, plaintext) {
		return nil, fileError(file, ErrInvalid, "shoal writes sops files as YAML and this is JSON: use sops for JSON files, or convert the file to YAML")
	}
	docs, sopsNode, err := splitDocuments(plaintext)
	if err != nil {
		return nil, fileError(file, ErrInvalid, "%v", err)
	}
	if sopsNode != nil {
		return nil, fileError(file, ErrInvalid, "the file is already sops-encrypted: use `shoal secret rotate` to change its recipients")
	}
	re := opts.EncryptedRegex
	if re == "" {
		re = SecretRegex
	}
	r, err := newRules("", "", "", re)
	if err != nil {
		return nil, fileError(file, ErrInvalid, "%v", err)
	}
	r.macOnlyEncrypted = opts.MACOnlyEncrypted
	return encryptDocs(file, docs, r, opts.Recipients, opts.Now)
}

// Rotate re-encrypts a sops file to a new set of recipients, as `sops rotate` does: it decrypts
// with the keyring, makes a new data key (so that a removed recipient's copy of the old one opens
// nothing new), re-encrypts every value under the same rules, and writes a new MAC and
// lastmodified. The values are unchanged.
// Like Encrypt, it writes YAML and refuses a JSON file.
func Rotate(file string, encrypted []byte, kr *Keyring, recipients []string, now time.Time) ([]byte, error) {
	if isJSON(file, encrypted) {
		return nil, fileError(file, ErrInvalid, "shoal writes sops files as YAML and this is JSON: use `sops rotate` for JSON files")
	}
	p, err := Decrypt(file, encrypted, kr)
	if err != nil {
		return nil, err
	}
	out, err := encryptDocs(file, p.docs, p.meta.rules, recipients, now)
	p.wipe()
	return out, err
}

// encryptDocs encrypts plaintext documents in place and renders them with a sops block.
func encryptDocs(file string, docs []*yaml.Node, r rules, recipients []string, now time.Time) ([]byte, error) {
	if len(recipients) == 0 {
		return nil, fileError(file, ErrInvalid, "no age recipient given: pass --age age1... or list one in .sops.yaml")
	}
	if len(docs) == 0 || docRoot(docs[0]) == nil {
		return nil, fileError(file, ErrInvalid, "the file is empty")
	}
	for _, doc := range docs {
		if err := refuseAnchors(doc); err != nil {
			return nil, fileError(file, ErrInvalid, "%v", err)
		}
	}
	if now.IsZero() {
		now = time.Now()
	}
	now = now.UTC().Truncate(time.Second)
	key := make([]byte, dataKeySize)
	if _, err := rand.Read(key); err != nil {
		return nil, err
	}
	defer clear(key)
	var stanzas []ageStanza
	seen := map[string]bool{}
	for _, rc := range recipients {
		rc = strings.TrimSpace(rc)
		if seen[rc] {
			continue
		}
		seen[rc] = true
		s, err := wrapDataKey(key, rc)
		if err != nil {
			return nil, fileError(file, ErrInvalid, "recipient: %v", err)
		}
		stanzas = append(stanzas, s)
	}
	mac := sha512.New()
	if r.macOnlyEncrypted {
		mac.Write(macOnlyEncryptedInit)
	}
	for _, doc := range docs {
		stripEncryptedComments(doc, nil, r)
		if err := encryptDoc(doc, key, r, mac); err != nil {
			return nil, fileError(file, ErrInvalid, "%v", err)
		}
	}
	sum := strings.ToUpper(hex.EncodeToString(mac.Sum(nil)))
	encMAC, err := encryptValue(leaf{typeStr, []byte(sum)}, key, now.Format(time.RFC3339))
	if err != nil {
		return nil, err
	}
	root := docRoot(docs[0])
	root.Content = append(root.Content, scalar(metadataKey, 0), metadataNode(stanzas, r, now, encMAC))

	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(4)
	for _, d := range docs {
		if err := enc.Encode(d); err != nil {
			return nil, fileError(file, ErrInvalid, "render: %s", yamlErrorLine(err))
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// encryptDoc encrypts the chosen values of a document in place and feeds the MAC.
func encryptDoc(doc *yaml.Node, key []byte, r rules, mac hash.Hash) error {
	return walk(doc, nil, false, func(n *yaml.Node, path []string, _ bool) error {
		var v any
		if err := n.Decode(&v); err != nil {
			return fmt.Errorf("the value at %s cannot be read", displayPath(path))
		}
		l, err := leafOf(v)
		if err != nil {
			return fmt.Errorf("at %s: %v", displayPath(path), err)
		}
		enc := r.encrypted(path)
		if !r.macOnlyEncrypted || enc {
			b, err := l.macBytes()
			if err != nil {
				return fmt.Errorf("at %s: %v", displayPath(path), err)
			}
			mac.Write(b)
		}
		if !enc {
			return nil
		}
		s, err := encryptValue(l, key, pathString(path))
		if err != nil {
			return err
		}
		n.Value, n.Tag, n.Style = s, "!!str", 0
		return nil
	})
}

// refuseAnchors refuses anchors and aliases anywhere in a document to encrypt.
func refuseAnchors(n *yaml.Node) error {
	if n.Kind == yaml.AliasNode || n.Anchor != "" {
		return errors.New("the file uses YAML anchors or aliases (&name, *name), which shoal does not encrypt: write the values out")
	}
	for _, c := range n.Content {
		if err := refuseAnchors(c); err != nil {
			return err
		}
	}
	return nil
}

// metadataNode renders the sops block, keys in the order sops writes them (alphabetical).
func metadataNode(stanzas []ageStanza, r rules, now time.Time, mac string) *yaml.Node {
	sort.Slice(stanzas, func(i, j int) bool { return stanzas[i].Recipient < stanzas[j].Recipient })
	ages := &yaml.Node{Kind: yaml.SequenceNode, Tag: "!!seq"}
	for _, s := range stanzas {
		ages.Content = append(ages.Content, mapping(
			"enc", scalar(s.Enc, yaml.LiteralStyle),
			"recipient", scalar(s.Recipient, 0),
		))
	}
	pairs := []any{"age", ages}
	if r.encryptedRegex != nil {
		pairs = append(pairs, "encrypted_regex", scalar(r.encryptedRegex.String(), 0))
	}
	pairs = append(pairs,
		"lastmodified", scalar(now.Format(time.RFC3339), yaml.DoubleQuotedStyle),
		"mac", scalar(mac, 0))
	if r.macOnlyEncrypted {
		pairs = append(pairs, "mac_only_encrypted", &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!bool", Value: "true"})
	}
	if r.encryptedSuffix != "" {
		pairs = append(pairs, "encrypted_suffix", scalar(r.encryptedSuffix, 0))
	}
	if r.unencryptedRegex != nil {
		pairs = append(pairs, "unencrypted_regex", scalar(r.unencryptedRegex.String(), 0))
	}
	if r.unencryptedSuffix != "" {
		pairs = append(pairs, "unencrypted_suffix", scalar(r.unencryptedSuffix, 0))
	}
	pairs = append(pairs, "version", scalar(formatVersion, 0))
	return mapping(pairs...)
}

func scalar(v string, style yaml.Style) *yaml.Node {
	return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!str", Value: v, Style: style}
}

// mapping builds a mapping node from key, node pairs.
func mapping(pairs ...any) *yaml.Node {
	m := &yaml.Node{Kind: yaml.MappingNode, Tag: "!!map"}
	for i := 0; i+1 < len(pairs); i += 2 {
		m.Content = append(m.Content, scalar(pairs[i].(string), 0), pairs[i+1].(*yaml.Node))
	}
	return m
}

// wipe overwrites the decrypted values held in the documents' nodes (as far as Go strings allow:
// the node strings are dropped so the collector can reclaim them).
func (p *Plaintext) wipe() {
	p.docs = nil
}

// isJSON reports whether a file is JSON: by its name, or by its first character.
func isJSON(file string, data []byte) bool {
	trimmed := bytes.TrimLeft(data, " \t\r\n\xef\xbb\xbf")
	return strings.HasSuffix(strings.ToLower(file), ".json") || (len(trimmed) > 0 && trimmed[0] == '{')
}

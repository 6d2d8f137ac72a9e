package secrets

import (
	"bytes"
	"crypto/sha512"
	"crypto/subtle"
	"encoding/hex"
	"errors"
	"fmt"
	"hash"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// Plaintext is a decrypted sops file, held in memory only. Its documents are the file's without
// the sops block, each encrypted value replaced by its plaintext. It is never written to disk by
// this package except through WriteProjection, into a tmpfs directory.
type Plaintext struct {
	file string
	docs []*yaml.Node
	meta *metadata // nil for a plaintext file (ReadPlain)
}

// Decrypt opens a sops file (YAML, or JSON, which YAML reads) with the keyring: it unwraps the
// data key with any identity that is a recipient, decrypts every encrypted value with the path
// as additional data, and verifies the MAC over all values exactly as sops computes it. A file
// that fails any of this is refused as a whole. file names the file in errors.
func Decrypt(file string, data []byte, kr *Keyring) (*Plaintext, error) {
	docs, sopsNode, err := splitDocuments(data)
	if err != nil {
		return nil, fileError(file, ErrNotSOPS, "%v", err)
	}
	if sopsNode == nil {
		return nil, fileError(file, ErrNotSOPS, "there is no top-level sops entry: encrypt it with `sops --encrypt` or `shoal secret encrypt`")
	}
	m, err := parseMetadata(sopsNode)
	if err != nil {
		kind := ErrNotSOPS
		if errors.As(err, new(unsupportedError)) {
			kind = ErrUnsupported
		}
		return nil, fileError(file, kind, "%v", err)
	}
	if len(m.age) == 0 {
		if len(m.others) > 0 {
			return nil, fileError(file, ErrUnsupported, "the data key is encrypted only to %s; shoal reads age recipients only: add one with `sops updatekeys` after listing an age key in .sops.yaml, or `sops rotate --in-place --add-age age1... FILE`", strings.Join(m.others, ", "))
		}
		return nil, fileError(file, ErrNotSOPS, "the sops metadata lists no age recipient")
	}
	if kr == nil || kr.Len() == 0 {
		return nil, fileError(file, ErrNoIdentity, "this node has no age identity (--age-key-file); the file's recipients are: %s", strings.Join(m.recipients(), ", "))
	}
	key, damaged := kr.unwrapDataKey(m)
	if key == nil {
		if len(damaged) > 0 {
			return nil, fileError(file, ErrTampered, "the data key encrypted to %s is damaged", strings.Join(damaged, ", "))
		}
		msg := fmt.Sprintf("the file's recipients are: %s; this node's identities are: %s", strings.Join(m.recipients(), ", "), strings.Join(kr.Recipients(), ", "))
		if len(m.others) > 0 {
			msg += fmt.Sprintf(" (the file also lists %s keys, which shoal does not read)", strings.Join(m.others, ", "))
		}
		return nil, fileError(file, ErrNoIdentity, "%s", msg)
	}
	defer clear(key)

	mac := sha512.New()
	if m.rules.macOnlyEncrypted {
		mac.Write(macOnlyEncryptedInit)
	}
	for _, doc := range docs {
		if err := decryptDoc(doc, key, m.rules, mac); err != nil {
			return nil, fileError(file, ErrTampered, "%v", err)
		}
		stripEncryptedComments(doc, nil, m.rules)
	}
	if err := checkMAC(m, key, mac); err != nil {
		return nil, fileError(file, ErrTampered, "%v", err)
	}
	return &Plaintext{file: file, docs: docs, meta: m}, nil
}

// decryptDoc decrypts a document's encrypted values in place and feeds the MAC.
func decryptDoc(doc *yaml.Node, key []byte, r rules, mac hash.Hash) error {
	return walk(doc, nil, false, func(n *yaml.Node, path []string, inAlias bool) error {
		enc := r.encrypted(path)
		var l leaf
		if enc {
			if inAlias {
				return fmt.Errorf("at %s: %v", displayPath(path), errAliasEncrypted)
			}
			var s any
			if err := n.Decode(&s); err != nil {
				return fmt.Errorf("the value at %s cannot be read", displayPath(path))
			}
			str, ok := s.(string)
			if !ok || (str != "" && !isEncryptedValue(str)) {
				return fmt.Errorf("the value at %s is not encrypted, but the file's rules say it must be", displayPath(path))
			}
			var err error
			if l, err = decryptValue(str, key, pathString(path)); err != nil {
				return fmt.Errorf("the value at %s: %v", displayPath(path), err)
			}
			setPlain(n, l)
		} else {
			var v any
			if err := n.Decode(&v); err != nil {
				return fmt.Errorf("the value at %s cannot be read", displayPath(path))
			}
			var err error
			if l, err = leafOf(v); err != nil {
				return fmt.Errorf("at %s: %v", displayPath(path), err)
			}
		}
		if !r.macOnlyEncrypted || enc {
			b, err := l.macBytes()
			if err != nil {
				return fmt.Errorf("the value at %s: %v", displayPath(path), err)
			}
			mac.Write(b)
		}
		return nil
	})
}

// checkMAC decrypts the file's MAC (its additional data is lastmodified) and compares it with the
// one computed over the values. Neither MAC is ever shown: the MAC is a hash of the plaintext.
func checkMAC(m *metadata, key []byte, mac hash.Hash) error {
	want := strings.ToUpper(hex.EncodeToString(mac.Sum(nil)))
	got, err := decryptValue(m.raw.MAC, key, m.lastModified.Format(time.RFC3339))
	if err != nil || got.typ != typeStr {
		return errors.New("the MAC cannot be decrypted: sops.mac or sops.lastmodified was altered")
	}
	if subtle.ConstantTimeCompare(got.raw, []byte(want)) != 1 {
		return errors.New("the MAC does not match the values: a value or key was changed, added, removed or reordered after encryption")
	}
	return nil
}

// setPlain replaces an encrypted scalar by its plaintext, typed as sops types it.
func setPlain(n *yaml.Node, l leaf) {
	n.Value = string(l.text())
	n.Style = 0
	switch l.typ {
	case typeInt:
		n.Tag = "!!int"
	case typeFloat:
		n.Tag = "!!float"
	case typeBool:
		n.Tag = "!!bool"
	case typeTime:
		n.Tag = "!!timestamp"
	default:
		n.Tag = "!!str"
		if strings.Contains(n.Value, "\n") {
			n.Style = yaml.LiteralStyle
		}
	}
}

// stripEncryptedComments removes the comments that sops would encrypt (those inside an encrypted
// part). shoal writes no encrypted comments, and a decrypted file shows none of sops' #ENC[...]
// lines, which a new data key could not open anyway.
func stripEncryptedComments(n *yaml.Node, path []string, r rules) {
	clearComments := func(n *yaml.Node) { n.HeadComment, n.LineComment, n.FootComment = "", "", "" }
	switch n.Kind {
	case yaml.DocumentNode:
		if r.encrypted(path) {
			clearComments(n)
		}
		for _, c := range n.Content {
			stripEncryptedComments(c, path, r)
		}
	case yaml.MappingNode:
		enc := r.encrypted(path)
		if enc {
			clearComments(n)
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if enc {
				clearComments(k)
				if v.Kind == yaml.ScalarNode || v.Kind == yaml.AliasNode {
					clearComments(v)
				}
			}
			if v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode {
				stripEncryptedComments(v, append(path[:len(path):len(path)], k.Value), r)
			}
		}
	case yaml.SequenceNode:
		enc := r.encrypted(path)
		if enc {
			clearComments(n)
		}
		for _, c := range n.Content {
			if enc {
				clearComments(c)
			}
			if c.Kind == yaml.MappingNode || c.Kind == yaml.SequenceNode {
				stripEncryptedComments(c, path, r)
			}
		}
	}
}

// YAML renders the decrypted documents, without the sops block. It is for `shoal secret decrypt`,
// which prints it to stdout; nothing in shoal writes it to a file.
func (p *Plaintext) YAML() ([]byte, error) {
	var b bytes.Buffer
	enc := yaml.NewEncoder(&b)
	enc.SetIndent(4)
	for _, d := range p.docs {
		if err := enc.Encode(d); err != nil {
			return nil, fmt.Errorf("%s: render: %v", p.file, yamlErrorLine(err))
		}
	}
	if err := enc.Close(); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}

// Recipients are the file's age recipients (empty for a plaintext file).
func (p *Plaintext) Recipients() []string {
	if p.meta == nil {
		return nil
	}
	return p.meta.recipients()
}

package secrets

import (
	"encoding/base64"
	"fmt"
	"sort"

	"go.yaml.in/yaml/v3"
	corev1 "k8s.io/api/core/v1"
)

// Values are a Secret's contents: key to bytes, stringData merged over data (base64-decoded), as
// the Kubernetes API server merges them. They live in memory only; Wipe them when done.
type Values map[string][]byte

// Keys returns the keys, sorted.
func (v Values) Keys() []string {
	keys := make([]string, 0, len(v))
	for k := range v {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// Wipe overwrites every value with zeros and empties the map, so that a plaintext does not
// outlive its use in memory longer than the garbage collector makes it.
func (v Values) Wipe() {
	for k, b := range v {
		clear(b)
		delete(v, k)
	}
}

// ConfigMapValues are a ConfigMap's contents as a volume or env sees them: data and binaryData
// together (validation has made sure no key is in both).
func ConfigMapValues(cm *corev1.ConfigMap) Values {
	out := make(Values, len(cm.Data)+len(cm.BinaryData))
	for k, v := range cm.Data {
		out[k] = []byte(v)
	}
	for k, v := range cm.BinaryData {
		out[k] = v
	}
	return out
}

// ReadPlain reads a file that is not encrypted, for a Secret the repository allows in plaintext
// (see manifest's plaintext opt-in). It refuses a file that has a sops block: that one must go
// through Decrypt, so its MAC is checked.
func ReadPlain(file string, data []byte) (*Plaintext, error) {
	docs, sopsNode, err := splitDocuments(data)
	if err != nil {
		return nil, fileError(file, ErrInvalid, "%v", err)
	}
	if sopsNode != nil {
		return nil, fileError(file, ErrInvalid, "the file is sops-encrypted: decrypt it instead of reading it as plaintext")
	}
	return &Plaintext{file: file, docs: docs}, nil
}

// secretHeader is what identifies a Secret document.
type secretHeader struct {
	Kind     string `yaml:"kind"`
	Metadata struct {
		Name      string `yaml:"name"`
		Namespace string `yaml:"namespace"`
	} `yaml:"metadata"`
}

// Secret returns the values of the Secret namespace/name in the file. An empty namespace in the
// file is "default", as in Kubernetes.
func (p *Plaintext) Secret(namespace, name string) (Values, error) {
	if namespace == "" {
		namespace = "default"
	}
	for _, doc := range p.docs {
		root := docRoot(doc)
		if root == nil {
			continue
		}
		var h secretHeader
		if err := root.Decode(&h); err != nil {
			continue // not a Secret; its decoding error may quote a value, so it is not reported
		}
		ns := h.Metadata.Namespace
		if ns == "" {
			ns = "default"
		}
		if h.Kind != "Secret" || h.Metadata.Name != name || ns != namespace {
			continue
		}
		return p.values(root, namespace+"/"+name)
	}
	return nil, fileError(p.file, ErrInvalid, "there is no Secret %s/%s in the file", namespace, name)
}

// values reads data and stringData of a Secret document.
func (p *Plaintext) values(root *yaml.Node, id string) (Values, error) {
	out := Values{}
	var data, stringData *yaml.Node
	for i := 0; i+1 < len(root.Content); i += 2 {
		switch root.Content[i].Value {
		case "data":
			data = root.Content[i+1]
		case "stringData":
			stringData = root.Content[i+1]
		}
	}
	read := func(field string, m *yaml.Node, decode bool) error {
		if m == nil || m.ShortTag() == "!!null" {
			return nil
		}
		if m.Kind == yaml.AliasNode {
			m = m.Alias
		}
		if m.Kind != yaml.MappingNode {
			return fileError(p.file, ErrInvalid, "Secret %s: %s is not a mapping", id, field)
		}
		for i := 0; i+1 < len(m.Content); i += 2 {
			k, v := m.Content[i].Value, m.Content[i+1]
			if v.Kind == yaml.AliasNode {
				v = v.Alias
			}
			if v.Kind != yaml.ScalarNode {
				return fileError(p.file, ErrInvalid, "Secret %s: %s.%s is not a string", id, field, k)
			}
			val := []byte(v.Value)
			if v.ShortTag() == "!!null" {
				val = nil
			}
			if decode {
				b, err := base64.StdEncoding.DecodeString(v.Value)
				clear(val)
				if err != nil {
					return fileError(p.file, ErrInvalid, "Secret %s: %s.%s is not valid base64 (use stringData for text)", id, field, k)
				}
				val = b
			}
			if old, ok := out[k]; ok {
				clear(old)
			}
			out[k] = val
		}
		return nil
	}
	if err := read("data", data, true); err != nil {
		out.Wipe()
		return nil, err
	}
	if err := read("stringData", stringData, false); err != nil {
		out.Wipe()
		return nil, err
	}
	return out, nil
}

// String never shows values: a Plaintext printed by mistake (%v in a log line) says what it is.
func (p *Plaintext) String() string {
	return fmt.Sprintf("secrets.Plaintext(%s, %d documents)", p.file, len(p.docs))
}

// GoString keeps %#v from printing the documents.
func (p *Plaintext) GoString() string { return p.String() }

// String shows the keys, never the values, so a Values printed by mistake leaks nothing.
func (v Values) String() string { return fmt.Sprintf("secrets.Values%v", v.Keys()) }

// GoString keeps %#v from printing the values.
func (v Values) GoString() string { return v.String() }

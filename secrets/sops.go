package secrets

import (
	"errors"
	"fmt"
	"io"
	"regexp"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// metadataKey is the top-level key sops keeps its metadata under.
const metadataKey = "sops"

// defaultUnencryptedSuffix is sops' rule when a file names no rule at all.
const defaultUnencryptedSuffix = "_unencrypted"

// formatVersion is the sops version whose format shoal writes and has been checked against
// (secrets/testdata was made by it). sops reads files written by older and newer versions alike.
const formatVersion = "3.13.3"

// macOnlyEncryptedInit starts the MAC when mac_only_encrypted is set, so that such a MAC never
// equals the MAC of the same tree without the setting: SHA-256("sops"), as sops defines it.
var macOnlyEncryptedInit = []byte{
	0x8a, 0x3f, 0xd2, 0xad, 0x54, 0xce, 0x66, 0x52, 0x7b, 0x10, 0x34, 0xf3, 0xd1, 0x47, 0xbe, 0x0b,
	0x0b, 0x97, 0x5b, 0x3b, 0xf4, 0x4f, 0x72, 0xc6, 0xfd, 0xad, 0xec, 0x81, 0x76, 0xf2, 0x7d, 0x69,
}

// ageStanza is one age recipient of a file: the data key encrypted to it, ASCII-armored.
type ageStanza struct {
	Recipient string `yaml:"recipient"`
	Enc       string `yaml:"enc"`
}

// rawMetadata is the sops block as written. Only age is read; the other key types are noted so
// that a file encrypted to them alone gets an error naming them.
type rawMetadata struct {
	Age                     []ageStanza `yaml:"age"`
	KeyGroups               []rawGroup  `yaml:"key_groups"`
	ShamirThreshold         int         `yaml:"shamir_threshold"`
	PGP                     []any       `yaml:"pgp"`
	KMS                     []any       `yaml:"kms"`
	GCPKMS                  []any       `yaml:"gcp_kms"`
	HCKMS                   []any       `yaml:"hckms"`
	AzureKV                 []any       `yaml:"azure_kv"`
	HCVault                 []any       `yaml:"hc_vault"`
	LastModified            string      `yaml:"lastmodified"`
	MAC                     string      `yaml:"mac"`
	UnencryptedSuffix       string      `yaml:"unencrypted_suffix"`
	EncryptedSuffix         string      `yaml:"encrypted_suffix"`
	UnencryptedRegex        string      `yaml:"unencrypted_regex"`
	EncryptedRegex          string      `yaml:"encrypted_regex"`
	UnencryptedCommentRegex string      `yaml:"unencrypted_comment_regex"`
	EncryptedCommentRegex   string      `yaml:"encrypted_comment_regex"`
	MACOnlyEncrypted        bool        `yaml:"mac_only_encrypted"`
	Version                 string      `yaml:"version"`
}

type rawGroup struct {
	Age     []ageStanza `yaml:"age"`
	PGP     []any       `yaml:"pgp"`
	KMS     []any       `yaml:"kms"`
	GCPKMS  []any       `yaml:"gcp_kms"`
	HCKMS   []any       `yaml:"hckms"`
	AzureKV []any       `yaml:"azure_kv"`
	HCVault []any       `yaml:"hc_vault"`
}

// otherKeyTypes names the non-age key types a group holds, in sops' spelling.
func otherKeyTypes(pgp, kms, gcp, hckms, azkv, vault []any) []string {
	var out []string
	for _, t := range []struct {
		name string
		keys []any
	}{{"pgp", pgp}, {"kms", kms}, {"gcp_kms", gcp}, {"hckms", hckms}, {"azure_kv", azkv}, {"hc_vault", vault}} {
		if len(t.keys) > 0 {
			out = append(out, t.name)
		}
	}
	return out
}

// rules decides which values are encrypted: sops' suffix and regex rules, at most one of them.
type rules struct {
	unencryptedSuffix string
	encryptedSuffix   string
	unencryptedRegex  *regexp.Regexp
	encryptedRegex    *regexp.Regexp
	macOnlyEncrypted  bool
}

// unsupportedError is a sops feature shoal does not read, as opposed to a malformed block.
type unsupportedError struct{ msg string }

func (e unsupportedError) Error() string { return e.msg }

// metadata is a file's sops block, checked.
type metadata struct {
	raw          rawMetadata
	age          []ageStanza
	others       []string // key types other than age, for messages
	lastModified time.Time
	rules        rules
}

// parseMetadata checks the sops block. Errors name the field, never a value of the file.
func parseMetadata(n *yaml.Node) (*metadata, error) {
	if n.Kind != yaml.MappingNode {
		return nil, errors.New("the sops entry is not a mapping")
	}
	var m metadata
	if err := n.Decode(&m.raw); err != nil {
		return nil, fmt.Errorf("cannot read the sops metadata: %s", yamlErrorLine(err))
	}
	r := &m.raw
	switch {
	case len(r.KeyGroups) > 1:
		return nil, unsupportedError{fmt.Sprintf("the file uses %d key groups (Shamir secret sharing), which shoal does not support: encrypt it to age recipients in a single group", len(r.KeyGroups))}
	case len(r.KeyGroups) == 1:
		g := r.KeyGroups[0]
		m.age = g.Age
		m.others = otherKeyTypes(g.PGP, g.KMS, g.GCPKMS, g.HCKMS, g.AzureKV, g.HCVault)
	default:
		m.age = r.Age
		m.others = otherKeyTypes(r.PGP, r.KMS, r.GCPKMS, r.HCKMS, r.AzureKV, r.HCVault)
	}
	t, err := time.Parse(time.RFC3339, r.LastModified)
	if err != nil {
		return nil, fmt.Errorf("sops.lastmodified is not an RFC 3339 time")
	}
	m.lastModified = t
	if r.MAC == "" {
		return nil, errors.New("sops.mac is missing: the file cannot be verified")
	}
	if r.UnencryptedCommentRegex != "" || r.EncryptedCommentRegex != "" {
		return nil, unsupportedError{"the file uses encrypted_comment_regex or unencrypted_comment_regex, which shoal does not support: use encrypted_regex"}
	}
	m.rules, err = newRules(r.UnencryptedSuffix, r.EncryptedSuffix, r.UnencryptedRegex, r.EncryptedRegex)
	if err != nil {
		return nil, err
	}
	m.rules.macOnlyEncrypted = r.MACOnlyEncrypted
	return &m, nil
}

func newRules(unencSuffix, encSuffix, unencRegex, encRegex string) (rules, error) {
	n := 0
	for _, s := range []string{unencSuffix, encSuffix, unencRegex, encRegex} {
		if s != "" {
			n++
		}
	}
	if n > 1 {
		return rules{}, errors.New("more than one of unencrypted_suffix, encrypted_suffix, unencrypted_regex and encrypted_regex is set; sops allows one")
	}
	r := rules{unencryptedSuffix: unencSuffix, encryptedSuffix: encSuffix}
	if n == 0 {
		r.unencryptedSuffix = defaultUnencryptedSuffix
	}
	var err error
	if unencRegex != "" {
		if r.unencryptedRegex, err = regexp.Compile(unencRegex); err != nil {
			return rules{}, fmt.Errorf("unencrypted_regex: %v", err)
		}
	}
	if encRegex != "" {
		if r.encryptedRegex, err = regexp.Compile(encRegex); err != nil {
			return rules{}, fmt.Errorf("encrypted_regex: %v", err)
		}
	}
	return r, nil
}

// encrypted reports whether the value at path is encrypted: a rule matching any key on the path
// decides for everything beneath it, as sops decides.
func (r rules) encrypted(path []string) bool {
	anyKey := func(match func(string) bool) bool {
		for _, p := range path {
			if match(p) {
				return true
			}
		}
		return false
	}
	switch {
	case r.unencryptedSuffix != "":
		return !anyKey(func(p string) bool { return strings.HasSuffix(p, r.unencryptedSuffix) })
	case r.encryptedSuffix != "":
		return anyKey(func(p string) bool { return strings.HasSuffix(p, r.encryptedSuffix) })
	case r.unencryptedRegex != nil:
		return !anyKey(r.unencryptedRegex.MatchString)
	case r.encryptedRegex != nil:
		return anyKey(r.encryptedRegex.MatchString)
	}
	return true
}

// recipients lists the file's age recipients, for messages.
func (m *metadata) recipients() []string {
	out := make([]string, 0, len(m.age))
	for _, s := range m.age {
		out = append(out, s.Recipient)
	}
	sort.Strings(out)
	return out
}

// pathString is the additional data of the value at path: "stringData:password:".
func pathString(path []string) string {
	return strings.Join(path, ":") + ":"
}

// splitDocuments parses a YAML (or JSON) stream and takes the sops block out of it: sops reads the
// first document's block and removes the top-level sops key from every document.
func splitDocuments(data []byte) (docs []*yaml.Node, sopsNode *yaml.Node, err error) {
	dec := yaml.NewDecoder(strings.NewReader(string(data)))
	for {
		var doc yaml.Node
		if err := dec.Decode(&doc); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return nil, nil, fmt.Errorf("not valid YAML: %s", yamlErrorLine(err))
		}
		docs = append(docs, &doc)
	}
	for i, doc := range docs {
		root := docRoot(doc)
		if root == nil {
			continue
		}
		if root.Kind != yaml.MappingNode {
			return nil, nil, errors.New("a document is not a mapping")
		}
		for j := 0; j+1 < len(root.Content); {
			if root.Content[j].Kind == yaml.ScalarNode && root.Content[j].Value == metadataKey && root.Content[j].Tag == "!!str" {
				if i == 0 {
					if sopsNode != nil {
						return nil, nil, errors.New("the sops entry appears twice")
					}
					sopsNode = root.Content[j+1]
				}
				root.Content = append(root.Content[:j], root.Content[j+2:]...)
				continue
			}
			j += 2
		}
	}
	return docs, sopsNode, nil
}

// docRoot is a document's top node, nil for an empty document.
func docRoot(doc *yaml.Node) *yaml.Node {
	if doc.Kind != yaml.DocumentNode || len(doc.Content) == 0 {
		return nil
	}
	root := doc.Content[0]
	if root.Kind == yaml.ScalarNode && root.ShortTag() == "!!null" {
		return nil
	}
	return root
}

// yamlErrorLine keeps a YAML error's position and reason but not any quoted input, which could
// be a value.
func yamlErrorLine(err error) string {
	s := err.Error()
	s = strings.TrimPrefix(s, "yaml: ")
	if i := strings.IndexAny(s, "`\"'"); i >= 0 {
		s = strings.TrimRight(s[:i], " :")
	}
	return s
}

package secrets

import (
	"errors"
	"fmt"
	"strings"

	"go.yaml.in/yaml/v3"
)

// walk visits every scalar value of a document in order, with its path of keys, the way sops
// walks its tree: a sequence's items share the sequence's path, nulls are skipped, and keys must
// be strings. inAlias is set beneath an alias, where shoal refuses encrypted values: sops expands
// aliases when it encrypts, so a file it wrote never has one there.
func walk(n *yaml.Node, path []string, inAlias bool, visit func(n *yaml.Node, path []string, inAlias bool) error) error {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			if err := walk(c, path, inAlias, visit); err != nil {
				return err
			}
		}
	case yaml.MappingNode:
		seen := make(map[string]bool, len(n.Content)/2)
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			if k.Kind == yaml.AliasNode {
				k = k.Alias
			}
			var key any
			if k.Kind != yaml.ScalarNode || k.Decode(&key) != nil {
				return fmt.Errorf("at %s: a key is not a scalar", displayPath(path))
			}
			s, ok := key.(string)
			if !ok {
				return fmt.Errorf("at %s: key %q is not a string (sops supports string keys only)", displayPath(path), k.Value)
			}
			if seen[s] {
				return fmt.Errorf("at %s: key %q appears twice", displayPath(path), s)
			}
			seen[s] = true
			child := append(path[:len(path):len(path)], s)
			if err := walk(n.Content[i+1], child, inAlias, visit); err != nil {
				return err
			}
		}
	case yaml.SequenceNode:
		for _, c := range n.Content {
			if err := walk(c, path, inAlias, visit); err != nil {
				return err
			}
		}
	case yaml.AliasNode:
		return walk(n.Alias, path, true, visit)
	case yaml.ScalarNode:
		if n.ShortTag() == "!!null" {
			return nil
		}
		return visit(n, path, inAlias)
	}
	return nil
}

// displayPath renders a path for messages: "stringData.password", "the top level".
func displayPath(path []string) string {
	if len(path) == 0 {
		return "the top level"
	}
	return strings.Join(path, ".")
}

var errAliasEncrypted = errors.New("an alias (*name) points at a value that must be encrypted; write the value out instead")

package manifest

import (
	"encoding/base64"
	"fmt"
	"math"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	"k8s.io/apimachinery/pkg/api/resource"
)

// This file walks one document's node tree against the allowlist (fields.go): it checks each
// supported value's type, records the line of every key, and writes the document as JSON for the
// strict typed decode in decode.go.

// deref follows aliases and charges the node to the document's budget; nil means stop.
func (d *decoder) deref(n *yaml.Node) *yaml.Node {
	for n != nil && n.Kind == yaml.AliasNode {
		n = n.Alias
	}
	if n == nil {
		return nil
	}
	d.budget--
	if d.budget < 0 {
		if !d.overrun {
			d.overrun = true
			d.errs = append(d.errs, &Error{Source: Source{File: d.name, Line: n.Line + d.offset}, Object: d.key,
				Message: "document is too large, or its YAML aliases expand too far"})
		}
		return nil
	}
	return n
}

// pairs returns a mapping's key/value nodes, flattened, with YAML merge keys ("<<: *base")
// expanded: keys written in the mapping win over merged ones, earlier merges over later ones.
func (d *decoder) pairs(m *yaml.Node) []*yaml.Node {
	return d.mergedPairs(m, 0)
}

func (d *decoder) mergedPairs(m *yaml.Node, depth int) []*yaml.Node {
	merge := false
	for i := 0; i+1 < len(m.Content); i += 2 {
		if k := m.Content[i]; k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			merge = true
			break
		}
	}
	if !merge {
		return m.Content
	}
	var out, sources []*yaml.Node
	for i := 0; i+1 < len(m.Content); i += 2 {
		k, v := m.Content[i], m.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.Tag == "!!merge" {
			v = d.deref(v)
			switch {
			case v == nil:
			case v.Kind == yaml.MappingNode:
				sources = append(sources, v)
			case v.Kind == yaml.SequenceNode:
				for _, s := range v.Content {
					if s = d.deref(s); s != nil && s.Kind == yaml.MappingNode {
						sources = append(sources, s)
					}
				}
			}
			continue
		}
		out = append(out, k, v)
	}
	seen := map[string]bool{}
	for i := 0; i < len(out); i += 2 {
		seen[out[i].Value] = true
	}
	for _, s := range sources {
		if depth >= maxNestingDepth {
			break // a merge that includes itself
		}
		sp := d.mergedPairs(s, depth+1)
		for i := 0; i+1 < len(sp); i += 2 {
			if k := sp[i]; !seen[k.Value] {
				seen[k.Value] = true
				out = append(out, k, sp[i+1])
			}
		}
	}
	return out
}

// lookupKey finds a key node among flattened pairs.
func lookupKey(pairs []*yaml.Node, key string) *yaml.Node {
	var found *yaml.Node
	for i := 0; i+1 < len(pairs); i += 2 {
		if k := pairs[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			found = k
		}
	}
	return found
}

// lookupValue finds a key among flattened pairs (the last one written, as JSON would).
func lookupValue(pairs []*yaml.Node, key string) *yaml.Node {
	var v *yaml.Node
	for i := 0; i+1 < len(pairs); i += 2 {
		if k := pairs[i]; k.Kind == yaml.ScalarNode && k.Value == key {
			v = pairs[i+1]
		}
	}
	return v
}

func scalarString(n *yaml.Node) (string, bool) {
	if n == nil || n.Kind != yaml.ScalarNode || isNullNode(n) {
		return "", false
	}
	return n.Value, n.Tag == "!!str"
}

func isNullNode(n *yaml.Node) bool {
	return n.Kind == yaml.ScalarNode && n.Tag == "!!null"
}

// describeNode names a node's type for an error message, never its value.
func describeNode(n *yaml.Node) string {
	if n == nil {
		return "empty"
	}
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	}
	switch n.Tag {
	case "!!int":
		return "an integer"
	case "!!float":
		return "a number with a fraction"
	case "!!bool":
		return "a boolean"
	case "!!null":
		return "null"
	}
	return "a string"
}

func (d *decoder) errorAt(n *yaml.Node, path, msg string) {
	line := d.offset
	if n != nil {
		line += n.Line
	}
	d.errs = append(d.errs, &Error{Source: Source{File: d.name, Line: line}, Object: d.key, Field: path, Message: msg})
}

func (d *decoder) record(n *yaml.Node) {
	if d.lines == nil {
		return
	}
	p, ok := d.paths[string(d.path)]
	if !ok {
		p = string(d.path)
		if len(d.paths) < maxInternedPaths {
			d.paths[p] = p
		}
	}
	d.lines[p] = n.Line + d.offset
}

// maxInternedPaths bounds the intern table, which user-chosen keys (labels...) could grow.
const maxInternedPaths = 1 << 15

// pushField and pushKey extend the current path; the caller truncates to the returned mark.
func (d *decoder) pushField(name string) int {
	mark := len(d.path)
	if mark > 0 {
		d.path = append(d.path, '.')
	}
	d.path = append(d.path, name...)
	return mark
}

func (d *decoder) pushKey(key string) int {
	mark := len(d.path)
	d.path = append(d.path, '[')
	d.path = append(d.path, key...)
	d.path = append(d.path, ']')
	return mark
}

func (d *decoder) pushIndex(i int) int {
	mark := len(d.path)
	d.path = append(d.path, '[')
	d.path = strconv.AppendInt(d.path, int64(i), 10)
	d.path = append(d.path, ']')
	return mark
}

// maxNestingDepth bounds how deep a document may nest. Real manifests stay under 20 levels;
// the bound stops an alias that refers to its own anchor (a cycle, which yaml.v3 accepts in a
// node tree) from recursing until the stack runs out.
const maxNestingDepth = 128

// nest enters one level of nesting; false means too deep, reported once and written as null.
func (d *decoder) nest(n *yaml.Node) bool {
	if d.depth < maxNestingDepth {
		d.depth++
		return true
	}
	if !d.overrun {
		d.overrun = true
		d.errs = append(d.errs, &Error{Source: Source{File: d.name, Line: n.Line + d.offset}, Object: d.key, Field: string(d.path),
			Message: "nested too deeply (does a YAML alias refer to its own anchor?)"})
	}
	d.js = append(d.js, "null"...)
	return false
}

// walk checks a user-written value against its schema (nil: outside the allowlist), records the
// line of every key, and writes the value as JSON for the strict typed decode. A value of the
// wrong type is reported and written as null, so one mistake yields one error.
func (d *decoder) walk(n *yaml.Node, s *valueSchema) {
	if !d.nest(n) {
		return
	}
	d.walkValue(n, s)
	d.depth--
}

func (d *decoder) walkValue(n *yaml.Node, s *valueSchema) {
	if n = d.deref(n); n == nil {
		d.js = append(d.js, "null"...)
		return
	}
	if s == nil {
		d.free(n)
		return
	}
	if isNullNode(n) {
		d.js = append(d.js, "null"...)
		return
	}
	switch s.kind {
	case kObject:
		if n.Kind != yaml.MappingNode {
			d.typeError(n, "a mapping")
			return
		}
		d.object(n, s)
	case kList:
		if n.Kind != yaml.SequenceNode {
			d.typeError(n, "a list")
			return
		}
		d.js = append(d.js, '[')
		for i, item := range n.Content {
			if i > 0 {
				d.js = append(d.js, ',')
			}
			mark := d.pushIndex(i)
			d.record(item)
			d.walk(item, s.elem)
			d.path = d.path[:mark]
		}
		d.js = append(d.js, ']')
	case kMap:
		if n.Kind != yaml.MappingNode {
			d.typeError(n, "a mapping")
			return
		}
		d.mapping(n, true, func(k, v *yaml.Node) {
			mark := d.pushKey(k.Value)
			d.record(k)
			d.js = appendJSONString(d.js, k.Value)
			d.js = append(d.js, ':')
			d.walk(v, s.elem)
			d.path = d.path[:mark]
		})
	case kSecretData:
		d.secretData(n)
	default:
		d.scalar(n, s.kind)
	}
}

// object writes a mapping whose keys are fields of s.
func (d *decoder) object(n *yaml.Node, s *valueSchema) {
	d.mapping(n, false, func(k, v *yaml.Node) {
		mark := d.pushField(k.Value)
		d.record(k)
		fd := s.index[k.Value]
		switch {
		case fd == nil:
			d.unsup = append(d.unsup, unsupportedField{path: string(d.path), line: k.Line + d.offset, name: k.Value, parent: s})
			d.js = appendJSONString(d.js, k.Value)
			d.js = append(d.js, ':')
			d.free(v)
		case fd.schema.kind == kSOPS:
			// Read by document; never part of the typed object, so nothing is written.
		default:
			d.js = appendJSONString(d.js, k.Value)
			d.js = append(d.js, ':')
			d.walk(v, fd.schema)
		}
		d.path = d.path[:mark]
	})
}

// mapping writes {...} around each(k, v), reporting non-scalar and duplicate keys (the first
// value is kept). keyed says the keys are user-chosen map keys rather than field names, which
// only changes how a path is spelt. each may write nothing for a pair.
func (d *decoder) mapping(n *yaml.Node, keyed bool, each func(k, v *yaml.Node)) {
	pairs := d.pairs(n)
	var seen map[string]int
	if len(pairs) > 16 {
		seen = make(map[string]int, len(pairs)/2)
	}
	d.js = append(d.js, '{')
	first := true
	for i := 0; i+1 < len(pairs); i += 2 {
		k := pairs[i]
		if k.Kind != yaml.ScalarNode {
			d.errorAt(k, string(d.path), "mapping keys must be strings, not "+describeNode(k))
			continue
		}
		if prev := duplicateOf(pairs, i, seen); prev != nil {
			var mark int
			if keyed {
				mark = d.pushKey(k.Value)
			} else {
				mark = d.pushField(k.Value)
			}
			d.errorAt(k, string(d.path), fmt.Sprintf("duplicate key %q: already set at line %d", k.Value, prev.Line+d.offset))
			d.path = d.path[:mark]
			continue
		}
		pos := len(d.js)
		if !first {
			d.js = append(d.js, ',')
		}
		before := len(d.js)
		each(k, pairs[i+1])
		if len(d.js) == before {
			d.js = d.js[:pos]
		} else {
			first = false
		}
	}
	d.js = append(d.js, '}')
}

// duplicateOf returns the earlier key equal to pairs[i], if any. Small mappings are scanned;
// big ones use seen, which it fills.
func duplicateOf(pairs []*yaml.Node, i int, seen map[string]int) *yaml.Node {
	k := pairs[i].Value
	if seen == nil {
		for j := 0; j < i; j += 2 {
			if pairs[j].Kind == yaml.ScalarNode && pairs[j].Value == k {
				return pairs[j]
			}
		}
		return nil
	}
	if j, ok := seen[k]; ok {
		return pairs[j]
	}
	seen[k] = i
	return nil
}

// free writes a value outside the allowlist as JSON, as any YAML-to-JSON converter would, so the
// strict decode can tell a misspelt field from an unsupported one. Lines are still recorded.
func (d *decoder) free(n *yaml.Node) {
	if !d.nest(n) {
		return
	}
	d.freeValue(n)
	d.depth--
}

func (d *decoder) freeValue(n *yaml.Node) {
	if n = d.deref(n); n == nil {
		d.js = append(d.js, "null"...)
		return
	}
	switch n.Kind {
	case yaml.MappingNode:
		d.js = append(d.js, '{')
		pairs := d.pairs(n)
		for i := 0; i+1 < len(pairs); i += 2 {
			if i > 0 {
				d.js = append(d.js, ',')
			}
			k := pairs[i]
			mark := d.pushField(k.Value)
			d.record(k)
			d.js = appendJSONString(d.js, k.Value)
			d.js = append(d.js, ':')
			d.free(pairs[i+1])
			d.path = d.path[:mark]
		}
		d.js = append(d.js, '}')
	case yaml.SequenceNode:
		d.js = append(d.js, '[')
		for i, item := range n.Content {
			if i > 0 {
				d.js = append(d.js, ',')
			}
			mark := d.pushIndex(i)
			d.record(item)
			d.free(item)
			d.path = d.path[:mark]
		}
		d.js = append(d.js, ']')
	default:
		switch n.Tag {
		case "!!null":
			d.js = append(d.js, "null"...)
		case "!!bool":
			b, _ := parseYAMLBool(n.Value)
			d.js = strconv.AppendBool(d.js, b)
		case "!!int":
			if v, err := parseYAMLInt(n.Value); err == nil {
				d.js = strconv.AppendInt(d.js, v, 10)
			} else {
				d.js = appendJSONString(d.js, n.Value)
			}
		case "!!float":
			if v, err := strconv.ParseFloat(strings.ReplaceAll(n.Value, "_", ""), 64); err == nil && !isInfOrNaN(v) {
				d.js = strconv.AppendFloat(d.js, v, 'g', -1, 64)
			} else {
				d.js = append(d.js, "null"...)
			}
		default:
			d.js = appendJSONString(d.js, n.Value)
		}
	}
}

// scalar checks and writes a scalar of a supported field.
func (d *decoder) scalar(n *yaml.Node, kind valueKind) {
	if n.Kind != yaml.ScalarNode {
		d.typeError(n, kindName(kind))
		return
	}
	tag := n.Tag
	switch kind {
	case kString:
		if tag == "!!int" || tag == "!!float" || tag == "!!bool" {
			d.typeError(n, "a string (quote the value)")
			return
		}
		d.js = appendJSONString(d.js, n.Value)
	case kInt32, kInt64:
		if tag != "!!int" {
			d.typeError(n, "an integer")
			return
		}
		v, err := parseYAMLInt(n.Value)
		if err != nil || (kind == kInt32 && (v > 1<<31-1 || v < -1<<31)) {
			d.errorAt(n, string(d.path), "integer out of range")
			d.js = append(d.js, "null"...)
			return
		}
		d.js = strconv.AppendInt(d.js, v, 10)
	case kBool:
		// YAML 1.1 spellings (yes, on...) are accepted unquoted, as kubectl accepts them.
		b, ok := parseYAMLBool(n.Value)
		if !ok || (tag != "!!bool" && (tag != "!!str" || n.Style&(yaml.DoubleQuotedStyle|yaml.SingleQuotedStyle) != 0)) {
			d.typeError(n, "true or false")
			return
		}
		d.js = strconv.AppendBool(d.js, b)
	case kQuantity:
		v := n.Value
		if tag == "!!int" {
			i, err := parseYAMLInt(v)
			if err != nil {
				d.errorAt(n, string(d.path), "quantity out of range")
				d.js = append(d.js, "null"...)
				return
			}
			v = strconv.FormatInt(i, 10)
		} else if tag != "!!str" && tag != "!!float" {
			d.typeError(n, "a quantity such as 500m or 1Gi")
			return
		}
		if _, err := resource.ParseQuantity(v); err != nil {
			d.errorAt(n, string(d.path), "must be a quantity such as 500m, 2 or 1Gi")
			d.js = append(d.js, "null"...)
			return
		}
		d.js = appendJSONString(d.js, v)
	case kIntOrString:
		switch tag {
		case "!!int":
			v, err := parseYAMLInt(n.Value)
			if err != nil || v > 1<<31-1 || v < -1<<31 {
				d.errorAt(n, string(d.path), "integer out of range")
				d.js = append(d.js, "null"...)
				return
			}
			d.js = strconv.AppendInt(d.js, v, 10)
		case "!!float", "!!bool":
			d.typeError(n, "an integer or a string")
		default:
			d.js = appendJSONString(d.js, n.Value)
		}
	case kBase64:
		if tag != "!!str" && tag != "!!binary" {
			d.typeError(n, "a base64 string")
			return
		}
		if _, err := decodeBase64(n.Value); err != nil {
			d.errorAt(n, string(d.path), "must be base64")
			d.js = append(d.js, "null"...)
			return
		}
		d.js = appendJSONString(d.js, n.Value)
	default:
		d.free(n)
	}
}

func kindName(k valueKind) string {
	switch k {
	case kInt32, kInt64:
		return "an integer"
	case kBool:
		return "true or false"
	case kQuantity:
		return "a quantity such as 500m or 1Gi"
	case kIntOrString:
		return "an integer or a string"
	}
	return "a string"
}

// typeError reports a value of the wrong type without echoing it, and writes null in its place.
func (d *decoder) typeError(n *yaml.Node, want string) {
	d.errorAt(n, string(d.path), "must be "+want+", not "+describeNode(n))
	d.js = append(d.js, "null"...)
}

// suggestField returns the supported field closest to a misspelt name, if one is close.
func suggestField(name string, s *valueSchema) string {
	if s == nil {
		return ""
	}
	best, bestDist := "", 3
	for _, fd := range s.fields {
		if strings.EqualFold(fd.name, name) {
			return fd.name
		}
		if dist := editDistance(name, fd.name); dist < bestDist {
			best, bestDist = fd.name, dist
		}
	}
	return best
}

func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// parseYAMLInt reads a YAML integer as yaml.v3 resolves it: decimal, 0x, 0o, 0b, and the YAML 1.1
// octal 0644 that file modes are usually written in; underscores are ignored.
func parseYAMLInt(s string) (int64, error) {
	return strconv.ParseInt(strings.ReplaceAll(s, "_", ""), 0, 64)
}

func parseYAMLBool(s string) (value, ok bool) {
	switch s {
	case "true", "True", "TRUE", "yes", "Yes", "YES", "y", "Y", "on", "On", "ON":
		return true, true
	case "false", "False", "FALSE", "no", "No", "NO", "n", "N", "off", "Off", "OFF":
		return false, true
	}
	return false, false
}

func isInfOrNaN(f float64) bool { return math.IsInf(f, 0) || math.IsNaN(f) }

// decodeBase64 accepts what encoding/json accepts for a []byte: standard base64, line breaks
// ignored.
func decodeBase64(s string) ([]byte, error) {
	return base64.StdEncoding.DecodeString(strings.NewReplacer("\n", "", "\r", "").Replace(s))
}

const jsonHexDigits = "0123456789abcdef"

// appendJSONString appends s as a JSON string.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x20 && c != '"' && c != '\\' {
			continue
		}
		b = append(b, s[start:i]...)
		switch c {
		case '"', '\\':
			b = append(b, '\\', c)
		case '\n':
			b = append(b, '\\', 'n')
		case '\r':
			b = append(b, '\\', 'r')
		case '\t':
			b = append(b, '\\', 't')
		default:
			b = append(b, '\\', 'u', '0', '0', jsonHexDigits[c>>4], jsonHexDigits[c&0xf])
		}
		start = i + 1
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

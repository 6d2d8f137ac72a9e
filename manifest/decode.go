package manifest

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	"go.yaml.in/yaml/v3"
	sigsjson "sigs.k8s.io/json"
)

// Field paths.
//
// Every field path this package produces (in Error.Field and as keys of Object.lines) is written
// the way a user reads the YAML: object fields joined by '.', list items as [i], and keys of maps
// whose keys the user chooses (labels, annotations, nodeSelector, ConfigMap and Secret data,
// resources) in brackets, unquoted:
//
//	spec.template.spec.containers[0].image
//	spec.template.spec.containers[0].resources.limits[memory]
//	metadata.labels[app.kubernetes.io/name]
//	data[config.yaml]
//
// Brackets keep dotted keys ("app.kubernetes.io/name") in one piece, so parentPath strips a
// whole key. Inside a subtree shoal does not support, keys are joined by '.' whatever they are:
// only the unsupported field itself is reported.

// Decode decodes one file: every YAML document in it (or, for a .json file, every JSON value),
// strictly, into the upstream typed object of its kind, with Kubernetes' defaults applied. file
// is the slash path recorded in each Object's Source and in errors. A bad document is reported
// and skipped; the file's other documents are still decoded. Empty and comment-only documents
// are skipped.
func Decode(file string, data []byte) ([]*Object, ErrorList) {
	var d decoder
	objs, errs := d.file(file, data)
	errs.Sort()
	return objs, errs
}

// maxNodesPerDocument bounds the work one document may cause, YAML aliases included, so a small
// file cannot expand into billions of nodes.
const maxNodesPerDocument = 1 << 18

// docChunk is one document's text and how many lines of the file precede it.
type docChunk struct {
	data   []byte
	offset int
}

// decoder decodes documents. It is not safe for concurrent use; Load gives each worker its own,
// so the JSON and path buffers are reused across files.
type decoder struct {
	// plaintextAllowed reports whether a file may hold plaintext Secrets (the repository's
	// ConfigFile opts in by path); nil allows none.
	plaintextAllowed func(file string) bool
	plaintextFile    bool // the current file may

	js   []byte // the document as JSON, for the strict typed decode
	path []byte // the field path being walked
	// paths interns field paths: documents of one repository repeat the same paths, so the
	// lines maps of thousands of objects can share their keys.
	paths map[string]string

	// Per document.
	name    string // the file
	offset  int    // lines of the file before the document's chunk
	key     Key
	lines   map[string]int
	errs    ErrorList
	unsup   []unsupportedField
	budget  int
	depth   int
	secret  *SecretInfo
	sops    bool
	overrun bool
}

// unsupportedField is a written key that is not in the allowlist. Whether it is a typo (not in
// the upstream type either) or merely unsupported is known only after the strict decode.
type unsupportedField struct {
	path    string
	line    int
	name    string
	parent  *valueSchema
	unknown bool
}

var utf8BOM = []byte("\xef\xbb\xbf")

func (d *decoder) file(name string, data []byte) ([]*Object, ErrorList) {
	d.plaintextFile = d.plaintextAllowed != nil && d.plaintextAllowed(name)
	data = bytes.TrimPrefix(data, utf8BOM)
	if !strings.HasSuffix(strings.ToLower(name), ".json") {
		return d.yamlFile(name, data)
	}
	chunks, errs := splitJSON(name, data)
	var objs []*Object
	for _, c := range chunks {
		o, e := d.chunk(name, c)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	return objs, errs
}

// yamlFile decodes a YAML file with one parser, which is the fast path; only when that parser
// fails is the file cut into documents, so that the documents after a syntax error are still
// decoded and reported.
func (d *decoder) yamlFile(name string, data []byte) ([]*Object, ErrorList) {
	objs, errs, ok := d.stream(name, data)
	if ok {
		return objs, errs
	}
	objs, errs = nil, nil
	for _, c := range splitYAML(data) {
		o, e := d.chunk(name, c)
		objs = append(objs, o...)
		errs = append(errs, e...)
	}
	return objs, errs
}

// stream decodes every document of data; ok is false if the YAML did not parse.
func (d *decoder) stream(name string, data []byte) (objs []*Object, errs ErrorList, ok bool) {
	defer func() {
		if r := recover(); r != nil {
			ok = false
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return objs, errs, true
		}
		if err != nil {
			return nil, nil, false
		}
		o, e := d.document(name, 0, &doc)
		if o != nil {
			objs = append(objs, o)
		}
		errs = append(errs, e...)
	}
}

// splitYAML cuts a YAML stream at its "---" document markers, so that a syntax error in one
// document does not hide the others. A "---" at the start of a line always starts a document
// (YAML forbids it inside a scalar), so the cut is exact.
func splitYAML(data []byte) []docChunk {
	var chunks []docChunk
	start, startLine, line := 0, 0, 0
	for i := 0; i < len(data); {
		end := bytes.IndexByte(data[i:], '\n')
		next := len(data)
		if end >= 0 {
			next = i + end + 1
		}
		if i > 0 && isDocMarker(data[i:next]) {
			chunks = append(chunks, docChunk{data: data[start:i], offset: startLine})
			start, startLine = i, line
		}
		line++
		i = next
	}
	return append(chunks, docChunk{data: data[start:], offset: startLine})
}

func isDocMarker(l []byte) bool {
	if !bytes.HasPrefix(l, []byte("---")) {
		return false
	}
	return len(l) == 3 || l[3] == ' ' || l[3] == '\t' || l[3] == '\n' || l[3] == '\r'
}

// splitJSON reads a .json file as a stream of JSON values, one document each.
func splitJSON(name string, data []byte) ([]docChunk, ErrorList) {
	var chunks []docChunk
	dec := json.NewDecoder(bytes.NewReader(data))
	for {
		var raw json.RawMessage
		err := dec.Decode(&raw)
		if err == io.EOF {
			return chunks, nil
		}
		if err != nil {
			// Point at the start of the bad value, or at the syntax error inside it.
			off := dec.InputOffset()
			for off < int64(len(data)) && strings.IndexByte(" \t\r\n", data[off]) >= 0 {
				off++
			}
			var syn *json.SyntaxError
			if errors.As(err, &syn) {
				off = syn.Offset
			}
			off = min(max(off, 0), int64(len(data)))
			line := bytes.Count(data[:off], []byte("\n")) + 1
			return chunks, ErrorList{{Source: Source{File: name, Line: line}, Message: "invalid JSON: " + err.Error()}}
		}
		start := int(dec.InputOffset()) - len(raw)
		chunks = append(chunks, docChunk{data: raw, offset: bytes.Count(data[:start], []byte("\n"))})
	}
}

// chunk parses one chunk's documents (normally one) and decodes each.
func (d *decoder) chunk(name string, c docChunk) (objs []*Object, errs ErrorList) {
	defer func() {
		// yaml.v3 reports errors by panicking internally and recovering; anything that still
		// escapes is a parser bug, which must cost this document, not the process.
		if r := recover(); r != nil {
			errs = append(errs, &Error{Source: Source{File: name, Line: c.offset + 1}, Message: "cannot parse YAML"})
		}
	}()
	dec := yaml.NewDecoder(bytes.NewReader(c.data))
	for {
		var doc yaml.Node
		err := dec.Decode(&doc)
		if err == io.EOF {
			return objs, errs
		}
		if err != nil {
			line, msg := yamlErrorLine(err)
			if line > 0 {
				line += c.offset
			} else {
				line = c.offset + 1
			}
			errs = append(errs, &Error{Source: Source{File: name, Line: line}, Message: "invalid YAML: " + msg})
			return objs, errs
		}
		o, e := d.document(name, c.offset, &doc)
		if o != nil {
			objs = append(objs, o)
		}
		errs = append(errs, e...)
	}
}

// yamlErrorLine splits "yaml: line 3: could not find expected ':'" into 3 and the message.
// yaml.v3 numbers scanner errors from 1 but parser errors ("did not find expected ...", which
// point at the start of the unclosed construct) from 0, and omits a parser error's line 0.
func yamlErrorLine(err error) (int, string) {
	msg := strings.TrimPrefix(err.Error(), "yaml: ")
	line := 0
	if rest, ok := strings.CutPrefix(msg, "line "); ok {
		if i := strings.Index(rest, ": "); i > 0 {
			if n, err := strconv.Atoi(rest[:i]); err == nil {
				line, msg = n, rest[i+2:]
			}
		}
	}
	if strings.HasPrefix(msg, "did not find expected") {
		line++
	}
	return line, msg
}

// document decodes one parsed document into an Object. It returns nil for an empty document
// and for one whose kind or identity is unknown; errors say why.
func (d *decoder) document(name string, offset int, doc *yaml.Node) (*Object, ErrorList) {
	*d = decoder{js: d.js[:0], path: d.path[:0], paths: d.paths, plaintextAllowed: d.plaintextAllowed, plaintextFile: d.plaintextFile,
		name: name, offset: offset, budget: maxNodesPerDocument}
	if d.paths == nil {
		d.paths = make(map[string]string, 256)
	}
	root := doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return nil, nil
		}
		root = root.Content[0]
	}
	root = d.deref(root)
	if root == nil || isNullNode(root) {
		return nil, nil
	}
	docLine := root.Line + offset
	if root.Kind != yaml.MappingNode {
		d.errs = append(d.errs, &Error{Source: Source{File: name, Line: docLine},
			Message: "a document must be a mapping with apiVersion, kind and metadata, not " + describeNode(root)})
		return nil, d.errs
	}
	pairs := d.pairs(root)
	info, ok := d.identify(root, pairs, docLine)
	if info == nil {
		return nil, d.errs
	}
	// About one key per line: sized once instead of grown.
	last := root
	for len(last.Content) > 0 {
		last = last.Content[len(last.Content)-1]
	}
	d.lines = make(map[string]int, min(max(last.Line-root.Line+1, 8), 4096))
	if info.kind == "Secret" {
		if s := lookupValue(pairs, "sops"); s != nil {
			d.sops = true
			d.secret = &SecretInfo{Digests: map[string]string{}}
			if s = d.deref(s); s == nil || s.Kind != yaml.MappingNode {
				d.errorAt(lookupKey(pairs, "sops"), "sops", "must be a mapping: the metadata block written by sops")
			} else if err := s.Decode(&d.secret.SOPS); err != nil {
				d.errorAt(lookupKey(pairs, "sops"), "sops", "cannot read the sops metadata")
			}
		} else {
			d.secret = &SecretInfo{Digests: map[string]string{}}
		}
	}
	d.walk(root, info.schema)

	obj := info.new()
	// Duplicates are found (with their lines) by the walk, which keeps the first; asking the
	// decoder only for unknown fields spares it a set of keys per object.
	strict, err := sigsjson.UnmarshalStrict(d.js, obj, sigsjson.DisallowUnknownFields)
	for _, se := range strict {
		d.strictError(se)
	}
	for _, u := range d.unsup {
		msg := "is not supported by shoal"
		if u.unknown {
			msg = "unknown field"
			if s := suggestField(u.name, u.parent); s != "" {
				msg += fmt.Sprintf(" (did you mean %q?)", s)
			}
		}
		d.errs = append(d.errs, &Error{Source: Source{File: name, Line: u.line}, Object: d.key, Field: u.path, Message: msg})
	}
	if err != nil {
		if len(d.errs) == 0 {
			// The walk checks every supported value's type first, so this is rare; it can name
			// no field, and it never holds a Secret value (those never reach the JSON).
			d.errs = append(d.errs, &Error{Source: Source{File: name, Line: docLine}, Object: d.key, Message: "cannot decode: " + err.Error()})
		}
		return nil, d.errs
	}
	if !ok {
		return nil, d.errs
	}
	applyDefaults(obj)
	o := &Object{Key: d.key, Source: Source{File: name, Line: docLine}, Obj: obj, Secret: d.secret, lines: d.lines}
	if d.secret != nil {
		d.secret.Keys = sortedUnique(d.secret.Keys)
	}
	return o, d.errs
}

// identify reads apiVersion, kind and metadata name/namespace. It returns the kind's info when
// the kind is known (so the document can still be checked) and ok when the object's identity is
// complete (so it can become an Object).
func (d *decoder) identify(root *yaml.Node, pairs []*yaml.Node, docLine int) (info *kindInfo, ok bool) {
	at := func(n *yaml.Node) Source {
		if n == nil {
			return Source{File: d.name, Line: docLine}
		}
		return Source{File: d.name, Line: n.Line + d.offset}
	}
	kindNode := d.deref(lookupValue(pairs, "kind"))
	kind, isStr := scalarString(kindNode)
	switch {
	case kindNode == nil || kind == "":
		d.errs = append(d.errs, &Error{Source: at(kindNode), Field: "kind", Message: "missing kind"})
		return nil, false
	case !isStr:
		d.errs = append(d.errs, &Error{Source: at(kindNode), Field: "kind", Message: "must be a string, not " + describeNode(kindNode)})
		return nil, false
	}
	info = supportedKinds.byKind[kind]
	if info == nil {
		msg := fmt.Sprintf("unknown kind %q: shoal supports %s", kind, strings.Join(supportedKinds.names(), ", "))
		for _, k := range supportedKinds.kinds {
			if strings.EqualFold(k.kind, kind) {
				msg = fmt.Sprintf("unknown kind %q (did you mean %q?)", kind, k.kind)
			}
		}
		d.errs = append(d.errs, &Error{Source: at(kindNode), Field: "kind", Message: msg})
		return nil, false
	}
	ok = true
	var name, ns string
	meta := lookupKey(pairs, "metadata")
	if m := d.deref(lookupValue(pairs, "metadata")); m != nil && m.Kind == yaml.MappingNode {
		meta = lookupKey(d.pairs(m), "name")
		if meta == nil {
			meta = lookupKey(pairs, "metadata")
		}
		mp := d.pairs(m)
		name, _ = scalarString(d.deref(lookupValue(mp, "name")))
		if info.namespaced {
			ns, _ = scalarString(d.deref(lookupValue(mp, "namespace")))
		}
	}
	if info.namespaced && ns == "" {
		ns = "default"
	}
	if name != "" {
		d.key = Key{Kind: kind, Namespace: ns, Name: name}
	}
	avNode := d.deref(lookupValue(pairs, "apiVersion"))
	av, _ := scalarString(avNode)
	switch {
	case av == "":
		d.errs = append(d.errs, &Error{Source: at(avNode), Object: d.key, Field: "apiVersion",
			Message: fmt.Sprintf("missing apiVersion (%s is %s)", kind, info.apiVersion)})
		ok = false
	case av != info.apiVersion:
		d.errs = append(d.errs, &Error{Source: at(avNode), Object: d.key, Field: "apiVersion",
			Message: fmt.Sprintf("%s is %s, not %q", kind, info.apiVersion, av)})
		ok = false
	}
	if name == "" {
		d.errs = append(d.errs, &Error{Source: at(meta), Field: "metadata.name", Message: fmt.Sprintf("missing name: a %s needs metadata.name", kind)})
		ok = false
	}
	return info, ok
}

// strictError places one of UnmarshalStrict's findings. Duplicates were already reported by the
// walk (and the first value kept), so only unknown fields remain.
func (d *decoder) strictError(err error) {
	fe, ok := err.(sigsjson.FieldError)
	if !ok || strings.HasPrefix(err.Error(), "duplicate field") {
		return
	}
	p := fe.FieldPath()
	for q := p; q != ""; q = parentPath(q) {
		for i := range d.unsup {
			if d.unsup[i].path == q {
				// Either the unsupported field itself (now known to be a typo) or something
				// inside it, which is covered by the error on the field.
				if q == p {
					d.unsup[i].unknown = true
				}
				return
			}
		}
	}
	d.errs = append(d.errs, &Error{Source: Source{File: d.name, Line: d.lineOf(p)}, Object: d.key, Field: p, Message: "unknown field"})
}

func (d *decoder) lineOf(p string) int {
	for q := p; q != ""; q = parentPath(q) {
		if l, ok := d.lines[q]; ok {
			return l
		}
	}
	return 0
}

package manifest

import (
	"fmt"
	"sort"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Key identifies an object in a repository: its kind, namespace and name. Cluster-scoped kinds
// (Namespace) have an empty Namespace. Two documents with the same Key are a validation error.
type Key struct {
	Kind      string
	Namespace string
	Name      string
}

// String renders the key the way messages name objects: "Deployment shop/web", "Namespace shop".
func (k Key) String() string {
	if k.Namespace == "" {
		return k.Kind + " " + k.Name
	}
	return k.Kind + " " + k.Namespace + "/" + k.Name
}

// IsZero reports whether the key names nothing (a document that failed before its identity
// was known).
func (k Key) IsZero() bool { return k == Key{} }

// Less orders keys by kind, then namespace, then name: the order every listing and diff uses,
// so output is stable across runs.
func (k Key) Less(o Key) bool {
	if k.Kind != o.Kind {
		return k.Kind < o.Kind
	}
	if k.Namespace != o.Namespace {
		return k.Namespace < o.Namespace
	}
	return k.Name < o.Name
}

// Source is where a document or one of its fields was written: a slash-separated path relative
// to the root handed to Load, and a 1-based line (0 when unknown).
type Source struct {
	File string
	Line int
}

func (s Source) String() string {
	if s.Line > 0 {
		return fmt.Sprintf("%s:%d", s.File, s.Line)
	}
	return s.File
}

// Object is one decoded document: an upstream typed object (*appsv1.Deployment, *corev1.Service,
// ...) with Kubernetes' defaults applied, and where each of its fields was written.
type Object struct {
	Key    Key
	Source Source
	// Obj is the typed object. Callers must treat it as read-only: a Set is shared.
	Obj runtime.Object
	// Encrypted is set for a Secret whose values are SOPS ciphertext; see SecretInfo.
	Secret *SecretInfo
	// lines maps a field path as written by the user ("spec.template.spec.containers[0].image")
	// to its line. Paths not written (defaults) are absent; Line walks up to the nearest parent.
	lines map[string]int
}

// SecretInfo is what the manifest layer knows of a Secret: its keys and a digest of each
// value's ciphertext, never a plaintext value.
type SecretInfo struct {
	// Keys are the data and stringData keys, sorted.
	Keys []string
	// Digests maps each key to a SHA-256 of its encrypted value, so a diff can say a key changed
	// without holding the value.
	Digests map[string]string
	// SOPS is the raw "sops" metadata block, kept for the node-side decryptor.
	SOPS map[string]any
}

// Meta returns the object's metadata.
func (o *Object) Meta() metav1.Object {
	m, ok := o.Obj.(metav1.Object)
	if !ok {
		panic(fmt.Sprintf("manifest: %T has no ObjectMeta", o.Obj))
	}
	return m
}

// Line returns the line where path was written, or the line of its nearest written parent, or
// the document's first line.
func (o *Object) Line(path string) int {
	for p := path; p != ""; p = parentPath(p) {
		if l, ok := o.lines[p]; ok {
			return l
		}
	}
	return o.Source.Line
}

// At returns the source position of a field path, for errors.
func (o *Object) At(path string) Source {
	return Source{File: o.Source.File, Line: o.Line(path)}
}

// Written reports whether the user wrote path (as opposed to it being defaulted or absent).
func (o *Object) Written(path string) bool {
	_, ok := o.lines[path]
	return ok
}

// parentPath strips the last element of a field path: "a.b[2]" → "a.b", "a.b" → "a", "a" → "".
func parentPath(p string) string {
	if strings.HasSuffix(p, "]") {
		if i := strings.LastIndexByte(p, '['); i >= 0 {
			return p[:i]
		}
	}
	if i := strings.LastIndexByte(p, '.'); i >= 0 {
		return p[:i]
	}
	return ""
}

// Set is the validated contents of a repository at one commit: objects by key, in Key order.
// A Set is immutable once built and safe to share between goroutines.
type Set struct {
	objects []*Object
	byKey   map[Key]*Object
	// goneNodes: the nodes ConfigFile declares gone, sorted.
	goneNodes []string
}

// GoneNodes returns the nodes the repository's ConfigFile declares gone for
// good, sorted. Callers must not modify the slice.
func (s *Set) GoneNodes() []string {
	if s == nil {
		return nil
	}
	return s.goneNodes
}

// NewSet builds a Set from decoded objects. A Key seen twice is an error naming both places;
// the first object is kept so the rest of the set can still be validated.
func NewSet(objs []*Object) (*Set, ErrorList) {
	s := &Set{byKey: make(map[Key]*Object, len(objs))}
	var errs ErrorList
	for _, o := range objs {
		if prev, ok := s.byKey[o.Key]; ok {
			errs = append(errs, &Error{
				Source:  o.Source,
				Object:  o.Key,
				Message: fmt.Sprintf("duplicate object: already defined at %s", prev.Source),
			})
			continue
		}
		s.byKey[o.Key] = o
		s.objects = append(s.objects, o)
	}
	sort.Slice(s.objects, func(i, j int) bool { return s.objects[i].Key.Less(s.objects[j].Key) })
	return s, errs
}

// Get returns the object with key k, or nil.
func (s *Set) Get(k Key) *Object {
	if s == nil {
		return nil
	}
	return s.byKey[k]
}

// Objects returns every object in Key order. The slice must not be modified.
func (s *Set) Objects() []*Object {
	if s == nil {
		return nil
	}
	return s.objects
}

// Len returns the number of objects.
func (s *Set) Len() int {
	if s == nil {
		return 0
	}
	return len(s.objects)
}

package manifest

import (
	"encoding/json"
	"sort"
	"strings"
)

// Error is one problem with a repository's contents. Every field that is known is filled in, so
// the message leads a user straight to the file, the line, the object and the field to fix.
type Error struct {
	Source  Source `json:"-"`
	Object  Key    `json:"-"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

// Error renders "apps/web.yaml:12: Deployment shop/web: spec.replicas: must be at least 0".
func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(e.Source.String())
	if !e.Object.IsZero() {
		b.WriteString(": ")
		b.WriteString(e.Object.String())
	}
	if e.Field != "" {
		b.WriteString(": ")
		b.WriteString(e.Field)
	}
	b.WriteString(": ")
	b.WriteString(e.Message)
	return b.String()
}

// MarshalJSON renders the error with its position and object spelled out, the form `shoal
// validate -o json` and `shoal plan -o json` print:
// {"file","line","object":{"kind","namespace","name"},"field","message"}.
func (e *Error) MarshalJSON() ([]byte, error) {
	type object struct {
		Kind      string `json:"kind"`
		Namespace string `json:"namespace,omitempty"`
		Name      string `json:"name"`
	}
	out := struct {
		File    string  `json:"file"`
		Line    int     `json:"line,omitempty"`
		Object  *object `json:"object,omitempty"`
		Field   string  `json:"field,omitempty"`
		Message string  `json:"message"`
	}{File: e.Source.File, Line: e.Source.Line, Field: e.Field, Message: e.Message}
	if !e.Object.IsZero() {
		out.Object = &object{Kind: e.Object.Kind, Namespace: e.Object.Namespace, Name: e.Object.Name}
	}
	return json.Marshal(out)
}

// ErrorList is every problem found in one pass. A nil or empty list means no problem.
type ErrorList []*Error

// Error joins the messages one per line.
func (l ErrorList) Error() string {
	msgs := make([]string, len(l))
	for i, e := range l {
		msgs[i] = e.Error()
	}
	return strings.Join(msgs, "\n")
}

// Err returns the list as an error, or nil when it is empty, so callers can write
// `if err := errs.Err(); err != nil`.
func (l ErrorList) Err() error {
	if len(l) == 0 {
		return nil
	}
	return l
}

// Sort orders the list by file, line, object and field, so output is stable.
func (l ErrorList) Sort() {
	sort.SliceStable(l, func(i, j int) bool {
		a, b := l[i], l[j]
		if a.Source.File != b.Source.File {
			return a.Source.File < b.Source.File
		}
		if a.Source.Line != b.Source.Line {
			return a.Source.Line < b.Source.Line
		}
		if a.Object != b.Object {
			return a.Object.Less(b.Object)
		}
		return a.Field < b.Field
	})
}

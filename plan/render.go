package plan

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strconv"
	"strings"
	"unicode"

	"github.com/shoal-dev/shoal/manifest"
)

// Renderers format a Plan and decide nothing. Each builds its whole output in memory and
// writes it once, so a failed write never leaves half a plan behind without an error.

// symbol is the one-character mark of an op, as in terraform: + added, ~ changed, - removed.
func symbol(op manifest.Op) string {
	switch op {
	case manifest.Added:
		return "+"
	case manifest.Removed:
		return "-"
	}
	return "~"
}

// headline is the summary sentence shared by the text and markdown forms.
func headline(p *Plan) string {
	if len(p.Changes) == 0 {
		return "no changes"
	}
	s := p.Summary
	return fmt.Sprintf("%d to add, %d to change, %d to remove", s.Added, s.Changed, s.Removed)
}

// TextOptions adjusts WriteText's output.
type TextOptions struct {
	// Color marks ops, consequences and errors with ANSI colours, for a terminal.
	Color bool
}

// WriteText writes the plan for a human at a terminal, without colour:
//
//	Plan: 1 to add, 1 to change, 0 to remove.
//
//	+ Deployment shop/web (apps/web.yaml)
//	    → create 3 pods
//
//	~ Deployment shop/api (apps/api.yaml)
//	    spec.replicas: 3 → 5
//	    → scale up 3 → 5
//
// An absent value is shown as (none); a multi-line value as a line diff.
func WriteText(w io.Writer, p *Plan) error { return TextOptions{}.WriteText(w, p) }

// ANSI colours used when TextOptions.Color is set.
const (
	ansiReset  = "\x1b[0m"
	ansiRed    = "\x1b[31m"
	ansiGreen  = "\x1b[32m"
	ansiYellow = "\x1b[33m"
	ansiCyan   = "\x1b[36m"
	ansiBold   = "\x1b[1m"
)

// WriteText writes the plan as WriteText does, with these options.
func (o TextOptions) WriteText(w io.Writer, p *Plan) error {
	paint := func(code, s string) string {
		if !o.Color {
			return s
		}
		return code + s + ansiReset
	}
	opColor := map[manifest.Op]string{manifest.Added: ansiGreen, manifest.Changed: ansiYellow, manifest.Removed: ansiRed}

	var b bytes.Buffer
	if len(p.Changes) == 0 {
		b.WriteString("No changes.\n")
	} else {
		fmt.Fprintf(&b, "Plan: %s.\n", headline(p))
	}
	for _, c := range p.Changes {
		fmt.Fprintf(&b, "\n%s %s (%s)\n", paint(opColor[c.Op], symbol(c.Op)), paint(ansiBold, c.Key.String()), c.Source.File)
		for _, f := range c.Fields {
			for _, l := range fieldLines(f) {
				switch l[0] {
				case '-':
					l = paint(ansiRed, l)
				case '+':
					l = paint(ansiGreen, l)
				}
				b.WriteString("    " + l + "\n")
			}
		}
		for _, s := range c.Consequences {
			b.WriteString("    " + paint(ansiCyan, "→ "+s) + "\n")
		}
	}
	if p.Cluster != nil {
		writeClusterText(&b, p.Cluster, paint)
	}
	if len(p.Errors) > 0 {
		fmt.Fprintf(&b, "\n%s\n", paint(ansiRed, fmt.Sprintf("HEAD is invalid (%s); a cluster refuses it as a whole:", count(len(p.Errors), "error"))))
		for _, e := range p.Errors {
			b.WriteString("  " + e.Error() + "\n")
		}
	}
	_, err := w.Write(b.Bytes())
	return err
}

// fieldLines renders one field change as text lines: "path: old → new" for single-line values,
// and for a multi-line value the path followed by a line diff ("- old", "+ new", "  same").
func fieldLines(f manifest.FieldChange) []string {
	if !strings.Contains(f.Old, "\n") && !strings.Contains(f.New, "\n") {
		return []string{fmt.Sprintf("%s: %s → %s", f.Path, textValue(f.Old), textValue(f.New))}
	}
	out := []string{f.Path + ":"}
	for _, l := range lineDiff(splitLines(f.Old), splitLines(f.New)) {
		out = append(out, string(l.op)+" "+l.text)
	}
	return out
}

// textValue shows a rendered value: (none) when absent, quoted when its spaces or control
// characters would otherwise be invisible.
func textValue(v string) string {
	if v == "" {
		return "(none)"
	}
	if strings.TrimSpace(v) != v || strings.IndexFunc(v, unicode.IsControl) >= 0 {
		return strconv.Quote(v)
	}
	return v
}

func splitLines(s string) []string {
	if s == "" {
		return nil
	}
	return strings.Split(strings.TrimSuffix(s, "\n"), "\n")
}

type diffLine struct {
	op   byte // '-', '+' or ' '
	text string
}

// Context lines kept around a change in a line diff, and the largest LCS table computed; a
// bigger pair of values is shown as all old lines then all new lines.
const (
	diffContext = 2
	maxLCSCells = 4 << 20
)

// lineDiff returns a line diff of a and b (longest common subsequence), with unchanged runs
// longer than the context collapsed into one "… N unchanged lines" line.
func lineDiff(a, b []string) []diffLine {
	var all []diffLine
	if len(a)*len(b) > maxLCSCells {
		for _, l := range a {
			all = append(all, diffLine{'-', l})
		}
		for _, l := range b {
			all = append(all, diffLine{'+', l})
		}
		return all
	}
	// lcs[i][j] is the LCS length of a[i:] and b[j:].
	lcs := make([][]int, len(a)+1)
	for i := range lcs {
		lcs[i] = make([]int, len(b)+1)
	}
	for i := len(a) - 1; i >= 0; i-- {
		for j := len(b) - 1; j >= 0; j-- {
			if a[i] == b[j] {
				lcs[i][j] = lcs[i+1][j+1] + 1
			} else {
				lcs[i][j] = max(lcs[i+1][j], lcs[i][j+1])
			}
		}
	}
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		switch {
		case i < len(a) && j < len(b) && a[i] == b[j]:
			all = append(all, diffLine{' ', a[i]})
			i, j = i+1, j+1
		case i < len(a) && (j == len(b) || lcs[i+1][j] >= lcs[i][j+1]):
			// Deletions first, so a replaced line reads "- old" then "+ new".
			all = append(all, diffLine{'-', a[i]})
			i++
		default:
			all = append(all, diffLine{'+', b[j]})
			j++
		}
	}
	// Collapse unchanged runs far from any change.
	near := make([]bool, len(all))
	for k, l := range all {
		if l.op != ' ' {
			for d := max(0, k-diffContext); d <= min(len(all)-1, k+diffContext); d++ {
				near[d] = true
			}
		}
	}
	var out []diffLine
	for k := 0; k < len(all); {
		if near[k] {
			out = append(out, all[k])
			k++
			continue
		}
		n := 0
		for k < len(all) && !near[k] {
			n, k = n+1, k+1
		}
		out = append(out, diffLine{' ', fmt.Sprintf("… %s", count(n, "unchanged line"))})
	}
	return out
}

// WriteJSON writes the plan for tools, indented, as one JSON object. The field names are
// stable; a field is only ever added. The shape (version 1):
//
//	{
//	  "version": 1,
//	  "valid": true,                 // false when errors is not empty
//	  "exitCode": 2,                 // Plan.ExitCode: 0 no change, 2 changes, 1 invalid, 3 a pod would not fit
//	  "summary": {"added": 1, "changed": 1, "removed": 0, "errors": 0},
//	  "changes": [{                  // in kind, namespace, name order
//	    "op": "changed",             // "added" | "changed" | "removed"
//	    "object": "Deployment shop/web",
//	    "kind": "Deployment", "namespace": "shop", "name": "web",  // namespace omitted when cluster-scoped
//	    "file": "apps/web.yaml", "line": 1,  // in HEAD; in BASE for a removed object; line omitted when unknown
//	    "fields": [{"path": "spec.replicas", "old": "3", "new": "5"}],  // [] unless op is "changed"; old/new omitted when absent
//	    "consequences": ["scale up 3 → 5"]
//	  }],
//	  "errors": [{                   // HEAD's validation errors and changes Kubernetes forbids
//	    "file": "apps/web.yaml", "line": 12, "object": "Deployment shop/web",
//	    "field": "spec.replicas", "message": "must be at least 0"   // object, field, line omitted when unknown
//	  }],
//	  "cluster": {                   // only with a dry run (shoal plan --cluster)
//	    "server": "10.77.0.11:7949", "running": "<commit>", "head": "<commit>",  // running omitted before the first pin
//	    "nodes": 3, "pods": 12,      // the live records read
//	    "skipped": "…",              // set, with the rest empty, when no dry run was made
//	    "unfit": 2,                  // pods that would fit on no node; exitCode 3 when not 0
//	    "workloads": [{              // in kind, namespace, name order; a bare Pod is its own workload
//	      "object": "Deployment shop/web", "kind": "Deployment", "namespace": "shop", "name": "web",
//	      "new": 3, "pending": 0, "stopping": 1,
//	      "placed": [{"node": "n1", "pods": 2}],
//	      "unfit": [{"pods": 1, "reason": "0/3 nodes are available: 3 insufficient cpu."}]
//	    }],
//	    "notSimulated": ["config-change rolls: …"]
//	  }
//	}
//
// Field values follow manifest.FieldChange: scalars as written, sub-trees as compact JSON, a
// Secret's values only as "(secret)" placeholders.
func WriteJSON(w io.Writer, p *Plan) error {
	out := jsonPlan{
		Version:  1,
		Valid:    p.Valid(),
		ExitCode: p.ExitCode(),
		Summary: jsonSummary{
			Added: p.Summary.Added, Changed: p.Summary.Changed, Removed: p.Summary.Removed,
			Errors: len(p.Errors),
		},
		Changes: make([]jsonChange, 0, len(p.Changes)),
		Errors:  make([]jsonError, 0, len(p.Errors)),
		Cluster: toJSONCluster(p.Cluster),
	}
	for _, c := range p.Changes {
		jc := jsonChange{
			Op:           c.Op.String(),
			Object:       c.Key.String(),
			Kind:         c.Key.Kind,
			Namespace:    c.Key.Namespace,
			Name:         c.Key.Name,
			File:         c.Source.File,
			Line:         c.Source.Line,
			Fields:       make([]jsonField, 0, len(c.Fields)),
			Consequences: append([]string{}, c.Consequences...),
		}
		for _, f := range c.Fields {
			jc.Fields = append(jc.Fields, jsonField(f))
		}
		out.Changes = append(out.Changes, jc)
	}
	for _, e := range p.Errors {
		je := jsonError{File: e.Source.File, Line: e.Source.Line, Field: e.Field, Message: e.Message}
		if !e.Object.IsZero() {
			je.Object = e.Object.String()
		}
		out.Errors = append(out.Errors, je)
	}
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetIndent("", "  ")
	// "→" and "<" stay readable; the output is not embedded in HTML.
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return err
	}
	_, err := w.Write(b.Bytes())
	return err
}

type jsonPlan struct {
	Version  int          `json:"version"`
	Valid    bool         `json:"valid"`
	ExitCode int          `json:"exitCode"`
	Summary  jsonSummary  `json:"summary"`
	Changes  []jsonChange `json:"changes"`
	Errors   []jsonError  `json:"errors"`
	Cluster  *jsonCluster `json:"cluster,omitempty"`
}

type jsonSummary struct {
	Added   int `json:"added"`
	Changed int `json:"changed"`
	Removed int `json:"removed"`
	Errors  int `json:"errors"`
}

type jsonChange struct {
	Op           string      `json:"op"`
	Object       string      `json:"object"`
	Kind         string      `json:"kind"`
	Namespace    string      `json:"namespace,omitempty"`
	Name         string      `json:"name"`
	File         string      `json:"file"`
	Line         int         `json:"line,omitempty"`
	Fields       []jsonField `json:"fields"`
	Consequences []string    `json:"consequences"`
}

// jsonField has manifest.FieldChange's layout so that it converts directly.
type jsonField struct {
	Path string `json:"path"`
	Old  string `json:"old,omitempty"`
	New  string `json:"new,omitempty"`
}

type jsonError struct {
	File    string `json:"file"`
	Line    int    `json:"line,omitempty"`
	Object  string `json:"object,omitempty"`
	Field   string `json:"field,omitempty"`
	Message string `json:"message"`
}

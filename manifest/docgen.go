package manifest

import (
	"bufio"
	"fmt"
	"io"
	"strings"
)

// WriteReference writes the manifest reference (docs/manifests.md): every supported kind and
// field, its type, its default and how shoal reads it, generated from the same allowlist the
// decoder enforces, so the reference cannot drift from the code. Regenerate the file with
// `go test ./manifest -run TestReference -update`.
func WriteReference(w io.Writer) error {
	bw := bufio.NewWriter(w)
	g := &refWriter{w: bw, seen: map[*valueSchema]bool{}}
	g.intro()
	for _, k := range supportedKinds.kinds {
		g.kind(k)
	}
	g.printf("## Shared fields\n\n")
	g.printf("Objects used by several kinds, documented once.\n\n")
	for i := 0; i < len(g.shared); i++ { // g.shared grows as sections link to more shared objects
		g.section("### "+g.shared[i].title, "", g.shared[i])
	}
	g.printf("%s", referenceDefaults)
	g.printf("\nEvery default, by kind and shared object:\n\n")
	for _, k := range supportedKinds.kinds {
		g.defaults(k.kind, k.schema)
	}
	for _, s := range g.shared {
		g.defaults(s.title, s)
	}
	return bw.Flush()
}

// defaults writes one list item naming the defaulted fields of s (shared objects apart).
func (g *refWriter) defaults(title string, s *valueSchema) {
	var items []string
	var walk func(prefix string, s *valueSchema)
	walk = func(prefix string, s *valueSchema) {
		for _, fd := range s.fields {
			p := fd.name
			if prefix != "" {
				p = prefix + "." + fd.name
			}
			if fd.def != "" {
				items = append(items, fmt.Sprintf("`%s`: %s", p, fd.def))
			}
			inner, suffix := fd.schema, ""
			if inner.kind == kList {
				inner, suffix = inner.elem, "[]"
			}
			if inner.kind == kObject && inner.title == "" {
				walk(p+suffix, inner)
			}
		}
	}
	walk("", s)
	if len(items) > 0 {
		g.printf("- **%s**: %s.\n", title, strings.Join(items, "; "))
	}
}

type refWriter struct {
	w      *bufio.Writer
	shared []*valueSchema // shared objects to document, in order of first mention
	seen   map[*valueSchema]bool
}

func (g *refWriter) printf(format string, args ...any) {
	fmt.Fprintf(g.w, format, args...)
}

func (g *refWriter) intro() {
	g.printf("%s", referenceIntro)
	g.printf("| kind | apiVersion | scope | what it is |\n|---|---|---|---|\n")
	for _, k := range supportedKinds.kinds {
		scope := "namespaced"
		if !k.namespaced {
			scope = "cluster"
		}
		g.printf("| [%s](#%s) | `%s` | %s | %s |\n", k.kind, strings.ToLower(k.kind), k.apiVersion, scope, k.doc)
	}
	g.printf("\n")
}

func (g *refWriter) kind(k *kindInfo) {
	g.section("## "+k.kind, fmt.Sprintf("`apiVersion: %s`, `kind: %s`. %s", k.apiVersion, k.kind, k.doc), k.schema)
}

// section writes a heading and one table row per field, inline objects expanded in place and
// shared objects linked.
func (g *refWriter) section(heading, doc string, s *valueSchema) {
	g.printf("%s\n\n", heading)
	if doc == "" {
		doc = s.doc
	}
	if doc != "" {
		g.printf("%s\n\n", doc)
	}
	g.printf("| field | type | default | notes |\n|---|---|---|---|\n")
	g.rows("", s)
	g.printf("\n")
}

func (g *refWriter) rows(prefix string, s *valueSchema) {
	for _, fd := range s.fields {
		p := fd.name
		if prefix != "" {
			p = prefix + "." + fd.name
		}
		def := fd.def
		if def != "" && !strings.Contains(def, " ") {
			def = "`" + strings.Trim(def, `"`) + "`"
			if def == "``" {
				def = "empty"
			}
		}
		g.printf("| `%s` | %s | %s | %s |\n", p, g.typeName(fd.schema), mdCell(def), mdCell(fd.doc))
		inner, suffix := fd.schema, ""
		if inner.kind == kList {
			inner, suffix = inner.elem, "[]"
		}
		if inner.kind == kObject && inner.title == "" {
			g.rows(p+suffix, inner)
		}
	}
}

// typeName names a value's type; a shared object is linked and queued for its own section.
func (g *refWriter) typeName(s *valueSchema) string {
	switch s.kind {
	case kString:
		return "string"
	case kInt32:
		return "integer (32-bit)"
	case kInt64:
		return "integer"
	case kBool:
		return "boolean"
	case kQuantity:
		return "quantity"
	case kIntOrString:
		return "integer or string"
	case kBase64:
		return "base64 string"
	case kSecretData:
		return "map: any key → ENC[...] ciphertext"
	case kSOPS:
		return "mapping, kept as written"
	case kList:
		return "list of " + g.typeName(s.elem)
	case kMap:
		return "map: any key → " + g.typeName(s.elem)
	case kObject:
		if s.title == "" {
			return "object"
		}
		if !g.seen[s] {
			g.seen[s] = true
			g.shared = append(g.shared, s)
		}
		return fmt.Sprintf("[%s](#%s)", s.title, strings.ToLower(s.title))
	}
	return "?"
}

func mdCell(s string) string {
	return strings.ReplaceAll(s, "|", `\|`)
}

const referenceIntro = `# Manifest reference

<!-- Generated from manifest/fields.go by ` + "`go test ./manifest -run TestReference -update`" + `. Do not edit by hand. -->

shoal runs what a Git repository of Kubernetes-style manifests describes. This page lists every
kind and every field shoal reads. **A field that is not listed here is an error**, even when
Kubernetes has it: shoal refuses what it would not act on rather than ignore it silently.

## How shoal reads a repository

- **Files.** Every ` + "`*.yaml`, `*.yml` and `*.json`" + ` file under the repository root (or the
  directory shoal is pointed at), in any subdirectory. Hidden files and directories (a name
  starting with ` + "`.`" + `, such as ` + "`.git` and `.github`" + `) are never read. A
  ` + "`.shoalignore`" + ` file at the root lists more paths to skip, in ` + "`.gitignore`" + ` syntax.
- **Documents.** A YAML file may hold many documents separated by ` + "`---`" + `; a JSON file holds
  one or more JSON objects. Empty and comment-only documents are skipped. Each document is one
  object; its identity is its kind, namespace and name, which must be unique.
- **Strict decoding.** A misspelt field is an ` + "`unknown field`" + ` error, with a suggestion
  when one is close; a real Kubernetes field that shoal does not act on is
  ` + "`... is not supported by shoal`" + `. A ` + "`status`" + ` block is not supported: shoal
  owns status. Duplicate keys are errors. Every error names the file, the line, the object and
  the field, and all of them are reported at once.
- **Values.** Types are checked as written: a string field given a number or a boolean must be
  quoted (` + "`value: \"8080\"`" + `); integers may be written in decimal, ` + "`0x`, `0o`" + `
  or the octal ` + "`0644`" + ` used for file modes; booleans are ` + "`true`/`false`" + ` (the YAML
  1.1 spellings ` + "`yes`, `no`, `on`, `off`" + ` are accepted unquoted); a quantity is a
  Kubernetes quantity (` + "`250m`, `0.5`, `64Mi`, `1Gi`" + `); an integer-or-string is a port number or
  name, or a count or a percentage. YAML anchors, aliases and merge keys are expanded.
- **Restricted values.** Where the notes list the accepted values (` + "`ClusterFirst or Default`" + `),
  the field is read as written and the value is checked by validation, which also checks
  names, references between objects and everything else that needs the whole repository.
- **Field paths** in errors are written as in the YAML: ` + "`spec.template.spec.containers[0].image`" + `;
  keys of maps whose keys you choose are in brackets: ` + "`metadata.labels[app.kubernetes.io/name]`" + `,
  ` + "`data[config.yaml]`" + `.
- **Defaults** are Kubernetes' defaults (the ` + "`default`" + ` column; summary at the end).

## Secrets

A Secret's values are never in Git in plaintext. Encrypt the file with
[sops](https://github.com/getsops/sops) using [age](https://age-encryption.org) recipients,
encrypting only the values:

` + "```" + `
sops --encrypt --age age1... --encrypted-regex '^(data|stringData)$' --in-place secret.yaml
` + "```" + `

Every ` + "`data` and `stringData`" + ` value must then be ciphertext (` + "`ENC[AES256_GCM,data:...]`" + `),
and the ` + "`sops`" + ` block must be present. A Secret with a plaintext value is refused (the
error names the field, never the value). shoal records each key and a SHA-256 digest of its
ciphertext, so a change is noticed; only a node that runs a pod using the Secret decrypts it,
into memory.

## Kinds

`

const referenceDefaults = `## Defaults

Defaults are Kubernetes' defaults (as in Kubernetes' ` + "`defaults.go`" + ` files), applied to the
fields shoal supports; each is listed in the ` + "`default`" + ` column above. Three differ on purpose:

- A Job's or CronJob's pod template gets no default ` + "`restartPolicy`" + `: it must be set to
  ` + "`OnFailure` or `Never`" + ` (Kubernetes would default it to ` + "`Always`" + ` and then reject it).
- Where a container sets a resource's limit but not its request, the request is the limit. Kubernetes
  does this when it creates a pod; shoal does it in every pod template, since it makes pods
  from templates directly.
- A CronJob's ` + "`jobTemplate.spec`" + ` gets the Job defaults it would get once its Job is
  created, and a StatefulSet's ` + "`RollingUpdate`" + ` strategy gets ` + "`rollingUpdate.partition: 0`" + `
  where Kubernetes leaves ` + "`rollingUpdate`" + ` unset, which means the same.

Other defaults, in brief: a namespaced object without ` + "`metadata.namespace`" + ` is in
` + "`default`" + `; a volume with no source is an ` + "`emptyDir`" + `; an env or downward API
` + "`fieldRef`" + ` gets ` + "`apiVersion: v1`" + `; a HorizontalPodAutoscaler without metrics scales
on cpu at 80% average utilization, and a ` + "`behavior`" + ` that is set has each unset part filled
in (scale up: no stabilization window, at most 4 pods or 100% per 15 seconds, whichever is more;
scale down: a 300-second window, at most 100% per 15 seconds).
`

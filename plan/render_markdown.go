package plan

import (
	"bytes"
	"fmt"
	"io"
	"strings"

	"github.com/shoal-dev/shoal/manifest"
)

// WriteMarkdown writes the plan as a pull-request comment (GitHub-flavoured markdown): a summary
// line, HEAD's validity, a table of changes with what each does, a collapsed details section
// with the field differences as diff blocks, and the errors.
//
// Everything that comes from a repository (names, paths, values, messages) is escaped or fenced,
// so a manifest cannot inject markup into the comment.
func WriteMarkdown(w io.Writer, p *Plan) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "### shoal plan: %s\n\n", headline(p))
	if !p.Valid() {
		fmt.Fprintf(&b, "**HEAD is invalid** (%s): a cluster refuses it as a whole and keeps running the last good commit. The errors are listed below.\n\n",
			count(len(p.Errors), "error"))
	}

	if len(p.Changes) > 0 {
		b.WriteString("| | Object | File | What happens |\n|:-:|---|---|---|\n")
		for _, c := range p.Changes {
			whats := make([]string, len(c.Consequences))
			for i, s := range c.Consequences {
				whats[i] = mdText(s)
			}
			fmt.Fprintf(&b, "| %s | %s | %s | %s |\n",
				mdCode(symbol(c.Op)), mdText(c.Key.String()), mdCode(c.Source.File), strings.Join(whats, "<br>"))
		}
		b.WriteString("\n")
	}

	var detailed []Change
	fields := 0
	for _, c := range p.Changes {
		if len(c.Fields) > 0 {
			detailed = append(detailed, c)
			fields += len(c.Fields)
		}
	}
	if len(detailed) > 0 {
		fmt.Fprintf(&b, "<details>\n<summary>Field changes (%s in %s)</summary>\n\n",
			count(fields, "field"), count(len(detailed), "object"))
		for _, c := range detailed {
			fmt.Fprintf(&b, "#### %s %s\n\n", mdCode(symbol(c.Op)), mdText(c.Key.String()))
			var lines []string
			for _, f := range c.Fields {
				lines = append(lines, diffBlockLines(f)...)
			}
			writeFence(&b, "diff", lines)
			b.WriteString("\n")
		}
		b.WriteString("</details>\n\n")
	}

	if p.Cluster != nil {
		writeClusterMarkdown(&b, p.Cluster)
	}

	if len(p.Errors) > 0 {
		b.WriteString("#### Errors\n\n")
		for _, e := range p.Errors {
			b.WriteString("- " + mdCode(e.Source.String()))
			if !e.Object.IsZero() {
				b.WriteString(" " + mdText(e.Object.String()))
			}
			if e.Field != "" {
				b.WriteString(" " + mdCode(e.Field))
			}
			b.WriteString(": " + mdText(e.Message) + "\n")
		}
		b.WriteString("\n")
	}
	_, err := w.Write(bytes.TrimRight(b.Bytes(), "\n"))
	if err != nil {
		return err
	}
	_, err = io.WriteString(w, "\n")
	return err
}

// diffBlockLines renders a field change for a ```diff block, where GitHub colours "-" and "+"
// lines: "- path: old" then "+ path: new"; a multi-line value as the path and a line diff.
func diffBlockLines(f manifest.FieldChange) []string {
	if strings.Contains(f.Old, "\n") || strings.Contains(f.New, "\n") {
		out := []string{"  " + f.Path + ":"}
		for _, l := range lineDiff(splitLines(f.Old), splitLines(f.New)) {
			out = append(out, string(l.op)+"   "+l.text)
		}
		return out
	}
	var out []string
	if f.Old != "" {
		out = append(out, "- "+f.Path+": "+textValue(f.Old))
	}
	if f.New != "" {
		out = append(out, "+ "+f.Path+": "+textValue(f.New))
	}
	return out
}

// writeFence writes lines as a fenced code block whose fence is longer than any run of
// backticks inside, so no value can close it early.
func writeFence(b *bytes.Buffer, lang string, lines []string) {
	fence := strings.Repeat("`", max(3, longestRun(strings.Join(lines, "\n"), '`')+1))
	b.WriteString(fence + lang + "\n")
	for _, l := range lines {
		b.WriteString(l + "\n")
	}
	b.WriteString(fence + "\n")
}

func longestRun(s string, c byte) int {
	best, run := 0, 0
	for i := 0; i < len(s); i++ {
		if s[i] == c {
			run++
			best = max(best, run)
		} else {
			run = 0
		}
	}
	return best
}

// mdText escapes text for a markdown paragraph or table cell: markup characters are
// backslash-escaped, HTML is neutralised and a newline becomes a break.
func mdText(s string) string {
	var b strings.Builder
	for _, r := range s {
		switch r {
		case '\\', '`', '*', '_', '[', ']', '|', '~', '#', '!':
			b.WriteByte('\\')
			b.WriteRune(r)
		case '<':
			b.WriteString("&lt;")
		case '>':
			b.WriteString("&gt;")
		case '&':
			b.WriteString("&amp;")
		case '\n':
			b.WriteString("<br>")
		case '\r':
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// mdCode renders s as inline code that survives a table cell: the delimiter is longer than any
// backtick run inside, and a pipe is escaped (GitHub honours \| inside code in tables).
func mdCode(s string) string {
	s = strings.ReplaceAll(strings.ReplaceAll(s, "\n", " "), "|", `\|`)
	tick := strings.Repeat("`", longestRun(s, '`')+1)
	if strings.HasPrefix(s, "`") || strings.HasSuffix(s, "`") {
		s = " " + s + " "
	}
	return tick + s + tick
}

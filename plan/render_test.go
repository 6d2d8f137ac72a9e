package plan

import (
	"bytes"
	"encoding/json"
	"flag"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/shoal-dev/shoal/manifest"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/ with the current output")

// renderers are the three output formats, by golden-file extension.
var renderers = []struct {
	ext   string
	write func(io.Writer, *Plan) error
}{
	{"txt", WriteText},
	{"json", WriteJSON},
	{"md", WriteMarkdown},
}

// loadScenario plans testdata/<name>/base → testdata/<name>/head, each loaded and validated as
// `shoal plan` does.
func loadScenario(t *testing.T, name string) *Plan {
	t.Helper()
	dir := filepath.Join("testdata", name)
	base, baseErrs := manifest.Load(os.DirFS(filepath.Join(dir, "base")), ".")
	if len(baseErrs) > 0 {
		t.Fatalf("%s: base must be valid:\n%v", name, baseErrs)
	}
	head, headErrs := manifest.Load(os.DirFS(filepath.Join(dir, "head")), ".")
	return Compute(base, head, headErrs)
}

// TestGolden renders each scenario in every format and compares with testdata/<name>.<ext>.
// Run `go test ./plan -run TestGolden -update` to rewrite them, and review the diff.
func TestGolden(t *testing.T) {
	for _, sc := range []struct {
		name     string
		exitCode int
	}{
		{"shop", 2},
		{"invalid", 1},
	} {
		p := loadScenario(t, sc.name)
		if got := p.ExitCode(); got != sc.exitCode {
			t.Errorf("%s: ExitCode = %d, want %d; errors: %v", sc.name, got, sc.exitCode, p.Errors)
		}
		for _, r := range renderers {
			t.Run(sc.name+"."+r.ext, func(t *testing.T) {
				var buf bytes.Buffer
				if err := r.write(&buf, p); err != nil {
					t.Fatal(err)
				}
				assertNoCiphertext(t, buf.String())
				golden := filepath.Join("testdata", sc.name+"."+r.ext)
				if *update {
					if err := os.WriteFile(golden, buf.Bytes(), 0o644); err != nil {
						t.Fatal(err)
					}
					return
				}
				want, err := os.ReadFile(golden)
				if err != nil {
					t.Fatalf("%v (run with -update to create it)", err)
				}
				if !bytes.Equal(buf.Bytes(), want) {
					t.Errorf("%s differs from the output (run with -update and review the diff):\n--- got\n%s\n--- want\n%s", golden, buf.Bytes(), want)
				}
			})
		}
	}
}

// assertNoCiphertext fails if any piece of a Secret value from the scenarios (ciphertext,
// its base64 payload, the decoded marker inside it) reaches an output.
func assertNoCiphertext(t *testing.T, out string) {
	t.Helper()
	for _, needle := range []string{
		"ENC[", "AES256_GCM", "QkFTRS1QQVNTV09SRC1DSVBIRVI", "SEVBRC1QQVNTV09SRC1DSVBIRVI", "SEVBRC1UT0tFTi1DSVBIRVI",
		"QkFTRS1VU0VSLUNJUEhFUg", "BASE-PASSWORD-CIPHER", "HEAD-PASSWORD-CIPHER", "HEAD-TOKEN-CIPHER", "BEGIN AGE",
	} {
		if strings.Contains(out, needle) {
			t.Errorf("output contains secret material %q:\n%s", needle, out)
		}
	}
}

func TestSecretPlaintextNeverRendered(t *testing.T) {
	// Even a Secret that somehow carries values in its typed object (a plaintext Secret, which
	// validation refuses) shows only key names in every format.
	base := decodeSetAllowingErrors(t, `
apiVersion: v1
kind: Secret
metadata: {name: api, namespace: shop}
stringData: {token: hunter2-plaintext-token}
`)
	head := decodeSetAllowingErrors(t, `
apiVersion: v1
kind: Secret
metadata: {name: api, namespace: shop}
stringData: {token: correct-horse-battery, extra: another-plaintext}
`)
	p := Compute(base, head, nil)
	if len(p.Changes) != 1 {
		t.Fatalf("changes = %+v, want the Secret's", p.Changes)
	}
	for _, r := range renderers {
		var buf bytes.Buffer
		if err := r.write(&buf, p); err != nil {
			t.Fatal(err)
		}
		for _, v := range []string{"hunter2", "correct-horse", "another-plaintext"} {
			if strings.Contains(buf.String(), v) {
				t.Errorf("%s output contains the value %q:\n%s", r.ext, v, buf.String())
			}
		}
		if !strings.Contains(buf.String(), "extra") {
			t.Errorf("%s output does not name the added key:\n%s", r.ext, buf.String())
		}
	}
}

// decodeSetAllowingErrors decodes a document that is meant to be invalid but still decodes.
func decodeSetAllowingErrors(t *testing.T, doc string) *manifest.Set {
	t.Helper()
	objs, _ := manifest.Decode("secret.yaml", []byte(strings.TrimLeft(doc, "\n")))
	if len(objs) == 0 {
		t.Fatalf("fixture did not decode to an object:\n%s", doc)
	}
	s, _ := manifest.NewSet(objs)
	return s
}

func TestJSONShape(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteJSON(&buf, loadScenario(t, "shop")); err != nil {
		t.Fatal(err)
	}
	var got struct {
		Version  int  `json:"version"`
		Valid    bool `json:"valid"`
		ExitCode int  `json:"exitCode"`
		Summary  struct {
			Added, Changed, Removed, Errors int
		} `json:"summary"`
		Changes []struct {
			Op, Object, Kind, Namespace, Name, File string
			Line                                    int
			Fields                                  []map[string]string
			Consequences                            []string
		} `json:"changes"`
		Errors []map[string]any `json:"errors"`
	}
	dec := json.NewDecoder(&buf)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&got); err != nil {
		t.Fatalf("the JSON does not have the documented shape: %v", err)
	}
	if got.Version != 1 || !got.Valid || got.ExitCode != 2 || got.Errors == nil {
		t.Errorf("header = version %d valid %v exitCode %d errors %v", got.Version, got.Valid, got.ExitCode, got.Errors)
	}
	if n := got.Summary.Added + got.Summary.Changed + got.Summary.Removed; n != len(got.Changes) {
		t.Errorf("summary counts %d changes, list has %d", n, len(got.Changes))
	}
	for _, c := range got.Changes {
		if c.Fields == nil || len(c.Consequences) == 0 || c.File == "" || c.Line == 0 {
			t.Errorf("%s: fields %v, consequences %v, file %q line %d: want all present", c.Object, c.Fields, c.Consequences, c.File, c.Line)
		}
		if (c.Op == "changed") != (len(c.Fields) > 0) {
			t.Errorf("%s %s has %d fields", c.Op, c.Object, len(c.Fields))
		}
	}
}

func TestNoChanges(t *testing.T) {
	s := decodeSet(t, deployWeb)
	p := Compute(s, s, nil)
	want := map[string]string{
		"txt":  "No changes.\n",
		"md":   "### shoal plan: no changes\n",
		"json": `"changes": []`,
	}
	for _, r := range renderers {
		var buf bytes.Buffer
		if err := r.write(&buf, p); err != nil {
			t.Fatal(err)
		}
		if !strings.Contains(buf.String(), want[r.ext]) {
			t.Errorf("%s = %q, want it to contain %q", r.ext, buf.String(), want[r.ext])
		}
	}
}

func TestTextColor(t *testing.T) {
	p := loadScenario(t, "invalid")
	var plain, color bytes.Buffer
	if err := WriteText(&plain, p); err != nil {
		t.Fatal(err)
	}
	if err := (TextOptions{Color: true}).WriteText(&color, p); err != nil {
		t.Fatal(err)
	}
	if strings.Contains(plain.String(), "\x1b[") {
		t.Errorf("plain text has escape codes:\n%q", plain.String())
	}
	if !strings.Contains(color.String(), ansiRed+"HEAD is invalid") {
		t.Errorf("coloured text does not colour the errors:\n%q", color.String())
	}
	stripped := strings.NewReplacer(ansiReset, "", ansiRed, "", ansiGreen, "", ansiYellow, "", ansiCyan, "", ansiBold, "").Replace(color.String())
	if stripped != plain.String() {
		t.Errorf("colour changes more than colour:\n%s\nvs\n%s", stripped, plain.String())
	}
}

func TestMarkdownEscapesRepositoryText(t *testing.T) {
	p := &Plan{
		Changes: []Change{{
			Key:          manifest.Key{Kind: "ConfigMap", Namespace: "shop", Name: "x"},
			Op:           manifest.Changed,
			Source:       manifest.Source{File: "a|b`c.yaml", Line: 1},
			Fields:       []manifest.FieldChange{{Path: "data[page.md]", Old: "```\n<b>old</b>", New: "````\nnew"}},
			Consequences: []string{"schedule */5 * * * * | <script>alert(1)</script> [x](y)"},
		}},
		Summary: Summary{Changed: 1},
	}
	var buf bytes.Buffer
	if err := WriteMarkdown(&buf, p); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, bad := range []string{"<script>", " | <", "*/5 *", "[x](y)"} {
		if strings.Contains(out, bad) {
			t.Errorf("markdown contains unescaped %q:\n%s", bad, out)
		}
	}
	// The table row keeps exactly its four cells.
	for _, l := range strings.Split(out, "\n") {
		if strings.HasPrefix(l, "| `~`") {
			if n := strings.Count(l, "|") - strings.Count(l, `\|`); n != 5 {
				t.Errorf("table row has %d cell separators, want 5: %s", n, l)
			}
		}
	}
	// The diff block's fence is longer than the longest backtick run in a value.
	if !strings.Contains(out, "`````diff\n") {
		t.Errorf("diff fence not lengthened past the value's backticks:\n%s", out)
	}
}

func TestLineDiff(t *testing.T) {
	lines := func(s string) []string { return strings.Split(s, ",") }
	render := func(d []diffLine) string {
		var parts []string
		for _, l := range d {
			parts = append(parts, string(l.op)+l.text)
		}
		return strings.Join(parts, "|")
	}
	for _, tc := range []struct{ a, b, want string }{
		{"a,b,c", "a,x,c", " a|-b|+x| c"},
		{"a,b", "a,b,c", " a| b|+c"},
		// Far from the change, unchanged lines collapse.
		{"1,2,3,4,5,6,7,8", "1,2,3,4,5,6,7,X", " … 5 unchanged lines| 6| 7|-8|+X"},
	} {
		if got := render(lineDiff(lines(tc.a), lines(tc.b))); got != tc.want {
			t.Errorf("lineDiff(%s → %s) = %s, want %s", tc.a, tc.b, got, tc.want)
		}
	}
}

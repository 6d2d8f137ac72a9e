package manifest

import (
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"testing"
	"testing/fstest"
)

func loadedKeys(s *Set) []string {
	var keys []string
	for _, o := range s.Objects() {
		keys = append(keys, o.Key.String()+" @ "+o.Source.String())
	}
	return keys
}

var goodKeys = []string{
	"ConfigMap shop/kept @ shop/keep.draft.yaml:1",
	"ConfigMap shop/web-config @ shop/config.json:1",
	"ConfigMap shop/web-flags @ shop/config.json:7",
	"CronJob ops/backup @ ops/jobs.yml:1",
	"DaemonSet ops/node-agent @ ops/agent.yaml:1",
	"Deployment shop/web @ shop/web.yaml:1",
	"HorizontalPodAutoscaler shop/web @ ops/agent.yaml:70",
	"Job ops/migrate @ ops/jobs.yml:18",
	"Namespace ops @ namespaces.yaml:12",
	"Namespace shop @ namespaces.yaml:3",
	"Pod ops/debug @ ops/pod.yaml:1",
	"Secret shop/db @ shop/db-secret.yaml:1",
	"Service ops/db @ ops/agent.yaml:58",
	"Service shop/web @ shop/web.yaml:48",
	"StatefulSet ops/db @ ops/agent.yaml:28",
}

// TestLoadGood loads a clean repository: .shoalignore (with a negation) and hidden directories
// are honoured, non-manifest files are skipped, and nothing is wrong.
func TestLoadGood(t *testing.T) {
	set, errs := Load(os.DirFS("testdata/good"), ".")
	if len(errs) > 0 {
		t.Fatalf("errors:\n%v", errs)
	}
	if got := loadedKeys(set); !slices.Equal(got, goodKeys) {
		t.Errorf("objects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(goodKeys, "\n"))
	}
}

// TestLoadSubdirectory: paths are relative to the directory loaded, and its .shoalignore is the
// one read.
func TestLoadSubdirectory(t *testing.T) {
	set, errs := Load(os.DirFS("testdata"), "good")
	if len(errs) > 0 {
		t.Fatalf("errors:\n%v", errs)
	}
	if got := loadedKeys(set); !slices.Equal(got, goodKeys) {
		t.Errorf("objects:\n%s", strings.Join(got, "\n"))
	}
}

// TestLoadBad: every file's decode errors come back from Load, sorted, and the objects that
// decoded are in the set.
func TestLoadBad(t *testing.T) {
	fsys := os.DirFS("testdata/bad")
	set, errs := Load(fsys, ".")
	if !sort.SliceIsSorted(errs, func(i, j int) bool {
		a, b := errs[i], errs[j]
		if a.Source.File != b.Source.File {
			return a.Source.File < b.Source.File
		}
		return a.Source.Line < b.Source.Line
	}) {
		t.Errorf("errors not sorted:\n%v", errs)
	}
	entries, err := os.ReadDir("testdata/bad")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		data, err := os.ReadFile(path.Join("testdata/bad", e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		objs, decodeErrs := Decode(e.Name(), data)
		for _, de := range decodeErrs {
			if !slices.ContainsFunc(errs, func(le *Error) bool { return *le == *de }) {
				t.Errorf("Load lacks %v", de)
			}
		}
		for _, o := range objs {
			if set.Get(o.Key) == nil {
				t.Errorf("set lacks %s", o.Key)
			}
		}
	}
}

func TestLoadIgnoreAndHidden(t *testing.T) {
	ns := func(name string) *fstest.MapFile {
		return &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + name + "\n")}
	}
	bad := &fstest.MapFile{Data: []byte("not: [a manifest\n")}
	fsys := fstest.MapFS{
		"repo/.shoalignore":         {Data: []byte("# comment\n\n*.json\n!keep.json\nbuild/\n/top.yaml\ndocs/**/*.yml\n")},
		"repo/a.yaml":               ns("a"),
		"repo/keep.json":            {Data: []byte(`{"apiVersion":"v1","kind":"Namespace","metadata":{"name":"keep"}}`)},
		"repo/drop.json":            bad,
		"repo/build/out.yaml":       bad,
		"repo/sub/build/out.yaml":   bad,
		"repo/top.yaml":             bad,
		"repo/sub/top.yaml":         ns("subtop"),
		"repo/docs/x/y/z.yml":       bad,
		"repo/docs/x/y/z.yaml":      ns("docs"),
		"repo/.github/ci.yml":       bad,
		"repo/sub/.hidden.yaml":     bad,
		"repo/sub/notes.txt":        bad,
		"repo/UPPER.YAML":           ns("upper"),
		"repo/deep/er/than/b.yml":   ns("b"),
		"outside.yaml":              bad,
		"repo-sibling/other.yaml":   bad,
		"repo/sub/kustomization.md": bad,
	}
	set, errs := Load(fsys, "repo")
	if len(errs) > 0 {
		t.Fatalf("errors:\n%v", errs)
	}
	want := []string{
		"Namespace a @ a.yaml:1",
		"Namespace b @ deep/er/than/b.yml:1",
		"Namespace docs @ docs/x/y/z.yaml:1",
		"Namespace keep @ keep.json:1",
		"Namespace subtop @ sub/top.yaml:1",
		"Namespace upper @ UPPER.YAML:1",
	}
	if got := loadedKeys(set); !slices.Equal(got, want) {
		t.Errorf("objects:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func TestLoadDuplicatesAcrossFiles(t *testing.T) {
	cm := &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: c\n  namespace: default\n")}
	set, errs := Load(fstest.MapFS{"a.yaml": cm, "b/c.yaml": cm}, ".")
	if set.Len() != 1 || set.Get(Key{Kind: "ConfigMap", Namespace: "default", Name: "c"}).Source.File != "a.yaml" {
		t.Errorf("set: %v", loadedKeys(set))
	}
	if len(errs) != 1 || errs[0].Source.File != "b/c.yaml" || !strings.Contains(errs[0].Message, "already defined at a.yaml:1") {
		t.Errorf("errors: %v", errs)
	}
}

func TestLoadMissingDirectory(t *testing.T) {
	set, errs := Load(fstest.MapFS{}, "nope")
	if set == nil || set.Len() != 0 {
		t.Errorf("set %v", set)
	}
	if len(errs) != 1 || errs[0].Source.File != "nope" {
		t.Errorf("errors: %v", errs)
	}
	if _, errs := Load(fstest.MapFS{}, "../up"); len(errs) != 1 {
		t.Errorf("invalid path: %v", errs)
	}
}

// TestLoadDeterministic: parallel decoding does not change the result.
func TestLoadDeterministic(t *testing.T) {
	fsys := benchRepo(600, 7)
	fsys["apps/broken.yaml"] = &fstest.MapFile{Data: []byte("apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: x\n  namespace: team-1\nspec: {}\n---\nkind: Nope\n")}
	first, firstErrs := Load(fsys, ".")
	if first.Len() != 611 || len(firstErrs) != 2 {
		t.Fatalf("%d objects, errors %v", first.Len(), firstErrs)
	}
	for range 3 {
		again, errs := Load(fsys, ".")
		if !slices.Equal(loadedKeys(again), loadedKeys(first)) || errs.Error() != firstErrs.Error() {
			t.Fatal("Load is not deterministic")
		}
	}
}

package manifest

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/util/intstr"
)

var updateReference = flag.Bool("update", false, "rewrite docs/manifests.md from the allowlist")

// TestReference keeps docs/manifests.md equal to what WriteReference generates from the
// allowlist. Run `go test ./manifest -run TestReference -update` after changing fields.go.
func TestReference(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteReference(&buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join("..", "docs", "manifests.md")
	if *updateReference {
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, buf.Bytes(), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	got, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (generate it with: go test ./manifest -run TestReference -update)", err)
	}
	if !bytes.Equal(got, buf.Bytes()) {
		gl, wl := strings.Split(string(got), "\n"), strings.Split(buf.String(), "\n")
		for i := 0; i < len(gl) || i < len(wl); i++ {
			var g, w string
			if i < len(gl) {
				g = gl[i]
			}
			if i < len(wl) {
				w = wl[i]
			}
			if g != w {
				t.Fatalf("docs/manifests.md is stale from line %d:\n have: %s\n want: %s\nregenerate it with: go test ./manifest -run TestReference -update", i+1, g, w)
			}
		}
	}
}

// TestReferenceMentionsEveryField guards the generator: every allowlisted field path appears.
func TestReferenceMentionsEveryField(t *testing.T) {
	var buf bytes.Buffer
	if err := WriteReference(&buf); err != nil {
		t.Fatal(err)
	}
	doc := buf.String()
	for _, k := range supportedKinds.kinds {
		if !strings.Contains(doc, "## "+k.kind+"\n") {
			t.Errorf("no section for %s", k.kind)
		}
	}
	for _, want := range []string{"`spec.strategy.rollingUpdate.maxSurge`", "`livenessProbe`", "`hostPath.type`", "### PodSpec", "### Container", "[Probe](#probe)", "`spec.behavior.scaleUp`"} {
		if !strings.Contains(doc, want) {
			t.Errorf("reference lacks %s", want)
		}
	}
}

// TestAllowlistMatchesUpstreamTypes checks every allowlisted field against the upstream Go type
// it decodes into: the field must exist (by its JSON name) and have the type the decoder checks
// for, so the allowlist can never promise a field the typed object cannot hold.
func TestAllowlistMatchesUpstreamTypes(t *testing.T) {
	for _, k := range supportedKinds.kinds {
		typ := reflect.TypeOf(k.new()).Elem()
		checkSchema(t, k.kind, typ, k.schema)
	}
}

var (
	quantityType    = reflect.TypeOf(resource.Quantity{})
	intOrStringType = reflect.TypeOf(intstr.IntOrString{})
)

func checkSchema(t *testing.T, path string, typ reflect.Type, s *valueSchema) {
	t.Helper()
	for typ.Kind() == reflect.Pointer {
		typ = typ.Elem()
	}
	ok := true
	switch s.kind {
	case kString:
		ok = typ.Kind() == reflect.String
	case kInt32:
		ok = typ.Kind() == reflect.Int32
	case kInt64:
		ok = typ.Kind() == reflect.Int64
	case kBool:
		ok = typ.Kind() == reflect.Bool
	case kQuantity:
		ok = typ == quantityType
	case kIntOrString:
		ok = typ == intOrStringType
	case kBase64, kSecretData:
		ok = typ.Kind() == reflect.Slice && typ.Elem().Kind() == reflect.Uint8 ||
			typ.Kind() == reflect.Map || typ.Kind() == reflect.String
	case kSOPS:
		return // not part of the typed object
	case kList:
		if ok = typ.Kind() == reflect.Slice; ok {
			checkSchema(t, path+"[]", typ.Elem(), s.elem)
		}
	case kMap:
		if ok = typ.Kind() == reflect.Map && typ.Key().Kind() == reflect.String; ok {
			checkSchema(t, path+"[]", typ.Elem(), s.elem)
		}
	case kObject:
		if typ.Kind() == reflect.Map { // a ResourceList written as an object of known keys
			for _, fd := range s.fields {
				checkSchema(t, path+"."+fd.name, typ.Elem(), fd.schema)
			}
			return
		}
		if ok = typ.Kind() == reflect.Struct; ok {
			for _, fd := range s.fields {
				if fd.schema.kind == kSOPS {
					continue // read apart, never part of the typed object
				}
				ft, found := jsonField(typ, fd.name)
				if !found {
					t.Errorf("%s.%s: allowlisted but not a field of %s", path, fd.name, typ)
					continue
				}
				checkSchema(t, path+"."+fd.name, ft, fd.schema)
			}
		}
	}
	if !ok {
		t.Errorf("%s: allowlist kind %d does not fit Go type %s", path, s.kind, typ)
	}
}

// jsonField finds a struct field by its JSON name, looking into inlined (embedded) structs.
func jsonField(typ reflect.Type, name string) (reflect.Type, bool) {
	for i := 0; i < typ.NumField(); i++ {
		sf := typ.Field(i)
		tag := sf.Tag.Get("json")
		tagName, opts, _ := strings.Cut(tag, ",")
		if tagName == name {
			return sf.Type, true
		}
		if (sf.Anonymous || strings.Contains(opts, "inline")) && tagName == "" {
			inner := sf.Type
			for inner.Kind() == reflect.Pointer {
				inner = inner.Elem()
			}
			if inner.Kind() == reflect.Struct {
				if ft, ok := jsonField(inner, name); ok {
					return ft, true
				}
			}
		}
	}
	return nil, false
}

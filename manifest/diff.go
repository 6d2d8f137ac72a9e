package manifest

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"reflect"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime"
)

// Op is what happened to an object between two sets.
type Op int

const (
	// Added: the object is in head only.
	Added Op = iota + 1
	// Removed: the object is in base only.
	Removed
	// Changed: the object is in both and at least one compared field differs.
	Changed
)

// String returns "added", "removed" or "changed"; these are also the JSON spellings.
func (o Op) String() string {
	switch o {
	case Added:
		return "added"
	case Removed:
		return "removed"
	case Changed:
		return "changed"
	}
	return "Op(" + strconv.Itoa(int(o)) + ")"
}

// MarshalText spells the op as String does, so JSON output reads "changed", not 3.
func (o Op) MarshalText() ([]byte, error) { return []byte(o.String()), nil }

// Change is one object that differs between base and head.
type Change struct {
	Key Key
	Op  Op
	// Base and Head are the object on each side; Base is nil when Added, Head nil when Removed.
	Base, Head *Object
	// Fields lists every differing field of a Changed object, ordered by path. It is empty for
	// Added and Removed: the whole object is new or gone.
	Fields []FieldChange
}

// FieldChange is one differing field.
//
// Path syntax: struct fields and simple map keys are joined with dots
// ("spec.template.spec.nodeSelector.disktype"); a map key that is not a plain identifier is
// written in brackets ("metadata.labels[app.kubernetes.io/name]"), and so is every key of a
// ConfigMap's or Secret's data ("data[nginx.conf]"). A list whose items are named is matched
// by name, not position, and its items are written by name: containers, initContainers, env,
// ports, volumes, imagePullSecrets... use "name" ("containers[web].image"); volumeMounts use
// "mountPath" ("volumeMounts[/data].readOnly") and volumeDevices "devicePath", because
// Kubernetes does not require those names to be unique; a StatefulSet's volumeClaimTemplates
// use their metadata.name ("volumeClaimTemplates[data].spec"). A list is matched by name only
// when every item on both sides has a distinct, non-empty name; otherwise items are matched by
// index ("tolerations[0].key"). A list of scalars (command, args) is compared as a whole. When the
// items of a named list are the same but their order changed, the change is reported on the
// list's own path with the old and new order of names.
//
// Values: Old and New are rendered values: a string as is (the empty string as `""`), numbers
// and booleans as Go prints them, a list or object as compact JSON with sorted keys. An empty
// Old means the field was absent in base, an empty New that it is absent in head. Absent,
// null, an empty list and an empty object are the same thing.
//
// A Secret never contributes a value: its data keys are reported as "data[KEY]" with Old/New
// set to SecretPlaceholder or ChangedSecretPlaceholder, decided from ciphertext digests.
type FieldChange struct {
	Path     string
	Old, New string
}

// Placeholders stand in for secret values in a FieldChange.
const (
	SecretPlaceholder        = "(secret)"
	ChangedSecretPlaceholder = "(changed secret)"
)

// Diff compares two sets and returns the objects that were added, removed or changed, ordered
// by Key. Either set may be nil, which means empty.
//
// Objects are compared as typed objects after Kubernetes' defaults (Decode applies them), so
// writing a default value explicitly is not a change. Only labels and annotations count from
// metadata; status, apiVersion and kind (part of the Key) are ignored, as is the file an object
// lives in. Secret values are never read: only SecretInfo's keys and digests are compared.
func Diff(base, head *Set) []Change {
	keys := make([]Key, 0, base.Len()+head.Len())
	for _, o := range base.Objects() {
		keys = append(keys, o.Key)
	}
	for _, o := range head.Objects() {
		if base.Get(o.Key) == nil {
			keys = append(keys, o.Key)
		}
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].Less(keys[j]) })

	var out []Change
	for _, k := range keys {
		b, h := base.Get(k), head.Get(k)
		switch {
		case b == nil:
			out = append(out, Change{Key: k, Op: Added, Head: h})
		case h == nil:
			out = append(out, Change{Key: k, Op: Removed, Base: b})
		default:
			if fields := diffObjects(b, h); len(fields) > 0 {
				out = append(out, Change{Key: k, Op: Changed, Base: b, Head: h, Fields: fields})
			}
		}
	}
	return out
}

// diffObjects returns the differing fields of two versions of one object, ordered by path, with
// the rules of Diff. It returns nil when they are the same.
func diffObjects(base, head *Object) []FieldChange {
	bm, berr := comparableTree(base)
	hm, herr := comparableTree(head)
	if berr != nil || herr != nil {
		// Only a non-struct Obj fails to convert; a Decode'd object never does. Say so rather
		// than claim the objects are equal.
		return []FieldChange{{Path: "(object)", Old: errText(berr), New: errText(herr)}}
	}
	w := differ{configData: base.Key.Kind == "ConfigMap"}
	w.walk("", bm, hm)
	if isSecret(base) || isSecret(head) {
		w.out = append(w.out, diffSecretData(secretDigests(base), secretDigests(head))...)
	}
	sortFields(w.out)
	return w.out
}

func errText(err error) string {
	if err == nil {
		return ""
	}
	return "cannot compare: " + err.Error()
}

// comparableTree converts an object to the tree Diff compares: the unstructured form with
// metadata cut down to labels and annotations, no status, no type meta, no secret values, and
// every absent-equivalent (null, [], {}) removed.
func comparableTree(o *Object) (map[string]any, error) {
	obj := o.Obj
	if s, ok := obj.(*corev1.Secret); ok {
		// Copy without the values so they never enter the tree, even transiently.
		cp := *s
		cp.Data, cp.StringData = nil, nil
		obj = &cp
	}
	u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", o.Key, err)
	}
	delete(u, "apiVersion")
	delete(u, "kind")
	delete(u, "status")
	if md, ok := u["metadata"].(map[string]any); ok {
		kept := map[string]any{}
		for _, f := range []string{"labels", "annotations"} {
			if v, ok := md[f]; ok {
				kept[f] = v
			}
		}
		u["metadata"] = kept
	}
	pruned, _ := prune(u).(map[string]any)
	if pruned == nil {
		pruned = map[string]any{}
	}
	return pruned, nil
}

// prune drops nulls, empty lists and empty objects, recursively, returning nil when v itself is
// absent-equivalent. List items are kept in place (an empty item still occupies its index).
func prune(v any) any {
	switch t := v.(type) {
	case nil:
		return nil
	case map[string]any:
		out := make(map[string]any, len(t))
		for k, e := range t {
			if pe := prune(e); pe != nil {
				out[k] = pe
			}
		}
		if len(out) == 0 {
			return nil
		}
		return out
	case []any:
		if len(t) == 0 {
			return nil
		}
		out := make([]any, len(t))
		for i, e := range t {
			out[i] = prune(e)
		}
		return out
	}
	return v
}

type differ struct {
	// configData makes every key under the top-level data and binaryData bracketed, since
	// those keys are file names ("data[nginx.conf]").
	configData bool
	out        []FieldChange
}

func (d *differ) emit(path string, a, b any) {
	d.out = append(d.out, FieldChange{Path: path, Old: renderValue(a), New: renderValue(b)})
}

func (d *differ) walk(path string, a, b any) {
	if a == nil && b == nil {
		return
	}
	// An object added or removed as a whole is still walked, so a new field reads as
	// "resources.limits.cpu: → 1" rather than a blob. (A list item added or removed is one
	// JSON value: see walkItem.)
	_, amap := a.(map[string]any)
	_, bmap := b.(map[string]any)
	switch {
	case a == nil && bmap:
		a = map[string]any{}
	case b == nil && amap:
		b = map[string]any{}
	case a == nil || b == nil:
		d.emit(path, a, b)
		return
	}
	switch at := a.(type) {
	case map[string]any:
		bt, ok := b.(map[string]any)
		if !ok {
			d.emit(path, a, b)
			return
		}
		for _, k := range unionKeys(at, bt) {
			d.walk(d.joinKey(path, k), at[k], bt[k])
		}
	case []any:
		bt, ok := b.([]any)
		if !ok {
			d.emit(path, a, b)
			return
		}
		d.walkList(path, at, bt)
	default:
		if !reflect.DeepEqual(a, b) {
			d.emit(path, a, b)
		}
	}
}

func (d *differ) walkList(path string, a, b []any) {
	if allScalars(a) && allScalars(b) {
		if !reflect.DeepEqual(a, b) {
			d.emit(path, a, b)
		}
		return
	}
	field := listKeyField(path)
	ak, aok := itemNames(a, field)
	bk, bok := itemNames(b, field)
	if !aok || !bok {
		n := max(len(a), len(b))
		for i := range n {
			var x, y any
			if i < len(a) {
				x = a[i]
			}
			if i < len(b) {
				y = b[i]
			}
			d.walkItem(path+"["+strconv.Itoa(i)+"]", x, y)
		}
		return
	}
	am, bm := map[string]any{}, map[string]any{}
	for i, k := range ak {
		am[k] = a[i]
	}
	for i, k := range bk {
		bm[k] = b[i]
	}
	for _, k := range unionKeys(am, bm) {
		d.walkItem(path+"["+k+"]", am[k], bm[k])
	}
	// Order of the items present on both sides: a reorder still changes a pod template.
	var ac, bc []string
	for _, k := range ak {
		if _, ok := bm[k]; ok {
			ac = append(ac, k)
		}
	}
	for _, k := range bk {
		if _, ok := am[k]; ok {
			bc = append(bc, k)
		}
	}
	if !reflect.DeepEqual(ac, bc) {
		d.emit(path, toAny(ac), toAny(bc))
	}
}

func toAny(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// walkItem compares one list item: present on one side only, it is reported whole.
func (d *differ) walkItem(path string, a, b any) {
	if a == nil || b == nil {
		if a != nil || b != nil {
			d.emit(path, a, b)
		}
		return
	}
	d.walk(path, a, b)
}

// listKeyField is the item field that identifies an item of the list at path, as a dotted path
// within the item.
func listKeyField(path string) string {
	switch lastField(path) {
	case "volumeMounts":
		return "mountPath"
	case "volumeDevices":
		return "devicePath"
	case "volumeClaimTemplates":
		return "metadata.name"
	}
	return "name"
}

// lastField returns the final dotted field name of a path: "a.b[x].volumeMounts" → "volumeMounts".
func lastField(path string) string {
	if i := strings.LastIndexByte(path, '.'); i >= 0 {
		path = path[i+1:]
	}
	return path
}

// itemNames returns each item's identifying field when every item has a distinct non-empty one.
func itemNames(items []any, field string) ([]string, bool) {
	names := make([]string, len(items))
	seen := make(map[string]bool, len(items))
	for i, it := range items {
		var v any = it
		for _, f := range strings.Split(field, ".") {
			m, ok := v.(map[string]any)
			if !ok {
				return nil, false
			}
			v = m[f]
		}
		n, ok := v.(string)
		if !ok || n == "" || seen[n] || strings.ContainsAny(n, "[]") {
			return nil, false
		}
		seen[n] = true
		names[i] = n
	}
	return names, true
}

func allScalars(l []any) bool {
	for _, v := range l {
		switch v.(type) {
		case map[string]any, []any:
			return false
		}
	}
	return true
}

func unionKeys(a, b map[string]any) []string {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	return keys
}

func (d *differ) joinKey(path, key string) string {
	if d.configData && (path == "data" || path == "binaryData") {
		return path + "[" + key + "]"
	}
	if path == "" {
		return key
	}
	if isIdent(key) {
		return path + "." + key
	}
	return path + "[" + key + "]"
}

func isIdent(s string) bool {
	if s == "" {
		return false
	}
	for i, r := range s {
		switch {
		case r == '_', 'a' <= r && r <= 'z', 'A' <= r && r <= 'Z':
		case '0' <= r && r <= '9' && i > 0:
		default:
			return false
		}
	}
	return true
}

// renderValue renders one side of a FieldChange; see FieldChange for the rules.
func renderValue(v any) string {
	switch t := v.(type) {
	case nil:
		return ""
	case string:
		if t == "" {
			return `""`
		}
		return t
	case bool:
		return strconv.FormatBool(t)
	case int64:
		return strconv.FormatInt(t, 10)
	case int:
		return strconv.Itoa(t)
	case float64:
		return strconv.FormatFloat(t, 'g', -1, 64)
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

func isSecret(o *Object) bool {
	_, ok := o.Obj.(*corev1.Secret)
	return ok || o.Secret != nil
}

// secretDigests returns key → digest for a Secret. SecretInfo is the source; a Secret decoded
// without one (plain values, which validation rejects) is digested here so that a change is
// still noticed, and the digest never leaves this package.
func secretDigests(o *Object) map[string]string {
	out := map[string]string{}
	if o.Secret != nil {
		for _, k := range o.Secret.Keys {
			out[k] = o.Secret.Digests[k]
		}
		for k, d := range o.Secret.Digests {
			out[k] = d
		}
		return out
	}
	s, ok := o.Obj.(*corev1.Secret)
	if !ok {
		return out
	}
	for k, v := range s.Data {
		sum := sha256.Sum256(v)
		out[k] = hex.EncodeToString(sum[:])
	}
	for k, v := range s.StringData {
		// stringData wins over data for the same key, as the API server merges them.
		sum := sha256.Sum256([]byte(v))
		out[k] = hex.EncodeToString(sum[:])
	}
	return out
}

func diffSecretData(a, b map[string]string) []FieldChange {
	keys := make([]string, 0, len(a)+len(b))
	for k := range a {
		keys = append(keys, k)
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	var out []FieldChange
	for _, k := range keys {
		ad, aok := a[k]
		bd, bok := b[k]
		path := "data[" + k + "]"
		switch {
		case !aok:
			out = append(out, FieldChange{Path: path, New: SecretPlaceholder})
		case !bok:
			out = append(out, FieldChange{Path: path, Old: SecretPlaceholder})
		case ad != bd:
			out = append(out, FieldChange{Path: path, Old: SecretPlaceholder, New: ChangedSecretPlaceholder})
		}
	}
	return out
}

// sortFields orders changes by path, comparing segment by segment so that "ports[10]" sorts
// after "ports[9]" and "spec.x" before "spec.x.y".
func sortFields(f []FieldChange) {
	sort.SliceStable(f, func(i, j int) bool { return comparePaths(f[i].Path, f[j].Path) < 0 })
}

func comparePaths(a, b string) int {
	as, bs := splitPath(a), splitPath(b)
	for i := 0; i < len(as) && i < len(bs); i++ {
		x, y := as[i], bs[i]
		if x == y {
			continue
		}
		xn, xerr := strconv.Atoi(x)
		yn, yerr := strconv.Atoi(y)
		if xerr == nil && yerr == nil {
			if xn < yn {
				return -1
			}
			return 1
		}
		if x < y {
			return -1
		}
		return 1
	}
	return len(as) - len(bs)
}

// splitPath splits a path into its segments: "a.b[x.y].c" → a, b, x.y, c.
func splitPath(p string) []string {
	var segs []string
	for p != "" {
		switch p[0] {
		case '.':
			p = p[1:]
		case '[':
			end := strings.IndexByte(p, ']')
			if end < 0 {
				return append(segs, p[1:])
			}
			segs = append(segs, p[1:end])
			p = p[end+1:]
		default:
			end := strings.IndexAny(p, ".[")
			if end < 0 {
				return append(segs, p)
			}
			segs = append(segs, p[:end])
			p = p[end:]
		}
	}
	return segs
}

package runtime

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// ValueResolver gives the runtime the contents of the ConfigMaps and
// Secrets a pod uses, at the moment the pod (or a container) is set up.
// The secrets package provides one; the agent wires it as Config.Values,
// and says through the context which revision of the configuration a
// call reads (the pod's own, or the node's current one for a call marked
// WithCurrentValues).
// A missing object is an error wrapping ErrValueNotFound, so that
// optional references can be told from failures. The runtime keeps no
// values: Secret values are written only to tmpfs volumes and to the
// container's process environment.
type ValueResolver interface {
	ConfigMap(ctx context.Context, namespace, name string) (map[string][]byte, error)
	Secret(ctx context.Context, namespace, name string) (map[string][]byte, error)
}

// WithCurrentValues marks ctx for the ValueResolver: what is read with it
// is read as the node has it now (the newest configuration it knows), not
// as of the revision the pod was made from. The runtime reads
// imagePullSecrets so, since the kubelet reads them at pull time: a
// rotated registry password is used by the next pull of every pod,
// including a restart of an existing one. A resolver that knows only one
// commit may ignore the mark.
func WithCurrentValues(ctx context.Context) context.Context {
	return context.WithValue(ctx, currentValuesKey{}, true)
}

// CurrentValues reports whether ctx was marked by WithCurrentValues.
func CurrentValues(ctx context.Context) bool {
	b, _ := ctx.Value(currentValuesKey{}).(bool)
	return b
}

type currentValuesKey struct{}

// ErrValueNotFound is wrapped by a ValueResolver for a missing object.
var ErrValueNotFound = errors.New("not found")

// ReasonCreateContainerConfigError is the Waiting reason of a container
// whose environment could not be resolved (a missing ConfigMap, Secret or
// key).
const ReasonCreateContainerConfigError = "CreateContainerConfigError"

// EnvSource is where an environment variable's value comes from; exactly
// one field is set.
type EnvSource struct {
	ConfigMapKey *ObjectKeyRef `json:",omitempty"`
	SecretKey    *ObjectKeyRef `json:",omitempty"`
	// FieldPath is a downward API field: metadata.name, metadata.namespace,
	// metadata.uid, metadata.labels['K'], metadata.annotations['K'],
	// spec.nodeName, spec.serviceAccountName, status.podIP, status.podIPs.
	FieldPath string       `json:",omitempty"`
	Resource  *ResourceRef `json:",omitempty"`
}

// ObjectKeyRef is one key of a ConfigMap or Secret in the pod's namespace.
type ObjectKeyRef struct {
	Name, Key string
	Optional  bool
}

// EnvFromSource imports every key of a ConfigMap or Secret (one of them)
// as variables, with Prefix prepended.
type EnvFromSource struct {
	Prefix    string
	ConfigMap string `json:",omitempty"`
	Secret    string `json:",omitempty"`
	Optional  bool
}

// objectCache resolves each ConfigMap and Secret once per pod setup.
type objectCache struct {
	res       ValueResolver
	namespace string
	got       map[string]map[string][]byte
	errs      map[string]error
}

func newObjectCache(res ValueResolver, namespace string) *objectCache {
	return &objectCache{res: res, namespace: namespace, got: map[string]map[string][]byte{}, errs: map[string]error{}}
}

// get returns the object's values; ok is false for a missing object.
func (o *objectCache) get(ctx context.Context, kind, name string) (vals map[string][]byte, ok bool, err error) {
	k := kind + "/" + name
	if v, hit := o.got[k]; hit {
		return v, v != nil, o.errs[k]
	}
	if o.res == nil {
		return nil, false, fmt.Errorf("%s %s/%s: the runtime has no ValueResolver", kind, o.namespace, name)
	}
	if kind == "Secret" {
		vals, err = o.res.Secret(ctx, o.namespace, name)
	} else {
		vals, err = o.res.ConfigMap(ctx, o.namespace, name)
	}
	if errors.Is(err, ErrValueNotFound) {
		o.got[k] = nil
		return nil, false, nil
	}
	if err != nil {
		err = fmt.Errorf("%s %s/%s: %w", kind, o.namespace, name, err)
		o.got[k], o.errs[k] = nil, err
		return nil, false, err
	}
	o.got[k] = vals
	return vals, true, nil
}

// key returns one key of an object; ok is false when it may be skipped
// (optional and missing).
func (o *objectCache) key(ctx context.Context, kind string, ref ObjectKeyRef) (string, bool, error) {
	vals, found, err := o.get(ctx, kind, ref.Name)
	if err != nil {
		return "", false, err
	}
	if !found {
		if ref.Optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("%s %q not found in namespace %s", strings.ToLower(kind), ref.Name, o.namespace)
	}
	v, has := vals[ref.Key]
	if !has {
		if ref.Optional {
			return "", false, nil
		}
		return "", false, fmt.Errorf("couldn't find key %s in %s %s/%s", ref.Key, kind, o.namespace, ref.Name)
	}
	return string(v), true, nil
}

// containerEnv builds a container's environment as the kubelet does:
// HOSTNAME, then envFrom sources in order, then env in order (a later
// variable replaces an earlier one of the same name); literal values
// expand $(VAR) references to variables defined before them. It also
// returns command and args with $(VAR) expanded against the whole
// environment.
func containerEnv(ctx context.Context, objs *objectCache, pod PodSpec, podIP string, c ContainerSpec) (env []string, cmd, args []string, secret map[string]bool, err error) {
	vals := map[string]string{}
	secret = map[string]bool{} // variables holding a Secret's value, or made from one
	var order []string
	set := func(name, v string) {
		if _, ok := vals[name]; !ok {
			order = append(order, name)
		}
		vals[name] = v
		delete(secret, name)
	}
	set("HOSTNAME", pod.Hostname)
	for _, ef := range c.EnvFrom {
		kind, name := "ConfigMap", ef.ConfigMap
		if ef.Secret != "" {
			kind, name = "Secret", ef.Secret
		}
		m, found, err := objs.get(ctx, kind, name)
		if err != nil {
			return nil, nil, nil, nil, err
		}
		if !found {
			if ef.Optional {
				continue
			}
			return nil, nil, nil, nil, fmt.Errorf("%s %q not found in namespace %s", strings.ToLower(kind), name, pod.Key.Namespace)
		}
		keys := make([]string, 0, len(m))
		for k := range m {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			if k == "" || strings.Contains(k, "=") {
				continue // not a variable name; Kubernetes skips it too
			}
			set(ef.Prefix+k, string(m[k]))
			if kind == "Secret" {
				secret[ef.Prefix+k] = true
			}
		}
	}
	// usedSecret is set when an expansion reads a Secret's variable.
	usedSecret := false
	lookup := func(name string) (string, bool) {
		v, ok := vals[name]
		if ok && secret[name] {
			usedSecret = true
		}
		return v, ok
	}
	for _, e := range c.Env {
		if e.From == nil {
			usedSecret = false
			v := expandVars(e.Value, lookup)
			set(e.Name, v)
			if usedSecret {
				secret[e.Name] = true
			}
			continue
		}
		v, ok, err := envSourceValue(ctx, objs, pod, podIP, c, *e.From)
		if err != nil {
			return nil, nil, nil, nil, fmt.Errorf("env %s: %w", e.Name, err)
		}
		if ok {
			set(e.Name, v)
			if e.From.SecretKey != nil {
				secret[e.Name] = true
			}
		}
	}
	for _, name := range order {
		env = append(env, name+"="+vals[name])
	}
	// A command or argument made from a Secret's variable holds its value:
	// the whole process then goes through the exec helper (exec_env.go).
	usedSecret = false
	for _, s := range c.Command {
		cmd = append(cmd, expandVars(s, lookup))
	}
	for _, s := range c.Args {
		args = append(args, expandVars(s, lookup))
	}
	if usedSecret {
		secret[argvSecret] = true
	}
	return env, cmd, args, secret, nil
}

// argvSecret marks, in containerEnv's secret set, a command line made
// from a Secret's value. It cannot be a variable name.
const argvSecret = "=argv"

func envSourceValue(ctx context.Context, objs *objectCache, pod PodSpec, podIP string, c ContainerSpec, src EnvSource) (string, bool, error) {
	switch {
	case src.ConfigMapKey != nil:
		return objs.key(ctx, "ConfigMap", *src.ConfigMapKey)
	case src.SecretKey != nil:
		return objs.key(ctx, "Secret", *src.SecretKey)
	case src.FieldPath != "":
		v, err := fieldValue(pod, podIP, src.FieldPath)
		return v, err == nil, err
	case src.Resource != nil:
		r := *src.Resource
		if r.Container == "" {
			r.Container = c.Name
		}
		v, err := resourceValue(pod, r)
		return v, err == nil, err
	}
	return "", false, errors.New("empty value source")
}

// envFieldPath reports whether an env var may use the field.
func envFieldPath(p string) bool {
	switch p {
	case "spec.nodeName", "spec.serviceAccountName", "status.podIP", "status.podIPs":
		return true
	}
	return volumeFieldPath(p) && p != "metadata.labels" && p != "metadata.annotations"
}

// volumeFieldPath reports whether a downward API volume may show the field.
func volumeFieldPath(p string) bool {
	switch p {
	case "metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations":
		return true
	}
	_, _, ok := subscript(p)
	return ok
}

// subscript splits metadata.labels['k'] into "metadata.labels" and "k".
func subscript(p string) (string, string, bool) {
	for _, base := range []string{"metadata.labels", "metadata.annotations"} {
		if rest, ok := strings.CutPrefix(p, base+"['"); ok {
			if key, ok := strings.CutSuffix(rest, "']"); ok && key != "" {
				return base, key, true
			}
		}
	}
	return "", "", false
}

// fieldValue is a downward API field's value.
func fieldValue(pod PodSpec, podIP, p string) (string, error) {
	switch p {
	case "metadata.name":
		return pod.Key.Name, nil
	case "metadata.namespace":
		return pod.Key.Namespace, nil
	case "metadata.uid":
		return pod.Key.UID, nil
	case "metadata.labels":
		return formatMap(pod.Labels), nil
	case "metadata.annotations":
		return formatMap(podAnnotations(pod)), nil
	case "spec.nodeName":
		return pod.NodeName, nil
	case "spec.serviceAccountName":
		return pod.ServiceAccountName, nil
	case "status.podIP", "status.podIPs":
		return podIP, nil
	}
	if base, key, ok := subscript(p); ok {
		if base == "metadata.labels" {
			return pod.Labels[key], nil
		}
		return podAnnotations(pod)[key], nil
	}
	return "", fmt.Errorf("unsupported field %q", p)
}

// podAnnotations are the pod's annotations as the downward API shows them:
// those of its manifest, without AnnotationFreshClaims, which the node agent
// adds for the runtime (it is no part of the pod the user wrote, and
// changes from one incarnation of the pod to the next).
func podAnnotations(pod PodSpec) map[string]string {
	if _, ok := pod.Annotations[AnnotationFreshClaims]; !ok {
		return pod.Annotations
	}
	m := make(map[string]string, len(pod.Annotations)-1)
	for k, v := range pod.Annotations {
		if k != AnnotationFreshClaims {
			m[k] = v
		}
	}
	return m
}

// formatMap renders labels or annotations as the kubelet does: sorted
// key="value" lines, values quoted.
func formatMap(m map[string]string) string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte('\n')
		}
		fmt.Fprintf(&b, "%s=%q", k, m[k])
	}
	return b.String()
}

// resourceValue is a container resource divided by the divisor, rounded
// up. An unset limit is the node's allocatable amount; an unset request
// is the limit if one is set, else 0.
func resourceValue(pod PodSpec, r ResourceRef) (string, error) {
	c, ok := pod.container(r.Container)
	if !ok {
		return "", fmt.Errorf("resource %s: no container %q", r.Resource, r.Container)
	}
	kind, name, _ := strings.Cut(r.Resource, ".")
	rn := corev1.ResourceName(name)
	var q resource.Quantity
	var have bool
	limit, hasLimit := c.Resources.Limits[rn]
	switch kind {
	case "limits":
		q, have = limit, hasLimit
		if !have {
			q, have = pod.NodeAllocatable[rn]
		}
		if !have {
			return "", fmt.Errorf("resource %s of container %s: no limit and the node's allocatable %s is not known", r.Resource, r.Container, name)
		}
	case "requests":
		q, have = c.Resources.Requests[rn]
		if !have && hasLimit {
			q = limit
		}
	}
	d := r.Divisor
	if d.IsZero() {
		d = resource.MustParse("1")
	}
	return fmt.Sprint(int64(math.Ceil(float64(q.MilliValue()) / float64(d.MilliValue())))), nil
}

// expandVars replaces $(NAME) with NAME's value when lookup knows it, as
// Kubernetes does in command, args and env: "$$" is a literal "$", an
// unknown or unterminated reference is left as written.
func expandVars(s string, lookup func(string) (string, bool)) string {
	if !strings.Contains(s, "$") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] != '$' || i+1 == len(s) {
			b.WriteByte(s[i])
			continue
		}
		switch next := s[i+1]; next {
		case '$':
			b.WriteByte('$')
			i++
		case '(':
			end := strings.IndexByte(s[i+2:], ')')
			if end < 0 {
				b.WriteString("$(")
				i++
				continue
			}
			name := s[i+2 : i+2+end]
			if v, ok := lookup(name); ok {
				b.WriteString(v)
			} else {
				b.WriteString("$(" + name + ")")
			}
			i += 2 + end
		default:
			b.WriteByte('$')
			b.WriteByte(next)
			i++
		}
	}
	return b.String()
}

package manifest

import (
	"strconv"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/validation"
)

// nameRule is the Kubernetes rule an object's metadata.name must follow.
type nameRule int

const (
	// nameDNSSubdomain: most kinds (Kubernetes' NameIsDNSSubdomain).
	nameDNSSubdomain nameRule = iota
	// nameDNSLabel: names that become one DNS label (Service, Namespace).
	nameDNSLabel
	// nameStatefulSet: a DNS label that still fits once "-<ordinal>" is appended, since each
	// pod's name is its hostname.
	nameStatefulSet
	// nameCronJob: a DNS subdomain of at most 52 characters, leaving room for the 11-character
	// suffix Kubernetes appends to each Job it creates.
	nameCronJob
)

const (
	// cronJobNameMax is Kubernetes' limit on CronJob names (validation.go in pkg/apis/batch).
	cronJobNameMax = 52
	// totalAnnotationSize is Kubernetes' TotalAnnotationSizeLimitB.
	totalAnnotationSize = 256 * 1024
	// nsDefault needs no Namespace object: Kubernetes always has it.
	nsDefault = "default"
)

// reservedNamespaces are Kubernetes' system namespaces; shoal manages no such thing, and a user
// object there would be mistaken for a system component.
var reservedNamespaces = map[string]bool{
	"kube-system":     true,
	"kube-public":     true,
	"kube-node-lease": true,
}

// meta checks what every object carries: its name under rule, its namespace, labels and
// annotations.
func (v *validator) meta(o *Object, rule nameRule) {
	m := o.Meta()
	name := m.GetName()
	kind := o.Key.Kind
	switch {
	case name == "":
		v.errorf(o, "metadata.name", "is required: every %s needs a name", kind)
	case rule == nameDNSSubdomain || rule == nameCronJob:
		if msgs := dnsSubdomainErrs(name); len(msgs) > 0 {
			v.errorf(o, "metadata.name", "invalid name %q: Kubernetes requires a %s name to be a DNS-1123 subdomain (%s); rename it",
				name, kind, joinMsgs(msgs))
		} else if rule == nameCronJob && len(name) > cronJobNameMax {
			v.errorf(o, "metadata.name", "name %q is %d characters: Kubernetes limits CronJob names to %d so that the Jobs it creates (name plus an 11-character suffix) stay valid; shorten it",
				name, len(name), cronJobNameMax)
		}
	default: // nameDNSLabel, nameStatefulSet
		if msgs := dnsLabelErrs(name); len(msgs) > 0 {
			why := "it becomes a DNS label"
			if rule == nameStatefulSet {
				why = "each pod's name (" + name + "-0) is its hostname"
			}
			v.errorf(o, "metadata.name", "invalid name %q: Kubernetes requires a %s name to be a DNS-1123 label because %s (%s); rename it",
				name, kind, why, joinMsgs(msgs))
		}
	}

	if kind != vkNamespace {
		v.objectNamespace(o, m.GetNamespace())
	}
	v.labels(o, "metadata.labels", m.GetLabels())
	v.annotations(o, "metadata.annotations", m.GetAnnotations())
}

// objectNamespace checks a namespaced object's namespace: a valid DNS label, not reserved, and
// created by a Namespace object in the Set unless it is "default".
func (v *validator) objectNamespace(o *Object, metaNS string) {
	ns := o.Key.Namespace
	if ns == "" {
		ns = metaNS
	}
	if ns == "" || ns == nsDefault {
		return
	}
	const path = "metadata.namespace"
	if msgs := dnsLabelErrs(ns); len(msgs) > 0 {
		v.errorf(o, path, "invalid namespace %q: Kubernetes requires namespaces to be DNS-1123 labels (%s)", ns, joinMsgs(msgs))
		return
	}
	if reservedNamespaces[ns] {
		v.errorf(o, path, "namespace %q is reserved for Kubernetes system components; put the object in a namespace of your own", ns)
		return
	}
	if v.set.Get(Key{Kind: vkNamespace, Name: ns}) == nil {
		v.errorf(o, path, "namespace %q is not defined: add a Namespace object named %q to the repository (apiVersion: v1, kind: Namespace)", ns, ns)
	}
}

// namespaceObject checks a Namespace object's own rules.
func (v *validator) namespaceObject(o *Object) {
	if name := o.Meta().GetName(); reservedNamespaces[name] {
		v.errorf(o, "metadata.name", "namespace %q is reserved for Kubernetes system components and cannot be defined in the repository; remove this object or rename it", name)
	}
}

// labels checks a label map's keys (Kubernetes' qualified names) and values.
func (v *validator) labels(o *Object, path string, m map[string]string) {
	for k, val := range m {
		if msgs := labelKeyErrs(k); len(msgs) > 0 {
			v.errorf(o, keyPath(path, k), "invalid label key %q: %s", k, joinMsgs(msgs))
		}
		if msgs := labelValueErrs(val); len(msgs) > 0 {
			v.errorf(o, keyPath(path, k), "invalid value %q for label %q: %s", val, k, joinMsgs(msgs))
		}
	}
}

// annotations checks annotation keys (qualified names, compared lower-cased as Kubernetes does)
// and their total size.
func (v *validator) annotations(o *Object, path string, m map[string]string) {
	total := 0
	for k, val := range m {
		total += len(k) + len(val)
		if msgs := labelKeyErrs(strings.ToLower(k)); len(msgs) > 0 {
			v.errorf(o, keyPath(path, k), "invalid annotation key %q: %s", k, joinMsgs(msgs))
		}
	}
	if total > totalAnnotationSize {
		v.errorf(o, path, "annotations total %d bytes: Kubernetes allows at most %d (256 KiB) per object; move large data to a ConfigMap",
			total, totalAnnotationSize)
	}
}

// workloadSelector checks a workload's spec.selector: present, non-empty, well formed, and
// matching the pod template's labels, which is how Kubernetes ties pods to their owner.
func (v *validator) workloadSelector(o *Object, path string, sel *metav1.LabelSelector, tmplLabels map[string]string, tmplPath string) {
	if sel == nil {
		v.errorf(o, path, "is required: set spec.selector.matchLabels to the pod template's labels")
		return
	}
	if len(sel.MatchLabels) == 0 && len(sel.MatchExpressions) == 0 {
		v.errorf(o, path, "must not be empty: Kubernetes rejects a selector that matches every pod; set matchLabels to the pod template's labels")
		return
	}
	ok := v.labelSelectorSyntax(o, path, sel)
	if !ok {
		return
	}
	if len(sel.MatchExpressions) == 0 && equalitySelectorMatches(sel.MatchLabels, tmplLabels) {
		return // the common case, without building a labels.Selector
	}
	selector, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		v.errorf(o, path, "invalid selector: %v", err)
		return
	}
	if !selector.Matches(labels.Set(tmplLabels)) {
		v.errorf(o, tmplPath, "the pod template's labels do not match spec.selector (%s): Kubernetes requires the selector to select the template's pods; add the selector's labels to %s",
			selector, tmplPath)
	}
}

// selectorRequirement checks one matchExpressions entry the way Kubernetes does.
func (v *validator) selectorRequirement(o *Object, path string, e metav1.LabelSelectorRequirement) bool {
	ok := true
	if msgs := labelKeyErrs(e.Key); len(msgs) > 0 {
		v.errorf(o, path+".key", "invalid label key %q: %s", e.Key, joinMsgs(msgs))
		ok = false
	}
	switch e.Operator {
	case metav1.LabelSelectorOpIn, metav1.LabelSelectorOpNotIn:
		if len(e.Values) == 0 {
			v.errorf(o, path+".values", "must be non-empty when operator is %s", e.Operator)
			ok = false
		}
	case metav1.LabelSelectorOpExists, metav1.LabelSelectorOpDoesNotExist:
		if len(e.Values) > 0 {
			v.errorf(o, path+".values", "must be empty when operator is %s; remove the values", e.Operator)
			ok = false
		}
	default:
		v.errorf(o, path+".operator", "unsupported operator %q: use one of In, NotIn, Exists, DoesNotExist", e.Operator)
		ok = false
	}
	for j, val := range e.Values {
		if msgs := labelValueErrs(val); len(msgs) > 0 {
			v.errorf(o, indexPath(path+".values", j), "invalid label value %q: %s", val, joinMsgs(msgs))
			ok = false
		}
	}
	return ok
}

// statefulSetHostnames checks that the highest ordinal's pod name still fits in one DNS label.
func (v *validator) statefulSetHostnames(o *Object, name string, replicas int32) {
	if name == "" || len(dnsLabelErrs(name)) > 0 {
		return // already reported by meta
	}
	last := int(replicas) - 1
	if last < 0 {
		last = 0
	}
	host := name + "-" + strconv.Itoa(last)
	if len(host) > validation.DNS1123LabelMaxLength {
		v.errorf(o, "metadata.name", "pod name %q (the highest ordinal) is %d characters: a StatefulSet pod's name is its hostname, which Kubernetes limits to %d; shorten the StatefulSet's name",
			host, len(host), validation.DNS1123LabelMaxLength)
	}
}

// equalitySelectorMatches reports whether lbls carries every label of a Service-style equality
// selector. An empty selector matches nothing, as a Service without a selector selects no pods.
func equalitySelectorMatches(sel, lbls map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	for k, val := range sel {
		if got, ok := lbls[k]; !ok || got != val {
			return false
		}
	}
	return true
}

// kind names used in Keys.
const (
	vkNamespace   = "Namespace"
	vkService     = "Service"
	vkConfigMap   = "ConfigMap"
	vkSecret      = "Secret"
	vkDeployment  = "Deployment"
	vkStatefulSet = "StatefulSet"
)

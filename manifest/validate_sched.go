package manifest

import (
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Placement constraints the scheduler reads: affinity and topology spread. Kubernetes' rules
// for each are checked here so that the scheduler only ever sees well-formed terms.

// affinity checks node affinity, pod affinity and pod anti-affinity.
func (v *validator) affinity(o *Object, path string, a *corev1.Affinity) {
	if na := a.NodeAffinity; na != nil {
		p := path + ".nodeAffinity"
		if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
			rp := p + ".requiredDuringSchedulingIgnoredDuringExecution"
			if len(req.NodeSelectorTerms) == 0 {
				v.errorf(o, rp+".nodeSelectorTerms", "must have at least one term (Kubernetes rule): a node must meet one of them")
			}
			for i := range req.NodeSelectorTerms {
				v.nodeSelectorTerm(o, indexPath(rp+".nodeSelectorTerms", i), &req.NodeSelectorTerms[i])
			}
		}
		for i := range na.PreferredDuringSchedulingIgnoredDuringExecution {
			pt := &na.PreferredDuringSchedulingIgnoredDuringExecution[i]
			pp := indexPath(p+".preferredDuringSchedulingIgnoredDuringExecution", i)
			v.weight(o, pp+".weight", pt.Weight)
			v.nodeSelectorTerm(o, pp+".preference", &pt.Preference)
		}
	}
	for _, pa := range []struct {
		name string
		a    *corev1.PodAffinity
		anti *corev1.PodAntiAffinity
	}{{"podAffinity", a.PodAffinity, nil}, {"podAntiAffinity", nil, a.PodAntiAffinity}} {
		var req []corev1.PodAffinityTerm
		var pref []corev1.WeightedPodAffinityTerm
		switch {
		case pa.a != nil:
			req, pref = pa.a.RequiredDuringSchedulingIgnoredDuringExecution, pa.a.PreferredDuringSchedulingIgnoredDuringExecution
		case pa.anti != nil:
			req, pref = pa.anti.RequiredDuringSchedulingIgnoredDuringExecution, pa.anti.PreferredDuringSchedulingIgnoredDuringExecution
		default:
			continue
		}
		p := path + "." + pa.name
		for i := range req {
			v.podAffinityTerm(o, indexPath(p+".requiredDuringSchedulingIgnoredDuringExecution", i), &req[i])
		}
		for i := range pref {
			pp := indexPath(p+".preferredDuringSchedulingIgnoredDuringExecution", i)
			v.weight(o, pp+".weight", pref[i].Weight)
			v.podAffinityTerm(o, pp+".podAffinityTerm", &pref[i].PodAffinityTerm)
		}
	}
}

func (v *validator) weight(o *Object, path string, w int32) {
	if w < 1 || w > 100 {
		v.errorf(o, path, "must be between 1 and 100 (Kubernetes rule), got %d", w)
	}
}

// nodeSelectorTerm checks a node affinity term: requirements on node labels, and on node
// fields only metadata.name.
func (v *validator) nodeSelectorTerm(o *Object, path string, t *corev1.NodeSelectorTerm) {
	if len(t.MatchExpressions) == 0 && len(t.MatchFields) == 0 {
		v.errorf(o, path, "must have matchExpressions or matchFields (Kubernetes rule): an empty term matches no node")
	}
	for i := range t.MatchExpressions {
		v.nodeRequirement(o, indexPath(path+".matchExpressions", i), &t.MatchExpressions[i], false)
	}
	for i := range t.MatchFields {
		v.nodeRequirement(o, indexPath(path+".matchFields", i), &t.MatchFields[i], true)
	}
}

func (v *validator) nodeRequirement(o *Object, path string, r *corev1.NodeSelectorRequirement, field bool) {
	if field {
		if r.Key != "metadata.name" {
			v.errorf(o, path+".key", "unsupported node field %q: matchFields can only select metadata.name", r.Key)
		}
		if r.Operator != corev1.NodeSelectorOpIn && r.Operator != corev1.NodeSelectorOpNotIn {
			v.errorf(o, path+".operator", "operator %q is not allowed for matchFields (Kubernetes rule): use In or NotIn", r.Operator)
			return
		}
		if len(r.Values) != 1 {
			v.errorf(o, path+".values", "must have exactly one node name for matchFields (Kubernetes rule), got %d", len(r.Values))
		}
		return
	}
	if msgs := labelKeyErrs(r.Key); len(msgs) > 0 {
		v.errorf(o, path+".key", "invalid node label key %q: %s", r.Key, joinMsgs(msgs))
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
		if len(r.Values) == 0 {
			v.errorf(o, path+".values", "must be non-empty when operator is %s (Kubernetes rule)", r.Operator)
		}
	case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
		if len(r.Values) > 0 {
			v.errorf(o, path+".values", "must be empty when operator is %s (Kubernetes rule): remove the values", r.Operator)
		}
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if len(r.Values) != 1 {
			v.errorf(o, path+".values", "must have exactly one value when operator is %s (Kubernetes rule)", r.Operator)
		} else if _, err := strconv.ParseInt(r.Values[0], 10, 64); err != nil {
			v.errorf(o, path+".values[0]", "must be an integer when operator is %s (Kubernetes rule), got %q", r.Operator, r.Values[0])
		}
	default:
		v.errorf(o, path+".operator", "invalid operator %q: use In, NotIn, Exists, DoesNotExist, Gt or Lt", r.Operator)
	}
	for j, val := range r.Values {
		if msgs := labelValueErrs(val); len(msgs) > 0 && r.Operator != corev1.NodeSelectorOpGt && r.Operator != corev1.NodeSelectorOpLt {
			v.errorf(o, indexPath(path+".values", j), "invalid node label value %q: %s", val, joinMsgs(msgs))
		}
	}
}

// podAffinityTerm checks a pod (anti-)affinity term: a topology key and a well-formed selector.
func (v *validator) podAffinityTerm(o *Object, path string, t *corev1.PodAffinityTerm) {
	v.topologyKey(o, path+".topologyKey", t.TopologyKey)
	if t.LabelSelector != nil {
		v.labelSelectorSyntax(o, path+".labelSelector", t.LabelSelector)
	}
}

func (v *validator) topologyKey(o *Object, path, key string) {
	if key == "" {
		v.errorf(o, path, "is required: name the node label that defines a topology domain, e.g. kubernetes.io/hostname")
	} else if msgs := labelKeyErrs(key); len(msgs) > 0 {
		v.errorf(o, path, "invalid topology key %q: %s", key, joinMsgs(msgs))
	}
}

// labelSelectorSyntax checks a label selector's keys, values and operators.
func (v *validator) labelSelectorSyntax(o *Object, path string, sel *metav1.LabelSelector) bool {
	ok := true
	for k, val := range sel.MatchLabels {
		p := keyPath(path+".matchLabels", k)
		if msgs := labelKeyErrs(k); len(msgs) > 0 {
			v.errorf(o, p, "invalid label key %q: %s", k, joinMsgs(msgs))
			ok = false
		}
		if msgs := labelValueErrs(val); len(msgs) > 0 {
			v.errorf(o, p, "invalid value %q for label %q: %s", val, k, joinMsgs(msgs))
			ok = false
		}
	}
	for i, e := range sel.MatchExpressions {
		if !v.selectorRequirement(o, indexPath(path+".matchExpressions", i), e) {
			ok = false
		}
	}
	return ok
}

// topologySpread checks topologySpreadConstraints.
func (v *validator) topologySpread(o *Object, path string, cs []corev1.TopologySpreadConstraint) {
	for i := range cs {
		c := &cs[i]
		p := indexPath(path, i)
		if c.MaxSkew < 1 {
			v.errorf(o, p+".maxSkew", "must be at least 1 (Kubernetes rule), got %d", c.MaxSkew)
		}
		v.topologyKey(o, p+".topologyKey", c.TopologyKey)
		switch c.WhenUnsatisfiable {
		case corev1.DoNotSchedule, corev1.ScheduleAnyway:
		case "":
			v.errorf(o, p+".whenUnsatisfiable", "is required: set DoNotSchedule or ScheduleAnyway")
		default:
			v.errorf(o, p+".whenUnsatisfiable", "invalid value %q: use DoNotSchedule or ScheduleAnyway", c.WhenUnsatisfiable)
		}
		if c.LabelSelector != nil {
			v.labelSelectorSyntax(o, p+".labelSelector", c.LabelSelector)
		}
	}
}

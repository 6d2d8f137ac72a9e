package scheduler

import (
	"fmt"
	"slices"
	"strconv"

	corev1 "k8s.io/api/core/v1"
)

// nodeExpr is one compiled NodeSelectorRequirement.
type nodeExpr struct {
	key    string
	op     corev1.NodeSelectorOperator
	values []string
	num    int64 // Gt, Lt
	field  bool  // matchFields: key is metadata.name
}

// nodeTerm is a NodeSelectorTerm: all of its expressions must hold.
type nodeTerm struct {
	exprs []nodeExpr
}

func compileExpr(r corev1.NodeSelectorRequirement, field bool) (nodeExpr, error) {
	e := nodeExpr{key: r.Key, op: r.Operator, values: r.Values, field: field}
	if field && r.Key != "metadata.name" {
		return e, fmt.Errorf("matchFields key %q: only metadata.name is supported", r.Key)
	}
	switch r.Operator {
	case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
		if len(r.Values) == 0 {
			return e, fmt.Errorf("key %q operator %s: needs values", r.Key, r.Operator)
		}
	case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
		if field {
			return e, fmt.Errorf("matchFields operator %s: only In and NotIn are supported", r.Operator)
		}
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if field || len(r.Values) != 1 {
			return e, fmt.Errorf("key %q operator %s: needs exactly one integer value", r.Key, r.Operator)
		}
		v, err := strconv.ParseInt(r.Values[0], 10, 64)
		if err != nil {
			return e, fmt.Errorf("key %q operator %s: value %q is not an integer", r.Key, r.Operator, r.Values[0])
		}
		e.num = v
	default:
		return e, fmt.Errorf("key %q: unknown operator %q", r.Key, r.Operator)
	}
	return e, nil
}

func compileTerm(t corev1.NodeSelectorTerm) (nodeTerm, error) {
	var out nodeTerm
	for _, r := range t.MatchExpressions {
		e, err := compileExpr(r, false)
		if err != nil {
			return out, err
		}
		out.exprs = append(out.exprs, e)
	}
	for _, r := range t.MatchFields {
		e, err := compileExpr(r, true)
		if err != nil {
			return out, err
		}
		out.exprs = append(out.exprs, e)
	}
	return out, nil
}

func (e *nodeExpr) match(n *Node) bool {
	var v string
	var ok bool
	if e.field {
		v, ok = n.Name, true
	} else {
		v, ok = n.Labels[e.key]
	}
	switch e.op {
	case corev1.NodeSelectorOpIn:
		return ok && slices.Contains(e.values, v)
	case corev1.NodeSelectorOpNotIn:
		return !ok || !slices.Contains(e.values, v)
	case corev1.NodeSelectorOpExists:
		return ok
	case corev1.NodeSelectorOpDoesNotExist:
		return !ok
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if !ok {
			return false
		}
		x, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return false
		}
		if e.op == corev1.NodeSelectorOpGt {
			return x > e.num
		}
		return x < e.num
	}
	return false
}

// match reports whether every expression holds. A term with no expression
// matches no node, as in Kubernetes.
func (t *nodeTerm) match(n *Node) bool {
	if len(t.exprs) == 0 {
		return false
	}
	for i := range t.exprs {
		if !t.exprs[i].match(n) {
			return false
		}
	}
	return true
}

// tolerates reports whether some toleration tolerates the taint. Equal and
// Exists are supported; the alpha Gt/Lt operators tolerate nothing.
func tolerates(tols []corev1.Toleration, t *corev1.Taint) bool {
	for i := range tols {
		tol := &tols[i]
		if tol.Effect != "" && tol.Effect != t.Effect {
			continue
		}
		if tol.Key != "" && tol.Key != t.Key {
			continue
		}
		switch tol.Operator {
		case "", corev1.TolerationOpEqual:
			if tol.Value == t.Value {
				return true
			}
		case corev1.TolerationOpExists:
			return true
		}
	}
	return false
}

// untolerated returns the first taint in taints the pod does not tolerate.
func untolerated(tols []corev1.Toleration, taints []corev1.Taint) (*corev1.Taint, bool) {
	for i := range taints {
		if !tolerates(tols, &taints[i]) {
			return &taints[i], true
		}
	}
	return nil, false
}

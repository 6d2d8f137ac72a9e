package scheduler

import (
	"fmt"
	"strconv"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// The fixture language of testdata/*.txt: one node or pod per line, a name
// then key=value flags.
//
//	node:  NAME [cpu=4] [mem=8Gi] [pods=110] [labels=k=v,..] [taints=k=v:Effect,..]
//	       [images=a,b] [notready] [cordoned]
//	pod:   NAME [ns=default] [cpu=100m] [mem=128Mi] [labels=k=v,..] [owner=Kind/name]
//	       [priority=N] [selector=k=v,..] [affinity=key:Op:v1|v2;key:Op:..] (one
//	       flag per OR-ed term) [prefer-node=W:key:Op:v1|v2] [tolerate=k=v:Effect |
//	       k:Exists[:Effect]] [ports=80/TCP,..] [pin=NODE] [images=a,b]
//	       [anti=k=v,..[@topologyKey]] [affinity-pod=k=v,..[@key]]
//	       [prefer-pod=W:k=v,..[@key]] [prefer-anti=W:k=v,..[@key]]
//	       [spread=maxSkew:topologyKey:DoNotSchedule|ScheduleAnyway:k=v,..]
//
// A pod's ID is ns/name.

func parseNode(t testing.TB, line string) Node {
	t.Helper()
	f := strings.Fields(line)
	n := Node{Name: f[0], MilliCPU: 4000, Memory: 8 << 30, MaxPods: 110, Ready: true,
		Labels: map[string]string{HostnameKey: f[0]}}
	for _, tok := range f[1:] {
		k, v, _ := strings.Cut(tok, "=")
		switch k {
		case "cpu":
			n.MilliCPU = qty(t, v).MilliValue()
		case "mem":
			n.Memory = qty(t, v).Value()
		case "pods":
			n.MaxPods = atoi(t, v)
		case "labels":
			for k, v := range kvs(v) {
				n.Labels[k] = v
			}
		case "taints":
			for _, s := range strings.Split(v, ",") {
				kv, eff, _ := strings.Cut(s, ":")
				tk, tv, _ := strings.Cut(kv, "=")
				n.Taints = append(n.Taints, corev1.Taint{Key: tk, Value: tv, Effect: corev1.TaintEffect(eff)})
			}
		case "images":
			n.Images = strings.Split(v, ",")
		case "notready":
			n.Ready = false
		case "cordoned":
			n.Cordoned = true
		default:
			t.Fatalf("node %q: unknown flag %q", f[0], k)
		}
	}
	return n
}

func parsePod(t testing.TB, line string) Pod {
	t.Helper()
	f := strings.Fields(line)
	p := Pod{Name: f[0], Namespace: "default", MilliCPU: 100, Memory: 128 << 20}
	aff := &corev1.Affinity{}
	used := false
	for _, tok := range f[1:] {
		k, v, _ := strings.Cut(tok, "=")
		switch k {
		case "ns":
			p.Namespace = v
		case "cpu":
			p.MilliCPU = qty(t, v).MilliValue()
		case "mem":
			p.Memory = qty(t, v).Value()
		case "labels":
			p.Labels = kvs(v)
		case "owner":
			kind, name, _ := strings.Cut(v, "/")
			p.Owner = OwnerKey{Kind: kind, Name: name}
		case "priority":
			p.Priority = int32(atoi(t, v))
		case "selector":
			p.NodeSelector = kvs(v)
		case "affinity":
			used = true
			if aff.NodeAffinity == nil {
				aff.NodeAffinity = &corev1.NodeAffinity{}
			}
			if aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution == nil {
				aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution = &corev1.NodeSelector{}
			}
			req := aff.NodeAffinity.RequiredDuringSchedulingIgnoredDuringExecution
			req.NodeSelectorTerms = append(req.NodeSelectorTerms, nodeTermOf(v))
		case "prefer-node":
			used = true
			w, rest, _ := strings.Cut(v, ":")
			if aff.NodeAffinity == nil {
				aff.NodeAffinity = &corev1.NodeAffinity{}
			}
			aff.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(
				aff.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution,
				corev1.PreferredSchedulingTerm{Weight: int32(atoi(t, w)), Preference: nodeTermOf(rest)})
		case "tolerate":
			p.Tolerations = append(p.Tolerations, tolerationOf(v))
		case "ports":
			for _, s := range strings.Split(v, ",") {
				port, proto, _ := strings.Cut(s, "/")
				p.HostPorts = append(p.HostPorts, HostPort{Port: int32(atoi(t, port)), Protocol: corev1.Protocol(proto)})
			}
		case "pin":
			p.PinnedNode = v
		case "images":
			p.Images = strings.Split(v, ",")
		case "anti":
			used = true
			if aff.PodAntiAffinity == nil {
				aff.PodAntiAffinity = &corev1.PodAntiAffinity{}
			}
			aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(
				aff.PodAntiAffinity.RequiredDuringSchedulingIgnoredDuringExecution, podTermOf(v))
		case "affinity-pod":
			used = true
			if aff.PodAffinity == nil {
				aff.PodAffinity = &corev1.PodAffinity{}
			}
			aff.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution = append(
				aff.PodAffinity.RequiredDuringSchedulingIgnoredDuringExecution, podTermOf(v))
		case "prefer-pod", "prefer-anti":
			used = true
			w, rest, _ := strings.Cut(v, ":")
			wt := corev1.WeightedPodAffinityTerm{Weight: int32(atoi(t, w)), PodAffinityTerm: podTermOf(rest)}
			if k == "prefer-pod" {
				if aff.PodAffinity == nil {
					aff.PodAffinity = &corev1.PodAffinity{}
				}
				aff.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(
					aff.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution, wt)
			} else {
				if aff.PodAntiAffinity == nil {
					aff.PodAntiAffinity = &corev1.PodAntiAffinity{}
				}
				aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(
					aff.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, wt)
			}
		case "spread":
			parts := strings.SplitN(v, ":", 4)
			if len(parts) != 4 {
				t.Fatalf("pod %q: spread=%q: want maxSkew:key:When:selector", f[0], v)
			}
			p.TopologySpreadConstraints = append(p.TopologySpreadConstraints, corev1.TopologySpreadConstraint{
				MaxSkew:           int32(atoi(t, parts[0])),
				TopologyKey:       parts[1],
				WhenUnsatisfiable: corev1.UnsatisfiableConstraintAction(parts[2]),
				LabelSelector:     &metav1.LabelSelector{MatchLabels: kvs(parts[3])},
			})
		default:
			t.Fatalf("pod %q: unknown flag %q", f[0], k)
		}
	}
	if used {
		p.Affinity = aff
	}
	if !p.Owner.IsZero() {
		p.Owner.Namespace = p.Namespace
	}
	p.ID = p.Namespace + "/" + p.Name
	return p
}

// nodeTermOf parses "key:Op:v1|v2;key:Op".
func nodeTermOf(s string) corev1.NodeSelectorTerm {
	var term corev1.NodeSelectorTerm
	for _, e := range strings.Split(s, ";") {
		parts := strings.SplitN(e, ":", 3)
		r := corev1.NodeSelectorRequirement{Key: parts[0], Operator: corev1.NodeSelectorOperator(parts[1])}
		if len(parts) == 3 {
			r.Values = strings.Split(parts[2], "|")
		}
		if r.Key == "metadata.name" {
			term.MatchFields = append(term.MatchFields, r)
		} else {
			term.MatchExpressions = append(term.MatchExpressions, r)
		}
	}
	return term
}

// podTermOf parses "k=v,k2=v2[@topologyKey]".
func podTermOf(s string) corev1.PodAffinityTerm {
	sel, key, ok := strings.Cut(s, "@")
	if !ok {
		key = HostnameKey
	}
	return corev1.PodAffinityTerm{LabelSelector: &metav1.LabelSelector{MatchLabels: kvs(sel)}, TopologyKey: key}
}

// tolerationOf parses "k=v[:Effect]" or "k:Exists[:Effect]".
func tolerationOf(s string) corev1.Toleration {
	if k, rest, ok := strings.Cut(s, ":Exists"); ok {
		return corev1.Toleration{Key: k, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffect(strings.TrimPrefix(rest, ":"))}
	}
	kv, eff, _ := strings.Cut(s, ":")
	k, v, _ := strings.Cut(kv, "=")
	return corev1.Toleration{Key: k, Operator: corev1.TolerationOpEqual, Value: v, Effect: corev1.TaintEffect(eff)}
}

func kvs(s string) map[string]string {
	m := map[string]string{}
	for _, e := range strings.Split(s, ",") {
		if e == "" {
			continue
		}
		k, v, _ := strings.Cut(e, "=")
		m[k] = v
	}
	return m
}

func qty(t testing.TB, s string) *resource.Quantity {
	t.Helper()
	q, err := resource.ParseQuantity(s)
	if err != nil {
		t.Fatalf("quantity %q: %v", s, err)
	}
	return &q
}

func atoi(t testing.TB, s string) int64 {
	t.Helper()
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		t.Fatalf("integer %q: %v", s, err)
	}
	return n
}

func fmtMem(b int64) string { return resource.NewQuantity(b, resource.BinarySI).String() }

// describeState prints each node's running totals and pods.
func describeState(cs *ClusterState) string {
	var sb strings.Builder
	for i := range cs.nodes {
		n := &cs.nodes[i]
		fmt.Fprintf(&sb, "%s cpu=%dm/%dm mem=%s/%s pods=%d/%d:", n.Name, n.reqCPU, n.MilliCPU,
			fmtMem(n.reqMem), fmtMem(n.Memory), n.pods, n.MaxPods)
		for _, b := range n.bound {
			sb.WriteString(" " + b.pod.ID)
		}
		sb.WriteByte('\n')
	}
	return sb.String()
}

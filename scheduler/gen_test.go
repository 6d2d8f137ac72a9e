package scheduler

import (
	"fmt"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"pgregory.net/rapid"
)

// scenario is a small random cluster: nodes, pods already bound, and pods
// to place. The vocabulary is small on purpose so that selectors, ports,
// owners and domains collide often.
type scenario struct {
	snap StaticSnapshot
	pods []Pod
}

var (
	zones = []string{"a", "b", "c", ""} // "" = no zone label
	apps  = []string{"web", "db", "cache"}
)

func genNode(t *rapid.T, i int) Node {
	n := Node{
		Name:     fmt.Sprintf("n%d", i),
		MilliCPU: rapid.SampledFrom([]int64{1000, 2000, 4000}).Draw(t, "cpu"),
		Memory:   rapid.SampledFrom([]int64{1 << 30, 2 << 30, 4 << 30}).Draw(t, "mem"),
		MaxPods:  rapid.SampledFrom([]int64{2, 4, 110}).Draw(t, "maxPods"),
		Ready:    rapid.IntRange(0, 9).Draw(t, "ready") > 0,
		Cordoned: rapid.IntRange(0, 9).Draw(t, "cordoned") == 0,
		Labels:   map[string]string{HostnameKey: fmt.Sprintf("n%d", i)},
	}
	if z := rapid.SampledFrom(zones).Draw(t, "zone"); z != "" {
		n.Labels["zone"] = z
	}
	if rapid.Bool().Draw(t, "ssd") {
		n.Labels["disk"] = "ssd"
	}
	switch rapid.IntRange(0, 5).Draw(t, "taint") {
	case 0:
		n.Taints = append(n.Taints, corev1.Taint{Key: "dedicated", Value: "gpu", Effect: corev1.TaintEffectNoSchedule})
	case 1:
		n.Taints = append(n.Taints, corev1.Taint{Key: "spot", Value: "yes", Effect: corev1.TaintEffectPreferNoSchedule})
	case 2:
		n.Taints = append(n.Taints, corev1.Taint{Key: "drain", Effect: corev1.TaintEffectNoExecute})
	}
	if rapid.Bool().Draw(t, "image") {
		n.Images = []string{"img-a"}
	}
	return n
}

func sel(app string) *metav1.LabelSelector {
	return &metav1.LabelSelector{MatchLabels: map[string]string{"app": app}}
}

func genTerm(t *rapid.T, label string) corev1.PodAffinityTerm {
	return corev1.PodAffinityTerm{
		LabelSelector: sel(rapid.SampledFrom(apps).Draw(t, label+"App")),
		TopologyKey:   rapid.SampledFrom([]string{HostnameKey, HostnameKey, "zone"}).Draw(t, label+"Key"),
	}
}

func genPod(t *rapid.T, i int, nodes int) Pod {
	app := rapid.SampledFrom(apps).Draw(t, "app")
	ns := rapid.SampledFrom([]string{"default", "default", "other"}).Draw(t, "ns")
	p := Pod{
		ID:        fmt.Sprintf("p%d", i),
		Namespace: ns,
		Name:      fmt.Sprintf("p%d", i),
		Labels:    map[string]string{"app": app},
		MilliCPU:  rapid.SampledFrom([]int64{0, 100, 500, 900, 1500}).Draw(t, "podCPU"),
		Memory:    rapid.SampledFrom([]int64{0, 256 << 20, 1 << 30}).Draw(t, "podMem"),
		Priority:  int32(rapid.IntRange(0, 1).Draw(t, "priority")),
	}
	if rapid.Bool().Draw(t, "owned") {
		p.Owner = OwnerKey{Kind: "ReplicaSet", Namespace: ns, Name: app}
	}
	if rapid.IntRange(0, 5).Draw(t, "hasSelector") == 0 {
		p.NodeSelector = map[string]string{"disk": "ssd"}
	}
	a := &corev1.Affinity{}
	use := false
	if rapid.IntRange(0, 5).Draw(t, "hasNodeAff") == 0 {
		use = true
		a.NodeAffinity = &corev1.NodeAffinity{RequiredDuringSchedulingIgnoredDuringExecution: &corev1.NodeSelector{
			NodeSelectorTerms: []corev1.NodeSelectorTerm{{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{"a", "b"}},
			}}},
		}}
	}
	if rapid.IntRange(0, 4).Draw(t, "hasPrefNode") == 0 {
		use = true
		if a.NodeAffinity == nil {
			a.NodeAffinity = &corev1.NodeAffinity{}
		}
		a.NodeAffinity.PreferredDuringSchedulingIgnoredDuringExecution = []corev1.PreferredSchedulingTerm{{
			Weight: int32(rapid.IntRange(1, 100).Draw(t, "prefW")),
			Preference: corev1.NodeSelectorTerm{MatchExpressions: []corev1.NodeSelectorRequirement{
				{Key: "zone", Operator: corev1.NodeSelectorOpIn, Values: []string{rapid.SampledFrom(zones[:3]).Draw(t, "prefZone")}},
			}},
		}}
	}
	if rapid.IntRange(0, 3).Draw(t, "hasAnti") == 0 {
		use = true
		a.PodAntiAffinity = &corev1.PodAntiAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{genTerm(t, "anti")}}
	}
	if rapid.IntRange(0, 6).Draw(t, "hasAff") == 0 {
		use = true
		a.PodAffinity = &corev1.PodAffinity{RequiredDuringSchedulingIgnoredDuringExecution: []corev1.PodAffinityTerm{genTerm(t, "aff")}}
	}
	if rapid.IntRange(0, 4).Draw(t, "hasPrefPod") == 0 {
		use = true
		wt := corev1.WeightedPodAffinityTerm{Weight: int32(rapid.IntRange(1, 100).Draw(t, "ppW")), PodAffinityTerm: genTerm(t, "pp")}
		if rapid.Bool().Draw(t, "prefAnti") {
			if a.PodAntiAffinity == nil {
				a.PodAntiAffinity = &corev1.PodAntiAffinity{}
			}
			a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAntiAffinity.PreferredDuringSchedulingIgnoredDuringExecution, wt)
		} else {
			if a.PodAffinity == nil {
				a.PodAffinity = &corev1.PodAffinity{}
			}
			a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution = append(a.PodAffinity.PreferredDuringSchedulingIgnoredDuringExecution, wt)
		}
	}
	if use {
		p.Affinity = a
	}
	switch rapid.IntRange(0, 4).Draw(t, "toleration") {
	case 0:
		p.Tolerations = []corev1.Toleration{{Key: "dedicated", Operator: corev1.TolerationOpEqual, Value: "gpu", Effect: corev1.TaintEffectNoSchedule}}
	case 1:
		p.Tolerations = []corev1.Toleration{{Operator: corev1.TolerationOpExists}}
	case 2:
		p.Tolerations = []corev1.Toleration{{Key: "spot", Operator: corev1.TolerationOpExists}}
	}
	if rapid.IntRange(0, 4).Draw(t, "hasPort") == 0 {
		p.HostPorts = []HostPort{{Port: rapid.SampledFrom([]int32{80, 443}).Draw(t, "port"),
			Protocol: rapid.SampledFrom([]corev1.Protocol{"", corev1.ProtocolTCP, corev1.ProtocolUDP}).Draw(t, "proto")}}
	}
	if rapid.IntRange(0, 9).Draw(t, "pinned") == 0 {
		p.PinnedNode = fmt.Sprintf("n%d", rapid.IntRange(0, nodes).Draw(t, "pinNode")) // n<nodes> does not exist
	}
	if rapid.IntRange(0, 3).Draw(t, "hasSpread") == 0 {
		c := corev1.TopologySpreadConstraint{
			MaxSkew:           int32(rapid.IntRange(1, 2).Draw(t, "maxSkew")),
			TopologyKey:       rapid.SampledFrom([]string{HostnameKey, "zone"}).Draw(t, "spreadKey"),
			WhenUnsatisfiable: rapid.SampledFrom([]corev1.UnsatisfiableConstraintAction{corev1.DoNotSchedule, corev1.ScheduleAnyway}).Draw(t, "when"),
			LabelSelector:     sel(rapid.SampledFrom(apps).Draw(t, "spreadApp")),
		}
		if rapid.IntRange(0, 3).Draw(t, "minDomains") == 0 && c.WhenUnsatisfiable == corev1.DoNotSchedule {
			md := int32(rapid.IntRange(1, 4).Draw(t, "minDomainsN"))
			c.MinDomains = &md
		}
		p.TopologySpreadConstraints = []corev1.TopologySpreadConstraint{c}
	}
	if rapid.IntRange(0, 3).Draw(t, "hasImage") == 0 {
		p.Images = []string{"img-a"}
	}
	return p
}

func genScenario(t *rapid.T) scenario {
	nn := rapid.IntRange(1, 10).Draw(t, "nodes")
	var s scenario
	s.snap.Bound = map[string][]Pod{}
	for i := range nn {
		s.snap.NodeList = append(s.snap.NodeList, genNode(t, i))
	}
	bound := rapid.IntRange(0, 8).Draw(t, "bound")
	for i := range bound {
		p := genPod(t, 1000+i, nn)
		p.PinnedNode = ""
		node := s.snap.NodeList[rapid.IntRange(0, nn-1).Draw(t, "boundNode")].Name
		s.snap.Bound[node] = append(s.snap.Bound[node], p)
	}
	np := rapid.IntRange(0, 30).Draw(t, "pods")
	for i := range np {
		s.pods = append(s.pods, genPod(t, i, nn))
	}
	return s
}

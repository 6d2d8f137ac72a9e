package plan

import (
	"fmt"
	"strings"

	autoscalingv2 "k8s.io/api/autoscaling/v2"

	"github.com/shoal-dev/shoal/manifest"
)

// HorizontalPodAutoscaler rules: bounds and targets of the scaled workload.
func hpaConsequences(pl *planner, c manifest.Change) []string {
	b, h, ok := pair[*autoscalingv2.HorizontalPodAutoscaler](c)
	if !ok {
		return genericConsequences(pl, c)
	}
	switch c.Op {
	case manifest.Added:
		words := fmt.Sprintf("keep %s between %d and %d pods", hpaTarget(c.Head, h), minReplicas(h), h.Spec.MaxReplicas)
		if m := metrics(h); m != "" {
			words += ", on " + m
		}
		return []string{words}
	case manifest.Removed:
		return []string{"autoscaling of " + hpaTarget(c.Base, b) + " stops"}
	}
	var out []string
	if bt, ht := hpaTarget(c.Base, b), hpaTarget(c.Head, h); bt != ht {
		out = append(out, fmt.Sprintf("scales %s instead of %s", ht, bt))
	}
	if x, y := minReplicas(b), minReplicas(h); x != y {
		out = append(out, fmt.Sprintf("minimum %d → %d pods", x, y))
	}
	if x, y := b.Spec.MaxReplicas, h.Spec.MaxReplicas; x != y {
		out = append(out, fmt.Sprintf("maximum %d → %d pods", x, y))
	}
	if x, y := metrics(b), metrics(h); x != y {
		out = append(out, fmt.Sprintf("metrics: %s → %s", orNone(x), orNone(y)))
	}
	if changedUnder(c.Fields, "spec.behavior") {
		out = append(out, "scaling behaviour changed")
	}
	return out
}

func hpaTarget(o *manifest.Object, h *autoscalingv2.HorizontalPodAutoscaler) string {
	r := h.Spec.ScaleTargetRef
	return manifest.Key{Kind: r.Kind, Namespace: o.Key.Namespace, Name: r.Name}.String()
}

func minReplicas(h *autoscalingv2.HorizontalPodAutoscaler) int32 {
	if h.Spec.MinReplicas == nil {
		return 1
	}
	return *h.Spec.MinReplicas
}

// metrics summarises an HPA's metrics: "cpu 80% utilization, memory 200Mi average".
func metrics(h *autoscalingv2.HorizontalPodAutoscaler) string {
	parts := make([]string, 0, len(h.Spec.Metrics))
	for _, m := range h.Spec.Metrics {
		// shoal supports Resource metrics only; another type is named, not described.
		if m.Type == autoscalingv2.ResourceMetricSourceType && m.Resource != nil {
			parts = append(parts, string(m.Resource.Name)+" "+target(m.Resource.Target))
			continue
		}
		parts = append(parts, string(m.Type)+" metric")
	}
	return strings.Join(parts, ", ")
}

func target(t autoscalingv2.MetricTarget) string {
	switch {
	case t.AverageUtilization != nil:
		return fmt.Sprintf("%d%% utilization", *t.AverageUtilization)
	case t.AverageValue != nil:
		return t.AverageValue.String() + " average"
	}
	return string(t.Type)
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

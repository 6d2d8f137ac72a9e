package manifest

import (
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
)

// hpa checks a HorizontalPodAutoscaler: its target is a Deployment or StatefulSet of the Set,
// its bounds are sane, and it scales on cpu or memory, the only metrics shoal collects.
func (v *validator) hpa(o *Object, h *autoscalingv2.HorizontalPodAutoscaler) {
	spec := &h.Spec
	ref := spec.ScaleTargetRef
	const refPath = "spec.scaleTargetRef"
	switch ref.Kind {
	case vkDeployment, vkStatefulSet:
		if ref.APIVersion != "" && ref.APIVersion != "apps/v1" {
			v.errorf(o, refPath+".apiVersion", "invalid apiVersion %q for a %s: use apps/v1", ref.APIVersion, ref.Kind)
		}
		if ref.Name == "" {
			v.errorf(o, refPath+".name", "is required: name the %s to scale", ref.Kind)
		} else if v.set.Get(Key{Kind: ref.Kind, Namespace: o.Key.Namespace, Name: ref.Name}) == nil {
			v.errorf(o, refPath+".name", "%s %q not found in namespace %q: an autoscaler must target a %s defined in the repository, in its own namespace",
				ref.Kind, ref.Name, nsName(o.Key.Namespace), ref.Kind)
		}
	case "":
		v.errorf(o, refPath+".kind", "is required: set Deployment or StatefulSet")
	default:
		v.errorf(o, refPath+".kind", "scaling a %s is not supported by shoal: target a Deployment or StatefulSet", ref.Kind)
	}

	minReplicas := int32(1)
	if spec.MinReplicas != nil {
		minReplicas = *spec.MinReplicas
		if minReplicas < 1 {
			v.errorf(o, "spec.minReplicas", "must be at least 1, got %d: shoal does not scale to zero (in Kubernetes that needs the HPAScaleToZero feature gate)", minReplicas)
		}
	}
	switch {
	case spec.MaxReplicas < 1:
		v.errorf(o, "spec.maxReplicas", "must be at least 1 (Kubernetes rule), got %d", spec.MaxReplicas)
	case spec.MaxReplicas < minReplicas:
		v.errorf(o, "spec.maxReplicas", "must be at least minReplicas (%d), got %d (Kubernetes rule): raise maxReplicas or lower minReplicas", minReplicas, spec.MaxReplicas)
	}

	for i := range spec.Metrics {
		v.metric(o, indexPath("spec.metrics", i), &spec.Metrics[i])
	}
	if b := spec.Behavior; b != nil {
		v.scalingRules(o, "spec.behavior.scaleUp", b.ScaleUp)
		v.scalingRules(o, "spec.behavior.scaleDown", b.ScaleDown)
	}
}

// Kubernetes' bounds on HPA behavior (MaxPeriodSeconds, MaxStabilizationWindowSeconds).
const (
	maxScalingPeriod       = 1800
	maxStabilizationWindow = 3600
)

// scalingRules checks one direction of an HPA's behavior.
func (v *validator) scalingRules(o *Object, path string, r *autoscalingv2.HPAScalingRules) {
	if r == nil {
		return
	}
	if w := r.StabilizationWindowSeconds; w != nil && (*w < 0 || *w > maxStabilizationWindow) {
		v.errorf(o, path+".stabilizationWindowSeconds", "must be between 0 and %d (Kubernetes rule), got %d", maxStabilizationWindow, *w)
	}
	if sp := r.SelectPolicy; sp != nil {
		switch *sp {
		case autoscalingv2.MaxChangePolicySelect, autoscalingv2.MinChangePolicySelect, autoscalingv2.DisabledPolicySelect:
		default:
			v.errorf(o, path+".selectPolicy", "invalid selectPolicy %q: use Max, Min or Disabled", *sp)
		}
	}
	for i, p := range r.Policies {
		pp := indexPath(path+".policies", i)
		switch p.Type {
		case autoscalingv2.PodsScalingPolicy, autoscalingv2.PercentScalingPolicy:
		default:
			v.errorf(o, pp+".type", "invalid policy type %q: use Pods or Percent", p.Type)
		}
		if p.Value < 1 {
			v.errorf(o, pp+".value", "must be at least 1 (Kubernetes rule), got %d", p.Value)
		}
		if p.PeriodSeconds < 1 || p.PeriodSeconds > maxScalingPeriod {
			v.errorf(o, pp+".periodSeconds", "must be between 1 and %d (Kubernetes rule), got %d", maxScalingPeriod, p.PeriodSeconds)
		}
	}
}

// metric checks one HPA metric: Resource cpu or memory, with a utilization or average value.
func (v *validator) metric(o *Object, path string, m *autoscalingv2.MetricSpec) {
	if m.Type != autoscalingv2.ResourceMetricSourceType {
		v.errorf(o, path+".type", "metric type %q is not supported by shoal: use type Resource with cpu or memory", m.Type)
		return
	}
	r := m.Resource
	if r == nil {
		v.errorf(o, path+".resource", "is required when type is Resource: set name (cpu or memory) and target")
		return
	}
	if r.Name != corev1.ResourceCPU && r.Name != corev1.ResourceMemory {
		v.errorf(o, path+".resource.name", "resource %q is not supported by shoal: autoscale on cpu or memory", r.Name)
	}
	t := r.Target
	tp := path + ".resource.target"
	switch t.Type {
	case autoscalingv2.UtilizationMetricType:
		if t.AverageUtilization == nil {
			v.errorf(o, tp+".averageUtilization", "is required when target type is Utilization: give a percentage of the pods' requests, e.g. 80")
		} else if *t.AverageUtilization < 1 {
			v.errorf(o, tp+".averageUtilization", "must be at least 1 (Kubernetes rule), got %d", *t.AverageUtilization)
		}
	case autoscalingv2.AverageValueMetricType:
		if t.AverageValue == nil {
			v.errorf(o, tp+".averageValue", "is required when target type is AverageValue: give a quantity per pod, e.g. 500m or 256Mi")
		} else if t.AverageValue.Sign() <= 0 {
			v.errorf(o, tp+".averageValue", "must be greater than 0 (Kubernetes rule), got %s", t.AverageValue.String())
		}
	case autoscalingv2.ValueMetricType:
		v.errorf(o, tp+".type", "target type Value is not allowed for Resource metrics (Kubernetes rule): use Utilization or AverageValue")
	default:
		v.errorf(o, tp+".type", "invalid target type %q: use Utilization or AverageValue", t.Type)
	}
}

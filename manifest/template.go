package manifest

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
)

// PodTemplate returns the pod template of a workload (Deployment,
// StatefulSet, DaemonSet, Job; a CronJob's is its job template's), or nil
// for an object that has none. Callers must not modify it: a Set is shared.
func PodTemplate(o *Object) *corev1.PodTemplateSpec {
	switch obj := o.Obj.(type) {
	case *appsv1.Deployment:
		return &obj.Spec.Template
	case *appsv1.StatefulSet:
		return &obj.Spec.Template
	case *appsv1.DaemonSet:
		return &obj.Spec.Template
	case *batchv1.Job:
		return &obj.Spec.Template
	case *batchv1.CronJob:
		return &obj.Spec.JobTemplate.Spec.Template
	}
	return nil
}

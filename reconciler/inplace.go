package reconciler

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"

	"github.com/shoal-dev/shoal/manifest"
)

// KeepsPodOnConfigChange reports whether owner (a workload at the pinned commit) keeps its pod
// named pod when a ConfigMap or Secret its template uses changes, although that change is in
// the template hash: a Job's pods run to completion and are never replaced; a StatefulSet or
// DaemonSet with updateStrategy OnDelete replaces pods only when they are deleted; and a
// StatefulSet's pods below the RollingUpdate partition keep their revision (the partition
// counts from spec.ordinals.start, as revisionFor counts it). The node updates the mounted
// files of such pods in place instead.
func KeepsPodOnConfigChange(owner *manifest.Object, pod string) bool {
	switch o := owner.Obj.(type) {
	case *batchv1.Job, *batchv1.CronJob:
		return true
	case *appsv1.DaemonSet:
		return o.Spec.UpdateStrategy.Type == appsv1.OnDeleteDaemonSetStrategyType
	case *appsv1.StatefulSet:
		us := o.Spec.UpdateStrategy
		if us.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return true
		}
		if us.RollingUpdate == nil || us.RollingUpdate.Partition == nil {
			return false
		}
		start := 0
		if o.Spec.Ordinals != nil {
			start = int(o.Spec.Ordinals.Start)
		}
		ord, ok := ordinalOf(owner.Key.Name, pod)
		return ok && ord-start < int(*us.RollingUpdate.Partition)
	}
	return false
}

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
		if o.Spec.UpdateStrategy.Type == appsv1.OnDeleteStatefulSetStrategyType {
			return true
		}
		ord, ok := ordinalOf(owner.Key.Name, pod)
		return ok && belowPartition(&o.Spec, ord)
	}
	return false
}

// MayKeepPodOnConfigChange reports whether KeepsPodOnConfigChange can return true for a pod
// whose owner is of kind: whether the pod's record alone leaves it possible.
func MayKeepPodOnConfigChange(kind string) bool {
	switch kind {
	case "Job", "CronJob", "StatefulSet", "DaemonSet":
		return true
	}
	return false
}

// belowPartition reports whether the StatefulSet pod at ordinal ord is below the set's
// RollingUpdate partition, which counts from spec.ordinals.start. Without a partition, none is.
func belowPartition(spec *appsv1.StatefulSetSpec, ord int) bool {
	ru := spec.UpdateStrategy.RollingUpdate
	if ru == nil || ru.Partition == nil {
		return false
	}
	start := 0
	if spec.Ordinals != nil {
		start = int(spec.Ordinals.Start)
	}
	return ord-start < int(*ru.Partition)
}

package manifest

import (
	"strconv"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/apimachinery/pkg/util/validation"
)

// podTemplate checks a workload's pod template: its labels and annotations, then its spec.
func (v *validator) podTemplate(o *Object, path string, t *corev1.PodTemplateSpec, owner podOwner, claims map[string]bool) {
	v.labels(o, path+".metadata.labels", t.Labels)
	v.annotations(o, path+".metadata.annotations", t.Annotations)
	v.podSpec(&podContext{o: o, path: path + ".spec", owner: owner, claimTemplates: claims}, &t.Spec)
}

// nonNegative reports a negative count or duration; Kubernetes rejects them all.
func (v *validator) nonNegative(o *Object, path string, val *int32) {
	if val != nil && *val < 0 {
		v.errorf(o, path, "must be at least 0 (Kubernetes rule), got %d", *val)
	}
}

func (v *validator) nonNegative64(o *Object, path string, val *int64) {
	if val != nil && *val < 0 {
		v.errorf(o, path, "must be at least 0 (Kubernetes rule), got %d", *val)
	}
}

func (v *validator) deployment(o *Object, d *appsv1.Deployment) {
	spec := &d.Spec
	v.nonNegative(o, "spec.replicas", spec.Replicas)
	v.workloadSelector(o, "spec.selector", spec.Selector, spec.Template.Labels, "spec.template.metadata.labels")
	v.podTemplate(o, "spec.template", &spec.Template, ownerWorkload, nil)

	switch st := spec.Strategy; st.Type {
	case "", appsv1.RollingUpdateDeploymentStrategyType:
		if ru := st.RollingUpdate; ru != nil {
			v.rollingParams(o, "spec.strategy.rollingUpdate", ru.MaxSurge, ru.MaxUnavailable, false)
		}
	case appsv1.RecreateDeploymentStrategyType:
		if st.RollingUpdate != nil {
			v.errorf(o, "spec.strategy.rollingUpdate", "may not be set when spec.strategy.type is Recreate (Kubernetes rule): remove it, or use type RollingUpdate")
		}
	default:
		v.errorf(o, "spec.strategy.type", "invalid strategy type %q: use RollingUpdate or Recreate", st.Type)
	}

	if spec.MinReadySeconds < 0 {
		v.errorf(o, "spec.minReadySeconds", "must be at least 0 (Kubernetes rule), got %d", spec.MinReadySeconds)
	}
	v.nonNegative(o, "spec.revisionHistoryLimit", spec.RevisionHistoryLimit)
	if pd := spec.ProgressDeadlineSeconds; pd != nil {
		if *pd < 0 {
			v.errorf(o, "spec.progressDeadlineSeconds", "must be at least 0 (Kubernetes rule), got %d", *pd)
		} else if *pd <= spec.MinReadySeconds {
			v.errorf(o, "spec.progressDeadlineSeconds", "must be greater than spec.minReadySeconds (%d), got %d (Kubernetes rule): a rollout could never be seen progressing; raise it",
				spec.MinReadySeconds, *pd)
		}
	}
}

// rollingParams checks maxSurge and maxUnavailable: each an integer ≥ 0 or a percentage, and
// not both zero, or a rollout could never replace a pod. A nil value means the Kubernetes
// default, which is non-zero except a DaemonSet's maxSurge (surgeDefaultsToZero).
func (v *validator) rollingParams(o *Object, path string, surge, unavailable *intstr.IntOrString, surgeDefaultsToZero bool) {
	surgeZero := v.intOrPercent(o, path+".maxSurge", surge, false)
	if surge == nil {
		surgeZero = surgeDefaultsToZero
	}
	unavailableZero := v.intOrPercent(o, path+".maxUnavailable", unavailable, true)
	if surgeZero && unavailableZero {
		v.errorf(o, path+".maxUnavailable", "may not be 0 when maxSurge is 0 (Kubernetes rule): the rollout could neither add nor remove a pod; raise one of them")
	}
}

// intOrPercent checks an int-or-percent field and reports whether it is zero. max100 caps
// percentages at 100%, as Kubernetes does for maxUnavailable.
func (v *validator) intOrPercent(o *Object, path string, x *intstr.IntOrString, max100 bool) bool {
	if x == nil {
		return false
	}
	if x.Type == intstr.Int {
		if x.IntVal < 0 {
			v.errorf(o, path, "must be at least 0 (Kubernetes rule), got %d", x.IntVal)
		}
		return x.IntVal == 0
	}
	if msgs := validation.IsValidPercent(x.StrVal); len(msgs) > 0 {
		v.errorf(o, path, "invalid value %q: use an integer or a percentage such as 25%%", x.StrVal)
		return false
	}
	n, err := strconv.Atoi(strings.TrimSuffix(x.StrVal, "%"))
	if err != nil {
		v.errorf(o, path, "invalid percentage %q: use an integer or a percentage such as 25%%", x.StrVal)
		return false
	}
	if max100 && n > 100 {
		v.errorf(o, path, "must not be more than 100%% (Kubernetes rule), got %s", x.StrVal)
	}
	return n == 0
}

func (v *validator) statefulSet(o *Object, s *appsv1.StatefulSet) {
	spec := &s.Spec
	v.nonNegative(o, "spec.replicas", spec.Replicas)
	replicas := int32(1)
	if spec.Replicas != nil && *spec.Replicas > 0 {
		replicas = *spec.Replicas
	}
	start := int32(0)
	if spec.Ordinals != nil {
		if spec.Ordinals.Start < 0 {
			v.errorf(o, "spec.ordinals.start", "must be at least 0 (Kubernetes rule), got %d", spec.Ordinals.Start)
		} else {
			start = spec.Ordinals.Start
		}
	}
	v.statefulSetHostnames(o, s.Name, start+replicas)

	v.workloadSelector(o, "spec.selector", spec.Selector, spec.Template.Labels, "spec.template.metadata.labels")
	claims := v.volumeClaimTemplates(o, spec.VolumeClaimTemplates)
	v.podTemplate(o, "spec.template", &spec.Template, ownerWorkload, claims)
	v.governingService(o, spec.ServiceName)

	switch spec.PodManagementPolicy {
	case "", appsv1.OrderedReadyPodManagement, appsv1.ParallelPodManagement:
	default:
		v.errorf(o, "spec.podManagementPolicy", "invalid podManagementPolicy %q: use OrderedReady or Parallel", spec.PodManagementPolicy)
	}
	switch us := spec.UpdateStrategy; us.Type {
	case "", appsv1.RollingUpdateStatefulSetStrategyType:
		if ru := us.RollingUpdate; ru != nil {
			v.nonNegative(o, "spec.updateStrategy.rollingUpdate.partition", ru.Partition)
			if ru.MaxUnavailable != nil && v.intOrPercent(o, "spec.updateStrategy.rollingUpdate.maxUnavailable", ru.MaxUnavailable, true) {
				v.errorf(o, "spec.updateStrategy.rollingUpdate.maxUnavailable", "must be greater than 0 (Kubernetes rule): remove it for one pod at a time")
			}
		}
	case appsv1.OnDeleteStatefulSetStrategyType:
		if us.RollingUpdate != nil {
			v.errorf(o, "spec.updateStrategy.rollingUpdate", "may not be set when spec.updateStrategy.type is OnDelete (Kubernetes rule): remove it, or use type RollingUpdate")
		}
	default:
		v.errorf(o, "spec.updateStrategy.type", "invalid update strategy %q: use RollingUpdate or OnDelete", us.Type)
	}
	if rp := spec.PersistentVolumeClaimRetentionPolicy; rp != nil {
		for _, f := range []struct {
			path string
			val  appsv1.PersistentVolumeClaimRetentionPolicyType
		}{{"whenDeleted", rp.WhenDeleted}, {"whenScaled", rp.WhenScaled}} {
			switch f.val {
			case "", appsv1.RetainPersistentVolumeClaimRetentionPolicyType, appsv1.DeletePersistentVolumeClaimRetentionPolicyType:
			default:
				v.errorf(o, "spec.persistentVolumeClaimRetentionPolicy."+f.path, "invalid policy %q: use Retain or Delete", f.val)
			}
		}
	}
	if spec.MinReadySeconds < 0 {
		v.errorf(o, "spec.minReadySeconds", "must be at least 0 (Kubernetes rule), got %d", spec.MinReadySeconds)
	}
	v.nonNegative(o, "spec.revisionHistoryLimit", spec.RevisionHistoryLimit)
}

// governingService checks a StatefulSet's serviceName: a headless Service in the same
// namespace, which gives each pod its stable DNS name.
func (v *validator) governingService(o *Object, name string) {
	const path = "spec.serviceName"
	if name == "" {
		v.errorf(o, path, "is required: name the headless Service (clusterIP: None) that gives the pods their DNS names (%s-0.SERVICE.%s.svc)",
			o.Key.Name, nsName(o.Key.Namespace))
		return
	}
	svcObj := v.set.Get(Key{Kind: vkService, Namespace: o.Key.Namespace, Name: name})
	if svcObj == nil {
		v.errorf(o, path, "Service %q not found in namespace %q: add a headless Service (clusterIP: None) named %q that selects this StatefulSet's pods",
			name, nsName(o.Key.Namespace), name)
		return
	}
	if svc, ok := svcObj.Obj.(*corev1.Service); ok && svc.Spec.ClusterIP != corev1.ClusterIPNone {
		v.errorf(o, path, "Service %q (%s) is not headless: a StatefulSet's governing Service must set clusterIP: None so each pod gets its own DNS name; add a separate Service for load-balanced access",
			name, svcObj.Source)
	}
}

// localAccessModes are the access modes a node-local volume can honour; ReadOnlyMany and
// ReadWriteMany need storage shared between nodes.
var localAccessModes = map[corev1.PersistentVolumeAccessMode]bool{
	corev1.ReadWriteOnce:    true,
	corev1.ReadWriteOncePod: true,
}

// volumeClaimTemplates checks a StatefulSet's claim templates and returns their names, which
// the pod template may mount.
func (v *validator) volumeClaimTemplates(o *Object, vcts []corev1.PersistentVolumeClaim) map[string]bool {
	names := make(map[string]bool, len(vcts))
	for i := range vcts {
		c := &vcts[i]
		p := indexPath("spec.volumeClaimTemplates", i)
		switch {
		case c.Name == "":
			v.errorf(o, p+".metadata.name", "is required: name the claim; containers mount it by this name")
		case len(dnsLabelErrs(c.Name)) > 0:
			v.errorf(o, p+".metadata.name", "invalid claim name %q: it becomes a volume name, which Kubernetes requires to be a DNS-1123 label (%s)",
				c.Name, joinMsgs(dnsLabelErrs(c.Name)))
		case names[c.Name]:
			v.errorf(o, p+".metadata.name", "duplicate claim name %q: volumeClaimTemplates names must be unique; rename one", c.Name)
		default:
			names[c.Name] = true
			v.claimPrefixes = append(v.claimPrefixes, claimPrefix{o: o, path: p + ".metadata.name", template: c.Name,
				key: Key{Namespace: o.Key.Namespace, Name: c.Name + "-" + o.Key.Name}})
		}
		storage, ok := c.Spec.Resources.Requests[corev1.ResourceStorage]
		switch {
		case !ok:
			v.errorf(o, p+".spec.resources.requests", "a storage request is required: set spec.resources.requests.storage, e.g. 1Gi")
		case storage.Sign() <= 0:
			v.errorf(o, p+".spec.resources.requests.storage", "must be greater than 0, got %s", storage.String())
		}
		if sc := c.Spec.StorageClassName; sc != nil {
			v.errorf(o, p+".spec.storageClassName", "storage class %q is not supported by shoal: its only storage is a local volume on the node that first runs the pod; remove storageClassName", *sc)
		}
		for j, m := range c.Spec.AccessModes {
			switch {
			case localAccessModes[m]:
			case m == corev1.ReadOnlyMany || m == corev1.ReadWriteMany:
				v.errorf(o, indexPath(p+".spec.accessModes", j), "access mode %s is not supported by shoal: its volumes are local to one node; use ReadWriteOnce or ReadWriteOncePod", m)
			default:
				v.errorf(o, indexPath(p+".spec.accessModes", j), "invalid access mode %q: use ReadWriteOnce or ReadWriteOncePod", m)
			}
		}
	}
	return names
}

func (v *validator) daemonSet(o *Object, d *appsv1.DaemonSet) {
	spec := &d.Spec
	v.workloadSelector(o, "spec.selector", spec.Selector, spec.Template.Labels, "spec.template.metadata.labels")
	v.podTemplate(o, "spec.template", &spec.Template, ownerWorkload, nil)
	switch us := spec.UpdateStrategy; us.Type {
	case "", appsv1.RollingUpdateDaemonSetStrategyType:
		if ru := us.RollingUpdate; ru != nil {
			v.rollingParams(o, "spec.updateStrategy.rollingUpdate", ru.MaxSurge, ru.MaxUnavailable, true)
		}
	case appsv1.OnDeleteDaemonSetStrategyType:
		if us.RollingUpdate != nil {
			v.errorf(o, "spec.updateStrategy.rollingUpdate", "may not be set when spec.updateStrategy.type is OnDelete (Kubernetes rule): remove it, or use type RollingUpdate")
		}
	default:
		v.errorf(o, "spec.updateStrategy.type", "invalid update strategy %q: use RollingUpdate or OnDelete", us.Type)
	}
	if spec.MinReadySeconds < 0 {
		v.errorf(o, "spec.minReadySeconds", "must be at least 0 (Kubernetes rule), got %d", spec.MinReadySeconds)
	}
	v.nonNegative(o, "spec.revisionHistoryLimit", spec.RevisionHistoryLimit)
}

// job checks a Job spec at path: "spec" for a Job, "spec.jobTemplate.spec" for a CronJob.
// spec.selector is not checked here: shoal generates a Job's selector, and Decode refuses one
// written by the user.
func (v *validator) job(o *Object, path string, spec *batchv1.JobSpec) {
	v.nonNegative(o, path+".parallelism", spec.Parallelism)
	v.nonNegative(o, path+".completions", spec.Completions)
	v.nonNegative(o, path+".backoffLimit", spec.BackoffLimit)
	v.nonNegative(o, path+".ttlSecondsAfterFinished", spec.TTLSecondsAfterFinished)
	if d := spec.ActiveDeadlineSeconds; d != nil && *d < 1 {
		v.errorf(o, path+".activeDeadlineSeconds", "must be at least 1 (Kubernetes rule), got %d; remove it for no deadline", *d)
	}
	if spec.CompletionMode != nil {
		switch *spec.CompletionMode {
		case batchv1.NonIndexedCompletion:
		case batchv1.IndexedCompletion:
			if spec.Completions == nil {
				v.errorf(o, path+".completions", "is required when completionMode is Indexed (Kubernetes rule): set the number of indexes to complete")
			}
		default:
			v.errorf(o, path+".completionMode", "invalid completionMode %q: use NonIndexed or Indexed", *spec.CompletionMode)
		}
	}
	v.podTemplate(o, path+".template", &spec.Template, ownerJob, nil)
}

func (v *validator) cronJob(o *Object, cj *batchv1.CronJob) {
	spec := &cj.Spec
	v.cronSchedule(o, spec.Schedule)
	if tz := spec.TimeZone; tz != nil {
		const path = "spec.timeZone"
		switch {
		case *tz == "":
			v.errorf(o, path, "must not be empty: name an IANA time zone such as Europe/Amsterdam, or remove it for the cluster's UTC")
		case strings.EqualFold(*tz, "Local"):
			v.errorf(o, path, "\"Local\" is not allowed (Kubernetes rule): the schedule must not depend on a node's clock settings; name an IANA time zone such as Europe/Amsterdam")
		default:
			if _, err := time.LoadLocation(*tz); err != nil {
				v.errorf(o, path, "unknown time zone %q: use an IANA time zone name such as Europe/Amsterdam or America/New_York", *tz)
			}
		}
	}
	switch spec.ConcurrencyPolicy {
	case "", batchv1.AllowConcurrent, batchv1.ForbidConcurrent, batchv1.ReplaceConcurrent:
	default:
		v.errorf(o, "spec.concurrencyPolicy", "invalid concurrencyPolicy %q: use Allow, Forbid or Replace", spec.ConcurrencyPolicy)
	}
	v.nonNegative64(o, "spec.startingDeadlineSeconds", spec.StartingDeadlineSeconds)
	v.nonNegative(o, "spec.successfulJobsHistoryLimit", spec.SuccessfulJobsHistoryLimit)
	v.nonNegative(o, "spec.failedJobsHistoryLimit", spec.FailedJobsHistoryLimit)

	v.labels(o, "spec.jobTemplate.metadata.labels", spec.JobTemplate.Labels)
	v.annotations(o, "spec.jobTemplate.metadata.annotations", spec.JobTemplate.Annotations)
	v.job(o, "spec.jobTemplate.spec", &spec.JobTemplate.Spec)
}

// cronSchedule parses a CronJob schedule as Kubernetes does: robfig/cron's standard parser,
// five fields or a descriptor such as @hourly, and no time zone prefix.
func (v *validator) cronSchedule(o *Object, schedule string) {
	const path = "spec.schedule"
	s := strings.TrimSpace(schedule)
	if s == "" {
		v.errorf(o, path, "is required: give a cron schedule such as \"30 2 * * *\" or @hourly")
		return
	}
	if strings.HasPrefix(s, "TZ=") || strings.HasPrefix(s, "CRON_TZ=") {
		zone := s[strings.IndexByte(s, '=')+1:]
		if i := strings.IndexAny(zone, " \t"); i >= 0 {
			zone = zone[:i]
		}
		v.errorf(o, path, "a time zone in the schedule (TZ= or CRON_TZ=) is not allowed (Kubernetes rule): remove it and set spec.timeZone: %s", zone)
		return
	}
	if _, err := cron.ParseStandard(s); err != nil {
		v.errorf(o, path, "invalid schedule %q: %v; use five fields (minute hour day-of-month month day-of-week) or a descriptor such as @hourly", schedule, err)
	}
}

// claimPrefix is what a StatefulSet's claim template names: its pods' claims are
// TEMPLATE-SET-ORDINAL in the set's namespace, one node-local volume each.
type claimPrefix struct {
	o        *Object
	path     string
	template string
	key      Key // namespace, and TEMPLATE-SET
}

// settleClaimPrefixes reports every claim template whose claims another StatefulSet's template
// makes too (template data-x of set web and template data of set x-web both make
// data-x-web-0), naming the first in key order. Two claims that differ in their prefix never
// meet (the ordinal has no '-'), so equal prefixes are the only collision. The sets' pods
// would share volumes, and one set's retention policy would delete the other's data.
func (v *validator) settleClaimPrefixes() {
	seen := make(map[Key]claimPrefix, len(v.claimPrefixes))
	for _, c := range v.claimPrefixes {
		first, dup := seen[c.key]
		if !dup {
			seen[c.key] = c
			continue
		}
		v.errorf(c.o, c.path, "claim template %q makes the claims %s-0, %s-1...; so does template %q of %s (%s): their pods would share volumes, and one set's retention policy would delete the other's data; rename one template",
			c.template, c.key.Name, c.key.Name, first.template, first.o.Key, first.o.At(first.path))
	}
}

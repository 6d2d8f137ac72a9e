package manifest

import (
	"reflect"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// podOwner says what runs a pod spec, which decides the restart policies allowed.
type podOwner int

const (
	ownerPod      podOwner = iota // a bare Pod: any restartPolicy
	ownerWorkload                 // Deployment, StatefulSet, DaemonSet: Always only
	ownerJob                      // Job, CronJob: OnFailure or Never, and it must be written
)

// podContext is where a pod spec sits: its object, its field path ("spec" for a Pod,
// "spec.template.spec" for a workload) and what the checks below need from the owner.
type podContext struct {
	o     *Object
	path  string
	owner podOwner
	// claimTemplates holds a StatefulSet's volumeClaimTemplates names, which its containers
	// may mount like volumes.
	claimTemplates map[string]bool

	// Filled by podSpec for the container checks.
	grace     *int64 // terminationGracePeriodSeconds
	volumes   map[string]*corev1.Volume
	portNames map[string]string // port name → path of its first definition
	hostPorts map[hostPortKey]string
	names     map[string]string // container name → path of its first definition
}

type hostPortKey struct {
	port  int32
	proto corev1.Protocol
}

// podSpec checks a pod spec wherever it appears: a Pod, or any workload's template.
func (v *validator) podSpec(pc *podContext, spec *corev1.PodSpec) {
	o, p := pc.o, pc.path
	pc.grace = spec.TerminationGracePeriodSeconds
	v.restartPolicy(pc, spec.RestartPolicy)

	pc.volumes = make(map[string]*corev1.Volume, len(spec.Volumes))
	for i := range spec.Volumes {
		v.volume(pc, indexPath(p+".volumes", i), &spec.Volumes[i])
	}

	if len(spec.Containers) == 0 {
		v.errorf(o, p+".containers", "at least one container is required: add an entry with a name and an image")
	}
	pc.names = make(map[string]string, len(spec.Containers)+len(spec.InitContainers))
	for i := range spec.InitContainers {
		v.container(pc, indexPath(p+".initContainers", i), &spec.InitContainers[i], true)
	}
	for i := range spec.Containers {
		v.container(pc, indexPath(p+".containers", i), &spec.Containers[i], false)
	}

	switch spec.DNSPolicy {
	case "", corev1.DNSClusterFirst, corev1.DNSDefault:
	case corev1.DNSClusterFirstWithHostNet, corev1.DNSNone:
		v.errorf(o, p+".dnsPolicy", "dnsPolicy %q is not supported by shoal: use ClusterFirst (cluster DNS, the default) or Default (the node's resolver)", spec.DNSPolicy)
	default:
		v.errorf(o, p+".dnsPolicy", "invalid dnsPolicy %q: use ClusterFirst or Default", spec.DNSPolicy)
	}

	if g := spec.TerminationGracePeriodSeconds; g != nil && *g < 0 {
		v.errorf(o, p+".terminationGracePeriodSeconds", "must be at least 0 (Kubernetes rule), got %d", *g)
	}
	if d := spec.ActiveDeadlineSeconds; d != nil && *d < 1 {
		v.errorf(o, p+".activeDeadlineSeconds", "must be at least 1 (Kubernetes rule), got %d; remove it for no deadline", *d)
	}
	for k, val := range spec.NodeSelector {
		path := keyPath(p+".nodeSelector", k)
		if msgs := labelKeyErrs(k); len(msgs) > 0 {
			v.errorf(o, path, "invalid node label key %q: %s", k, joinMsgs(msgs))
		}
		if msgs := labelValueErrs(val); len(msgs) > 0 {
			v.errorf(o, path, "invalid node label value %q for %q: %s", val, k, joinMsgs(msgs))
		}
	}
	if spec.Affinity != nil {
		v.affinity(o, p+".affinity", spec.Affinity)
	}
	v.topologySpread(o, p+".topologySpreadConstraints", spec.TopologySpreadConstraints)
	if spec.Hostname != "" {
		if msgs := dnsLabelErrs(spec.Hostname); len(msgs) > 0 {
			v.errorf(o, p+".hostname", "invalid hostname %q: Kubernetes requires a DNS-1123 label (%s)", spec.Hostname, joinMsgs(msgs))
		}
	}
	if spec.Subdomain != "" {
		if msgs := dnsLabelErrs(spec.Subdomain); len(msgs) > 0 {
			v.errorf(o, p+".subdomain", "invalid subdomain %q: it names a headless Service, so Kubernetes requires a DNS-1123 label (%s)", spec.Subdomain, joinMsgs(msgs))
		}
	}
	if sc := spec.SecurityContext; sc != nil {
		v.unixID(o, p+".securityContext.runAsUser", sc.RunAsUser)
		v.unixID(o, p+".securityContext.runAsGroup", sc.RunAsGroup)
		v.unixID(o, p+".securityContext.fsGroup", sc.FSGroup)
	}
	for i := range spec.Tolerations {
		v.toleration(o, indexPath(p+".tolerations", i), &spec.Tolerations[i])
	}
	for i, ref := range spec.ImagePullSecrets {
		v.imagePullSecret(pc, indexPath(p+".imagePullSecrets", i), ref.Name)
	}
}

// restartPolicy checks spec.restartPolicy against what the owner's controller can run.
func (v *validator) restartPolicy(pc *podContext, rp corev1.RestartPolicy) {
	path := pc.path + ".restartPolicy"
	switch pc.owner {
	case ownerJob:
		switch {
		case rp == corev1.RestartPolicyOnFailure || rp == corev1.RestartPolicyNever:
		case rp == "" || (rp == corev1.RestartPolicyAlways && !pc.o.Written(path)):
			v.errorf(pc.o, path, "is required for a Job's pods: set OnFailure (retry in place) or Never (a new pod per retry); Kubernetes rejects the default Always")
		case rp == corev1.RestartPolicyAlways:
			v.errorf(pc.o, path, "Kubernetes rejects restartPolicy Always for a Job's pods, which must finish: use OnFailure or Never")
		default:
			v.errorf(pc.o, path, "invalid restartPolicy %q: use OnFailure or Never", rp)
		}
	case ownerWorkload:
		if rp != "" && rp != corev1.RestartPolicyAlways {
			v.errorf(pc.o, path, "restartPolicy %q is not allowed here: Kubernetes only allows Always for a %s's pods; remove it, or use a Job for pods that finish", rp, pc.o.Key.Kind)
		}
	default:
		switch rp {
		case "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
		default:
			v.errorf(pc.o, path, "invalid restartPolicy %q: use Always, OnFailure or Never", rp)
		}
	}
}

// volume checks one entry of spec.volumes and records it for the volumeMounts checks.
func (v *validator) volume(pc *podContext, path string, vol *corev1.Volume) {
	o := pc.o
	switch {
	case vol.Name == "":
		v.errorf(o, path+".name", "is required: name the volume so containers can mount it")
	case len(dnsLabelErrs(vol.Name)) > 0:
		v.errorf(o, path+".name", "invalid volume name %q: Kubernetes requires a DNS-1123 label (%s)", vol.Name, joinMsgs(dnsLabelErrs(vol.Name)))
	case pc.volumes[vol.Name] != nil:
		v.errorf(o, path+".name", "duplicate volume name %q: volume names must be unique within a pod; rename one", vol.Name)
	case pc.claimTemplates[vol.Name] && (vol.PersistentVolumeClaim == nil || vol.PersistentVolumeClaim.ClaimName != vol.Name):
		v.errorf(o, path+".name", "volume name %q is also a volumeClaimTemplates name: the StatefulSet supplies that volume itself; rename or remove this one", vol.Name)
	default:
		pc.volumes[vol.Name] = vol
	}

	if srcs := volumeSources(&vol.VolumeSource); len(srcs) != 1 {
		if len(srcs) == 0 {
			v.errorf(o, path, "must have exactly one volume source: add one, e.g. emptyDir: {}, configMap or secret")
		} else {
			v.errorf(o, path, "must have exactly one volume source, found %d (%s): keep one", len(srcs), strings.Join(srcs, ", "))
		}
	}

	src := &vol.VolumeSource
	if pvc := src.PersistentVolumeClaim; pvc != nil {
		switch {
		case pc.claimTemplates == nil:
			v.errorf(o, path+".persistentVolumeClaim", "persistentVolumeClaim volumes are not supported here: shoal supports local volumes only through StatefulSet volumeClaimTemplates; run this as a StatefulSet and declare the claim in spec.volumeClaimTemplates")
		case !pc.claimTemplates[pvc.ClaimName]:
			v.errorf(o, path+".persistentVolumeClaim.claimName", "claim %q is not one of this StatefulSet's volumeClaimTemplates: shoal supports local volumes only through volumeClaimTemplates; declare the claim there and mount it by that name", pvc.ClaimName)
		}
	}
	if ed := src.EmptyDir; ed != nil && ed.Medium != corev1.StorageMediumDefault && ed.Medium != corev1.StorageMediumMemory {
		v.errorf(o, path+".emptyDir.medium", "medium %q is not supported by shoal: use \"\" (node disk) or Memory (tmpfs)", ed.Medium)
	}
	if hp := src.HostPath; hp != nil {
		if !strings.HasPrefix(hp.Path, "/") {
			v.errorf(o, path+".hostPath.path", "must be an absolute path on the node, got %q", hp.Path)
		}
		if hp.Type != nil {
			switch *hp.Type {
			case corev1.HostPathUnset, corev1.HostPathDirectoryOrCreate, corev1.HostPathDirectory, corev1.HostPathFileOrCreate, corev1.HostPathFile, corev1.HostPathSocket:
			case corev1.HostPathCharDev, corev1.HostPathBlockDev:
				v.errorf(o, path+".hostPath.type", "type %s is not supported by shoal: use DirectoryOrCreate, Directory, FileOrCreate, File or Socket", *hp.Type)
			default:
				v.errorf(o, path+".hostPath.type", "invalid type %q: use DirectoryOrCreate, Directory, FileOrCreate, File or Socket, or leave it empty", *hp.Type)
			}
		}
	}
	if da := src.DownwardAPI; da != nil {
		v.fileMode(o, path+".downwardAPI.defaultMode", da.DefaultMode)
		v.downwardAPIItems(pc, path+".downwardAPI.items", da.Items)
	}
	if cm := src.ConfigMap; cm != nil {
		p := path + ".configMap"
		v.fileMode(o, p+".defaultMode", cm.DefaultMode)
		v.keyToPaths(o, p+".items", cm.Items)
		v.configMapVolumeRef(pc, p, cm.Name, cm.Items, cm.Optional)
	}
	if s := src.Secret; s != nil {
		p := path + ".secret"
		v.fileMode(o, p+".defaultMode", s.DefaultMode)
		v.keyToPaths(o, p+".items", s.Items)
		v.secretVolumeRef(pc, p, "secretName", s.SecretName, s.Items, s.Optional)
	}
	if pr := src.Projected; pr != nil {
		p := path + ".projected"
		v.fileMode(o, p+".defaultMode", pr.DefaultMode)
		for j := range pr.Sources {
			sp := indexPath(p+".sources", j)
			if cm := pr.Sources[j].ConfigMap; cm != nil {
				v.keyToPaths(o, sp+".configMap.items", cm.Items)
				v.configMapVolumeRef(pc, sp+".configMap", cm.Name, cm.Items, cm.Optional)
			}
			if s := pr.Sources[j].Secret; s != nil {
				v.keyToPaths(o, sp+".secret.items", s.Items)
				v.secretVolumeRef(pc, sp+".secret", "name", s.Name, s.Items, s.Optional)
			}
		}
	}
}

// volumeSources names the sources set in a VolumeSource by their YAML keys. VolumeSource is a
// union of pointers that grows with each Kubernetes release, so the fields are walked rather
// than listed; only an error message needs the names.
func volumeSources(src *corev1.VolumeSource) []string {
	rv := reflect.ValueOf(src).Elem()
	var names []string
	for i := 0; i < rv.NumField(); i++ {
		f := rv.Field(i)
		if f.Kind() != reflect.Pointer || f.IsNil() {
			continue
		}
		tag := rv.Type().Field(i).Tag.Get("json")
		if j := strings.IndexByte(tag, ','); j >= 0 {
			tag = tag[:j]
		}
		names = append(names, tag)
	}
	return names
}

// keyToPaths checks the items of a configMap, secret or projected volume: each needs a key and
// a relative path that stays inside the volume.
func (v *validator) keyToPaths(o *Object, path string, items []corev1.KeyToPath) {
	seen := make(map[string]bool, len(items))
	for j, it := range items {
		p := indexPath(path, j)
		if it.Key == "" {
			v.errorf(o, p+".key", "is required: name the key to project")
		}
		switch {
		case it.Path == "":
			v.errorf(o, p+".path", "is required: give the file name to project key %q to", it.Key)
		case !v.relativePath(o, p+".path", it.Path):
		case seen[it.Path]:
			v.errorf(o, p+".path", "duplicate path %q: two items would write the same file; use distinct paths", it.Path)
		default:
			seen[it.Path] = true
		}
		v.fileMode(o, p+".mode", it.Mode)
	}
}

// relativePath reports, and returns false for, a path that is absolute or climbs out with "..".
func (v *validator) relativePath(o *Object, path, val string) bool {
	if strings.HasPrefix(val, "/") {
		v.errorf(o, path, "must be a relative path, got %q: remove the leading '/'", val)
		return false
	}
	for _, el := range strings.Split(val, "/") {
		if el == ".." {
			v.errorf(o, path, "must not contain '..', got %q: Kubernetes forbids paths that leave the volume", val)
			return false
		}
	}
	return true
}

// fileMode checks a defaultMode or item mode: Kubernetes allows 0 to 0777 (octal).
func (v *validator) fileMode(o *Object, path string, mode *int32) {
	if mode != nil && (*mode < 0 || *mode > 0o777) {
		v.errorf(o, path, "must be between 0 and 0777 (octal; 511 decimal), got %d: file modes have only permission bits", *mode)
	}
}

// toleration checks one toleration against Kubernetes' rules for operator, key, value and effect.
func (v *validator) toleration(o *Object, path string, t *corev1.Toleration) {
	if t.Key != "" {
		if msgs := labelKeyErrs(t.Key); len(msgs) > 0 {
			v.errorf(o, path+".key", "invalid toleration key %q: %s", t.Key, joinMsgs(msgs))
		}
	}
	switch t.Operator {
	case "", corev1.TolerationOpEqual:
		if t.Key == "" {
			v.errorf(o, path+".operator", "must be Exists when key is empty (a toleration of every taint); set a key or use operator: Exists")
		}
		if msgs := labelValueErrs(t.Value); len(msgs) > 0 {
			v.errorf(o, path+".value", "invalid toleration value %q: %s", t.Value, joinMsgs(msgs))
		}
	case corev1.TolerationOpExists:
		if t.Value != "" {
			v.errorf(o, path+".value", "must be empty when operator is Exists: remove the value or use operator: Equal")
		}
	default:
		v.errorf(o, path+".operator", "invalid operator %q: use Equal or Exists", t.Operator)
	}
	switch t.Effect {
	case "", corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
	default:
		v.errorf(o, path+".effect", "invalid effect %q: use NoSchedule, PreferNoSchedule or NoExecute, or leave it empty to match all", t.Effect)
	}
	if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
		v.errorf(o, path+".tolerationSeconds", "is only allowed with effect NoExecute (Kubernetes rule): remove it or set effect: NoExecute")
	}
}

// downwardAPIItems checks a downwardAPI volume's files: each a relative path with exactly one
// of fieldRef (metadata fields only) and resourceFieldRef (naming a container of the pod).
func (v *validator) downwardAPIItems(pc *podContext, path string, items []corev1.DownwardAPIVolumeFile) {
	o := pc.o
	for j := range items {
		it := &items[j]
		p := indexPath(path, j)
		if it.Path == "" {
			v.errorf(o, p+".path", "is required: give the file name to write")
		} else {
			v.relativePath(o, p+".path", it.Path)
		}
		v.fileMode(o, p+".mode", it.Mode)
		switch {
		case it.FieldRef != nil && it.ResourceFieldRef != nil:
			v.errorf(o, p, "must have exactly one of fieldRef and resourceFieldRef: split it into two items")
		case it.FieldRef != nil:
			switch fp := it.FieldRef.FieldPath; fp {
			case "metadata.name", "metadata.namespace", "metadata.uid", "metadata.labels", "metadata.annotations":
			default:
				if !validFieldPath(fp) || !strings.HasPrefix(fp, "metadata.") {
					v.errorf(o, p+".fieldRef.fieldPath", "unsupported fieldPath %q: a downwardAPI volume exposes metadata.name, metadata.namespace, metadata.uid, metadata.labels and metadata.annotations", fp)
				}
			}
			v.fieldRefVersion(o, p+".fieldRef.apiVersion", it.FieldRef.APIVersion)
		case it.ResourceFieldRef != nil:
			r := it.ResourceFieldRef
			if !supportedResourceFields[r.Resource] {
				v.errorf(o, p+".resourceFieldRef.resource", "unsupported resource %q: shoal exposes limits.cpu, limits.memory, requests.cpu and requests.memory", r.Resource)
			}
			if r.ContainerName == "" {
				v.errorf(o, p+".resourceFieldRef.containerName", "is required in a volume (Kubernetes rule): name the container whose resources to expose")
			}
		default:
			v.errorf(o, p, "must have fieldRef or resourceFieldRef: say what to write to %q", it.Path)
		}
	}
}

// unixID checks a user or group id: Kubernetes allows 0 to 2147483647.
func (v *validator) unixID(o *Object, path string, id *int64) {
	if id != nil && (*id < 0 || *id > 1<<31-1) {
		v.errorf(o, path, "must be between 0 and 2147483647 (Kubernetes rule), got %d", *id)
	}
}

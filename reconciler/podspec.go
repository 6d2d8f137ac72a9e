package reconciler

import (
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"

	"github.com/shoal-dev/shoal/manifest"
	"github.com/shoal-dev/shoal/state"
)

// Labels the controllers add to every pod they create, as Kubernetes does, so that selectors
// written for Kubernetes (affinity, spread, Services) see the same labels.
const (
	LabelTemplateHash     = "pod-template-hash"
	LabelControllerHash   = "controller-revision-hash"
	LabelStatefulSetPod   = "statefulset.kubernetes.io/pod-name"
	LabelPodIndex         = "apps.kubernetes.io/pod-index"
	LabelJobCompletionIdx = "batch.kubernetes.io/job-completion-index"
)

// revision is one template as the controllers create pods from it: its hash, the commit that
// holds it (the node reads the manifest there) and what scheduling needs. The labels and the
// scheduling spec are extracted on first use: most reconciles create nothing.
type revision struct {
	hash       string
	commit     string
	configHash string
	labels     map[string]string
	spec       state.PodSpec

	template  *corev1.PodTemplateSpec // nil once extracted, or for a revision rebuilt from a pod
	labelKey  string
	namespace string
	config    map[manifest.Key]string
	keep      bool // the object asks for its pods to be kept when it leaves Git
}

// configFor returns the config hashes that apply to an object's templates.
func (r *run) configFor(o *manifest.Object) map[manifest.Key]string {
	// manifest.AnnotationRolloutOnConfigChange: "false" leaves the content of the ConfigMaps and
	// Secrets a workload references out of its template hash: changing them does not roll it
	// (pods see the new content when they restart, as in Kubernetes).
	if o.Meta().GetAnnotations()[manifest.AnnotationRolloutOnConfigChange] == "false" {
		return nil
	}
	return r.in.ConfigHashes
}

// newRevision identifies the template of object o. labelKey is the label the controller
// stamps the hash under (pod-template-hash or controller-revision-hash).
func (r *run) newRevision(o *manifest.Object, t *corev1.PodTemplateSpec, labelKey string) *revision {
	config := r.configFor(o)
	return &revision{hash: r.templateHash(o.Key.Namespace, t, config), commit: r.in.Commit,
		template: t, labelKey: labelKey, namespace: o.Key.Namespace, config: config,
		keep: keepOnPrune(o)}
}

// extract fills in what pod records need from the template.
func (rev *revision) extract() {
	t := rev.template
	if t == nil {
		return
	}
	rev.template = nil
	rev.labels = make(map[string]string, len(t.Labels)+1)
	for k, v := range t.Labels {
		rev.labels[k] = v
	}
	rev.labels[rev.labelKey] = rev.hash
	if rev.keep {
		rev.labels[LabelPrune] = manifest.PruneDisabled
	}
	rev.configHash = configHash(rev.namespace, &t.Spec, rev.config)
	rev.spec = schedulingSpec(&t.Spec)
}

// revisionOf rebuilds a revision from one of its existing pods, so that a controller can create
// another pod of an old revision (a StatefulSet below its partition) without the old manifest:
// the record carries the commit the node reads the template from.
func revisionOf(p *state.Pod) *revision {
	return &revision{hash: p.TemplateHash, commit: p.Commit, configHash: p.ConfigHash, labels: p.Labels, spec: p.Spec}
}

// schedulingSpec extracts the scheduling requirements of a pod: requests as the scheduler
// counts them (the larger of the containers' sum and the largest init container, as Kubernetes
// does), node selector, affinity, tolerations, host ports, topology spread and images.
func schedulingSpec(s *corev1.PodSpec) state.PodSpec {
	var out state.PodSpec
	var cpu, mem int64
	for i := range s.Containers {
		c := &s.Containers[i]
		cpu += c.Resources.Requests.Cpu().MilliValue()
		mem += c.Resources.Requests.Memory().Value()
		for _, p := range c.Ports {
			if p.HostPort != 0 {
				out.HostPorts = append(out.HostPorts, state.HostPort{Port: p.HostPort, Protocol: string(p.Protocol), IP: p.HostIP})
			}
		}
		out.Images = append(out.Images, c.Image)
	}
	for i := range s.InitContainers {
		c := &s.InitContainers[i]
		cpu = max(cpu, c.Resources.Requests.Cpu().MilliValue())
		mem = max(mem, c.Resources.Requests.Memory().Value())
		out.Images = append(out.Images, c.Image)
	}
	out.Requests = state.Resources{MilliCPU: cpu, Memory: mem, Pods: 1}
	out.NodeSelector = s.NodeSelector
	out.Affinity = s.Affinity
	out.Tolerations = s.Tolerations
	out.TopologySpread = s.TopologySpreadConstraints
	return out
}

// podRecord builds the record of a new pod. The UID is derived from the pod's identity, its
// revision and the creation time, so a replayed reconcile proposes the same UID, and a name
// used again later (a StatefulSet pod) gets a new one.
func (r *run) podRecord(ns, name, ownerKind, ownerName string, rev *revision) state.Pod {
	rev.extract()
	now := r.in.Now
	return state.Pod{
		UID:          podUID(ns, name, rev.hash, now),
		Namespace:    ns,
		Name:         name,
		Labels:       rev.labels,
		Owner:        state.Owner{Kind: ownerKind, Name: ownerName},
		TemplateHash: rev.hash,
		ConfigHash:   rev.configHash,
		Commit:       rev.commit,
		Created:      now,
		Spec:         rev.spec,
		Desired:      state.DesiredRun,
	}
}

func podUID(ns, name, hash string, now time.Time) string {
	h := sha256.New()
	h.Write([]byte(ns + "/" + name + "/" + hash + "/" + strconv.FormatInt(now.UnixNano(), 10)))
	var sum [sha256.Size]byte
	b := hex.EncodeToString(h.Sum(sum[:0])[:16])
	// The textual form of a UUID, so that tools reading UIDs see a familiar shape.
	return b[0:8] + "-" + b[8:12] + "-" + b[12:16] + "-" + b[16:20] + "-" + b[20:32]
}

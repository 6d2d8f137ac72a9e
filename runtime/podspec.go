package runtime

import (
	"errors"
	"fmt"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
)

// PodSpec is what the runtime needs to run one pod, in shoal's terms. Build
// it with FromPod; the runtime does not read the Kubernetes object itself.
type PodSpec struct {
	Key PodKey
	// Hostname is the pod's hostname: spec.hostname, else the pod name.
	Hostname string
	// Subdomain, with the namespace and cluster domain, gives the pod's
	// FQDN in /etc/hosts when set.
	Subdomain   string
	HostAliases []corev1.HostAlias
	// TerminationGracePeriod is how long StopPod waits after SIGTERM.
	TerminationGracePeriod time.Duration
	// DNS is written to the pod's /etc/resolv.conf. Nil means the
	// runtime's node-wide default.
	DNS        *DNSConfig
	Containers []ContainerSpec
}

// ContainerSpec is one container of a pod.
type ContainerSpec struct {
	Name       string
	Image      string
	PullPolicy corev1.PullPolicy
	// Command replaces the image's entrypoint, Args its cmd, as in
	// Kubernetes. $(VAR) references are not expanded yet.
	Command    []string
	Args       []string
	Env        []EnvVar
	WorkingDir string
	Ports      []PortMapping
}

// EnvVar is a literal environment variable.
type EnvVar struct{ Name, Value string }

// PortMapping is a container port, published on the node when HostPort is
// set (through the CNI portmap plugin).
type PortMapping struct {
	Name          string
	ContainerPort int32
	HostPort      int32
	HostIP        string
	Protocol      corev1.Protocol
}

// DNSConfig is the content of a pod's /etc/resolv.conf.
type DNSConfig struct {
	Nameservers []string
	Searches    []string
	Options     []string
}

// PodOptions carries what FromPod cannot read from the pod itself.
type PodOptions struct {
	// DNS, when set, is used for pods with dnsPolicy ClusterFirst.
	ClusterDNS *DNSConfig
	// ClusterDomain is used for the pod's FQDN (default cluster.local).
	ClusterDomain string
}

// FromPod converts a defaulted Kubernetes pod into a PodSpec. It refuses,
// naming each field, what the runtime cannot honour yet (volumes, probes,
// init containers, security contexts, resource limits...), so that nothing
// silently runs differently from what the manifest says.
func FromPod(pod *corev1.Pod, opts PodOptions) (PodSpec, error) {
	if pod == nil {
		return PodSpec{}, errors.New("nil pod")
	}
	key := PodKey{Namespace: pod.Namespace, Name: pod.Name, UID: string(pod.UID)}
	if key.Namespace == "" {
		key.Namespace = "default"
	}
	if key.Name == "" || key.UID == "" {
		return PodSpec{}, fmt.Errorf("pod %s/%s: metadata.name and metadata.uid are required", key.Namespace, key.Name)
	}
	s := pod.Spec
	var unsupported []string
	no := func(path string) { unsupported = append(unsupported, path) }
	if len(s.InitContainers) > 0 {
		no("spec.initContainers")
	}
	if len(s.EphemeralContainers) > 0 {
		no("spec.ephemeralContainers")
	}
	if len(s.Volumes) > 0 {
		no("spec.volumes")
	}
	if s.HostNetwork {
		no("spec.hostNetwork")
	}
	if s.HostPID {
		no("spec.hostPID")
	}
	if s.HostIPC {
		no("spec.hostIPC")
	}
	if s.SecurityContext != nil && !equality.Semantic.DeepEqual(*s.SecurityContext, corev1.PodSecurityContext{}) {
		no("spec.securityContext")
	}
	if len(s.ImagePullSecrets) > 0 {
		no("spec.imagePullSecrets")
	}
	if s.DNSConfig != nil {
		no("spec.dnsConfig")
	}
	if len(s.Containers) == 0 {
		return PodSpec{}, fmt.Errorf("pod %s/%s: spec.containers is empty", key.Namespace, key.Name)
	}

	spec := PodSpec{
		Key:                    key,
		Hostname:               s.Hostname,
		Subdomain:              s.Subdomain,
		HostAliases:            s.HostAliases,
		TerminationGracePeriod: 30 * time.Second,
	}
	if spec.Hostname == "" {
		spec.Hostname = pod.Name
	}
	if s.TerminationGracePeriodSeconds != nil {
		spec.TerminationGracePeriod = time.Duration(*s.TerminationGracePeriodSeconds) * time.Second
	}
	switch s.DNSPolicy {
	case "", corev1.DNSClusterFirst:
		spec.DNS = opts.ClusterDNS
	case corev1.DNSDefault:
		// nil: the node's resolv.conf settings from the runtime config.
	default:
		no("spec.dnsPolicy (" + string(s.DNSPolicy) + ")")
	}

	seen := map[string]bool{}
	for i, c := range s.Containers {
		p := fmt.Sprintf("spec.containers[%d]", i)
		if c.Name == "" || seen[c.Name] {
			return PodSpec{}, fmt.Errorf("pod %s/%s: %s.name %q is empty or repeated", key.Namespace, key.Name, p, c.Name)
		}
		seen[c.Name] = true
		if c.Image == "" {
			return PodSpec{}, fmt.Errorf("pod %s/%s: %s.image is empty", key.Namespace, key.Name, p)
		}
		if len(c.EnvFrom) > 0 {
			no(p + ".envFrom")
		}
		if len(c.VolumeMounts) > 0 {
			no(p + ".volumeMounts")
		}
		if len(c.VolumeDevices) > 0 {
			no(p + ".volumeDevices")
		}
		if c.LivenessProbe != nil {
			no(p + ".livenessProbe")
		}
		if c.ReadinessProbe != nil {
			no(p + ".readinessProbe")
		}
		if c.StartupProbe != nil {
			no(p + ".startupProbe")
		}
		if c.Lifecycle != nil {
			no(p + ".lifecycle")
		}
		if c.SecurityContext != nil {
			no(p + ".securityContext")
		}
		if len(c.Resources.Limits) > 0 {
			no(p + ".resources.limits")
		}
		if c.Stdin || c.TTY {
			no(p + ".stdin/tty")
		}
		cs := ContainerSpec{
			Name:       c.Name,
			Image:      c.Image,
			PullPolicy: c.ImagePullPolicy,
			Command:    c.Command,
			Args:       c.Args,
			WorkingDir: c.WorkingDir,
		}
		if cs.PullPolicy == "" {
			cs.PullPolicy = defaultPullPolicy(c.Image)
		}
		for j, e := range c.Env {
			if e.ValueFrom != nil {
				no(fmt.Sprintf("%s.env[%d].valueFrom", p, j))
				continue
			}
			cs.Env = append(cs.Env, EnvVar{Name: e.Name, Value: e.Value})
		}
		for _, port := range c.Ports {
			proto := port.Protocol
			if proto == "" {
				proto = corev1.ProtocolTCP
			}
			cs.Ports = append(cs.Ports, PortMapping{
				Name: port.Name, ContainerPort: port.ContainerPort,
				HostPort: port.HostPort, HostIP: port.HostIP, Protocol: proto,
			})
		}
		spec.Containers = append(spec.Containers, cs)
	}
	if len(unsupported) > 0 {
		return PodSpec{}, fmt.Errorf("pod %s/%s: not supported by the runtime yet: %s",
			key.Namespace, key.Name, strings.Join(unsupported, ", "))
	}
	return spec, nil
}

// defaultPullPolicy is Kubernetes' default: Always for :latest or no tag,
// IfNotPresent otherwise.
func defaultPullPolicy(image string) corev1.PullPolicy {
	if strings.Contains(image, "@") {
		return corev1.PullIfNotPresent
	}
	name := image
	if i := strings.LastIndex(name, "/"); i >= 0 {
		name = name[i+1:]
	}
	i := strings.LastIndex(name, ":")
	if i < 0 || name[i+1:] == "latest" {
		return corev1.PullAlways
	}
	return corev1.PullIfNotPresent
}

// Validate checks what the runtime relies on.
func (s PodSpec) Validate() error {
	if s.Key.UID == "" || s.Key.Name == "" || s.Key.Namespace == "" {
		return fmt.Errorf("pod spec: namespace, name and uid are required (got %s)", s.Key)
	}
	if !validUID(s.Key.UID) {
		return fmt.Errorf("pod %s/%s: uid %q must be 1-64 characters of [A-Za-z0-9._-]", s.Key.Namespace, s.Key.Name, s.Key.UID)
	}
	if len(s.Containers) == 0 {
		return fmt.Errorf("pod %s/%s: no containers", s.Key.Namespace, s.Key.Name)
	}
	seen := map[string]bool{}
	for _, c := range s.Containers {
		if c.Name == "" || seen[c.Name] || c.Image == "" {
			return fmt.Errorf("pod %s/%s: container %q: name must be unique and image set", s.Key.Namespace, s.Key.Name, c.Name)
		}
		seen[c.Name] = true
	}
	return nil
}

// validUID keeps UIDs safe to use in file names and containerd IDs.
func validUID(uid string) bool {
	if uid == "" || len(uid) > 64 || uid[0] == '.' {
		return false
	}
	for _, r := range uid {
		ok := r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' || r == '.'
		if !ok {
			return false
		}
	}
	return true
}

package runtime

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
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
	// RestartPolicy is Always, OnFailure or Never (FromPod defaults it to
	// Always). It drives the phase and PlanRestarts; the runtime itself
	// never restarts a container on its own.
	RestartPolicy corev1.RestartPolicy
	// TerminationGracePeriod is how long StopPod waits after SIGTERM.
	TerminationGracePeriod time.Duration
	// DNS is written to the pod's /etc/resolv.conf. Nil means the
	// runtime's node-wide default.
	DNS *DNSConfig
	// InitContainers run one at a time, in order, each to a successful
	// exit, before Containers start (see RunPod).
	InitContainers []ContainerSpec `json:",omitempty"`

	// For the downward API (env fieldRef and downwardAPI volumes).
	Labels             map[string]string   `json:",omitempty"`
	Annotations        map[string]string   `json:",omitempty"`
	NodeName           string              `json:",omitempty"`
	ServiceAccountName string              `json:",omitempty"`
	NodeAllocatable    corev1.ResourceList `json:",omitempty"`

	Volumes    []Volume `json:",omitempty"`
	Containers []ContainerSpec

	// ImagePullSecrets name kubernetes.io/dockerconfigjson Secrets in the
	// pod's namespace, tried in order for registry credentials (see
	// pullsecrets.go).
	ImagePullSecrets []string `json:",omitempty"`
}

// ContainerSpec is one container of a pod.
type ContainerSpec struct {
	Name       string
	Image      string
	PullPolicy corev1.PullPolicy
	// Command replaces the image's entrypoint, Args its cmd, as in
	// Kubernetes; $(VAR) references to the container's variables are
	// expanded.
	Command []string
	Args    []string
	// EnvFrom is applied first, then Env (see containerEnv).
	EnvFrom    []EnvFromSource `json:",omitempty"`
	Env        []EnvVar
	WorkingDir string
	Mounts     []Mount `json:",omitempty"`
	// Resources: cpu and memory limits go into the container's cgroup,
	// the cpu request into its CPU shares; the downward API reads them.
	Resources corev1.ResourceRequirements `json:",omitempty"`
	// PostStart and PreStop are the lifecycle hooks (see lifecycle.go).
	PostStart *LifecycleHandler `json:",omitempty"`
	PreStop   *LifecycleHandler `json:",omitempty"`
	// Security is the effective security context; nil means defaults.
	Security *SecurityContext `json:",omitempty"`
	Ports    []PortMapping

	// Probes, nil when absent. The runtime runs one on request (Probe);
	// when is decided by PlanProbes.
	StartupProbe, LivenessProbe, ReadinessProbe *Probe
}

// EnvVar is an environment variable: a literal Value (which may refer to
// earlier variables as $(NAME)) or, when From is set, a value resolved
// when the container is created.
type EnvVar struct {
	Name  string
	Value string     `json:",omitempty"`
	From  *EnvSource `json:",omitempty"`
}

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
	// NodeName is the pod's spec.nodeName when the pod does not say.
	NodeName string
	// NodeAllocatable is what a container without a limit gets for
	// resourceFieldRef limits.* (the kubelet's rule).
	NodeAllocatable corev1.ResourceList
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
	no := func(path string) {
		if !slices.Contains(unsupported, path) { // pod-level fields are seen once per container
			unsupported = append(unsupported, path)
		}
	}
	if len(s.EphemeralContainers) > 0 {
		no("spec.ephemeralContainers")
	}
	vols, err := volumesFrom(s.Volumes, no)
	if err != nil {
		return PodSpec{}, fmt.Errorf("pod %s/%s: %w", key.Namespace, key.Name, err)
	}
	if s.HostNetwork {
		no("spec.hostNetwork")
	}
	// Fields the kubelet enforces on the node, not built here.
	if s.ShareProcessNamespace != nil && *s.ShareProcessNamespace {
		no("spec.shareProcessNamespace")
	}
	if s.ActiveDeadlineSeconds != nil {
		no("spec.activeDeadlineSeconds")
	}
	if s.HostUsers != nil && !*s.HostUsers {
		no("spec.hostUsers")
	}
	if len(s.ReadinessGates) > 0 {
		no("spec.readinessGates")
	}
	if s.SetHostnameAsFQDN != nil && *s.SetHostnameAsFQDN {
		no("spec.setHostnameAsFQDN")
	}
	if s.RuntimeClassName != nil {
		no("spec.runtimeClassName")
	}
	if s.OS != nil && s.OS.Name != corev1.Linux {
		no("spec.os.name (" + string(s.OS.Name) + ")")
	}
	if s.Resources != nil {
		no("spec.resources")
	}
	if s.HostnameOverride != nil {
		no("spec.hostnameOverride")
	}
	if s.HostPID {
		no("spec.hostPID")
	}
	if s.HostIPC {
		no("spec.hostIPC")
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
		RestartPolicy:          s.RestartPolicy,
		TerminationGracePeriod: 30 * time.Second,
		Labels:                 pod.Labels,
		Annotations:            pod.Annotations,
		NodeName:               s.NodeName,
		ServiceAccountName:     s.ServiceAccountName,
		NodeAllocatable:        opts.NodeAllocatable,
		Volumes:                vols,
	}
	if spec.NodeName == "" {
		spec.NodeName = opts.NodeName
	}
	for i, ref := range s.ImagePullSecrets {
		if ref.Name == "" {
			return PodSpec{}, fmt.Errorf("pod %s/%s: spec.imagePullSecrets[%d].name is empty", key.Namespace, key.Name, i)
		}
		if !slices.Contains(spec.ImagePullSecrets, ref.Name) {
			spec.ImagePullSecrets = append(spec.ImagePullSecrets, ref.Name)
		}
	}
	switch spec.RestartPolicy {
	case "":
		spec.RestartPolicy = corev1.RestartPolicyAlways
	case corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		return PodSpec{}, fmt.Errorf("pod %s/%s: spec.restartPolicy %q must be Always, OnFailure or Never", key.Namespace, key.Name, s.RestartPolicy)
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
	for _, list := range []struct {
		field string
		in    []corev1.Container
		out   *[]ContainerSpec
		init  bool
	}{{"spec.initContainers", s.InitContainers, &spec.InitContainers, true}, {"spec.containers", s.Containers, &spec.Containers, false}} {
		for i, c := range list.in {
			p := fmt.Sprintf("%s[%d]", list.field, i)
			if c.Name == "" || seen[c.Name] {
				return PodSpec{}, fmt.Errorf("pod %s/%s: %s.name %q is empty or repeated", key.Namespace, key.Name, p, c.Name)
			}
			seen[c.Name] = true
			cs, err := containerFrom(p, c, s.SecurityContext, vols, list.init, no)
			if err != nil {
				return PodSpec{}, fmt.Errorf("pod %s/%s: %w", key.Namespace, key.Name, err)
			}
			*list.out = append(*list.out, cs)
		}
	}
	if len(unsupported) > 0 {
		return PodSpec{}, fmt.Errorf("pod %s/%s: not supported by the runtime yet: %s",
			key.Namespace, key.Name, strings.Join(unsupported, ", "))
	}
	return spec, nil
}

// containerFrom converts one container (an init container when init).
func containerFrom(p string, c corev1.Container, podSC *corev1.PodSecurityContext, vols []Volume, init bool, no func(string)) (ContainerSpec, error) {
	var err error
	if init {
		// Kubernetes forbids probes on init containers; restartPolicy on
		// one makes it a sidecar, which is not built.
		for _, f := range []struct {
			set  bool
			name string
		}{{c.StartupProbe != nil, "startupProbe"}, {c.LivenessProbe != nil, "livenessProbe"}, {c.ReadinessProbe != nil, "readinessProbe"}} {
			if f.set {
				return ContainerSpec{}, fmt.Errorf("%s.%s is not allowed on an init container", p, f.name)
			}
		}
	}
	if c.RestartPolicy != nil {
		no(p + ".restartPolicy")
	}
	if len(c.RestartPolicyRules) > 0 {
		no(p + ".restartPolicyRules")
	}
	if c.Image == "" {
		return ContainerSpec{}, fmt.Errorf("%s.image is empty", p)
	}
	if len(c.VolumeDevices) > 0 {
		no(p + ".volumeDevices")
	}
	resourcesFrom(p, c.Resources, no)
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
		Resources:  c.Resources,
	}
	if cs.PostStart, cs.PreStop, err = lifecycleFrom(p, c.Lifecycle, c, no); err != nil {
		return ContainerSpec{}, err
	}
	if cs.Security, err = securityFrom(p, podSC, c.SecurityContext, no); err != nil {
		return ContainerSpec{}, err
	}
	if cs.Mounts, err = mountsFrom(p, c, vols, no); err != nil {
		return ContainerSpec{}, err
	}
	for j, ef := range c.EnvFrom {
		ep := fmt.Sprintf("%s.envFrom[%d]", p, j)
		switch {
		case ef.ConfigMapRef != nil && ef.SecretRef == nil:
			cs.EnvFrom = append(cs.EnvFrom, EnvFromSource{Prefix: ef.Prefix, ConfigMap: ef.ConfigMapRef.Name,
				Optional: ef.ConfigMapRef.Optional != nil && *ef.ConfigMapRef.Optional})
		case ef.SecretRef != nil && ef.ConfigMapRef == nil:
			cs.EnvFrom = append(cs.EnvFrom, EnvFromSource{Prefix: ef.Prefix, Secret: ef.SecretRef.Name,
				Optional: ef.SecretRef.Optional != nil && *ef.SecretRef.Optional})
		default:
			return ContainerSpec{}, fmt.Errorf("%s must have exactly one of configMapRef, secretRef", ep)
		}
	}
	if cs.StartupProbe, err = probeFrom(c.StartupProbe, p+".startupProbe", ProbeStartup, c, no); err != nil {
		return ContainerSpec{}, err
	}
	if cs.LivenessProbe, err = probeFrom(c.LivenessProbe, p+".livenessProbe", ProbeLiveness, c, no); err != nil {
		return ContainerSpec{}, err
	}
	if cs.ReadinessProbe, err = probeFrom(c.ReadinessProbe, p+".readinessProbe", ProbeReadiness, c, no); err != nil {
		return ContainerSpec{}, err
	}
	if cs.PullPolicy == "" {
		cs.PullPolicy = defaultPullPolicy(c.Image)
	}
	for j, e := range c.Env {
		ev := EnvVar{Name: e.Name, Value: e.Value}
		if e.ValueFrom != nil {
			src, err := envSourceFrom(fmt.Sprintf("%s.env[%d].valueFrom", p, j), e.ValueFrom, no)
			if err != nil {
				return ContainerSpec{}, err
			}
			ev.Value, ev.From = "", src
		}
		cs.Env = append(cs.Env, ev)
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
	return cs, nil
}

// envSourceFrom converts an env var's valueFrom.
func envSourceFrom(p string, v *corev1.EnvVarSource, no func(string)) (*EnvSource, error) {
	opt := func(b *bool) bool { return b != nil && *b }
	n := 0
	src := &EnvSource{}
	if r := v.ConfigMapKeyRef; r != nil {
		n++
		src.ConfigMapKey = &ObjectKeyRef{Name: r.Name, Key: r.Key, Optional: opt(r.Optional)}
	}
	if r := v.SecretKeyRef; r != nil {
		n++
		src.SecretKey = &ObjectKeyRef{Name: r.Name, Key: r.Key, Optional: opt(r.Optional)}
	}
	if r := v.FieldRef; r != nil {
		n++
		if !envFieldPath(r.FieldPath) {
			no(fmt.Sprintf("%s.fieldRef (%s)", p, r.FieldPath))
		}
		src.FieldPath = r.FieldPath
	}
	if r := v.ResourceFieldRef; r != nil {
		n++
		rr, err := resourceRef(p+".resourceFieldRef", r)
		if err != nil {
			return nil, err
		}
		src.Resource = rr
	}
	if v.FileKeyRef != nil {
		n++
		no(p + ".fileKeyRef")
	}
	if n != 1 {
		return nil, fmt.Errorf("%s must have exactly one source (has %d)", p, n)
	}
	if k := src.ConfigMapKey; k != nil && (k.Name == "" || k.Key == "") {
		return nil, fmt.Errorf("%s.configMapKeyRef needs name and key", p)
	}
	if k := src.SecretKey; k != nil && (k.Name == "" || k.Key == "") {
		return nil, fmt.Errorf("%s.secretKeyRef needs name and key", p)
	}
	return src, nil
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

// allContainers lists init containers, then containers.
func (s PodSpec) allContainers() []ContainerSpec {
	return append(append([]ContainerSpec(nil), s.InitContainers...), s.Containers...)
}

// container returns the named container's spec (init or not).
func (s PodSpec) container(name string) (ContainerSpec, bool) {
	for _, c := range s.allContainers() {
		if c.Name == name {
			return c, true
		}
	}
	return ContainerSpec{}, false
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
	switch s.RestartPolicy {
	case "", corev1.RestartPolicyAlways, corev1.RestartPolicyOnFailure, corev1.RestartPolicyNever:
	default:
		return fmt.Errorf("pod %s/%s: restart policy %q must be Always, OnFailure or Never", s.Key.Namespace, s.Key.Name, s.RestartPolicy)
	}
	seen := map[string]bool{}
	for _, c := range s.allContainers() {
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

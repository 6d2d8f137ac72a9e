package runtime

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/netip"
	"sort"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// FakeConfig configures a Fake. The zero value is usable: every image
// exists, containers start at once, IPs come from 10.244.0.0/24.
type FakeConfig struct {
	// Now is the clock; nil means time.Now. Simulations pass a virtual one.
	Now func() time.Time
	// StartLatency is how long a container stays Waiting/ContainerCreating
	// after RunPod before it is Running, measured on Now.
	StartLatency time.Duration
	// PodCIDR is where pod IPs come from (default 10.244.0.0/24).
	PodCIDR netip.Prefix
	// PullErrors makes EnsureImage (and so RunPod) fail for an image.
	PullErrors map[string]error
	// CreateErrors makes a container with this image fail to be created,
	// with the given message (CreateContainerError).
	CreateErrors map[string]string
	// SandboxError, when set, is asked before each new pod's sandbox is
	// built; an error fails RunPod as a CNI or netns failure would.
	SandboxError func(PodKey) error
	// ProbeResults, when set, answers Probe; nil means every probe
	// succeeds.
	ProbeResults func(key PodKey, container string, p Probe) ProbeResult
	// Stats, when set, answers Stats for each running container; nil
	// means zero figures.
	Stats func(key PodKey, container string) ContainerStats
	// LocalImages are present already; with PullNever any other image
	// fails. Images pulled by EnsureImage are added.
	LocalImages []string
	// Values, when set, resolves the pods' imagePullSecrets and their
	// configMap and secret volumes (kept in memory: VolumeFiles), at
	// RunPod and RefreshVolumes. Without it a pod's imagePullSecrets are
	// unresolved and its volumes are not set up.
	Values ValueResolver
	// RegistryAuth makes the registries it names (host[:port], docker.io
	// for Docker Hub) demand these credentials: a pull from one succeeds
	// only with a matching imagePullSecret, as against a real registry.
	RegistryAuth map[string]RegistryAuth
}

// Fake is an in-memory Runtime for unit tests and simulation. It is
// deterministic: the same calls at the same clock readings give the same
// results. Containers run until Exit or StopPod says otherwise.
type Fake struct {
	cfg FakeConfig

	mu     sync.Mutex
	pods   map[string]*fakePod // by UID
	images map[string]bool
	used   map[netip.Addr]bool
	calls  []string
	pulls  []FakePull
}

type fakePod struct {
	spec    PodSpec
	ip      netip.Addr
	created time.Time
	// cs holds the init containers (the first nInit), then the others.
	cs    []ContainerStatus
	nInit int
	// due[i] is when container i turns Running (created + StartLatency,
	// or its last restart + StartLatency).
	due     []time.Time
	logs    map[string]*bytes.Buffer
	stopped bool
	// volumes are the projected files of configMap and secret volumes
	// (with FakeConfig.Values), and their content hashes.
	volumes    map[string]map[string]projectedFile
	volumeHash map[string]string
	// env is each container's environment as it was last (re)started
	// (with FakeConfig.Values).
	env map[string][]string
}

var _ Runtime = (*Fake)(nil)

// NewFake returns a Fake.
func NewFake(cfg FakeConfig) *Fake {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if !cfg.PodCIDR.IsValid() {
		cfg.PodCIDR = netip.MustParsePrefix("10.244.0.0/24")
	}
	f := &Fake{cfg: cfg, pods: map[string]*fakePod{}, images: map[string]bool{}, used: map[netip.Addr]bool{}}
	for _, im := range cfg.LocalImages {
		f.images[im] = true
	}
	return f
}

// Calls returns the mutating calls made so far, e.g. "RunPod ns/name".
func (f *Fake) Calls() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.calls...)
}

// EnsureImage implements Runtime.
func (f *Fake) EnsureImage(_ context.Context, ref string, policy corev1.PullPolicy, secrets ...PullSecret) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ensureImage(ref, policy, secrets)
}

func (f *Fake) ensureImage(ref string, policy corev1.PullPolicy, secrets []PullSecret) (string, error) {
	if ref == "" {
		return "", fmt.Errorf("%w: empty reference", ErrInvalidImageName)
	}
	switch {
	case policy == corev1.PullNever && !f.images[ref]:
		return "", fmt.Errorf("%w: image %s is not present", ErrImageNeverPull, ref)
	case policy == corev1.PullIfNotPresent && f.images[ref], policy == corev1.PullNever:
		return ref, nil
	}
	if err := f.cfg.PullErrors[ref]; err != nil {
		return "", fmt.Errorf("%w: %s: %w", ErrImagePull, ref, err)
	}
	cred, err := f.authorize(ref, secrets)
	if err != nil {
		return "", err
	}
	f.images[ref] = true
	f.pulls = append(f.pulls, FakePull{Image: ref, Secret: cred.secret, Username: cred.auth.Username})
	return ref, nil
}

// RunPod implements Runtime.
func (f *Fake) RunPod(ctx context.Context, spec PodSpec) (PodStatus, error) {
	if err := spec.Validate(); err != nil {
		return PodStatus{}, err
	}
	f.mu.Lock()
	_, known := f.pods[spec.Key.UID]
	f.mu.Unlock()
	var (
		pullSecrets []PullSecret
		vols        map[string]map[string]projectedFile
		hashes      map[string]string
	)
	if !known {
		var err error
		if pullSecrets, vols, hashes, err = f.resolve(ctx, spec); err != nil {
			return PodStatus{}, podErr(spec.Key, "run", err)
		}
	}
	st, p, err := f.runPod(spec, pullSecrets, vols, hashes)
	if err != nil || p == nil || f.cfg.Values == nil {
		return st, err
	}
	// The environments are resolved outside the lock, as RestartContainer
	// does: a ValueResolver may take its time.
	return f.resolveEnvs(ctx, spec, p), nil
}

func (f *Fake) runPod(spec PodSpec, pullSecrets []PullSecret, vols map[string]map[string]projectedFile, hashes map[string]string) (PodStatus, *fakePod, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pods[spec.Key.UID]; ok {
		return f.status(p), nil, nil
	}
	f.calls = append(f.calls, "RunPod "+spec.Key.Namespace+"/"+spec.Key.Name)
	if f.cfg.SandboxError != nil {
		if err := f.cfg.SandboxError(spec.Key); err != nil {
			return PodStatus{}, nil, podErr(spec.Key, "run", err)
		}
	}
	ip, err := f.allocate()
	if err != nil {
		return PodStatus{}, nil, podErr(spec.Key, "run", err)
	}
	now := f.cfg.Now()
	p := &fakePod{spec: spec, ip: ip, created: now, logs: map[string]*bytes.Buffer{}, nInit: len(spec.InitContainers),
		volumes: vols, volumeHash: hashes, env: map[string][]string{}}
	for i, c := range spec.allContainers() {
		cs := ContainerStatus{Name: c.Name, Image: c.Image, State: StateWaiting, Reason: ReasonContainerCreating}
		p.logs[c.Name] = &bytes.Buffer{}
		if ref, err := f.ensureImage(c.Image, c.PullPolicy, pullSecrets); err != nil {
			cs.Reason, cs.Message, cs.FailedAt = imageErrorReason(err), err.Error(), now
		} else if msg, bad := f.cfg.CreateErrors[c.Image]; bad {
			cs.ImageRef = ref
			cs.Reason, cs.Message, cs.FailedAt = ReasonCreateContainerError, msg, now
		} else {
			cs.ImageRef = ref
			cs.ID = fmt.Sprintf("fake-%s-%d", spec.Key.UID, i)
		}
		p.cs = append(p.cs, cs)
		p.due = append(p.due, now.Add(f.cfg.StartLatency))
	}
	f.pods[spec.Key.UID] = p
	return f.status(p), p, nil
}

func (f *Fake) allocate() (netip.Addr, error) {
	// .0 is the network, .1 the gateway, the last the broadcast address,
	// as with the bridge and host-local plugins.
	a := f.cfg.PodCIDR.Masked().Addr().Next().Next()
	for ; f.cfg.PodCIDR.Contains(a) && f.cfg.PodCIDR.Contains(a.Next()); a = a.Next() {
		if !f.used[a] {
			f.used[a] = true
			return a, nil
		}
	}
	return netip.Addr{}, fmt.Errorf("no free address in %s", f.cfg.PodCIDR)
}

// status brings the clock-driven part up to date and copies the status.
// Init containers start one after the other, StartLatency after the
// previous one succeeded; the others StartLatency after the last one.
func (f *Fake) status(p *fakePod) PodStatus {
	now := f.cfg.Now()
	open, openedAt := !p.stopped, p.created
	for i := range p.cs {
		c := &p.cs[i]
		if !open {
			if i >= p.nInit && c.State == StateWaiting && c.ID != "" {
				c.Reason = ReasonPodInitializing
			}
			continue
		}
		due := p.due[i]
		if at := openedAt.Add(f.cfg.StartLatency); at.After(due) {
			due = at
		}
		if c.State == StateWaiting && c.ID != "" && !now.Before(due) {
			c.State, c.Reason = StateRunning, ""
			c.StartedAt = due
			c.PID = uint32(1000 + i)
		}
		if i < p.nInit {
			if c.State != StateTerminated || c.ExitCode != 0 {
				open = false
			}
			openedAt = c.FinishedAt
		}
	}
	st := PodStatus{Key: p.spec.Key, PodIP: p.ip.String(), StartedAt: p.created, Stopped: p.stopped,
		InitContainers: append([]ContainerStatus(nil), p.cs[:p.nInit]...),
		Containers:     append([]ContainerStatus(nil), p.cs[p.nInit:]...)}
	st.Phase = podPhase(p.spec.RestartPolicy, p.stopped, st.InitContainers, st.Containers)
	st = ProbedStatus(p.spec, st, nil)
	return st
}

// Exit makes a running container terminate with code, as if its process
// exited. It is the fake's stand-in for a real program finishing.
func (f *Fake) Exit(key PodKey, container string, code int32) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[key.UID]
	if !ok {
		return podErr(key, "exit", ErrPodNotFound)
	}
	f.status(p)
	for i := range p.cs {
		c := &p.cs[i]
		if c.Name != container {
			continue
		}
		if c.State != StateRunning {
			return fmt.Errorf("exit %s container %s: not running (%s)", key, container, c.State)
		}
		c.State, c.ExitCode, c.Reason, c.PID = StateTerminated, code, terminatedReason(code, false), 0
		c.FinishedAt = f.cfg.Now()
		return nil
	}
	return fmt.Errorf("exit %s: no container %q", key, container)
}

// WriteLog appends to a container's log, as if the program printed it.
func (f *Fake) WriteLog(key PodKey, container, text string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[key.UID]
	if !ok {
		return podErr(key, "write log", ErrPodNotFound)
	}
	b, ok := p.logs[container]
	if !ok {
		return fmt.Errorf("write log %s: no container %q", key, container)
	}
	b.WriteString(text)
	return nil
}

// StopPod implements Runtime. Running containers terminate with exit code
// 0 (the programs are assumed to honour SIGTERM); waiting ones terminate
// with 0 too, as a pod deleted before it started.
func (f *Fake) StopPod(_ context.Context, key PodKey, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[key.UID]
	if !ok {
		return podErr(key, "stop", ErrPodNotFound)
	}
	f.calls = append(f.calls, "StopPod "+key.Namespace+"/"+key.Name)
	f.status(p)
	p.stopped = true
	for i := range p.cs {
		c := &p.cs[i]
		if c.State != StateTerminated {
			c.State, c.ExitCode, c.Reason, c.PID = StateTerminated, 0, ReasonCompleted, 0
			c.FinishedAt = f.cfg.Now()
		}
	}
	return nil
}

// StopContainer implements Runtime. A running container terminates with
// exit code 0, as StopPod does.
func (f *Fake) StopContainer(_ context.Context, key PodKey, container string, _ time.Duration) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, i, err := f.container(key, "stop container", container)
	if err != nil {
		return err
	}
	f.calls = append(f.calls, "StopContainer "+key.Namespace+"/"+key.Name+" "+container)
	if c := &p.cs[i]; c.State == StateRunning {
		c.State, c.ExitCode, c.Reason, c.PID = StateTerminated, 0, ReasonCompleted, 0
		c.FinishedAt = f.cfg.Now()
	}
	return nil
}

// RestartContainer implements Runtime: the container is Waiting
// (ContainerCreating) again and turns Running StartLatency later. With
// FakeConfig.Values its imagePullSecrets and environment are read again,
// as containerd's RestartContainer does: the pull secrets as the node has
// them now, the environment at the commit in ctx.
func (f *Fake) RestartContainer(ctx context.Context, key PodKey, container string, backoff time.Duration) (PodStatus, error) {
	var (
		pullSecrets []PullSecret
		env         []string
		envErr      error
	)
	if f.cfg.Values != nil {
		f.mu.Lock()
		p, i, err := f.container(key, "restart container", container)
		var spec PodSpec
		var ip string
		if err == nil {
			spec, ip = p.spec, p.ip.String()
		}
		f.mu.Unlock()
		if err != nil {
			return PodStatus{}, err
		}
		pullSecrets = resolvePullSecrets(ctx, f.cfg.Values, key.Namespace, spec.ImagePullSecrets)
		env, _, _, _, envErr = containerEnv(ctx, newObjectCache(f.cfg.Values, key.Namespace), spec, ip, spec.allContainers()[i])
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	p, i, err := f.container(key, "restart container", container)
	if err != nil {
		return PodStatus{}, err
	}
	if p.stopped {
		return PodStatus{}, podErr(key, "restart container "+container, fmt.Errorf("the pod was stopped"))
	}
	f.calls = append(f.calls, "RestartContainer "+key.Namespace+"/"+key.Name+" "+container)
	now := f.cfg.Now()
	c := &p.cs[i]
	if c.State == StateRunning {
		c.State, c.ExitCode, c.Reason, c.PID, c.FinishedAt = StateTerminated, 0, ReasonCompleted, 0, now
	}
	next := ContainerStatus{Name: c.Name, Image: c.Image, ImageRef: c.ImageRef, ID: c.ID,
		State: StateWaiting, Reason: ReasonContainerCreating,
		RestartCount: c.RestartCount, LastTermination: c.LastTermination, Backoff: backoff}
	if c.State == StateTerminated {
		next.RestartCount++
		next.LastTermination = c.terminated()
	}
	spec := p.spec.allContainers()[i]
	if ref, err := f.ensureImage(spec.Image, spec.PullPolicy, pullSecrets); err != nil {
		next.ID, next.Reason, next.Message, next.FailedAt = "", imageErrorReason(err), err.Error(), now
	} else if envErr != nil {
		next.ID, next.ImageRef, next.Reason, next.Message, next.FailedAt = "", ref, ReasonCreateContainerConfigError, envErr.Error(), now
	} else if msg, bad := f.cfg.CreateErrors[spec.Image]; bad {
		next.ID, next.ImageRef, next.Reason, next.Message, next.FailedAt = "", ref, ReasonCreateContainerError, msg, now
	} else {
		next.ID, next.ImageRef = fmt.Sprintf("fake-%s-%d", key.UID, i), ref
	}
	*c = next
	if env != nil {
		p.env[spec.Name] = env
	}
	p.due[i] = now.Add(f.cfg.StartLatency)
	return f.status(p), nil
}

// Probe implements Runtime: FakeConfig.ProbeResults answers, for a
// running container; a container that does not run fails its probes.
func (f *Fake) Probe(_ context.Context, key PodKey, container string, p Probe) ProbeResult {
	f.mu.Lock()
	pod, i, err := f.container(key, "probe", container)
	if err != nil {
		f.mu.Unlock()
		return ProbeResult{Message: err.Error()}
	}
	running := pod.cs[i].State == StateRunning
	f.mu.Unlock()
	if !running {
		return ProbeResult{Message: fmt.Sprintf("container %s is not running", container)}
	}
	if f.cfg.ProbeResults == nil {
		return ProbeResult{Success: true}
	}
	return f.cfg.ProbeResults(key, container, p)
}

// Stats implements Runtime: FakeConfig.Stats answers for each running
// container, stamped with the fake's clock.
func (f *Fake) Stats(_ context.Context, key PodKey) (PodStats, error) {
	f.mu.Lock()
	p, ok := f.pods[key.UID]
	if !ok {
		f.mu.Unlock()
		return PodStats{}, podErr(key, "stats", ErrPodNotFound)
	}
	f.status(p)
	var running []string
	for _, c := range p.cs {
		if c.State == StateRunning {
			running = append(running, c.Name)
		}
	}
	now := f.cfg.Now()
	f.mu.Unlock()
	// The callback runs unlocked: it may call the fake.
	out := PodStats{Key: key}
	for _, name := range running {
		s := ContainerStats{}
		if f.cfg.Stats != nil {
			s = f.cfg.Stats(key, name)
		}
		s.Name, s.Timestamp = name, now
		out.Containers = append(out.Containers, s)
	}
	return out, nil
}

func (f *Fake) container(key PodKey, op, name string) (*fakePod, int, error) {
	p, ok := f.pods[key.UID]
	if !ok {
		return nil, 0, podErr(key, op, ErrPodNotFound)
	}
	f.status(p)
	for i := range p.cs {
		if p.cs[i].Name == name {
			return p, i, nil
		}
	}
	return nil, 0, podErr(key, op, fmt.Errorf("no container %q", name))
}

// RemovePod implements Runtime.
func (f *Fake) RemovePod(_ context.Context, key PodKey) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[key.UID]
	if !ok {
		return nil
	}
	f.calls = append(f.calls, "RemovePod "+key.Namespace+"/"+key.Name)
	delete(f.used, p.ip)
	delete(f.pods, key.UID)
	return nil
}

// PodStatus implements Runtime.
func (f *Fake) PodStatus(_ context.Context, key PodKey) (PodStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[key.UID]
	if !ok {
		return PodStatus{}, podErr(key, "status", ErrPodNotFound)
	}
	return f.status(p), nil
}

// ListPods implements Runtime.
func (f *Fake) ListPods(context.Context) ([]PodStatus, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := make([]PodStatus, 0, len(f.pods))
	for _, p := range f.pods {
		out = append(out, f.status(p))
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.Less(out[j].Key) })
	return out, nil
}

// Logs implements Runtime. Follow is not supported by the fake: it returns
// what was written so far.
func (f *Fake) Logs(_ context.Context, key PodKey, container string, _ LogOptions) (io.ReadCloser, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	p, ok := f.pods[key.UID]
	if !ok {
		return nil, podErr(key, "logs", ErrPodNotFound)
	}
	b, ok := p.logs[container]
	if !ok {
		return nil, fmt.Errorf("logs %s: no container %q", key, container)
	}
	return io.NopCloser(bytes.NewReader(append([]byte(nil), b.Bytes()...))), nil
}

// GC implements Runtime. The fake has no orphans: only unwanted pods go.
func (f *Fake) GC(_ context.Context, wanted map[string]bool) (GCResult, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	var res GCResult
	for uid, p := range f.pods {
		if wanted[uid] {
			res.AdoptedPods = append(res.AdoptedPods, p.spec.Key)
			continue
		}
		delete(f.used, p.ip)
		delete(f.pods, uid)
		res.RemovedPods = append(res.RemovedPods, p.spec.Key)
	}
	sortKeys(res.RemovedPods)
	sortKeys(res.AdoptedPods)
	return res, nil
}

func sortKeys(ks []PodKey) {
	sort.Slice(ks, func(i, j int) bool { return ks[i].Less(ks[j]) })
}

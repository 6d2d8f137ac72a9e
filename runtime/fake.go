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
	// LocalImages are present already; with PullNever any other image
	// fails. Images pulled by EnsureImage are added.
	LocalImages []string
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
}

type fakePod struct {
	spec    PodSpec
	ip      netip.Addr
	created time.Time
	cs      []ContainerStatus
	logs    map[string]*bytes.Buffer
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
func (f *Fake) EnsureImage(_ context.Context, ref string, policy corev1.PullPolicy) (string, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.ensureImage(ref, policy)
}

func (f *Fake) ensureImage(ref string, policy corev1.PullPolicy) (string, error) {
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
	f.images[ref] = true
	return ref, nil
}

// RunPod implements Runtime.
func (f *Fake) RunPod(_ context.Context, spec PodSpec) (PodStatus, error) {
	if err := spec.Validate(); err != nil {
		return PodStatus{}, err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if p, ok := f.pods[spec.Key.UID]; ok {
		return f.status(p), nil
	}
	f.calls = append(f.calls, "RunPod "+spec.Key.Namespace+"/"+spec.Key.Name)
	if f.cfg.SandboxError != nil {
		if err := f.cfg.SandboxError(spec.Key); err != nil {
			return PodStatus{}, podErr(spec.Key, "run", err)
		}
	}
	ip, err := f.allocate()
	if err != nil {
		return PodStatus{}, podErr(spec.Key, "run", err)
	}
	now := f.cfg.Now()
	p := &fakePod{spec: spec, ip: ip, created: now, logs: map[string]*bytes.Buffer{}}
	for i, c := range spec.Containers {
		cs := ContainerStatus{Name: c.Name, Image: c.Image, State: StateWaiting, Reason: ReasonContainerCreating}
		p.logs[c.Name] = &bytes.Buffer{}
		if ref, err := f.ensureImage(c.Image, c.PullPolicy); err != nil {
			cs.Reason, cs.Message = imageErrorReason(err), err.Error()
		} else if msg, bad := f.cfg.CreateErrors[c.Image]; bad {
			cs.ImageRef = ref
			cs.Reason, cs.Message = ReasonCreateContainerError, msg
		} else {
			cs.ImageRef = ref
			cs.ID = fmt.Sprintf("fake-%s-%d", spec.Key.UID, i)
		}
		p.cs = append(p.cs, cs)
	}
	f.pods[spec.Key.UID] = p
	return f.status(p), nil
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
func (f *Fake) status(p *fakePod) PodStatus {
	now := f.cfg.Now()
	for i := range p.cs {
		c := &p.cs[i]
		if c.State == StateWaiting && c.ID != "" && !now.Before(p.created.Add(f.cfg.StartLatency)) {
			c.State, c.Reason = StateRunning, ""
			c.StartedAt = p.created.Add(f.cfg.StartLatency)
			c.PID = uint32(1000 + i)
		}
	}
	st := PodStatus{Key: p.spec.Key, PodIP: p.ip.String(), StartedAt: p.created,
		Containers: append([]ContainerStatus(nil), p.cs...)}
	st.Phase = derivePhase(st.Containers)
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
	for i := range p.cs {
		c := &p.cs[i]
		if c.State != StateTerminated {
			c.State, c.ExitCode, c.Reason, c.PID = StateTerminated, 0, ReasonCompleted, 0
			c.FinishedAt = f.cfg.Now()
		}
	}
	return nil
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

package runtime

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"time"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/namespaces"
	"github.com/containerd/containerd/v2/pkg/oci"
	"github.com/containerd/errdefs"
	specs "github.com/opencontainers/runtime-spec/specs-go"
)

// Labels put on every container, tying it to its pod.
const (
	LabelPodNamespace = "shoal.dev/pod-namespace"
	LabelPodName      = "shoal.dev/pod-name"
	LabelPodUID       = "shoal.dev/pod-uid"
	LabelContainer    = "shoal.dev/container"
)

// Containerd is the Runtime on a real containerd and CNI.
type Containerd struct {
	cfg    Config
	client *containerd.Client
	net    *cniNet
	log    *slog.Logger
	dns    DNSConfig
	// swapAccounting: the host can stop a container from swapping
	// beyond its memory limit.
	swapAccounting bool

	// gcMu keeps GC from seeing a pod half-created: RunPod holds it
	// shared, GC exclusively.
	gcMu  sync.RWMutex
	mu    sync.Mutex
	locks map[string]*podLock // per pod UID

	outputs outputs // copiers of container output into logs

	vhash volumeHashes // what RefreshVolumes last projected (volume_refresh.go)
}

var _ Runtime = (*Containerd)(nil)

// NewContainerd connects to containerd and prepares the data directory.
// It adopts nothing by itself and changes nothing that exists: pods left by
// an earlier process are visible to ListPods at once, and GC decides what
// stays.
func NewContainerd(ctx context.Context, cfg Config) (*Containerd, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	for _, d := range []string{"pods", "netns", "cni/cache", "cni/networks", "fifo"} {
		if err := os.MkdirAll(filepath.Join(cfg.DataDir, d), 0o755); err != nil {
			return nil, fmt.Errorf("runtime data dir: %w", err)
		}
	}
	net, err := newCNINet(cfg)
	if err != nil {
		return nil, err
	}
	// A missing socket fails at once, not after the client's dial timeout.
	if sock := strings.TrimPrefix(cfg.Address, "unix://"); filepath.IsAbs(sock) {
		if _, err := os.Stat(sock); err != nil {
			return nil, fmt.Errorf("connect to containerd at %s: %w (is containerd running?)", cfg.Address, err)
		}
	}
	client, err := containerd.New(cfg.Address, containerd.WithDefaultNamespace(cfg.Namespace),
		containerd.WithTimeout(10*time.Second))
	if err != nil {
		return nil, fmt.Errorf("connect to containerd at %s: %w", cfg.Address, err)
	}
	if _, err := client.Version(namespaces.WithNamespace(ctx, cfg.Namespace)); err != nil {
		client.Close()
		return nil, fmt.Errorf("containerd at %s: %w", cfg.Address, err)
	}
	dns := cfg.DNS
	if len(dns.Nameservers) == 0 && len(dns.Searches) == 0 {
		dns = hostDNS("/etc/resolv.conf")
	}
	c := &Containerd{cfg: cfg, client: client, net: net, log: cfg.Logger, dns: dns, locks: map[string]*podLock{},
		swapAccounting: hasSwapAccounting(), outputs: outputs{m: map[string]*output{}}, vhash: newVolumeHashes()}
	if err := c.attachOutputs(c.ctx(ctx)); err != nil {
		// Logs of some containers stay incomplete; the pods are fine.
		c.log.Warn("resuming container output", "err", err)
	}
	return c, nil
}

// Close stops copying container output and closes the connection to
// containerd. Pods keep running, and so does their output: it waits in
// the FIFOs for the next process to attach.
func (c *Containerd) Close() error {
	c.detachOutputs()
	return c.client.Close()
}

// Client exposes the containerd client, for tests and diagnostics.
func (c *Containerd) Client() *containerd.Client { return c.client }

func (c *Containerd) ctx(ctx context.Context) context.Context {
	return namespaces.WithNamespace(ctx, c.cfg.Namespace)
}

// lock serialises work on one pod. Locks are reference-counted so the
// map holds only pods being worked on.
func (c *Containerd) lock(uid string) func() {
	c.mu.Lock()
	l, ok := c.locks[uid]
	if !ok {
		l = &podLock{}
		c.locks[uid] = l
	}
	l.refs++
	c.mu.Unlock()
	l.Lock()
	return func() {
		l.Unlock()
		c.mu.Lock()
		if l.refs--; l.refs == 0 {
			delete(c.locks, uid)
		}
		c.mu.Unlock()
	}
}

type podLock struct {
	sync.Mutex
	refs int // guarded by Containerd.mu
}

// RunPod implements Runtime.
func (c *Containerd) RunPod(ctx context.Context, spec PodSpec) (PodStatus, error) {
	if err := spec.Validate(); err != nil {
		return PodStatus{}, err
	}
	ctx = c.ctx(ctx)
	key := spec.Key
	c.gcMu.RLock()
	defer c.gcMu.RUnlock()
	defer c.lock(key.UID)()

	r, err := c.loadRecord(key.UID)
	switch {
	case err == nil && r.IP != "":
		// Known pod: finish whatever an interrupted RunPod left undone.
		if _, err := os.Stat(filepath.Join(c.podDir(key.UID), "hosts")); os.IsNotExist(err) {
			if err := c.writeFiles(r); err != nil {
				return PodStatus{}, podErr(key, "run", err)
			}
		}
		if !r.VolumesReady {
			if err := c.setupVolumes(ctx, r); err != nil {
				return PodStatus{}, podErr(key, "run", err)
			}
			r.VolumesReady = true
			if err := c.saveRecord(r); err != nil {
				return PodStatus{}, podErr(key, "run", err)
			}
		}
		c.startMissing(ctx, r)
		return c.status(ctx, r), nil
	case err == nil:
		// The sandbox was never finished: start over.
		if err := c.removeLocked(ctx, r); err != nil {
			return PodStatus{}, podErr(key, "run (clean up an unfinished sandbox)", err)
		}
	case !os.IsNotExist(err):
		return PodStatus{}, podErr(key, "run", err)
	}

	r = &podRecord{Spec: spec, CreatedAt: time.Now(), Containers: map[string]*containerRecord{}}
	if err := c.createSandbox(ctx, r); err != nil {
		// Clean up even if the caller gave up: a half sandbox must not stay.
		if cerr := c.removeLocked(context.WithoutCancel(ctx), r); cerr != nil {
			err = errors.Join(err, fmt.Errorf("clean up: %w", cerr))
		}
		return PodStatus{}, podErr(key, "run", err)
	}
	c.log.Info("pod sandbox ready", "pod", key.Namespace+"/"+key.Name, "uid", key.UID, "ip", r.IP)

	c.startMissing(ctx, r)
	return c.status(ctx, r), nil
}

// startMissing starts every container that has neither started, failed
// nor been stopped. A container object left by an interrupted attempt is
// deleted first.
//
// Init containers go first, one at a time: the next starts only once the
// previous one exited 0, and the containers only once all did. A running,
// failed or unstartable init container holds the rest back (PlanRestarts
// decides about a failed one). A stopped pod starts nothing.
func (c *Containerd) startMissing(ctx context.Context, r *podRecord) {
	if r.Stopped {
		return
	}
	for _, cs := range r.Spec.InitContainers {
		cr := r.Containers[cs.Name]
		if !attempted(cr) {
			c.startOne(ctx, r, cs)
			return
		}
		if st := c.containerStatus(ctx, cs, cr); st.State != StateTerminated || st.ExitCode != 0 {
			return
		}
	}
	for _, cs := range r.Spec.Containers {
		if !attempted(r.Containers[cs.Name]) {
			c.startOne(ctx, r, cs)
		}
	}
}

// attempted reports whether a container was started, failed to start, or
// was stopped.
func attempted(cr *containerRecord) bool {
	return cr != nil && (!cr.StartedAt.IsZero() || cr.WaitingReason != "" || cr.Final != nil)
}

// startOne starts a container that was never attempted, deleting first a
// container object an interrupted attempt left.
func (c *Containerd) startOne(ctx context.Context, r *podRecord, cs ContainerSpec) {
	key := r.Spec.Key
	if cr := r.Containers[cs.Name]; cr != nil {
		if ctr, err := c.client.LoadContainer(ctx, cr.ID); err == nil {
			if err := c.deleteContainer(ctx, ctr); err != nil {
				c.log.Warn("cannot remove an unfinished container", "pod", key.Namespace+"/"+key.Name, "container", cs.Name, "err", err)
				return
			}
		}
	}
	if err := c.startContainer(ctx, r, cs); err != nil {
		c.log.Warn("container not started", "pod", key.Namespace+"/"+key.Name, "container", cs.Name, "err", err)
	}
}

// createSandbox records the pod, then pins a netns, runs CNI and writes
// the pod's files, saving the record after each step.
func (c *Containerd) createSandbox(ctx context.Context, r *podRecord) error {
	key := r.Spec.Key
	if err := c.saveRecord(r); err != nil {
		return err
	}
	if err := os.MkdirAll(filepath.Join(c.podDir(key.UID), "logs"), 0o755); err != nil {
		return err
	}
	r.NetNS = c.netnsPath(key.UID)
	if err := c.saveRecord(r); err != nil {
		return err
	}
	if err := newNetNS(r.NetNS); err != nil {
		return err
	}
	r.NetworkAdded = true
	if err := c.saveRecord(r); err != nil {
		return err
	}
	ip, err := c.net.add(ctx, key.UID, r.NetNS, allPorts(r.Spec))
	if err != nil {
		return err
	}
	r.IP = ip.String()
	if err := c.saveRecord(r); err != nil {
		return err
	}
	if err := c.writeFiles(r); err != nil {
		return err
	}
	if err := c.setupVolumes(ctx, r); err != nil {
		return err
	}
	r.VolumesReady = true
	return c.saveRecord(r)
}

// writeFiles writes the pod's hostname, hosts and resolv.conf.
func (c *Containerd) writeFiles(r *podRecord) error {
	ip, err := netip.ParseAddr(r.IP)
	if err != nil {
		return fmt.Errorf("pod record has a bad IP %q: %w", r.IP, err)
	}
	dns := c.dns
	if r.Spec.DNS != nil {
		dns = *r.Spec.DNS
	}
	return writePodFiles(c.podDir(r.Spec.Key.UID), r.Spec, ip, dns, c.cfg.ClusterDomain)
}

func allPorts(s PodSpec) []PortMapping {
	var out []PortMapping
	for _, c := range s.Containers {
		out = append(out, c.Ports...)
	}
	return out
}

// startContainer pulls the image, creates the container and starts its
// task. Failures are recorded on the container as a Waiting reason and
// leave no containerd object behind.
func (c *Containerd) startContainer(ctx context.Context, r *podRecord, cs ContainerSpec) error {
	cr := &containerRecord{ID: containerID(r.Spec.Key.UID, cs.Name)}
	if prev := r.Containers[cs.Name]; prev != nil {
		cr.RestartCount, cr.Backoff, cr.Last = prev.RestartCount, prev.Backoff, prev.Last
	}
	r.Containers[cs.Name] = cr
	fail := func(reason string, err error) error {
		if ctx.Err() != nil {
			// The caller gave up, the container did not fail: leave it
			// unstarted so that the next RunPod tries again.
			return err
		}
		cr.WaitingReason, cr.WaitingMessage, cr.FailedAt = reason, err.Error(), time.Now()
		return errors.Join(err, c.saveRecord(r))
	}
	if err := c.saveRecord(r); err != nil {
		return err
	}
	// Pull secrets are read as the node has them now, the environment at
	// the commit the caller put in ctx (ValueResolver).
	pullSecrets := resolvePullSecrets(ctx, c.cfg.Values, r.Spec.Key.Namespace, r.Spec.ImagePullSecrets)
	ref, err := c.EnsureImage(ctx, cs.Image, cs.PullPolicy, pullSecrets...)
	if err != nil {
		return fail(imageErrorReason(err), err)
	}
	cr.ImageRef = ref
	image, err := c.client.GetImage(ctx, ref)
	if err != nil {
		return fail(ReasonErrImagePull, err)
	}
	env, cmd, args, secret, err := containerEnv(ctx, newObjectCache(c.cfg.Values, r.Spec.Key.Namespace), r.Spec, r.IP, cs)
	if err != nil {
		return fail(ReasonCreateContainerConfigError, err)
	}
	mounts, err := c.containerMounts(r, cs)
	if err != nil {
		return fail(ReasonCreateContainerConfigError, err)
	}
	var viaHelper oci.SpecOpts
	if len(secret) > 0 {
		helperMounts, opt, err := c.execEnv(r, cs.Name, secret)
		if err != nil {
			return fail(ReasonCreateContainerConfigError, err)
		}
		mounts, viaHelper = append(mounts, helperMounts...), opt
	}
	if err := checkNonRoot(ctx, cs.Security, image); err != nil {
		return fail(ReasonCreateContainerConfigError, err)
	}
	cs.Command, cs.Args = cmd, args
	if err := c.createAndStart(ctx, r, cs, cr.ID, image, env, mounts, viaHelper); err != nil {
		return fail(ReasonCreateContainerError, err)
	}
	cr.StartedAt = time.Now()
	if err := c.saveRecord(r); err != nil {
		return err
	}
	if cs.PostStart != nil {
		return c.postStart(ctx, r, cs, cr)
	}
	return nil
}

// postStart runs the container's postStart hook; if it fails, the
// container is stopped (SIGTERM, the pod's grace period, SIGKILL; no
// preStop) and its final state says why.
func (c *Containerd) postStart(ctx context.Context, r *podRecord, cs ContainerSpec, cr *containerRecord) error {
	timeout := max(r.Spec.TerminationGracePeriod, 30*time.Second)
	herr := c.runHook(ctx, r.IP, cr.ID, cs.PostStart, timeout)
	if herr == nil {
		return nil
	}
	final, err := c.stopContainer(context.WithoutCancel(ctx), cr.ID, r.Spec.TerminationGracePeriod, nil)
	if err != nil {
		return errors.Join(herr, err)
	}
	if final != nil {
		final.Message = ReasonFailedPostStartHook + ": " + herr.Error()
		cr.Final = final
	}
	return errors.Join(fmt.Errorf("%s: %w", ReasonFailedPostStartHook, herr), c.saveRecord(r))
}

// createAndStart creates and starts the container; cs carries command and
// args already expanded, env is resolved. last, when not nil, is applied
// to the finished spec (execEnv's).
func (c *Containerd) createAndStart(ctx context.Context, r *podRecord, cs ContainerSpec, id string, image containerd.Image,
	env []string, mounts []specs.Mount, last oci.SpecOpts) (retErr error) {
	key := r.Spec.Key
	dir := c.podDir(key.UID)
	specOpts := []oci.SpecOpts{oci.WithImageConfig(image)}
	switch {
	case len(cs.Command) > 0:
		specOpts = append(specOpts, oci.WithProcessArgs(append(append([]string{}, cs.Command...), cs.Args...)...))
	case len(cs.Args) > 0:
		specOpts = append(specOpts, oci.WithImageConfigArgs(image, cs.Args))
	}
	specOpts = append(specOpts, oci.WithEnv(env), oci.WithHostname(r.Spec.Hostname),
		oci.WithLinuxNamespace(specs.LinuxNamespace{Type: specs.NetworkNamespace, Path: r.NetNS}),
		oci.WithMounts(append([]specs.Mount{
			{Destination: "/etc/hosts", Type: "bind", Source: filepath.Join(dir, "hosts"), Options: []string{"rbind", "ro"}},
			{Destination: "/etc/hostname", Type: "bind", Source: filepath.Join(dir, "hostname"), Options: []string{"rbind", "ro"}},
			{Destination: "/etc/resolv.conf", Type: "bind", Source: filepath.Join(dir, "resolv.conf"), Options: []string{"rbind", "ro"}},
		}, mounts...)))
	if cs.WorkingDir != "" {
		specOpts = append(specOpts, oci.WithProcessCwd(cs.WorkingDir))
	}
	specOpts = append(specOpts, oci.WithCgroup(c.cgroupPath(id)))
	specOpts = append(specOpts, resourceOpts(cs.Resources, c.swapAccounting)...)
	specOpts = append(specOpts, securityOpts(cs.Security)...)
	specOpts = append(specOpts, requireArgs)
	if last != nil {
		specOpts = append(specOpts, last)
	}

	ctr, err := c.client.NewContainer(ctx, id,
		containerd.WithContainerLabels(map[string]string{
			LabelPodNamespace: key.Namespace, LabelPodName: key.Name, LabelPodUID: key.UID, LabelContainer: cs.Name,
		}),
		containerd.WithSnapshotter(c.cfg.Snapshotter),
		containerd.WithNewSnapshot(id, image),
		containerd.WithImage(image),
		containerd.WithNewSpec(specOpts...),
	)
	if err != nil {
		return fmt.Errorf("create container: %w", err)
	}
	defer func() {
		if retErr != nil {
			if err := c.deleteContainer(context.WithoutCancel(ctx), ctr); err != nil {
				retErr = errors.Join(retErr, err)
			}
		}
	}()
	task, err := c.newTaskWithOutput(ctx, ctr, c.logPath(key.UID, cs.Name))
	if err != nil {
		return fmt.Errorf("create task: %w", err)
	}
	if err := task.Start(ctx); err != nil {
		return fmt.Errorf("start task: %w", err)
	}
	return nil
}

// requireArgs refuses a spec with no process to run, which runc would
// otherwise reject with a less helpful message.
func requireArgs(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
	if s.Process == nil || len(s.Process.Args) == 0 {
		return errors.New("no command: the image has no entrypoint or cmd and the pod gives no command")
	}
	return nil
}

// deleteContainer kills and deletes the task, lets the output copier
// finish, then deletes the container with its snapshot. Missing pieces are
// not errors.
func (c *Containerd) deleteContainer(ctx context.Context, ctr containerd.Container) error {
	// Once begun, a deletion runs to its end even if the caller gives up
	// (an agent shutting down): cut short between the task's deletion and
	// its shim's shutdown, it would leave an orphaned shim behind.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	var errs []error
	if task, err := ctr.Task(ctx, nil); err == nil {
		if _, err := task.Delete(ctx, containerd.WithProcessKill); err != nil && !errdefs.IsNotFound(err) {
			errs = append(errs, fmt.Errorf("delete task %s: %w", ctr.ID(), err))
		}
	} else if !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("load task %s: %w", ctr.ID(), err))
	}
	c.releaseOutput(ctr.ID(), outputDrainWait)
	if err := ctr.Delete(ctx, containerd.WithSnapshotCleanup); err != nil && !errdefs.IsNotFound(err) {
		errs = append(errs, fmt.Errorf("delete container %s: %w", ctr.ID(), err))
	}
	return errors.Join(errs...)
}

// PodStatus implements Runtime.
func (c *Containerd) PodStatus(ctx context.Context, key PodKey) (PodStatus, error) {
	ctx = c.ctx(ctx)
	defer c.lock(key.UID)()
	r, err := c.loadRecord(key.UID)
	if err != nil {
		if os.IsNotExist(err) {
			return PodStatus{}, podErr(key, "status", ErrPodNotFound)
		}
		return PodStatus{}, podErr(key, "status", err)
	}
	return c.status(ctx, r), nil
}

// ListPods implements Runtime.
func (c *Containerd) ListPods(ctx context.Context) ([]PodStatus, error) {
	ctx = c.ctx(ctx)
	uids, err := c.recordUIDs()
	if err != nil {
		return nil, fmt.Errorf("list pods: %w", err)
	}
	var out []PodStatus
	for _, uid := range uids {
		unlock := c.lock(uid)
		r, err := c.loadRecord(uid)
		if err == nil {
			out = append(out, c.status(ctx, r))
		}
		unlock()
		if err != nil && !os.IsNotExist(err) {
			c.log.Warn("unreadable pod record", "uid", uid, "err", err)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Key.Less(out[j].Key) })
	return out, nil
}

// status reads the containers' live state from containerd.
func (c *Containerd) status(ctx context.Context, r *podRecord) PodStatus {
	st := PodStatus{Key: r.Spec.Key, PodIP: r.IP, StartedAt: r.CreatedAt, Stopped: r.Stopped}
	initDone := true
	for _, cs := range r.Spec.InitContainers {
		ics := c.containerStatus(ctx, cs, r.Containers[cs.Name])
		initDone = initDone && ics.State == StateTerminated && ics.ExitCode == 0
		st.InitContainers = append(st.InitContainers, ics)
	}
	for _, cs := range r.Spec.Containers {
		cst := c.containerStatus(ctx, cs, r.Containers[cs.Name])
		if !initDone && r.Containers[cs.Name] == nil {
			cst.Reason = ReasonPodInitializing
		}
		st.Containers = append(st.Containers, cst)
	}
	st.Phase = podPhase(r.Spec.RestartPolicy, r.Stopped, st.InitContainers, st.Containers)
	// Readiness as known without a prober; PlanProbes refines it.
	st = ProbedStatus(r.Spec, st, nil)
	return st
}

func (c *Containerd) containerStatus(ctx context.Context, cs ContainerSpec, cr *containerRecord) ContainerStatus {
	out := ContainerStatus{Name: cs.Name, Image: cs.Image, State: StateWaiting, Reason: ReasonContainerCreating}
	if cr == nil {
		return out
	}
	out.ImageRef, out.StartedAt = cr.ImageRef, cr.StartedAt
	out.RestartCount, out.Backoff, out.LastTermination = cr.RestartCount, cr.Backoff, cr.Last
	if cr.Final != nil {
		f := *cr.Final
		f.Name, f.Image, f.ImageRef = cs.Name, cs.Image, cr.ImageRef
		f.StartedAt = cr.StartedAt
		f.RestartCount, f.Backoff, f.LastTermination = cr.RestartCount, cr.Backoff, cr.Last
		return f
	}
	if cr.WaitingReason != "" {
		out.Reason, out.Message, out.FailedAt = cr.WaitingReason, cr.WaitingMessage, cr.FailedAt
		return out
	}
	ctr, err := c.client.LoadContainer(ctx, cr.ID)
	if err != nil {
		if errdefs.IsNotFound(err) {
			out.Message = "container not created yet"
		} else {
			out.Message = err.Error()
		}
		return out
	}
	out.ID = cr.ID
	task, err := ctr.Task(ctx, nil)
	if err != nil {
		// A container without a task after its start was recorded lost
		// its shim (host reboot, containerd state wiped).
		if errdefs.IsNotFound(err) && !cr.StartedAt.IsZero() {
			out.State, out.Reason, out.ExitCode = StateTerminated, ReasonError, -1
			out.Message = "the container's task is gone (containerd or host restarted)"
		} else {
			out.Message = err.Error()
		}
		return out
	}
	ts, err := task.Status(ctx)
	if err != nil {
		out.Message = err.Error()
		return out
	}
	switch ts.Status {
	case containerd.Running, containerd.Paused, containerd.Pausing:
		out.State, out.Reason, out.PID = StateRunning, "", task.Pid()
	case containerd.Stopped:
		code := int32(ts.ExitStatus)
		out.State, out.ExitCode, out.Reason = StateTerminated, code, terminatedReason(code, oomKilled(c.cgroupPath(cr.ID)))
		out.FinishedAt = ts.ExitTime
	default:
		out.Message = "task " + string(ts.Status)
	}
	return out
}

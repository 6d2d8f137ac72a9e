package runtime

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"

	containerd "github.com/containerd/containerd/v2/client"
	"github.com/containerd/containerd/v2/core/containers"
	"github.com/containerd/containerd/v2/pkg/oci"
	specs "github.com/opencontainers/runtime-spec/specs-go"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// SecurityContext is a container's effective security settings: the
// pod's securityContext with the container's own on top.
type SecurityContext struct {
	// RunAsUser and RunAsGroup override the image's user; without
	// RunAsGroup the group is the user's in the image's /etc/passwd, else 0.
	RunAsUser  *int64 `json:",omitempty"`
	RunAsGroup *int64 `json:",omitempty"`
	// RunAsNonRoot refuses to start the container as UID 0.
	RunAsNonRoot       bool    `json:",omitempty"`
	SupplementalGroups []int64 `json:",omitempty"`
	// ReadOnlyRootFilesystem mounts the image's filesystem read-only.
	ReadOnlyRootFilesystem bool `json:",omitempty"`
	// Privileged: every capability, every host device, no masked paths,
	// writable /sys.
	Privileged bool `json:",omitempty"`
	// NoNewPrivileges is allowPrivilegeEscalation: false.
	NoNewPrivileges bool `json:",omitempty"`
	// CapAdd and CapDrop are Kubernetes capability names (NET_ADMIN,
	// ALL), applied to the default set: add ALL, drop ALL, then the named
	// ones added, then the named ones dropped.
	CapAdd  []string `json:",omitempty"`
	CapDrop []string `json:",omitempty"`
}

// securityFrom merges the pod's and the container's securityContext;
// unsupported fields are reported through no.
func securityFrom(p string, pod *corev1.PodSecurityContext, c *corev1.SecurityContext, no func(string)) (*SecurityContext, error) {
	out := &SecurityContext{}
	if pod != nil {
		if pod.SELinuxOptions != nil {
			no("spec.securityContext.seLinuxOptions")
		}
		if pod.WindowsOptions != nil {
			no("spec.securityContext.windowsOptions")
		}
		if pod.FSGroup != nil {
			no("spec.securityContext.fsGroup")
		}
		if pod.FSGroupChangePolicy != nil {
			no("spec.securityContext.fsGroupChangePolicy")
		}
		if len(pod.Sysctls) > 0 {
			no("spec.securityContext.sysctls")
		}
		if pod.SeccompProfile != nil {
			no("spec.securityContext.seccompProfile")
		}
		if pod.AppArmorProfile != nil {
			no("spec.securityContext.appArmorProfile")
		}
		if pod.SupplementalGroupsPolicy != nil && *pod.SupplementalGroupsPolicy != corev1.SupplementalGroupsPolicyMerge {
			no("spec.securityContext.supplementalGroupsPolicy")
		}
		if pod.SELinuxChangePolicy != nil {
			no("spec.securityContext.seLinuxChangePolicy")
		}
		out.RunAsUser, out.RunAsGroup = pod.RunAsUser, pod.RunAsGroup
		out.RunAsNonRoot = pod.RunAsNonRoot != nil && *pod.RunAsNonRoot
		out.SupplementalGroups = pod.SupplementalGroups
	}
	if c != nil {
		sp := p + ".securityContext"
		if c.SELinuxOptions != nil {
			no(sp + ".seLinuxOptions")
		}
		if c.WindowsOptions != nil {
			no(sp + ".windowsOptions")
		}
		if c.ProcMount != nil && *c.ProcMount != corev1.DefaultProcMount {
			no(sp + ".procMount")
		}
		if c.SeccompProfile != nil {
			no(sp + ".seccompProfile")
		}
		if c.AppArmorProfile != nil {
			no(sp + ".appArmorProfile")
		}
		if c.RunAsUser != nil {
			out.RunAsUser = c.RunAsUser
		}
		if c.RunAsGroup != nil {
			out.RunAsGroup = c.RunAsGroup
		}
		if c.RunAsNonRoot != nil {
			out.RunAsNonRoot = *c.RunAsNonRoot
		}
		out.ReadOnlyRootFilesystem = c.ReadOnlyRootFilesystem != nil && *c.ReadOnlyRootFilesystem
		out.Privileged = c.Privileged != nil && *c.Privileged
		out.NoNewPrivileges = c.AllowPrivilegeEscalation != nil && !*c.AllowPrivilegeEscalation
		if out.Privileged && out.NoNewPrivileges {
			return nil, fmt.Errorf("%s: allowPrivilegeEscalation false contradicts privileged true", sp)
		}
		if c.Capabilities != nil {
			for _, capName := range c.Capabilities.Add {
				out.CapAdd = append(out.CapAdd, string(capName))
			}
			for _, capName := range c.Capabilities.Drop {
				out.CapDrop = append(out.CapDrop, string(capName))
			}
		}
	}
	for _, id := range []*int64{out.RunAsUser, out.RunAsGroup} {
		if id != nil && (*id < 0 || *id > 1<<31-1) {
			return nil, fmt.Errorf("%s: user and group IDs must be 0 to 2147483647 (got %d)", p, *id)
		}
	}
	if out.RunAsNonRoot && out.RunAsUser != nil && *out.RunAsUser == 0 {
		return nil, fmt.Errorf("%s: runAsNonRoot contradicts runAsUser 0", p)
	}
	for _, capName := range append(append([]string(nil), out.CapAdd...), out.CapDrop...) {
		if capName != "ALL" && !validCapName(capName) {
			return nil, fmt.Errorf("%s.securityContext.capabilities: %q is not a capability name (like NET_ADMIN)", p, capName)
		}
	}
	if equalZero(out) {
		return nil, nil
	}
	return out, nil
}

func equalZero(s *SecurityContext) bool {
	return s.RunAsUser == nil && s.RunAsGroup == nil && !s.RunAsNonRoot && len(s.SupplementalGroups) == 0 &&
		!s.ReadOnlyRootFilesystem && !s.Privileged && !s.NoNewPrivileges && len(s.CapAdd) == 0 && len(s.CapDrop) == 0
}

func validCapName(s string) bool {
	s = strings.TrimPrefix(strings.ToUpper(s), "CAP_")
	if s == "" {
		return false
	}
	for _, r := range s {
		if !(r >= 'A' && r <= 'Z' || r == '_') {
			return false
		}
	}
	return true
}

func capNames(names []string) []string {
	var out []string
	for _, n := range names {
		if n == "ALL" {
			continue
		}
		out = append(out, "CAP_"+strings.TrimPrefix(strings.ToUpper(n), "CAP_"))
	}
	return out
}

// securityOpts turns a SecurityContext into OCI spec options. They run
// after the image config (which sets the image's user).
func securityOpts(s *SecurityContext) []oci.SpecOpts {
	// containerd's default spec sets no_new_privs; Kubernetes' default is
	// allowPrivilegeEscalation true, so it is set only when asked for.
	nnp := s != nil && s.NoNewPrivileges
	opts := []oci.SpecOpts{func(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
		if sp.Process == nil {
			sp.Process = &specs.Process{}
		}
		sp.Process.NoNewPrivileges = nnp
		return nil
	}}
	if s == nil {
		return opts
	}
	if s.Privileged {
		opts = append(opts, oci.WithPrivileged, oci.WithAllDevicesAllowed, oci.WithHostDevices)
	} else {
		if contains(s.CapAdd, "ALL") {
			opts = append(opts, oci.WithAllKnownCapabilities)
		}
		if contains(s.CapDrop, "ALL") {
			opts = append(opts, oci.WithCapabilities(nil))
		}
		opts = append(opts, oci.WithAddedCapabilities(capNames(s.CapAdd)), oci.WithDroppedCapabilities(capNames(s.CapDrop)))
	}
	if s.RunAsUser != nil {
		opts = append(opts, oci.WithUserID(uint32(*s.RunAsUser)))
	}
	if s.RunAsGroup != nil || len(s.SupplementalGroups) > 0 {
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
			if sp.Process == nil {
				sp.Process = &specs.Process{}
			}
			if s.RunAsGroup != nil {
				sp.Process.User.GID = uint32(*s.RunAsGroup)
			}
			gids := []uint32{sp.Process.User.GID}
			for _, g := range s.SupplementalGroups {
				gids = append(gids, uint32(g))
			}
			sp.Process.User.AdditionalGids = gids
			return nil
		})
	}
	if s.ReadOnlyRootFilesystem {
		opts = append(opts, oci.WithRootFSReadonly())
	}
	if s.RunAsNonRoot {
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, sp *oci.Spec) error {
			if sp.Process == nil || sp.Process.User.UID == 0 {
				return errors.New("container has runAsNonRoot and image will run as root (set runAsUser)")
			}
			return nil
		})
	}
	return opts
}

// checkNonRoot refuses, as the kubelet does, to run an image as root when
// runAsNonRoot asks otherwise and no runAsUser overrides the image's user.
func checkNonRoot(ctx context.Context, s *SecurityContext, image containerd.Image) error {
	if s == nil || !s.RunAsNonRoot || s.RunAsUser != nil {
		return nil
	}
	spec, err := image.Spec(ctx)
	if err != nil {
		return fmt.Errorf("image config: %w", err)
	}
	user, _, _ := strings.Cut(spec.Config.User, ":")
	switch uid, err := strconv.Atoi(user); {
	case user == "" || user == "root" || err == nil && uid == 0:
		return errors.New("container has runAsNonRoot and image will run as root (set runAsUser)")
	case err != nil:
		return fmt.Errorf("container has runAsNonRoot and image has non-numeric user (%s), cannot verify user is non-root", user)
	}
	return nil
}

func contains(ss []string, s string) bool {
	for _, x := range ss {
		if x == s {
			return true
		}
	}
	return false
}

// resourcesFrom checks a container's resources: cpu and memory limits are
// enforced; other limits are refused; requests only shape CPU shares.
func resourcesFrom(p string, r corev1.ResourceRequirements, no func(string)) {
	for name := range r.Limits {
		if name != corev1.ResourceCPU && name != corev1.ResourceMemory {
			no(fmt.Sprintf("%s.resources.limits.%s", p, name))
		}
	}
	if len(r.Claims) > 0 {
		no(p + ".resources.claims")
	}
}

// cpuPeriod is the CFS period, as the kubelet uses it (100ms).
const cpuPeriod = 100000

// resourceOpts sets cgroup limits as the kubelet does: memory.limit (and
// no swap beyond it when swap is accounted), CFS quota from the CPU limit,
// and CPU shares from the CPU request (or the limit when no request), 2
// for a container that asks for nothing.
func resourceOpts(r corev1.ResourceRequirements, swapAccounting bool) []oci.SpecOpts {
	cpuReq, hasReq := r.Requests[corev1.ResourceCPU]
	if !hasReq {
		cpuReq = r.Limits[corev1.ResourceCPU]
	}
	opts := []oci.SpecOpts{oci.WithCPUShares(cpuShares(cpuReq))}
	if lim, ok := r.Limits[corev1.ResourceCPU]; ok {
		quota := lim.MilliValue() * cpuPeriod / 1000
		opts = append(opts, oci.WithCPUCFS(max(quota, 1000), cpuPeriod))
	}
	if lim, ok := r.Limits[corev1.ResourceMemory]; ok {
		bytes := lim.Value()
		opts = append(opts, func(_ context.Context, _ oci.Client, _ *containers.Container, s *oci.Spec) error {
			if s.Linux == nil {
				s.Linux = &specs.Linux{}
			}
			if s.Linux.Resources == nil {
				s.Linux.Resources = &specs.LinuxResources{}
			}
			s.Linux.Resources.Memory = &specs.LinuxMemory{Limit: &bytes}
			if swapAccounting {
				swap := bytes
				s.Linux.Resources.Memory.Swap = &swap
			}
			return nil
		})
	}
	return opts
}

func cpuShares(q resource.Quantity) uint64 {
	shares := q.MilliValue() * 1024 / 1000
	return uint64(min(max(shares, 2), 262144))
}

// cgroupRoot is where cgroup hierarchies are mounted.
const cgroupRoot = "/sys/fs/cgroup"

// hasSwapAccounting reports whether a container's swap can be limited:
// memory.memsw on cgroup v1, memory.swap.max on v2.
func hasSwapAccounting() bool {
	if _, err := os.Stat(cgroupRoot + "/memory/memory.memsw.limit_in_bytes"); err == nil {
		return true
	}
	_, err := os.Stat(cgroupRoot + "/cgroup.controllers")
	return err == nil
}

// cgroupPath is the cgroup of a container (the containerd default, set
// explicitly so that OOM detection knows where to look).
func (c *Containerd) cgroupPath(id string) string { return "/" + c.cfg.Namespace + "/" + id }

// oomKilled reports whether the kernel OOM killer killed a process of the
// cgroup, from memory.oom_control (v1) or memory.events (v2). It must be
// asked before the task is deleted, which removes the cgroup.
func oomKilled(cgroup string) bool {
	for _, f := range []string{cgroupRoot + "/memory" + cgroup + "/memory.oom_control", cgroupRoot + cgroup + "/memory.events"} {
		b, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		for _, line := range strings.Split(string(b), "\n") {
			if v, ok := strings.CutPrefix(line, "oom_kill "); ok {
				n, _ := strconv.Atoi(strings.TrimSpace(v))
				return n > 0
			}
		}
	}
	return false
}

package runtime

import (
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"path/filepath"
	"regexp"
)

// Config configures a Containerd runtime for one node.
type Config struct {
	// Address is containerd's socket (see StartContainerd for a private one).
	Address string
	// Namespace is the containerd namespace holding all of this node's
	// containers, images and snapshots (default "shoal"). Nodes sharing one
	// containerd use one namespace each.
	Namespace string
	// DataDir holds pod records, per-pod files, logs, network namespaces
	// and CNI state. It must be private to this node.
	DataDir string
	// Snapshotter is the containerd snapshotter (default "overlayfs").
	Snapshotter string

	// PodCIDR is the node's pod range; host-local allocates from it and the
	// bridge gets its first address as gateway.
	PodCIDR netip.Prefix
	// BridgeName is the Linux bridge the pods attach to (default "shoal0",
	// at most 15 characters).
	BridgeName string
	// NetworkName names the CNI network (default "shoal"); host-local keeps
	// its allocations under DataDir/cni/networks/NetworkName.
	NetworkName string
	// CNIBinDirs are searched for plugins (default /opt/cni/bin, /usr/lib/cni).
	CNIBinDirs []string
	// IPMasq makes the bridge plugin masquerade pod traffic leaving the
	// pod CIDR (off by default: shoal routes pod CIDRs between nodes).
	IPMasq bool
	// MTU of the pod interfaces; 0 lets the bridge plugin choose.
	MTU int

	// DNS is the default content of pods' /etc/resolv.conf (for pods whose
	// PodSpec.DNS is nil). Empty means copying nameservers and search from
	// the host's /etc/resolv.conf.
	DNS DNSConfig
	// ClusterDomain is used in the pod's FQDN (default "cluster.local").
	ClusterDomain string

	// InsecureRegistries are registry hosts (host or host:port) reached by
	// plain HTTP. localhost and 127.0.0.1 are always plain HTTP.
	InsecureRegistries []string

	// Values resolves the ConfigMaps and Secrets pods use (env valueFrom,
	// envFrom, configMap and secret volumes). Nil makes such pods fail:
	// volumes at RunPod, env with CreateContainerConfigError.
	Values ValueResolver
	// ExecHelper is a statically linked shoal binary, bind-mounted into a
	// container whose environment or command line holds a Secret's value:
	// it reads them from a tmpfs file and execs the container's process,
	// so the values never reach containerd's files on disk (exec_env.go).
	// Empty makes such containers fail with CreateContainerConfigError.
	ExecHelper string

	// Logger receives one line per event; nil means slog.Default().
	Logger *slog.Logger
}

var bridgeNameRE = regexp.MustCompile(`^[A-Za-z0-9_.-]{1,15}$`)

// withDefaults returns a copy with defaults filled in.
func (c Config) withDefaults() Config {
	if c.Namespace == "" {
		c.Namespace = "shoal"
	}
	if c.Snapshotter == "" {
		c.Snapshotter = "overlayfs"
	}
	if c.BridgeName == "" {
		c.BridgeName = "shoal0"
	}
	if c.NetworkName == "" {
		c.NetworkName = "shoal"
	}
	if len(c.CNIBinDirs) == 0 {
		c.CNIBinDirs = []string{"/opt/cni/bin", "/usr/lib/cni"}
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = "cluster.local"
	}
	if c.Logger == nil {
		c.Logger = slog.Default()
	}
	return c
}

// Validate reports what is missing or malformed.
func (c Config) Validate() error {
	c = c.withDefaults()
	var errs []error
	if c.Address == "" {
		errs = append(errs, errors.New("runtime config: Address (containerd socket) is required"))
	}
	if c.DataDir == "" || !filepath.IsAbs(c.DataDir) {
		errs = append(errs, fmt.Errorf("runtime config: DataDir must be an absolute path (got %q)", c.DataDir))
	}
	if !c.PodCIDR.IsValid() || !c.PodCIDR.Addr().Is4() || c.PodCIDR.Bits() > 30 {
		errs = append(errs, fmt.Errorf("runtime config: PodCIDR must be an IPv4 prefix of /30 or wider (got %s)", c.PodCIDR))
	}
	if !bridgeNameRE.MatchString(c.BridgeName) {
		errs = append(errs, fmt.Errorf("runtime config: BridgeName %q must be 1-15 characters of [A-Za-z0-9_.-]", c.BridgeName))
	}
	return errors.Join(errs...)
}

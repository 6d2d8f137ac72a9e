package agent

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"sigs.k8s.io/yaml"

	"github.com/shoal-dev/shoal/gitsource"
)

// Defaults of the settings that have one.
const (
	DefaultBootstrapExpect = 3
	DefaultGossipPort      = 7946
	DefaultRaftPort        = 7947
	DefaultRPCPort         = 7948
	DefaultStatusAddr      = "127.0.0.1:7949"
	DefaultPodCIDRRange    = "10.244.0.0/16"
	DefaultNodeCIDRBits    = 24
	DefaultLostGrace       = 5 * time.Second
	DefaultResync          = 2 * time.Second
	DefaultEndpointDrain   = 2 * time.Second
	DefaultMaxPods         = 110
	DefaultServiceCIDR     = "10.96.0.0/12"
	DefaultNodePortRange   = "30000-32767"
	DefaultClusterDomain   = "cluster.local"
)

// Service proxy modes (Config.ProxyMode): which svcproxy backend programs
// the node's Service rules (docs/svcproxy.md, "Backends").
const (
	// ProxyModeAuto uses nftables when the kernel accepts svcproxy's
	// nftables table, iptables otherwise.
	ProxyModeAuto     = "auto"
	ProxyModeNFTables = "nftables"
	ProxyModeIPTables = "iptables"
)

// Runtime kinds (Config.Runtime).
const (
	RuntimeContainerd = "containerd"
	// RuntimeFake runs pods in memory: a simulation mode that exercises
	// everything but the containers.
	RuntimeFake = "fake"
)

// Duration is a time.Duration written as "5s" in the config file.
type Duration time.Duration

// MarshalJSON writes the duration as text ("5s").
func (d Duration) MarshalJSON() ([]byte, error) { return json.Marshal(time.Duration(d).String()) }

// UnmarshalJSON reads "5s" (or a number of nanoseconds).
func (d *Duration) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		var n int64
		if err2 := json.Unmarshal(b, &n); err2 != nil {
			return fmt.Errorf("duration: want a string such as \"5s\": %w", err)
		}
		*d = Duration(n)
		return nil
	}
	v, err := time.ParseDuration(s)
	if err != nil {
		return err
	}
	*d = Duration(v)
	return nil
}

// Reserve is what the node keeps for itself and the system: allocatable is
// capacity minus the reserve.
type Reserve struct {
	// CPU and Memory are Kubernetes quantities ("500m", "512Mi").
	CPU    string `json:"cpu,omitempty"`
	Memory string `json:"memory,omitempty"`
}

// Config is one agent's configuration. The `--config` YAML file holds the
// same fields under their JSON names; command-line flags override it.
type Config struct {
	// The Git repository every node follows.
	Repo         string   `json:"repo"`
	Branch       string   `json:"branch,omitempty"`
	Path         string   `json:"path,omitempty"`
	PollInterval Duration `json:"pollInterval,omitempty"`
	// Git credentials (see gitsource.Auth).
	GitUsername       string `json:"gitUsername,omitempty"`
	GitPasswordFile   string `json:"gitPasswordFile,omitempty"`
	GitTokenFile      string `json:"gitTokenFile,omitempty"`
	GitSSHKeyFile     string `json:"gitSSHKeyFile,omitempty"`
	GitKnownHostsFile string `json:"gitKnownHostsFile,omitempty"`
	// VerifyKeyringFile, when set, requires the followed commit to be signed
	// by a key of this armored OpenPGP keyring.
	VerifyKeyringFile string `json:"verifyKeyringFile,omitempty"`

	// DataDir holds the raft data, the Git clone and the runtime's files.
	DataDir  string `json:"dataDir"`
	NodeName string `json:"nodeName"`

	BindAddr      string   `json:"bindAddr,omitempty"`
	AdvertiseAddr string   `json:"advertiseAddr,omitempty"`
	GossipPort    int      `json:"gossipPort,omitempty"`
	RaftPort      int      `json:"raftPort,omitempty"`
	RPCPort       int      `json:"rpcPort,omitempty"`
	Join          []string `json:"join,omitempty"`

	ClusterKeyFile  string `json:"clusterKeyFile"`
	BootstrapExpect int    `json:"bootstrapExpect,omitempty"`

	// AgeKeyFile holds the node's age identities (age-keygen's format, one
	// AGE-SECRET-KEY-1... per line; several during a key rotation), which
	// decrypt the repository's sops-encrypted Secrets. It is read once, at
	// start. Empty: pods that use an encrypted Secret fail with
	// CreateContainerConfigError. See docs/secrets.md.
	AgeKeyFile string `json:"ageKeyFile,omitempty"`
	// ExecHelper is a statically linked shoal binary the runtime mounts
	// into containers whose environment or command line holds a Secret's
	// value, so the value never reaches containerd's files on disk
	// (runtime.Config.ExecHelper). Empty means this agent's own binary
	// when it is statically linked (make build makes it so).
	ExecHelper string `json:"execHelper,omitempty"`

	Labels  map[string]string `json:"labels,omitempty"`
	Taints  []corev1.Taint    `json:"taints,omitempty"`
	Reserve Reserve           `json:"reserve,omitempty"`
	MaxPods int64             `json:"maxPods,omitempty"`

	// Runtime is "containerd" (default) or "fake".
	Runtime string `json:"runtime,omitempty"`
	// ContainerdSocket is an existing containerd's socket; empty starts a
	// private containerd under DataDir/containerd.
	ContainerdSocket    string `json:"containerdSocket,omitempty"`
	ContainerdNamespace string `json:"containerdNamespace,omitempty"`

	// PodCIDRRange is split into one /NodeCIDRBits per node by the leader.
	PodCIDRRange string `json:"podCIDRRange,omitempty"`
	NodeCIDRBits int    `json:"nodeCIDRBits,omitempty"`

	// ServiceCIDR is the range the leader allocates ClusterIPs from (its
	// first host address is reserved, as in Kubernetes). NodePortRange
	// ("min-max") is where NodePorts come from. ClusterDomain is the DNS
	// domain of Services and pods. Every node must use the same values.
	ServiceCIDR   string `json:"serviceCIDR,omitempty"`
	NodePortRange string `json:"nodePortRange,omitempty"`
	ClusterDomain string `json:"clusterDomain,omitempty"`
	// ProxyMode picks the backend of the Service rules: "auto" (default),
	// "nftables" or "iptables".
	ProxyMode string `json:"proxyMode,omitempty"`

	// NoRoutes turns off the routes to other nodes' pod CIDRs (host-gw),
	// which a containerd node otherwise installs; the fake runtime never
	// installs any.
	NoRoutes bool `json:"noRoutes,omitempty"`

	// StatusAddr is where the read-only status API listens. Any address
	// other than loopback requires the bearer token derived from the
	// cluster key.
	StatusAddr string `json:"statusAddr,omitempty"`

	// LostGrace is how long a NotReady node's pods wait before they are
	// marked lost.
	LostGrace Duration `json:"lostGrace,omitempty"`
	// Resync is how often the pod loop re-reads the runtime when nothing
	// else woke it.
	Resync Duration `json:"resync,omitempty"`
	// EndpointDrain is how long a Ready pod that is to stop keeps running
	// after it left the Services' endpoints, so that every node's rules
	// drop it before it gets SIGTERM (drain.go). 0 means the default.
	EndpointDrain Duration `json:"endpointDrain,omitempty"`
}

// LoadConfigFile reads a YAML config file strictly: an unknown key is an
// error naming it.
func LoadConfigFile(path string) (Config, error) {
	var c Config
	b, err := os.ReadFile(path)
	if err != nil {
		return c, err
	}
	if err := yaml.UnmarshalStrict(b, &c); err != nil {
		return c, fmt.Errorf("config file %s: %w", path, err)
	}
	return c, nil
}

// WithDefaults returns c with every unset field that has a default set.
func (c Config) WithDefaults() Config {
	if c.BootstrapExpect == 0 {
		c.BootstrapExpect = DefaultBootstrapExpect
	}
	if c.Branch == "" {
		c.Branch = gitsource.DefaultBranch
	}
	if c.BindAddr == "" {
		c.BindAddr = "0.0.0.0"
	}
	if c.GossipPort == 0 {
		c.GossipPort = DefaultGossipPort
	}
	if c.RaftPort == 0 {
		c.RaftPort = DefaultRaftPort
	}
	if c.RPCPort == 0 {
		c.RPCPort = DefaultRPCPort
	}
	if c.StatusAddr == "" {
		c.StatusAddr = DefaultStatusAddr
	}
	if c.PodCIDRRange == "" {
		c.PodCIDRRange = DefaultPodCIDRRange
	}
	if c.NodeCIDRBits == 0 {
		c.NodeCIDRBits = DefaultNodeCIDRBits
	}
	if c.ServiceCIDR == "" {
		c.ServiceCIDR = DefaultServiceCIDR
	}
	if c.NodePortRange == "" {
		c.NodePortRange = DefaultNodePortRange
	}
	if c.ProxyMode == "" {
		c.ProxyMode = ProxyModeAuto
	}
	if c.ClusterDomain == "" {
		c.ClusterDomain = DefaultClusterDomain
	}
	if c.LostGrace == 0 {
		c.LostGrace = Duration(DefaultLostGrace)
	}
	if c.Resync == 0 {
		c.Resync = Duration(DefaultResync)
	}
	if c.EndpointDrain == 0 {
		c.EndpointDrain = Duration(DefaultEndpointDrain)
	}
	if c.Runtime == "" {
		c.Runtime = RuntimeContainerd
	}
	if c.MaxPods == 0 {
		c.MaxPods = DefaultMaxPods
	}
	if c.NodeName == "" {
		if h, err := os.Hostname(); err == nil {
			c.NodeName = strings.ToLower(h)
		}
	}
	return c
}

// Validate reports every problem of a defaulted config at once.
func (c Config) Validate() error {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if c.Repo == "" {
		bad("repo: required (the Git repository URL or path)")
	}
	if c.DataDir == "" {
		bad("data-dir: required")
	}
	if c.NodeName == "" {
		bad("node-name: required")
	}
	if c.ClusterKeyFile == "" {
		bad("cluster-key-file: required")
	}
	if c.BootstrapExpect < 1 || c.BootstrapExpect > 5 {
		bad("bootstrap-expect: %d, want 1 to 5", c.BootstrapExpect)
	}
	if net.ParseIP(c.BindAddr) == nil {
		bad("bind: %q is not an IP address", c.BindAddr)
	}
	if c.AdvertiseAddr != "" && net.ParseIP(c.AdvertiseAddr) == nil {
		bad("advertise: %q is not an IP address", c.AdvertiseAddr)
	}
	if c.AdvertiseAddr == "" && net.ParseIP(c.BindAddr) != nil && net.ParseIP(c.BindAddr).IsUnspecified() {
		bad("advertise: required when bind is a wildcard address (%s)", c.BindAddr)
	}
	for _, p := range []struct {
		name string
		v    int
	}{{"gossip-port", c.GossipPort}, {"raft-port", c.RaftPort}, {"rpc-port", c.RPCPort}} {
		if p.v < 0 || p.v > 65535 {
			bad("%s: %d out of range", p.name, p.v)
		}
	}
	if _, err := net.ResolveTCPAddr("tcp", c.StatusAddr); err != nil {
		bad("status-addr: %v", err)
	}
	if r, err := netip.ParsePrefix(c.PodCIDRRange); err != nil || !r.Addr().Is4() || r.Masked() != r {
		bad("pod-cidr: %q is not a canonical IPv4 prefix", c.PodCIDRRange)
	} else if c.NodeCIDRBits <= r.Bits() || c.NodeCIDRBits > 30 {
		bad("node-cidr-bits: /%d must be longer than the range's /%d and at most /30", c.NodeCIDRBits, r.Bits())
	}
	errs = append(errs, c.validateServices()...)
	switch c.ProxyMode {
	case ProxyModeAuto, ProxyModeNFTables, ProxyModeIPTables:
	default:
		bad("proxy-mode: %q, want auto, nftables or iptables", c.ProxyMode)
	}
	switch c.Runtime {
	case RuntimeContainerd, RuntimeFake:
	default:
		bad("runtime: %q, want containerd or fake", c.Runtime)
	}
	if c.Reserve.CPU != "" {
		if _, err := resource.ParseQuantity(c.Reserve.CPU); err != nil {
			bad("reserve cpu: %v", err)
		}
	}
	if c.Reserve.Memory != "" {
		if _, err := resource.ParseQuantity(c.Reserve.Memory); err != nil {
			bad("reserve memory: %v", err)
		}
	}
	for _, t := range c.Taints {
		switch t.Effect {
		case corev1.TaintEffectNoSchedule, corev1.TaintEffectPreferNoSchedule, corev1.TaintEffectNoExecute:
		default:
			bad("taint %s: effect %q, want NoSchedule, PreferNoSchedule or NoExecute", t.Key, t.Effect)
		}
		if t.Key == "" {
			bad("taint: empty key")
		}
	}
	if c.LostGrace < 0 || c.Resync <= 0 || c.EndpointDrain < 0 {
		bad("lost-grace, resync and endpoint-drain must be positive")
	}
	if c.MaxPods < 1 {
		bad("max-pods: %d, want at least 1", c.MaxPods)
	}
	// A node's pods take their addresses from its pod CIDR (less the
	// network, the bridge's gateway and broadcast addresses).
	if c.NodeCIDRBits > 0 && c.NodeCIDRBits <= 30 {
		if room := int64(1)<<(32-c.NodeCIDRBits) - 3; c.MaxPods > room {
			bad("max-pods: %d, but a node's pod CIDR (/%d, node-cidr-bits) has addresses for %d pods: lower max-pods or node-cidr-bits", c.MaxPods, c.NodeCIDRBits, room)
		}
	}
	return errors.Join(errs...)
}

// gitConfig builds the gitsource configuration of this node's clone.
func (c Config) gitConfig(dir string) (gitsource.Config, error) {
	g := gitsource.Config{
		URL:          c.Repo,
		Branch:       c.Branch,
		Path:         strings.Trim(c.Path, "/"),
		Dir:          dir,
		PollInterval: time.Duration(c.PollInterval),
	}
	if g.Path == "." {
		g.Path = ""
	}
	read := func(file string) (string, error) {
		if file == "" {
			return "", nil
		}
		b, err := os.ReadFile(file)
		return strings.TrimSpace(string(b)), err
	}
	var err error
	g.Auth.Username = c.GitUsername
	if g.Auth.Password, err = read(c.GitPasswordFile); err != nil {
		return g, err
	}
	if g.Auth.Token, err = read(c.GitTokenFile); err != nil {
		return g, err
	}
	g.Auth.SSHKeyFile = c.GitSSHKeyFile
	g.Auth.KnownHostsFile = c.GitKnownHostsFile
	if c.VerifyKeyringFile != "" {
		g.Verify = gitsource.VerifyConfig{Mode: gitsource.VerifyHead, KeyringFile: c.VerifyKeyringFile}
	}
	return g, g.Validate()
}

// ParseTaint reads "key=value:Effect" or "key:Effect", kubectl's form.
func ParseTaint(s string) (corev1.Taint, error) {
	kv, effect, ok := strings.Cut(s, ":")
	if !ok {
		return corev1.Taint{}, fmt.Errorf("taint %q: want key=value:Effect", s)
	}
	k, v, _ := strings.Cut(kv, "=")
	return corev1.Taint{Key: k, Value: v, Effect: corev1.TaintEffect(effect)}, nil
}

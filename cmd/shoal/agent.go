package main

import (
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/shoal-dev/shoal/agent"
)

// agentFlags holds the flag values; only the flags given on the command line override the
// config file.
type agentFlags struct {
	configFile string
	logLevel   string
	c          agent.Config
	poll       time.Duration
	lostGrace  time.Duration
	resync     time.Duration
	drain      time.Duration
	taints     []string
}

func newAgentCommand() *cobra.Command { return newAgentCommandWith(&agentFlags{}) }

func newAgentCommandWith(f *agentFlags) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "agent --repo URL --data-dir DIR --cluster-key-file F [--join ADDR,...] [flags]",
		Short: "Run the shoal agent on this machine",
		Long: `Run the agent: join the cluster, follow the Git repository, run the pods bound to this
node and serve the read-only status API. Every machine of a cluster runs the same agent; they
elect a leader among themselves. Settings come from --config (YAML, the same names as the flags
in camelCase) and flags, flags winning. See docs/agent.md.`,
		Example: `  shoal agent --repo https://git.example.com/ops/deploy.git --path prod \
    --data-dir /var/lib/shoal --node-name n1 --advertise 10.0.0.1 \
    --join 10.0.0.2:7946,10.0.0.3:7946 --cluster-key-file /etc/shoal/cluster.key
  shoal agent --config /etc/shoal/agent.yaml --node-name n4`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := f.config(cmd.Flags())
			if err != nil {
				return err
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(f.logLevel)); err != nil {
				return fmt.Errorf("--log-level: %w", err)
			}
			log := slog.New(slog.NewTextHandler(cmd.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
			ctx, stop := signal.NotifyContext(cmd.Context(), os.Interrupt, syscall.SIGTERM)
			defer stop()
			return agent.Run(ctx, cfg, agent.Deps{Logger: log})
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.configFile, "config", "", "YAML file holding these settings; flags override it")
	fl.StringVar(&f.logLevel, "log-level", "info", "debug, info, warn or error")
	fl.StringVar(&f.c.Repo, "repo", "", "the Git repository to follow (URL or local path)")
	fl.StringVar(&f.c.Branch, "branch", "", "the branch to follow (default main)")
	fl.StringVar(&f.c.Path, "path", "", "the directory of the repository that holds the manifests")
	fl.DurationVar(&f.poll, "poll-interval", 0, "how often to ask the remote for its head (default 15s)")
	fl.StringVar(&f.c.GitUsername, "git-username", "", "user name for HTTPS Git")
	fl.StringVar(&f.c.GitPasswordFile, "git-password-file", "", "file holding the HTTPS Git password")
	fl.StringVar(&f.c.GitTokenFile, "git-token-file", "", "file holding an HTTPS Git access token")
	fl.StringVar(&f.c.GitSSHKeyFile, "git-ssh-key-file", "", "private key for ssh Git URLs")
	fl.StringVar(&f.c.GitKnownHostsFile, "git-known-hosts-file", "", "known_hosts for ssh Git URLs")
	fl.StringVar(&f.c.VerifyKeyringFile, "verify-keyring-file", "", "require the followed commit to be signed by a key of this armored OpenPGP keyring")
	fl.StringVar(&f.c.DataDir, "data-dir", "", "where the agent keeps raft data, its Git clone and pod files")
	fl.StringVar(&f.c.NodeName, "node-name", "", "this node's unique name (default the host name)")
	fl.StringVar(&f.c.BindAddr, "bind", "", "IP address to listen on (default 0.0.0.0)")
	fl.StringVar(&f.c.AdvertiseAddr, "advertise", "", "IP address the other nodes reach this one at")
	fl.IntVar(&f.c.GossipPort, "gossip-port", 0, fmt.Sprintf("gossip port (default %d)", agent.DefaultGossipPort))
	fl.IntVar(&f.c.RaftPort, "raft-port", 0, fmt.Sprintf("raft port (default %d)", agent.DefaultRaftPort))
	fl.IntVar(&f.c.RPCPort, "rpc-port", 0, fmt.Sprintf("port of the forwarded writes (default %d)", agent.DefaultRPCPort))
	fl.StringSliceVar(&f.c.Join, "join", nil, "gossip addresses (host:port) of existing members")
	fl.StringVar(&f.c.ClusterKeyFile, "cluster-key-file", "", "the 32-byte cluster key (raw or base64), readable by its owner only")
	fl.IntVar(&f.c.BootstrapExpect, "bootstrap-expect", 0, "nodes that form a new cluster (default 3)")
	fl.StringVar(&f.c.ExecHelper, "exec-helper", "", "a statically linked shoal binary that keeps Secret values in containers' environment off disk (default: this binary, when static)")
	fl.StringVar(&f.c.AgeKeyFile, "age-key-file", "", "age identities (age-keygen's format) that decrypt the repository's sops Secrets; without it, pods using an encrypted Secret cannot start")
	fl.StringToStringVar(&f.c.Labels, "labels", nil, "node labels, k=v,...")
	fl.StringSliceVar(&f.taints, "taints", nil, "node taints, key=value:Effect,...")
	fl.StringVar(&f.c.Reserve.CPU, "reserve-cpu", "", "CPU kept from pods, e.g. 500m")
	fl.StringVar(&f.c.Reserve.Memory, "reserve-memory", "", "memory kept from pods, e.g. 512Mi")
	fl.Int64Var(&f.c.MaxPods, "max-pods", 0, fmt.Sprintf("pods this node takes at most (default %d)", agent.DefaultMaxPods))
	fl.StringVar(&f.c.Runtime, "runtime", "", "containerd (default), or fake: pods simulated in memory")
	fl.StringVar(&f.c.ContainerdSocket, "containerd-socket", "", "an existing containerd's socket (default: start a private one under the data dir)")
	fl.StringVar(&f.c.ContainerdNamespace, "containerd-namespace", "", "containerd namespace of this node (default shoal)")
	fl.StringVar(&f.c.PodCIDRRange, "pod-cidr", "", "range the per-node pod CIDRs come from (default "+agent.DefaultPodCIDRRange+")")
	fl.IntVar(&f.c.NodeCIDRBits, "node-cidr-bits", 0, "prefix length of each node's pod CIDR (default 24)")
	fl.BoolVar(&f.c.NoRoutes, "no-routes", false, "do not install routes to the other nodes' pod CIDRs (host-gw)")
	fl.StringVar(&f.c.ServiceCIDR, "service-cidr", "", "range ClusterIPs are allocated from (default "+agent.DefaultServiceCIDR+")")
	fl.StringVar(&f.c.NodePortRange, "node-port-range", "", "range NodePorts are allocated from, min-max (default "+agent.DefaultNodePortRange+")")
	fl.StringVar(&f.c.ClusterDomain, "cluster-domain", "", "DNS domain of Services and pods (default "+agent.DefaultClusterDomain+")")
	fl.StringVar(&f.c.ProxyMode, "proxy-mode", "", "backend of the Service rules: auto (nftables when the kernel takes it, else iptables), nftables or iptables (default auto)")
	fl.StringVar(&f.c.StatusAddr, "status-addr", "", "address of the read-only status API (default "+agent.DefaultStatusAddr+")")
	fl.DurationVar(&f.lostGrace, "lost-grace", 0, "how long a NotReady node's pods wait before they are marked lost (default 5s)")
	fl.DurationVar(&f.resync, "resync", 0, "how often the pod loop re-reads the runtime (default 2s)")
	fl.DurationVar(&f.drain, "endpoint-drain", 0, "how long a Ready pod keeps running after it left the Services' endpoints, before SIGTERM (default 2s)")
	return cmd
}

// config merges the config file and the flags that were set.
func (f *agentFlags) config(fs *pflag.FlagSet) (agent.Config, error) {
	var cfg agent.Config
	if f.configFile != "" {
		var err error
		if cfg, err = agent.LoadConfigFile(f.configFile); err != nil {
			return cfg, err
		}
	}
	f.c.PollInterval = agent.Duration(f.poll)
	f.c.LostGrace = agent.Duration(f.lostGrace)
	f.c.Resync = agent.Duration(f.resync)
	f.c.EndpointDrain = agent.Duration(f.drain)
	var taintErr error
	override := map[string]func(){
		"repo": func() { cfg.Repo = f.c.Repo }, "branch": func() { cfg.Branch = f.c.Branch },
		"path": func() { cfg.Path = f.c.Path }, "poll-interval": func() { cfg.PollInterval = f.c.PollInterval },
		"git-username":         func() { cfg.GitUsername = f.c.GitUsername },
		"git-password-file":    func() { cfg.GitPasswordFile = f.c.GitPasswordFile },
		"git-token-file":       func() { cfg.GitTokenFile = f.c.GitTokenFile },
		"git-ssh-key-file":     func() { cfg.GitSSHKeyFile = f.c.GitSSHKeyFile },
		"git-known-hosts-file": func() { cfg.GitKnownHostsFile = f.c.GitKnownHostsFile },
		"verify-keyring-file":  func() { cfg.VerifyKeyringFile = f.c.VerifyKeyringFile },
		"data-dir":             func() { cfg.DataDir = f.c.DataDir }, "node-name": func() { cfg.NodeName = f.c.NodeName },
		"bind": func() { cfg.BindAddr = f.c.BindAddr }, "advertise": func() { cfg.AdvertiseAddr = f.c.AdvertiseAddr },
		"gossip-port": func() { cfg.GossipPort = f.c.GossipPort }, "raft-port": func() { cfg.RaftPort = f.c.RaftPort },
		"rpc-port": func() { cfg.RPCPort = f.c.RPCPort }, "join": func() { cfg.Join = f.c.Join },
		"cluster-key-file": func() { cfg.ClusterKeyFile = f.c.ClusterKeyFile },
		"bootstrap-expect": func() { cfg.BootstrapExpect = f.c.BootstrapExpect },
		"age-key-file":     func() { cfg.AgeKeyFile = f.c.AgeKeyFile },
		"exec-helper":      func() { cfg.ExecHelper = f.c.ExecHelper },
		"labels":           func() { cfg.Labels = f.c.Labels },
		"taints": func() {
			cfg.Taints = nil
			for _, s := range f.taints {
				t, err := agent.ParseTaint(s)
				if err != nil {
					taintErr = err
				}
				cfg.Taints = append(cfg.Taints, t)
			}
		},
		"reserve-cpu": func() { cfg.Reserve.CPU = f.c.Reserve.CPU }, "reserve-memory": func() { cfg.Reserve.Memory = f.c.Reserve.Memory },
		"max-pods": func() { cfg.MaxPods = f.c.MaxPods }, "runtime": func() { cfg.Runtime = f.c.Runtime },
		"containerd-socket":    func() { cfg.ContainerdSocket = f.c.ContainerdSocket },
		"containerd-namespace": func() { cfg.ContainerdNamespace = f.c.ContainerdNamespace },
		"pod-cidr":             func() { cfg.PodCIDRRange = f.c.PodCIDRRange },
		"node-cidr-bits":       func() { cfg.NodeCIDRBits = f.c.NodeCIDRBits },
		"status-addr":          func() { cfg.StatusAddr = f.c.StatusAddr },
		"no-routes":            func() { cfg.NoRoutes = f.c.NoRoutes },
		"service-cidr":         func() { cfg.ServiceCIDR = f.c.ServiceCIDR },
		"node-port-range":      func() { cfg.NodePortRange = f.c.NodePortRange },
		"cluster-domain":       func() { cfg.ClusterDomain = f.c.ClusterDomain },
		"proxy-mode":           func() { cfg.ProxyMode = f.c.ProxyMode },
		"lost-grace":           func() { cfg.LostGrace = f.c.LostGrace }, "resync": func() { cfg.Resync = f.c.Resync },
		"endpoint-drain": func() { cfg.EndpointDrain = f.c.EndpointDrain },
	}
	fs.Visit(func(fl *pflag.Flag) {
		if set, ok := override[fl.Name]; ok {
			set()
		}
	})
	if taintErr != nil {
		return cfg, taintErr
	}
	cfg = cfg.WithDefaults()
	if err := cfg.Validate(); err != nil {
		return cfg, fmt.Errorf("%w\n(see shoal agent --help)", indentErr(err))
	}
	return cfg, nil
}

// indentErr puts each of a joined error's lines on its own indented line.
func indentErr(err error) error {
	lines := strings.Split(err.Error(), "\n")
	return fmt.Errorf("invalid agent configuration:\n  %s", strings.Join(lines, "\n  "))
}

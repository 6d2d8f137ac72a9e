package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/shoal-dev/shoal/agent"
)

// agentConfig parses an agent command line without running the agent.
func agentConfig(t *testing.T, args ...string) (agent.Config, error) {
	t.Helper()
	var f agentFlags
	cmd := newAgentCommandWith(&f)
	if err := cmd.Flags().Parse(args); err != nil {
		t.Fatal(err)
	}
	return f.config(cmd.Flags())
}

func TestAgentFlagsOverrideTheConfigFile(t *testing.T) {
	dir := t.TempDir()
	file := filepath.Join(dir, "agent.yaml")
	os.WriteFile(file, []byte(`repo: https://git.example.com/deploy.git
dataDir: /var/lib/shoal
nodeName: from-file
clusterKeyFile: /etc/shoal/key
advertise: ""
advertiseAddr: 10.0.0.1
labels: {zone: a}
lostGrace: 7s
`), 0o644)
	cfg, err := agentConfig(t, "--config", file, "--node-name", "n9", "--taints", "gpu=yes:NoSchedule", "--join", "10.0.0.2:7946,10.0.0.3:7946")
	if err == nil || !strings.Contains(err.Error(), "advertise") {
		// "advertise" is not a config key: strict decoding names it.
		t.Fatalf("unknown key in the config file: %v", err)
	}
	os.WriteFile(file, []byte(`repo: https://git.example.com/deploy.git
dataDir: /var/lib/shoal
nodeName: from-file
clusterKeyFile: /etc/shoal/key
advertiseAddr: 10.0.0.1
labels: {zone: a}
lostGrace: 7s
`), 0o644)
	cfg, err = agentConfig(t, "--config", file, "--node-name", "n9", "--taints", "gpu=yes:NoSchedule", "--join", "10.0.0.2:7946,10.0.0.3:7946", "--runtime", "fake")
	if err != nil {
		t.Fatal(err)
	}
	if cfg.NodeName != "n9" || cfg.Repo != "https://git.example.com/deploy.git" || cfg.Labels["zone"] != "a" ||
		time.Duration(cfg.LostGrace) != 7*time.Second || len(cfg.Join) != 2 || cfg.Taints[0].Effect != "NoSchedule" ||
		cfg.Runtime != agent.RuntimeFake || cfg.BootstrapExpect != 3 || cfg.GossipPort != agent.DefaultGossipPort {
		t.Errorf("merged config: %+v", cfg)
	}
	if _, err := agentConfig(t, "--repo", "r"); err == nil || !strings.Contains(err.Error(), "data-dir") || !strings.Contains(err.Error(), "cluster-key-file") {
		t.Errorf("missing settings: %v", err)
	}
}

func TestAgentCommandRefusesABadConfig(t *testing.T) {
	code, _, errOut := shoal(t, "agent", "--repo", "r", "--runtime", "docker")
	if code != 1 || !strings.Contains(errOut, `runtime: "docker"`) || !strings.Contains(errOut, "data-dir: required") {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
}

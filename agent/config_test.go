package agent

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func TestConfigDefaultsAndValidate(t *testing.T) {
	c := Config{Repo: "/r", DataDir: "/d", NodeName: "n1", ClusterKeyFile: "/k", AdvertiseAddr: "10.0.0.1"}.WithDefaults()
	if err := c.Validate(); err != nil {
		t.Fatal(err)
	}
	if c.BootstrapExpect != 3 || c.PodCIDRRange != "10.244.0.0/16" || c.NodeCIDRBits != 24 || time.Duration(c.LostGrace) != 5*time.Second ||
		c.Runtime != RuntimeContainerd || c.StatusAddr != DefaultStatusAddr || c.Branch != "main" {
		t.Errorf("defaults: %+v", c)
	}
	bad := Config{BindAddr: "0.0.0.0", PodCIDRRange: "10.244.0.1/16", Runtime: "docker", BootstrapExpect: 7, NodeName: "x"}.WithDefaults()
	err := bad.Validate()
	if err == nil {
		t.Fatal("bad config accepted")
	}
	for _, want := range []string{"repo", "data-dir", "cluster-key-file", "advertise", "pod-cidr", "runtime", "bootstrap-expect"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error does not mention %s:\n%v", want, err)
		}
	}
	// More pods than the node's pod CIDR can address.
	c.MaxPods = 300
	if err := c.Validate(); err == nil || !strings.Contains(err.Error(), "addresses for 253 pods") {
		t.Errorf("max-pods 300 on a /24: %v", err)
	}
	c.NodeCIDRBits = 23
	if err := c.Validate(); err != nil {
		t.Errorf("max-pods 300 on a /23: %v", err)
	}
}

func TestLoadConfigFile(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "agent.yaml")
	os.WriteFile(good, []byte(`repo: https://git.example.com/deploy.git
path: prod
dataDir: /var/lib/shoal
nodeName: n1
clusterKeyFile: /etc/shoal/key
join: [10.0.0.2:7946]
labels: {zone: a}
taints: [{key: gpu, value: "yes", effect: NoSchedule}]
reserve: {cpu: 500m, memory: 512Mi}
lostGrace: 10s
runtime: fake
`), 0o644)
	c, err := LoadConfigFile(good)
	if err != nil {
		t.Fatal(err)
	}
	if c.Path != "prod" || c.Join[0] != "10.0.0.2:7946" || c.Labels["zone"] != "a" || c.Taints[0].Key != "gpu" ||
		c.Reserve.Memory != "512Mi" || time.Duration(c.LostGrace) != 10*time.Second || c.Runtime != RuntimeFake {
		t.Errorf("loaded: %+v", c)
	}
	typo := filepath.Join(dir, "typo.yaml")
	os.WriteFile(typo, []byte("repo: x\nnodeNmae: n1\n"), 0o644)
	if _, err := LoadConfigFile(typo); err == nil || !strings.Contains(err.Error(), "nodeNmae") {
		t.Errorf("unknown key: %v", err)
	}
}

func TestParseTaint(t *testing.T) {
	tn, err := ParseTaint("gpu=yes:NoSchedule")
	if err != nil || tn.Key != "gpu" || tn.Value != "yes" || tn.Effect != "NoSchedule" {
		t.Errorf("%+v %v", tn, err)
	}
	if _, err := ParseTaint("gpu"); err == nil {
		t.Error("a taint without effect was accepted")
	}
}

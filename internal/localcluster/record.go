// Package localcluster runs a real shoal cluster on one machine: one
// network namespace per node on a shared bridge, one private containerd
// and one agent per node, following a Git repository. It is what
// `shoal up` and `shoal down` do, and what the end-to-end tests start.
//
// Every node is set up as a machine of its own would be: its agent runs in
// the node's network namespace (nsenter --net), so the pod bridge, the
// host-gw routes to the other nodes' pods, the Service rules and the
// cluster DNS of each node live in that namespace only. The containerd
// daemons run in the host's namespace: they need no network (the agent
// pulls), and a unix socket crosses network namespaces.
//
// Up writes a Record into the cluster directory before it creates each
// thing, so Down can remove everything a partial Up made.
package localcluster

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// recordFile is the Record's name in the cluster directory.
const recordFile = "cluster.json"

// Record is what Up made, for Down and for the commands that show the
// cluster.
type Record struct {
	Name     string `json:"name"`
	Dir      string `json:"dir"`
	Bridge   string `json:"bridge,omitempty"`
	Subnet   string `json:"subnet"`
	HostAddr string `json:"hostAddr"`
	// Repo is what the agents follow; RepoCreated when Up made it from a
	// plain directory (it lives in Dir and goes with it).
	Repo        string       `json:"repo"`
	RepoCreated bool         `json:"repoCreated,omitempty"`
	Branch      string       `json:"branch,omitempty"`
	Path        string       `json:"path,omitempty"`
	KeyFile     string       `json:"keyFile"`
	ExecHelper  string       `json:"execHelper,omitempty"`
	Nodes       []NodeRecord `json:"nodes"`
}

// NodeRecord is one node of the local cluster.
type NodeRecord struct {
	Name  string `json:"name"`
	NetNS string `json:"netns,omitempty"`
	// HostVeth is the host end of the node's link to the bridge.
	HostVeth      string `json:"hostVeth,omitempty"`
	Addr          string `json:"addr"`
	DataDir       string `json:"dataDir"`
	ContainerdDir string `json:"containerdDir"`
	ContainerdPID int    `json:"containerdPID,omitempty"`
	AgentPID      int    `json:"agentPID,omitempty"`
	StatusAddr    string `json:"statusAddr"`
	ConfigFile    string `json:"configFile"`
	LogFile       string `json:"logFile"`
}

// Load reads the Record of the cluster in dir. A missing record is
// os.ErrNotExist.
func Load(dir string) (*Record, error) {
	b, err := os.ReadFile(filepath.Join(dir, recordFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("no local cluster in %s: %w", dir, os.ErrNotExist)
		}
		return nil, err
	}
	var r Record
	if err := json.Unmarshal(b, &r); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, recordFile), err)
	}
	return &r, nil
}

// save writes the record atomically.
func (r *Record) save() error {
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return err
	}
	tmp := filepath.Join(r.Dir, recordFile+".tmp")
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, filepath.Join(r.Dir, recordFile))
}

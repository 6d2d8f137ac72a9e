package localcluster

import (
	"context"
	"errors"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestOptionsValidate(t *testing.T) {
	for _, tc := range []struct {
		name string
		o    Options
		want string
	}{
		{"no repo", Options{Nodes: 3}, "repo: required"},
		{"no nodes", Options{Repo: ".", Nodes: 0}, "nodes: 0"},
		{"long name", Options{Repo: ".", Nodes: 1, Name: "muchtoolong"}, `name "muchtoolong"`},
		{"narrow subnet", Options{Repo: ".", Nodes: 1, Subnet: netip.MustParsePrefix("10.1.2.0/28")}, "subnet 10.1.2.0/28"},
		{"missing image", Options{Repo: ".", Nodes: 1, Images: []string{"/nonexistent.tar"}}, "/nonexistent.tar"},
		{"long dir", Options{Repo: ".", Nodes: 1, Dir: "/" + strings.Repeat("d", 100)}, "too long for containerd's socket"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			o, err := tc.o.withDefaults()
			if err != nil {
				t.Fatal(err)
			}
			err = o.validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("validate: %v, want it to mention %q", err, tc.want)
			}
		})
	}
	o, err := (&Options{Repo: ".", Nodes: 3}).withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if err := o.validate(); err != nil {
		t.Errorf("defaults: %v", err)
	}
	if o.Dir != DefaultDir || o.Name != DefaultName || o.Subnet != DefaultSubnet {
		t.Errorf("defaults: %+v", o)
	}
}

func TestDownWithoutCluster(t *testing.T) {
	err := Down(context.Background(), t.TempDir(), nil)
	if !errors.Is(err, os.ErrNotExist) {
		t.Errorf("Down of an empty dir: %v, want ErrNotExist", err)
	}
}

func TestPrepareRepo(t *testing.T) {
	src := t.TempDir()
	if err := os.MkdirAll(filepath.Join(src, "apps", ".git"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(src, "apps", "a.yaml"), []byte("kind: x\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	dst := filepath.Join(t.TempDir(), "repo")
	repo, created, err := prepareRepo(src, dst)
	if err != nil || !created || repo != dst {
		t.Fatalf("prepareRepo: %q %v %v", repo, created, err)
	}
	if _, err := os.Stat(filepath.Join(dst, "apps", "a.yaml")); err != nil {
		t.Error(err)
	}
	if _, err := os.Stat(filepath.Join(dst, "apps", ".git")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a nested .git was copied: %v", err)
	}
	// An existing repository and a URL are followed as they are.
	if repo, created, err := prepareRepo(dst, filepath.Join(t.TempDir(), "other")); err != nil || created || repo != dst {
		t.Errorf("existing repository: %q %v %v", repo, created, err)
	}
	if repo, created, err := prepareRepo("https://example.invalid/r.git", ""); err != nil || created || repo != "https://example.invalid/r.git" {
		t.Errorf("URL: %q %v %v", repo, created, err)
	}
	if _, _, err := prepareRepo(filepath.Join(src, "missing"), dst+"2"); err == nil {
		t.Error("a missing directory was accepted")
	}
}

func TestExpectedPods(t *testing.T) {
	r := &Record{Repo: filepath.Join("..", "..", "examples", "hello")}
	if n := r.expectedPods(); n != 0 {
		t.Errorf("relative repo: %d, want 0 (not a local working tree)", n)
	}
	abs, err := filepath.Abs(r.Repo)
	if err != nil {
		t.Fatal(err)
	}
	r.Repo = abs
	if n := r.expectedPods(); n != 3 {
		t.Errorf("hello: %d pods expected, want 3", n)
	}
}

package svcproxy

import (
	"os/exec"
	"testing"
)

func TestNewIPTablesBackends(t *testing.T) {
	for _, b := range []Backend{BackendNFT, BackendLegacy} {
		bin := "iptables-nft"
		if b == BackendLegacy {
			bin = "iptables-legacy"
		}
		if _, err := exec.LookPath(bin); err != nil {
			t.Logf("%s not installed: backend %q not checked", bin, b)
			continue
		}
		ipt, err := NewIPTables(b)
		if err != nil {
			t.Fatalf("NewIPTables(%q): %v", b, err)
		}
		if ipt.Backend() != b {
			t.Errorf("NewIPTables(%q).Backend() = %q", b, ipt.Backend())
		}
	}
	if _, err := NewIPTables("ebpf"); err == nil {
		t.Error("unknown backend accepted")
	}
}

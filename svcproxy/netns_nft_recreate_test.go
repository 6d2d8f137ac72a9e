package svcproxy

import (
	"context"
	"os/exec"
	"strings"
	"testing"
)

// TestNetnsNFTReplacesIncompatibleTable: a table ip shoal whose base chain
// differs from what this version writes (here: another priority, as an
// older version's might) makes the kernel refuse the in-place full sync;
// the next sync replaces the table and succeeds.
func TestNetnsNFTReplacesIncompatibleTable(t *testing.T) {
	requireNetAdmin(t)
	requireNFT(t)
	ns := newNetns(t, "nftold")
	sh(t, "ip", "netns", "exec", ns, "nft",
		"add table ip "+NFTTable+"; add chain ip "+NFTTable+" nat-prerouting { type nat hook prerouting priority 0; policy accept; }")
	p, err := NewNFTProxier(ProxierConfig{Node: testConfig, NFT: NewNetlinkNFT(), Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	p.Update([]Service{web()})
	inNetns(t, ns, func() {
		if _, err := p.Sync(context.Background()); err == nil {
			t.Fatal("the kernel took a base chain with another priority in place; this test no longer shows anything")
		}
		res, err := p.Sync(context.Background())
		if err != nil {
			t.Fatalf("the sync after a refused full sync: %v", err)
		}
		if !res.Full {
			t.Fatalf("sync %+v, want full", res)
		}
	})
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "list", "chain", "ip", NFTTable, "nat-prerouting").CombinedOutput()
	if err != nil {
		t.Fatalf("nft list chain: %v: %s", err, out)
	}
	if !strings.Contains(string(out), "priority dstnat") {
		t.Fatalf("nat-prerouting was not replaced:\n%s", out)
	}
}

package svcproxy

import (
	"context"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"os/exec"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/nftables"
)

// kernelDump is the table ip shoal of namespace ns as the kernel holds it,
// canonically: the chains, rules and set declarations as nft lists them
// (blocks sorted: the kernel lists them in creation order), then every
// set's elements read over netlink with their full key ranges (nft 1.0.6
// prints only the start of a range), sorted.
func kernelDump(t *testing.T, ns string) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "exec", ns, "nft", "-t", "list", "table", "ip", NFTTable).CombinedOutput()
	if err != nil {
		t.Fatalf("nft list table in %s: %v: %s", ns, err, out)
	}
	var blocks []string
	var cur strings.Builder
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "table ") || l == "}" || strings.TrimSpace(l) == "" {
			continue
		}
		cur.WriteString(l + "\n")
		if l == "\t}" {
			blocks = append(blocks, cur.String())
			cur.Reset()
		}
	}
	slices.Sort(blocks)
	var b strings.Builder
	for _, bl := range blocks {
		b.WriteString(bl)
	}
	inNetns(t, ns, func() {
		c, err := nftables.New()
		if err != nil {
			t.Fatal(err)
		}
		sets, err := c.GetSets(nftTable(NFTTable))
		if err != nil {
			t.Fatal(err)
		}
		slices.SortFunc(sets, func(x, y *nftables.Set) int { return strings.Compare(x.Name, y.Name) })
		for _, s := range sets {
			es, err := c.GetSetElements(s)
			if err != nil {
				t.Fatalf("elements of %s: %v", s.Name, err)
			}
			lines := make([]string, 0, len(es))
			for _, e := range es {
				l := hex.EncodeToString(e.Key) + "-" + hex.EncodeToString(e.KeyEnd) + " : " + hex.EncodeToString(e.Val)
				if e.VerdictData != nil {
					l += fmt.Sprintf(" verdict %d %s", e.VerdictData.Kind, e.VerdictData.Chain)
				}
				lines = append(lines, l)
			}
			slices.Sort(lines)
			fmt.Fprintf(&b, "elements %s (%d)\n\t%s\n", s.Name, len(es), strings.Join(lines, "\n\t"))
		}
	})
	return b.String()
}

// TestNetnsNFTHistories runs random histories of incremental syncs against
// the real kernel, which, unlike the fake, refuses a set still in use, an
// element deleted twice and an interval that overlaps another: every
// transaction must be accepted, and the table must end up exactly as a
// full sync of the same Services writes it into a fresh namespace.
func TestNetnsNFTHistories(t *testing.T) {
	requireNetAdmin(t)
	requireNFT(t)
	hostTablesUnchanged(t)
	for seed := range uint64(3) {
		rng := rand.New(rand.NewPCG(seed, 23))
		node := testConfig
		node.MasqueradeEgress = seed%2 == 1
		ns := newNetns(t, "hist")
		p, err := NewNFTProxier(ProxierConfig{Node: node, NFT: NewNetlinkNFT(), Conntrack: &fakeConntrack{}, Log: testLogger(t),
			SyncPeriod: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		var svcs []Service
		for step := range 40 {
			svcs = mutateMore(rng, svcs)
			p.Update(svcs)
			var res SyncResult
			inNetns(t, ns, func() { res, err = p.Sync(context.Background()) })
			if err != nil {
				t.Fatalf("seed %d step %d: %v", seed, step, err)
			}
			if step > 0 && res.Full {
				t.Fatalf("seed %d step %d: unexpected full sync", seed, step)
			}
			if step%10 != 9 {
				continue
			}
			fresh := newNetns(t, "fresh")
			q, err := NewNFTProxier(ProxierConfig{Node: node, NFT: NewNetlinkNFT(), Conntrack: &fakeConntrack{}, Log: testLogger(t)})
			if err != nil {
				t.Fatal(err)
			}
			q.Update(svcs)
			inNetns(t, fresh, func() { _, err = q.Sync(context.Background()) })
			if err != nil {
				t.Fatalf("seed %d step %d: fresh sync: %v", seed, step, err)
			}
			if got, want := kernelDump(t, ns), kernelDump(t, fresh); got != want {
				t.Fatalf("seed %d step %d: the kernel's table differs from a fresh full sync:\n%s", seed, step, diffLines(want, got))
			}
		}
	}
}

// TestNetnsNFTLargeBatches: element lists longer than one netlink message
// holds (nftElemsPerMessage) are cut into several messages of one
// transaction, for additions and deletions alike; the kernel must end up
// with exactly the elements a fresh full sync writes.
func TestNetnsNFTLargeBatches(t *testing.T) {
	requireNetAdmin(t)
	requireNFT(t)
	hostTablesUnchanged(t)
	// 2,000 cluster-masq elements, ~8 Services per endpoint map, and, with
	// every endpoint local, 6,000 hairpin elements: ~120 KB, more than the
	// 64 KB a netlink attribute can hold.
	svcs := manyServices(2000, 3)
	for i := range svcs {
		for j := range svcs[i].Endpoints {
			svcs[i].Endpoints[j].NodeName = testConfig.NodeName
		}
	}
	sync := func(p *NFTProxier, ns string, svcs []Service) SyncResult {
		t.Helper()
		p.Update(svcs)
		var res SyncResult
		var err error
		inNetns(t, ns, func() { res, err = p.Sync(context.Background()) })
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	newProxier := func() *NFTProxier {
		p, err := NewNFTProxier(ProxierConfig{Node: testConfig, NFT: NewNetlinkNFT(), Conntrack: &fakeConntrack{}, Log: testLogger(t),
			SyncPeriod: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	compare := func(what string, ns string, svcs []Service) {
		t.Helper()
		fresh := newNetns(t, "fresh")
		sync(newProxier(), fresh, svcs)
		if got, want := kernelDump(t, ns), kernelDump(t, fresh); got != want {
			t.Fatalf("%s: the kernel's table differs from a fresh full sync:\n%s", what, diffLines(want, got))
		}
	}
	ns := newNetns(t, "large")
	p := newProxier()
	if res := sync(p, ns, svcs); !res.Full || res.Elements < 3*400 {
		t.Fatalf("first sync %+v, want a full one with several messages' worth of elements", res)
	}
	dump := kernelDump(t, ns)
	for _, set := range []string{nftClusterMasq, nftHairpin} {
		if !strings.Contains(dump, fmt.Sprintf("elements %s (%d)", set, map[string]int{nftClusterMasq: 2000, nftHairpin: 6000}[set])) {
			t.Errorf("set %s does not hold every element", set)
		}
	}
	// Most Services go at once: deletions of more than one message per set.
	rest := svcs[1600:]
	if res := sync(p, ns, rest); res.Full || res.Elements < 3*400 {
		t.Fatalf("removal %+v, want an incremental sync with several messages' worth of elements", res)
	}
	compare("after removing 1,600 Services", ns, rest)
}

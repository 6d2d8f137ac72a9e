package svcproxy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"

	goiptables "github.com/coreos/go-iptables/iptables"
)

// Runner is what the Proxier needs from iptables. IPTables is the real one;
// tests use a fake that records the restore payloads.
type Runner interface {
	// Restore feeds payload to "iptables-restore -w --noflush" for one table.
	Restore(ctx context.Context, table string, payload []byte) error
	// Chains lists the chains that exist in table.
	Chains(ctx context.Context, table string) ([]string, error)
	// ChainExists says whether chain exists in table.
	ChainExists(ctx context.Context, table, chain string) (bool, error)
	// EnsureRule inserts rule at the top of chain unless it is already there.
	EnsureRule(ctx context.Context, table, chain string, rule ...string) error
}

// Backend is an iptables backend.
type Backend string

const (
	// BackendAuto uses whatever the plain "iptables" command is on this
	// machine (Debian's alternatives decide), as every other tool that
	// programs the host's firewall does, so shoal's rules sit beside theirs.
	BackendAuto   Backend = ""
	BackendNFT    Backend = "nft"
	BackendLegacy Backend = "legacy"
)

// IPTables runs the iptables binaries of one backend.
type IPTables struct {
	backend            Backend // resolved: nft or legacy
	bin, restore, save string
	ipt                *goiptables.IPTables
}

var _ Runner = (*IPTables)(nil)

// NewIPTables finds the binaries of backend b (BackendAuto: the system's
// default) and fails if they are missing.
func NewIPTables(b Backend) (*IPTables, error) {
	suffix := ""
	switch b {
	case BackendAuto:
	case BackendNFT:
		suffix = "-nft"
	case BackendLegacy:
		suffix = "-legacy"
	default:
		return nil, fmt.Errorf("iptables backend %q: want nft, legacy or empty for the system default", b)
	}
	r := &IPTables{}
	var err error
	if r.bin, err = exec.LookPath("iptables" + suffix); err != nil {
		return nil, fmt.Errorf("iptables backend %q: %w", b, err)
	}
	if r.restore, err = exec.LookPath("iptables" + suffix + "-restore"); err != nil {
		return nil, fmt.Errorf("iptables backend %q: %w", b, err)
	}
	if r.save, err = exec.LookPath("iptables" + suffix + "-save"); err != nil {
		return nil, fmt.Errorf("iptables backend %q: %w", b, err)
	}
	if r.ipt, err = goiptables.New(goiptables.Path(r.bin), goiptables.Timeout(5)); err != nil {
		return nil, fmt.Errorf("iptables backend %q: %w", b, err)
	}
	out, err := exec.Command(r.bin, "--version").Output()
	if err != nil {
		return nil, fmt.Errorf("iptables --version: %w", err)
	}
	switch v := string(out); {
	case strings.Contains(v, "nf_tables"):
		r.backend = BackendNFT
	case strings.Contains(v, "legacy"):
		r.backend = BackendLegacy
	default:
		return nil, fmt.Errorf("iptables backend: cannot tell it from %q", strings.TrimSpace(v))
	}
	return r, nil
}

// Backend says which backend the binaries use.
func (r *IPTables) Backend() Backend { return r.backend }

// Restore implements Runner.
func (r *IPTables) Restore(ctx context.Context, table string, payload []byte) error {
	cmd := exec.CommandContext(ctx, r.restore, "-w", "--noflush")
	cmd.Stdin = bytes.NewReader(payload)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s (table %s, %d bytes): %w: %s", r.restore, table, len(payload), err, strings.TrimSpace(stderr.String()))
	}
	return nil
}

// Chains implements Runner. It reads iptables-save's chain declarations.
func (r *IPTables) Chains(ctx context.Context, table string) ([]string, error) {
	cmd := exec.CommandContext(ctx, r.save, "-t", table)
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s -t %s: %w", r.save, table, err)
	}
	var chains []string
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Bytes()
		if len(line) > 1 && line[0] == ':' {
			if i := bytes.IndexByte(line, ' '); i > 1 {
				chains = append(chains, string(line[1:i]))
			}
		}
	}
	return chains, sc.Err()
}

// ChainExists implements Runner.
func (r *IPTables) ChainExists(_ context.Context, table, chain string) (bool, error) {
	return r.ipt.ChainExists(table, chain)
}

// EnsureRule implements Runner.
func (r *IPTables) EnsureRule(_ context.Context, table, chain string, rule ...string) error {
	return r.ipt.InsertUnique(table, chain, 1, rule...)
}

// Cleanup removes everything the iptables backend wrote: the jumps from
// the built-in chains, then every SHOAL- chain of nat and filter. The
// agent calls it when the nftables backend takes over, so that rules left
// by an earlier iptables-mode run do not DNAT before the nftables table.
func (r *IPTables) Cleanup(ctx context.Context) error {
	owned := map[string][]string{}
	for _, t := range tables {
		chains, err := r.Chains(ctx, t)
		if err != nil {
			return fmt.Errorf("iptables cleanup: %w", err)
		}
		for _, c := range chains {
			if Owned(c) {
				owned[t] = append(owned[t], c)
			}
		}
	}
	// A jump can only exist to a chain that exists (and iptables refuses
	// even to look for a jump to a missing one).
	for _, j := range jumps {
		if !slices.Contains(owned[j.table], j.rule[len(j.rule)-1]) {
			continue
		}
		if err := r.ipt.DeleteIfExists(j.table, j.chain, j.rule...); err != nil {
			return fmt.Errorf("iptables cleanup: jump %s/%s: %w", j.table, j.chain, err)
		}
	}
	for _, t := range tables {
		if len(owned[t]) == 0 {
			continue
		}
		tb := newTable(t)
		if err := r.Restore(ctx, t, tb.Payload(nil, owned[t])); err != nil {
			return fmt.Errorf("iptables cleanup: %w", err)
		}
	}
	return nil
}

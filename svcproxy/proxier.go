package svcproxy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"time"
)

// Clock is the Proxier's source of time, injectable for tests.
type Clock interface {
	Now() time.Time
	After(d time.Duration) <-chan time.Time
}

type realClock struct{}

func (realClock) Now() time.Time                         { return time.Now() }
func (realClock) After(d time.Duration) <-chan time.Time { return time.After(d) }

// ProxierConfig wires a Proxier.
type ProxierConfig struct {
	Node Config
	// Runner is the iptables backend, for NewProxier; NFT the nftables
	// backend, for NewNFTProxier. One of them is required.
	Runner    Runner
	NFT       NFTRunner
	Conntrack Conntrack // nil: NetlinkConntrack
	Clock     Clock     // nil: the real clock
	Log       *slog.Logger

	// MinSyncInterval is the least time between two syncs; updates arriving
	// faster are batched. Default 1s.
	MinSyncInterval time.Duration
	// SyncPeriod is how often Run syncs without being asked, checking the
	// canary chains and the jumps from the built-in chains. Default 30s.
	SyncPeriod time.Duration
	// FullSyncPeriod is how often a sync rewrites every chain instead of the
	// changed ones. Default 1h.
	FullSyncPeriod time.Duration
}

// Validate checks the configuration and fills in defaults.
func (c *ProxierConfig) Validate() error {
	if err := c.Node.Validate(); err != nil {
		return err
	}
	if c.Runner == nil && c.NFT == nil {
		return errors.New("svcproxy: ProxierConfig.Runner (iptables) or NFT (nftables) is required")
	}
	if c.Conntrack == nil {
		c.Conntrack = NetlinkConntrack{}
	}
	if c.Clock == nil {
		c.Clock = realClock{}
	}
	if c.Log == nil {
		c.Log = slog.New(slog.DiscardHandler)
	}
	if c.MinSyncInterval <= 0 {
		c.MinSyncInterval = time.Second
	}
	if c.SyncPeriod <= 0 {
		c.SyncPeriod = 30 * time.Second
	}
	if c.FullSyncPeriod <= 0 {
		c.FullSyncPeriod = time.Hour
	}
	return nil
}

// Proxier keeps this node's iptables in line with the Services it is given.
// Call Update with every new view of the Services; Run applies them, or call
// Sync directly. Sync is not to be called concurrently with Run.
type Proxier struct {
	cfg ProxierConfig
	desired

	// Owned by Sync.
	rd        *renderer
	applied   map[string]map[string][]byte // table → chain → rules as applied
	udp       udpTracker
	needFull  bool
	lastFull  time.Time
	lastCheck time.Time
	lastSync  time.Time
}

// NewProxier checks cfg and returns a Proxier that has applied nothing yet:
// its first sync is a full one.
func NewProxier(cfg ProxierConfig) (*Proxier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.Runner == nil {
		return nil, errors.New("svcproxy: ProxierConfig.Runner is required for the iptables Proxier")
	}
	return &Proxier{cfg: cfg, desired: newDesired(), needFull: true, rd: newRenderer(cfg.Node)}, nil
}

// desired holds the Services a proxier is to apply, handed over by Update,
// and wakes its Run loop. Both backends embed it.
type desired struct {
	mu       sync.Mutex
	services []Service
	trigger  chan struct{}
}

func newDesired() desired { return desired{trigger: make(chan struct{}, 1)} }

// Update replaces the desired Services (the proxier keeps the slice; the
// caller must not modify it afterwards) and wakes Run.
func (d *desired) Update(services []Service) {
	d.mu.Lock()
	d.services = services
	d.mu.Unlock()
	select {
	case d.trigger <- struct{}{}:
	default:
	}
}

// current returns the Services last given to Update.
func (d *desired) current() []Service {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.services
}

// SyncResult says what one Sync did.
type SyncResult struct {
	Full    bool
	Written int // chains rewritten
	Deleted int // chains deleted
	Flows   int // UDP conntrack filters applied
	// Elements counts the set elements added or deleted (nftables only;
	// there Written counts chains rewritten and sets created or changed).
	Elements int
}

var tables = []string{"nat", "filter"}

// jumps are the rules in built-in chains that lead to ours. They are the
// only rules outside our chains that svcproxy writes.
var jumps = []struct {
	table, chain string
	rule         []string
}{
	{"nat", "PREROUTING", []string{"-m", "comment", "--comment", "shoal service portals", "-j", ChainServices}},
	{"nat", "OUTPUT", []string{"-m", "comment", "--comment", "shoal service portals", "-j", ChainServices}},
	{"nat", "POSTROUTING", []string{"-m", "comment", "--comment", "shoal masquerade", "-j", ChainPostrouting}},
	{"filter", "INPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "shoal service rejects", "-j", ChainReject}},
	{"filter", "FORWARD", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "shoal service rejects", "-j", ChainReject}},
	{"filter", "OUTPUT", []string{"-m", "conntrack", "--ctstate", "NEW", "-m", "comment", "--comment", "shoal service rejects", "-j", ChainReject}},
}

// Sync renders the current Services and applies the difference with what
// it applied last: only changed chains are rewritten, chains no longer
// rendered are deleted. The first sync, any sync after a failure, one whose
// canary check failed, and one every FullSyncPeriod are full: every chain is
// rewritten and every SHOAL- chain not rendered is deleted.
func (p *Proxier) Sync(ctx context.Context) (SyncResult, error) {
	services := p.current()
	now := p.cfg.Clock.Now()
	p.lastSync = now
	log := p.cfg.Log

	res := SyncResult{Full: p.needFull || p.applied == nil || now.Sub(p.lastFull) >= p.cfg.FullSyncPeriod}
	check := res.Full || now.Sub(p.lastCheck) >= p.cfg.SyncPeriod
	if !res.Full && check {
		for _, t := range tables {
			ok, err := p.cfg.Runner.ChainExists(ctx, t, ChainCanary)
			if err != nil || !ok {
				log.Warn("svcproxy: canary chain gone, rules were flushed from outside; full resync", "table", t, "err", err)
				res.Full = true
				break
			}
		}
	}
	p.needFull = true // until this sync succeeds

	existing := map[string][]string{}
	if res.Full {
		for _, t := range tables {
			chains, err := p.cfg.Runner.Chains(ctx, t)
			if err != nil {
				return res, fmt.Errorf("svcproxy: list %s chains: %w", t, err)
			}
			existing[t] = chains
		}
	}
	if check {
		// Jumps go in before the bulk of the rules: every rule inserted
		// into a base chain makes nf_tables validate all it can reach,
		// which is cheap while our chains are still empty.
		if err := p.ensureJumps(ctx, res.Full, existing); err != nil {
			return res, err
		}
		p.lastCheck = now
	}

	rs := p.rd.render(services)
	for _, err := range rs.Errors {
		log.Warn("svcproxy: service left out", "err", err)
	}
	for _, t := range []*Table{&rs.NAT, &rs.Filter} {
		var write, del []string
		if res.Full {
			write = t.Chains()
			for _, c := range existing[t.Name] {
				if Owned(c) && !t.Has(c) {
					del = append(del, c)
				}
			}
		} else {
			applied := p.applied[t.Name]
			for _, c := range t.Chains() {
				if prev, ok := applied[c]; !ok || !bytes.Equal(prev, t.chains[c]) {
					write = append(write, c)
				}
			}
			for c := range applied {
				if !t.Has(c) {
					del = append(del, c)
				}
			}
		}
		slices.Sort(del)
		if len(write)+len(del) == 0 {
			continue
		}
		if err := p.cfg.Runner.Restore(ctx, t.Name, t.Payload(write, del)); err != nil {
			return res, fmt.Errorf("svcproxy: apply %s: %w", t.Name, err)
		}
		res.Written += len(write)
		res.Deleted += len(del)
	}
	p.applied = map[string]map[string][]byte{"nat": rs.NAT.chains, "filter": rs.Filter.chains}
	p.needFull = false
	if res.Full {
		p.lastFull = now
	}

	res.Flows = p.udp.clearStale(ctx, p.cfg.Conntrack, rs.UDP, log)
	log.Debug("svcproxy: synced", "full", res.Full, "written", res.Written, "deleted", res.Deleted, "udpFlows", res.Flows)
	return res, nil
}

// ensureJumps makes sure the built-in chains jump to ours. On a full sync
// the jump targets that do not exist yet are created (only those: declaring
// an existing chain would flush it) together with the jumps to them, in one
// restore per table; no jump to a missing chain can exist, so none is
// doubled. Jumps to chains that existed are checked one by one.
func (p *Proxier) ensureJumps(ctx context.Context, full bool, existing map[string][]string) error {
	created := map[string]bool{}
	if full {
		for _, t := range tables {
			var b bytes.Buffer
			for _, j := range jumps {
				target := j.rule[len(j.rule)-1]
				if j.table != t || slices.Contains(existing[t], target) {
					continue
				}
				if b.Len() == 0 {
					fmt.Fprintf(&b, "*%s\n", t)
				}
				if !created[t+"/"+target] {
					created[t+"/"+target] = true
					fmt.Fprintf(&b, ":%s - [0:0]\n", target)
				}
				fmt.Fprintf(&b, "-I %s 1", j.chain)
				for _, a := range j.rule {
					if strings.Contains(a, " ") {
						a = `"` + a + `"`
					}
					b.WriteString(" " + a)
				}
				b.WriteByte('\n')
			}
			if b.Len() == 0 {
				continue
			}
			b.WriteString("COMMIT\n")
			if err := p.cfg.Runner.Restore(ctx, t, b.Bytes()); err != nil {
				return fmt.Errorf("svcproxy: create %s jumps: %w", t, err)
			}
		}
	}
	for _, j := range jumps {
		if created[j.table+"/"+j.rule[len(j.rule)-1]] {
			continue
		}
		if err := p.cfg.Runner.EnsureRule(ctx, j.table, j.chain, j.rule...); err != nil {
			return fmt.Errorf("svcproxy: ensure jump %s/%s → %s: %w", j.table, j.chain, j.rule[len(j.rule)-1], err)
		}
	}
	return nil
}

// Run syncs when Update is called (at most once per MinSyncInterval),
// every SyncPeriod, and MinSyncInterval after a failed sync, until ctx ends.
func (p *Proxier) Run(ctx context.Context) error {
	return runLoop(ctx, &p.cfg, p.trigger, func() time.Time { return p.lastSync }, func(ctx context.Context) error {
		_, err := p.Sync(ctx)
		return err
	})
}

// runLoop is Run for both backends: lastSync reports when sync last ran.
func runLoop(ctx context.Context, cfg *ProxierConfig, trigger <-chan struct{}, lastSync func() time.Time, sync func(context.Context) error) error {
	clk := cfg.Clock
	failed := false
	for {
		next := cfg.SyncPeriod
		if failed {
			next = cfg.MinSyncInterval
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-trigger:
		case <-clk.After(next):
		}
		if last := lastSync(); !last.IsZero() {
			if wait := last.Add(cfg.MinSyncInterval).Sub(clk.Now()); wait > 0 {
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-clk.After(wait):
				}
			}
		}
		err := sync(ctx)
		failed = err != nil
		if failed {
			cfg.Log.Error("svcproxy: sync failed; full resync next", "err", err)
		}
	}
}

package svcproxy

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"time"
)

// NFTProxier keeps this node's nftables table (ip shoal) in line with the
// Services it is given: the nftables backend. It behaves as Proxier does
// and has the same methods; only what it writes differs.
type NFTProxier struct {
	cfg ProxierConfig
	desired

	// Owned by Sync.
	rd       *nftRenderer
	applied  *NFTRuleset
	udp      udpTracker
	needFull bool
	// recreate: a full sync failed, so the next one replaces the table
	// instead of rewriting it in place (the kernel refuses, for one, to
	// re-add a base chain whose type, hook or priority differ, as an
	// older or damaged table's may).
	recreate  bool
	lastFull  time.Time
	lastCheck time.Time
	lastSync  time.Time
}

// NewNFTProxier checks cfg (cfg.NFT is required, cfg.Runner unused) and
// returns an NFTProxier that has applied nothing yet: its first sync is a
// full one.
func NewNFTProxier(cfg ProxierConfig) (*NFTProxier, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.NFT == nil {
		return nil, errors.New("svcproxy: ProxierConfig.NFT is required for the nftables Proxier")
	}
	return &NFTProxier{cfg: cfg, desired: newDesired(), needFull: true, rd: newNFTRenderer(cfg.Node)}, nil
}

// Run syncs when Update is called (at most once per MinSyncInterval),
// every SyncPeriod, and MinSyncInterval after a failed sync, until ctx ends.
func (p *NFTProxier) Run(ctx context.Context) error {
	return runLoop(ctx, &p.cfg, p.trigger, func() time.Time { return p.lastSync }, func(ctx context.Context) error {
		_, err := p.Sync(ctx)
		return err
	})
}

// Sync renders the current Services and applies the difference with what
// it applied last, in one nftables transaction: set elements of the
// Services that changed, the rules of chains whose rules changed (only
// ClientIP affinity has per-Service rules), sets no longer used deleted.
// The first sync, any sync after a failure, one whose canary check failed
// and one every FullSyncPeriod are full: every rule of the table is
// flushed and rewritten, every set but the live affinity sets recreated,
// and every chain or set of the table not rendered deleted.
func (p *NFTProxier) Sync(ctx context.Context) (SyncResult, error) {
	services := p.current()
	now := p.cfg.Clock.Now()
	p.lastSync = now
	log := p.cfg.Log

	res := SyncResult{Full: p.needFull || p.applied == nil || now.Sub(p.lastFull) >= p.cfg.FullSyncPeriod}
	if !res.Full && now.Sub(p.lastCheck) >= p.cfg.SyncPeriod {
		ok, err := p.cfg.NFT.Canary(ctx)
		if err != nil || !ok {
			log.Warn("svcproxy: nftables canary gone, the table was deleted or flushed from outside; full resync", "table", NFTTable, "err", err)
			res.Full = true
		}
		p.lastCheck = now
	}
	p.needFull = true // until this sync succeeds

	rs := p.rd.render(services)
	for _, err := range rs.Errors {
		log.Warn("svcproxy: service left out", "err", err)
	}
	var ops []nftOp
	if res.Full {
		objs, err := p.cfg.NFT.Objects(ctx)
		if err != nil {
			return res, fmt.Errorf("svcproxy: list table ip %s: %w", NFTTable, err)
		}
		if p.recreate && objs.Exists {
			// One transaction still: the old table serves until the commit.
			// Clients' ClientIP affinity is forgotten.
			log.Warn("svcproxy: the last full sync failed; replacing table ip "+NFTTable+" whole", "table", NFTTable)
			ops = append([]nftOp{{kind: opDelTable}}, fullOps(rs, NFTObjects{})...)
		} else {
			ops = fullOps(rs, objs)
		}
	} else {
		ops = incrementalOps(p.applied, rs)
	}
	for _, op := range ops {
		switch op.kind {
		case opFlushChain, opAddSet:
			res.Written++
		case opAddChain:
			if res.Full {
				res.Written++
			}
		case opDelChain, opDelSet:
			res.Deleted++
		case opAddElems, opDelElems:
			res.Elements += len(op.elems)
		}
	}
	if !res.Full {
		res.Written += changedSets(ops)
	}
	if len(ops) > 0 {
		if err := p.cfg.NFT.Apply(ctx, ops); err != nil {
			p.recreate = res.Full
			return res, fmt.Errorf("svcproxy: apply nftables (%d operations): %w", len(ops), err)
		}
	}
	p.applied = rs
	p.needFull, p.recreate = false, false
	if res.Full {
		p.lastFull, p.lastCheck = now, now
	}

	res.Flows = p.udp.clearStale(ctx, p.cfg.Conntrack, rs.UDP, log)
	log.Debug("svcproxy: synced", "backend", "nftables", "full", res.Full, "written", res.Written, "deleted", res.Deleted,
		"elements", res.Elements, "udpFlows", res.Flows)
	return res, nil
}

// changedSets counts the existing sets whose elements an incremental
// transaction changes.
func changedSets(ops []nftOp) int {
	seen := map[string]bool{}
	for _, op := range ops {
		if op.kind == opAddElems || op.kind == opDelElems {
			seen[op.set.name] = true
		}
	}
	for _, op := range ops {
		if op.kind == opAddSet {
			delete(seen, op.set.name)
		}
	}
	return len(seen)
}

// elemBatch gathers element changes per set, in a stable order.
type elemBatch struct {
	sets  map[string]*nftSet
	order []string
	elems map[string][]nftElem
}

func newElemBatch(sets map[string]*nftSet) *elemBatch {
	return &elemBatch{sets: sets, elems: map[string][]nftElem{}}
}

func (b *elemBatch) add(set string, e nftElem) {
	if _, ok := b.elems[set]; !ok {
		b.order = append(b.order, set)
	}
	b.elems[set] = append(b.elems[set], e)
}

func (b *elemBatch) ops(kind nftOpKind) []nftOp {
	slices.Sort(b.order)
	out := make([]nftOp, 0, len(b.order))
	for _, name := range b.order {
		s := b.sets[name]
		if s == nil {
			continue // the set goes away with its elements
		}
		out = append(out, nftOp{kind: kind, set: s, elems: b.elems[name]})
	}
	return out
}

func setIndex(sets []*nftSet) map[string]*nftSet {
	m := make(map[string]*nftSet, len(sets))
	for _, s := range sets {
		m[s.name] = s
	}
	return m
}

// fullOps rewrites the table: created if missing, else every rule
// flushed, every set recreated except the affinity sets still rendered
// (they keep their clients), and every chain or set not rendered deleted.
func fullOps(rs *NFTRuleset, objs NFTObjects) []nftOp {
	ops := []nftOp{{kind: opAddTable}}
	want := setIndex(rs.sets)
	keep := map[string]bool{}
	if objs.Exists {
		ops = append(ops, nftOp{kind: opFlushTable})
		for _, name := range objs.Sets {
			if s := want[name]; s != nil && s.kind == setAffinity {
				keep[name] = true
				continue
			}
			ops = append(ops, nftOp{kind: opDelSet, name: name})
		}
		wantChain := map[string]bool{}
		for _, c := range rs.chains {
			wantChain[c.name] = true
		}
		for _, name := range objs.Chains {
			if !wantChain[name] {
				ops = append(ops, nftOp{kind: opDelChain, name: name})
			}
		}
	}
	for _, c := range rs.chains {
		ops = append(ops, nftOp{kind: opAddChain, chain: c})
	}
	for _, s := range rs.sets {
		if !keep[s.name] {
			ops = append(ops, nftOp{kind: opAddSet, set: s})
		}
	}
	adds := newElemBatch(want)
	for _, name := range slices.Sorted(maps.Keys(rs.static)) {
		for _, e := range rs.static[name] {
			adds.add(name, e)
		}
	}
	for _, key := range slices.Sorted(maps.Keys(rs.services)) {
		for _, se := range rs.services[key].elems {
			adds.add(se.set, se.elem)
		}
	}
	ops = append(ops, adds.ops(opAddElems)...)
	for _, c := range rs.chains {
		for i := range c.rules {
			ops = append(ops, nftOp{kind: opAddRule, chain: c, rule: &c.rules[i]})
		}
	}
	return ops
}

// elemID identifies an element with its range and value: an element whose
// value changed is deleted and added again.
func elemID(set string, e nftElem) string {
	return set + "\x00" + string(e.key) + "\x00" + string(e.keyEnd) + "\x00" + string(e.val) + "\x00" + e.chain
}

// incrementalOps turns what was applied into rs: new sets, element
// deletions, element additions, rewritten chains, then deletions of sets
// and chains no longer rendered. Deletions of elements come before
// additions so that an element can move to another value or range.
func incrementalOps(prev, rs *NFTRuleset) []nftOp {
	var ops []nftOp
	want, had := setIndex(rs.sets), setIndex(prev.sets)
	for _, s := range rs.sets {
		if h := had[s.name]; h == nil {
			ops = append(ops, nftOp{kind: opAddSet, set: s})
		}
	}
	dels, adds := newElemBatch(want), newElemBatch(want)
	diff := func(old, cur []setElem) {
		if len(old) == 0 && len(cur) == 0 {
			return
		}
		before := make(map[string]bool, len(old))
		for _, se := range old {
			before[elemID(se.set, se.elem)] = true
		}
		now := make(map[string]bool, len(cur))
		for _, se := range cur {
			id := elemID(se.set, se.elem)
			now[id] = true
			if !before[id] {
				adds.add(se.set, se.elem)
			}
		}
		for _, se := range old {
			if !now[elemID(se.set, se.elem)] {
				dels.add(se.set, se.elem)
			}
		}
	}
	// The sets outside the Services' own: their names are in the static
	// elements of one render or the other.
	statics := make(map[string]bool, len(rs.static)+len(prev.static))
	for name := range rs.static {
		statics[name] = true
	}
	for name := range prev.static {
		statics[name] = true
	}
	for name := range statics {
		old, cur := prev.static[name], rs.static[name]
		if len(old) == len(cur) && (len(old) == 0 || &old[0] == &cur[0]) {
			continue // the dispatch maps: shared by every render
		}
		diff(asSetElems(name, old), asSetElems(name, cur))
	}
	for key, old := range prev.services {
		if cur := rs.services[key]; cur != old {
			var elems []setElem
			if cur != nil {
				elems = cur.elems
			}
			diff(old.elems, elems)
		}
	}
	for key, cur := range rs.services {
		if _, ok := prev.services[key]; !ok {
			diff(nil, cur.elems)
		}
	}
	ops = append(ops, dels.ops(opDelElems)...)
	ops = append(ops, adds.ops(opAddElems)...)

	oldChains := map[string]*nftChain{}
	for _, c := range prev.chains {
		oldChains[c.name] = c
	}
	for _, c := range rs.chains {
		o := oldChains[c.name]
		delete(oldChains, c.name)
		switch {
		case o == nil:
			ops = append(ops, nftOp{kind: opAddChain, chain: c})
		case sameRules(o.rules, c.rules):
			continue
		default:
			ops = append(ops, nftOp{kind: opFlushChain, name: c.name})
		}
		for i := range c.rules {
			ops = append(ops, nftOp{kind: opAddRule, chain: c, rule: &c.rules[i]})
		}
	}
	for _, s := range prev.sets {
		if want[s.name] == nil {
			ops = append(ops, nftOp{kind: opDelSet, name: s.name})
		}
	}
	for _, name := range slices.Sorted(maps.Keys(oldChains)) {
		ops = append(ops, nftOp{kind: opFlushChain, name: name}, nftOp{kind: opDelChain, name: name})
	}
	return ops
}

func asSetElems(set string, es []nftElem) []setElem {
	out := make([]setElem, len(es))
	for i, e := range es {
		out[i] = setElem{set, e}
	}
	return out
}

func sameRules(a, b []nftRule) bool {
	return slices.EqualFunc(a, b, func(x, y nftRule) bool { return x.text == y.text })
}

package svcproxy

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
)

// fakeNFT is an in-memory nf_tables holding svcproxy's table. It applies
// each transaction to a copy, as the kernel does (all or nothing), refuses
// what the kernel would (an element twice, a missing set, chain or element,
// a chain deleted while it has rules), and records every transaction.
type fakeNFT struct {
	mu       sync.Mutex
	st       *fakeNFTState // nil: no table
	txs      [][]string    // every transaction, as op strings
	failNext error
}

type fakeNFTState struct {
	chains map[string][]string        // chain → rule texts
	sets   map[string]map[string]bool // set → element strings
}

var _ NFTRunner = (*fakeNFT)(nil)

func (s *fakeNFTState) clone() *fakeNFTState {
	c := &fakeNFTState{chains: maps.Clone(s.chains), sets: map[string]map[string]bool{}}
	for k, v := range s.sets {
		c.sets[k] = maps.Clone(v)
	}
	return c
}

func (f *fakeNFT) Apply(_ context.Context, ops []nftOp) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	var tx []string
	for _, op := range ops {
		tx = append(tx, op.String())
	}
	f.txs = append(f.txs, tx)
	if err := f.failNext; err != nil {
		f.failNext = nil
		return err
	}
	var st *fakeNFTState
	if f.st != nil {
		st = f.st.clone()
	}
	for _, op := range ops {
		if op.kind != opAddTable && st == nil {
			return fmt.Errorf("fake nft: %s: no table", op)
		}
		switch op.kind {
		case opAddTable:
			if st == nil {
				st = &fakeNFTState{chains: map[string][]string{}, sets: map[string]map[string]bool{}}
			}
		case opDelTable:
			st = nil
		case opFlushTable:
			for c := range st.chains {
				st.chains[c] = nil
			}
		case opAddChain:
			if _, ok := st.chains[op.chain.name]; !ok {
				st.chains[op.chain.name] = nil
			}
		case opFlushChain, opDelChain:
			if _, ok := st.chains[op.name]; !ok {
				return fmt.Errorf("fake nft: %s: no such chain", op)
			}
			if op.kind == opFlushChain {
				st.chains[op.name] = nil
			} else if len(st.chains[op.name]) > 0 {
				return fmt.Errorf("fake nft: %s: chain has rules", op)
			} else {
				delete(st.chains, op.name)
			}
		case opAddSet:
			if _, ok := st.sets[op.set.name]; !ok {
				st.sets[op.set.name] = map[string]bool{}
			}
		case opDelSet:
			if _, ok := st.sets[op.name]; !ok {
				return fmt.Errorf("fake nft: %s: no such set", op)
			}
			delete(st.sets, op.name)
		case opAddElems, opDelElems:
			set, ok := st.sets[op.set.name]
			if !ok {
				return fmt.Errorf("fake nft: %s: no such set", op)
			}
			for _, e := range op.elems {
				k := e.String()
				if op.kind == opAddElems {
					if o := overlapping(set, e); o != "" {
						return fmt.Errorf("fake nft: add element %s to %s: overlaps %s", k, op.set.name, o)
					}
				}
				switch {
				case op.kind == opAddElems && set[k]:
					return fmt.Errorf("fake nft: add element %s to %s: exists", k, op.set.name)
				case op.kind == opDelElems && !set[k]:
					return fmt.Errorf("fake nft: delete element %s from %s: no such element", k, op.set.name)
				case op.kind == opAddElems:
					set[k] = true
				default:
					delete(set, k)
				}
			}
		case opAddRule:
			rules, ok := st.chains[op.chain.name]
			if !ok {
				return fmt.Errorf("fake nft: %s: no such chain", op)
			}
			st.chains[op.chain.name] = append(slices.Clip(rules), op.rule.text)
		}
	}
	f.st = st
	return nil
}

func (f *fakeNFT) Objects(context.Context) (NFTObjects, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st == nil {
		return NFTObjects{}, nil
	}
	return NFTObjects{Exists: true, Chains: slices.Sorted(maps.Keys(f.st.chains)), Sets: slices.Sorted(maps.Keys(f.st.sets))}, nil
}

func (f *fakeNFT) Canary(context.Context) (bool, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.st != nil && len(f.st.chains[nftCanary]) == 1, nil
}

// overlapping returns an element of set whose range overlaps e's (the
// kernel's interval maps refuse such an add), or "". Elements are kept as
// their String: "addr . proto . port . lo-hi : value".
func overlapping(set map[string]bool, e nftElem) string {
	if e.keyEnd == nil {
		return ""
	}
	prefix, lo, hi, ok := elemRange(e.String())
	if !ok {
		return ""
	}
	for o := range set {
		p, l, h, ok := elemRange(o)
		if ok && p == prefix && l <= hi && lo <= h {
			return o
		}
	}
	return ""
}

func elemRange(s string) (prefix string, lo, hi uint64, ok bool) {
	key, _, _ := strings.Cut(s, " : ")
	i := strings.LastIndex(key, " . ")
	if i < 0 {
		return "", 0, 0, false
	}
	l, h, ok := strings.Cut(key[i+3:], "-")
	if !ok {
		return "", 0, 0, false
	}
	var err1, err2 error
	lo, err1 = strconv.ParseUint(l, 10, 32)
	hi, err2 = strconv.ParseUint(h, 10, 32)
	return key[:i], lo, hi, err1 == nil && err2 == nil
}

// dump renders the table's content canonically: two fakes hold the same
// table when their dumps are equal.
func (f *fakeNFT) dump() string {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.st == nil {
		return "(no table)"
	}
	var b strings.Builder
	for _, c := range slices.Sorted(maps.Keys(f.st.chains)) {
		fmt.Fprintf(&b, "chain %s\n", c)
		for _, r := range f.st.chains[c] {
			fmt.Fprintf(&b, "\t%s\n", r)
		}
	}
	for _, s := range slices.Sorted(maps.Keys(f.st.sets)) {
		fmt.Fprintf(&b, "set %s\n", s)
		for _, e := range slices.Sorted(maps.Keys(f.st.sets[s])) {
			fmt.Fprintf(&b, "\t%s\n", e)
		}
	}
	return b.String()
}

// takeTxs returns the transactions recorded since the last call.
func (f *fakeNFT) takeTxs() [][]string {
	f.mu.Lock()
	defer f.mu.Unlock()
	t := f.txs
	f.txs = nil
	return t
}

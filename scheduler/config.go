package scheduler

import (
	"errors"
	"fmt"
)

// Strategy chooses how the resource score ranks nodes.
type Strategy string

const (
	// LeastAllocated prefers the emptiest nodes: load is spread out.
	LeastAllocated Strategy = "LeastAllocated"
	// MostAllocated prefers the fullest nodes that still fit: load is bin-packed.
	MostAllocated Strategy = "MostAllocated"
)

// Weights multiply each score (0..100 after normalisation) before they are
// summed. A zero weight turns a score off. The defaults follow
// kube-scheduler's default profile.
type Weights struct {
	Resources             int64 // least/most allocated
	OwnerSpread           int64 // pods of one owner on different nodes
	TopologySpread        int64 // ScheduleAnyway topologySpreadConstraints
	NodeAffinity          int64 // preferred node affinity
	PodAffinity           int64 // preferred pod affinity and anti-affinity
	ImageLocality         int64 // node already has the pod's images
	TaintPreferNoSchedule int64 // fewer untolerated PreferNoSchedule taints
}

// DefaultWeights returns the weights New uses when Config.Weights is zero.
func DefaultWeights() Weights {
	return Weights{
		Resources:             1,
		OwnerSpread:           2,
		TopologySpread:        2,
		NodeAffinity:          2,
		PodAffinity:           2,
		ImageLocality:         1,
		TaintPreferNoSchedule: 3,
	}
}

// Config tunes the scheduler. The zero Config is valid and means defaults.
type Config struct {
	// Strategy of the resource score; default LeastAllocated.
	Strategy Strategy

	// Weights of the scores; the zero value means DefaultWeights.
	Weights Weights

	// The candidate bound: a placement stops looking once it has found
	// max(MinCandidates, CandidatePercent% of the nodes) feasible nodes and
	// picks the best of those. Defaults: 100 and 5 (250 of 5,000 nodes).
	// CandidatePercent 100 scores every feasible node.
	MinCandidates    int
	CandidatePercent int
}

const (
	defaultMinCandidates    = 100
	defaultCandidatePercent = 5
)

// Validate reports a Config that cannot be used.
func (c Config) Validate() error {
	var errs []error
	switch c.Strategy {
	case "", LeastAllocated, MostAllocated:
	default:
		errs = append(errs, fmt.Errorf("scheduler config: strategy %q: want %q or %q", c.Strategy, LeastAllocated, MostAllocated))
	}
	if c.MinCandidates < 0 {
		errs = append(errs, fmt.Errorf("scheduler config: minCandidates %d: must not be negative", c.MinCandidates))
	}
	if c.CandidatePercent < 0 || c.CandidatePercent > 100 {
		errs = append(errs, fmt.Errorf("scheduler config: candidatePercent %d: want 0..100", c.CandidatePercent))
	}
	w := c.Weights
	for _, f := range []struct {
		name string
		v    int64
	}{
		{"resources", w.Resources}, {"ownerSpread", w.OwnerSpread}, {"topologySpread", w.TopologySpread},
		{"nodeAffinity", w.NodeAffinity}, {"podAffinity", w.PodAffinity}, {"imageLocality", w.ImageLocality},
		{"taintPreferNoSchedule", w.TaintPreferNoSchedule},
	} {
		if f.v < 0 || f.v > 1000 {
			errs = append(errs, fmt.Errorf("scheduler config: weight %s %d: want 0..1000", f.name, f.v))
		}
	}
	return errors.Join(errs...)
}

// withDefaults fills the zero fields.
func (c Config) withDefaults() Config {
	if c.Strategy == "" {
		c.Strategy = LeastAllocated
	}
	if c.Weights == (Weights{}) {
		c.Weights = DefaultWeights()
	}
	if c.MinCandidates == 0 {
		c.MinCandidates = defaultMinCandidates
	}
	if c.CandidatePercent == 0 {
		c.CandidatePercent = defaultCandidatePercent
	}
	return c
}

// candidates is the number of feasible nodes a placement looks for among n.
func (c Config) candidates(n int) int {
	k := n * c.CandidatePercent / 100
	if k < c.MinCandidates {
		k = c.MinCandidates
	}
	if k > n {
		k = n
	}
	return k
}

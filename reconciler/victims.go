package reconciler

import (
	"sort"

	"github.com/shoal-dev/shoal/state"
)

// victims returns the n pods of ps to remove first, in Kubernetes' order
// (controller.ActivePods): unscheduled before scheduled; Pending before Unknown before
// Running; not ready before ready; ready for less time before ready for longer; more restarts
// before fewer; newer before older. Ties go by name, so the choice is replayable. ps is
// reordered.
func victims(ps []pod, n int) []pod {
	if n <= 0 {
		return nil
	}
	sort.Slice(ps, func(i, j int) bool { return removeFirst(&ps[i], &ps[j]) })
	return ps[:min(n, len(ps))]
}

func removeFirst(a, b *pod) bool {
	if (a.NodeName == "") != (b.NodeName == "") {
		return a.NodeName == ""
	}
	if ra, rb := phaseRank(a.Status.Phase), phaseRank(b.Status.Phase); ra != rb {
		return ra < rb
	}
	if a.ready != b.ready {
		return !a.ready
	}
	if a.ready && !a.readySince.Equal(b.readySince) {
		return a.readySince.After(b.readySince)
	}
	if ra, rb := restarts(a.Pod), restarts(b.Pod); ra != rb {
		return ra > rb
	}
	if !a.Created.Equal(b.Created) {
		return a.Created.After(b.Created)
	}
	return a.Name < b.Name
}

func phaseRank(p state.Phase) int {
	switch p {
	case state.PhasePending, "":
		return 0
	case state.PhaseUnknown:
		return 1
	case state.PhaseRunning:
		return 2
	}
	return 3
}

func restarts(p *state.Pod) int32 {
	var n int32
	for i := range p.Status.Containers {
		n = max(n, p.Status.Containers[i].Restarts)
	}
	return n
}

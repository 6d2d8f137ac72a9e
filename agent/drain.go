package agent

import (
	"time"

	"github.com/shoal-dev/shoal/state"
)

// Endpoint drain: a pod that is to stop leaves every Service's endpoints at
// once (BuildServiceView counts only pods whose desired state is Run), but
// each node's proxier applies that a moment later. Stopping the pod at the
// same moment would refuse connections that another node still sends it.
// So the owning node holds back the stop of a pod that was Ready (and so
// may be an endpoint somewhere) for Config.EndpointDrain after it first saw
// the stop asked for; a pod that was never Ready stops at once. This is
// what Kubernetes users get by adding a preStop sleep, done for them.

// GateStops returns acts without the stops still draining, and when the
// first of those is due. seen records when each pod's stop was first held
// back; GateStops adds pods to it and forgets the ones no longer pending.
func GateStops(v *state.Snapshot, acts []PodAction, seen map[string]time.Time, now time.Time, drain time.Duration) ([]PodAction, time.Time) {
	var (
		out     []PodAction
		wake    time.Time
		pending = map[string]bool{}
	)
	for _, act := range acts {
		if act.Op != OpStop || drain <= 0 {
			out = append(out, act)
			continue
		}
		// Once held back, a pod drains to the end even though its
		// status stops saying Ready meanwhile (it is no longer probed).
		first, ok := seen[act.Key.UID]
		if !ok {
			if rec := v.Pod(act.Key.UID); rec == nil || !rec.Status.Ready {
				out = append(out, act)
				continue
			}
			first = now
			seen[act.Key.UID] = now
		}
		due := first.Add(drain)
		if !now.Before(due) {
			out = append(out, act)
			continue
		}
		pending[act.Key.UID] = true
		if wake.IsZero() || due.Before(wake) {
			wake = due
		}
	}
	for uid := range seen {
		if !pending[uid] {
			delete(seen, uid)
		}
	}
	return out, wake
}

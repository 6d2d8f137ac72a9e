package agent

import (
	"context"
	"net/http"
	"net/url"
	"strings"

	"github.com/shoal-dev/shoal/state"
)

// EventList is the answer to /v1/events: what the leader's loops recorded
// (scheduling failures, rollout steps, refused allocations), oldest first.
type EventList struct {
	Events []*state.Event `json:"events"`
}

// eventsHandler serves /v1/events[?namespace=NS][&object=KIND/NS/NAME].
// An event's namespace is the second part of its object key; Node events
// have none and show only without a namespace.
func (a *Agent) eventsHandler(w http.ResponseWriter, r *http.Request) {
	v := a.store.Snapshot()
	var evs []*state.Event
	if obj := r.URL.Query().Get("object"); obj != "" {
		evs = v.Events(obj)
	} else {
		evs = v.AllEvents()
	}
	if ns := r.URL.Query().Get("namespace"); ns != "" {
		kept := evs[:0:0]
		for _, e := range evs {
			if parts := strings.SplitN(e.Key, "/", 3); len(parts) == 3 && parts[1] == ns {
				kept = append(kept, e)
			}
		}
		evs = kept
	}
	writeJSON(w, EventList{Events: nonNil(evs)})
}

// Events returns the recorded events of one namespace, or all with "".
func (c *Client) Events(ctx context.Context, namespace string) (EventList, error) {
	var out EventList
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	return out, c.get(ctx, "/v1/events", q, &out)
}

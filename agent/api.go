package agent

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/shoal-dev/shoal/state"
)

// The read-only status API. It serves this node's replica: what any node
// answers is what it has applied, so two nodes may briefly differ.
//
//	GET /v1/status             ClusterStatus
//	GET /v1/nodes              NodeList
//	GET /v1/pods[?namespace=]  PodList
//	GET /v1/services[?namespace=]  ServiceList
//	GET /v1/events[?namespace=][&object=]  EventList
//	GET /v1/rollout?kind=&namespace=&name=  RolloutStatus
//	GET /v1/logs?namespace=&name=[&container=][&follow=true]  text (api_logs.go)
//
// On a loopback address it answers anyone on the machine; on any other it
// requires "Authorization: Bearer <StatusToken(cluster key)>".

// ClusterStatus is the answer to /v1/status.
type ClusterStatus struct {
	Node      string   `json:"node"`
	Leader    string   `json:"leader"`
	ClusterID string   `json:"clusterID,omitempty"`
	Index     uint64   `json:"index"`
	Members   []Member `json:"members"`
	// Pinned is the commit the cluster runs; nil before the first pin.
	Pinned *state.Revision `json:"pinned,omitempty"`
	// Revisions is the recent pinning history, refused commits with their
	// reasons, newest last.
	Revisions []*state.Revision `json:"revisions,omitempty"`
	// Fetched is the newest commit this node's clone has seen.
	Fetched string `json:"fetched,omitempty"`
	Nodes   int    `json:"nodes"`
	Pods    int    `json:"pods"`
}

// Member is one gossip member as this node sees it.
type Member struct {
	Name   string    `json:"name"`
	Addr   string    `json:"addr"`
	Status string    `json:"status"`
	Since  time.Time `json:"since,omitzero"`
}

// NodeList is the answer to /v1/nodes.
type NodeList struct {
	Leader string        `json:"leader"`
	Nodes  []*state.Node `json:"nodes"`
}

// PodList is the answer to /v1/pods.
type PodList struct {
	Pods []*state.Pod `json:"pods"`
}

const statusHistory = 10

// StatusToken is the bearer token of the status API on a non-loopback
// address: derived from the cluster key, so the key itself never travels.
func StatusToken(key []byte) string {
	m := hmac.New(sha256.New, key)
	m.Write([]byte("shoal status api v1"))
	return hex.EncodeToString(m.Sum(nil))
}

func (a *Agent) statusHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/status", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, a.clusterStatus())
	})
	mux.HandleFunc("GET /v1/nodes", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, NodeList{Leader: a.node.Leader(), Nodes: nonNil(a.store.Snapshot().Nodes())})
	})
	mux.HandleFunc("GET /v1/pods", func(w http.ResponseWriter, r *http.Request) {
		v := a.store.Snapshot()
		var pods []*state.Pod
		if ns := r.URL.Query().Get("namespace"); ns != "" {
			pods = v.PodsInNamespace(ns)
		} else {
			pods = v.Pods()
		}
		writeJSON(w, PodList{Pods: nonNil(pods)})
	})
	mux.HandleFunc("GET /v1/services", a.servicesHandler)
	mux.HandleFunc("GET /v1/events", a.eventsHandler)
	mux.HandleFunc("GET /v1/rollout", a.rolloutHandler)
	mux.HandleFunc("GET /v1/logs", a.logsHandler)
	loopback := false
	if host, _, err := net.SplitHostPort(a.listener.Addr().String()); err == nil {
		ip := net.ParseIP(host)
		loopback = ip != nil && ip.IsLoopback()
	}
	return requireToken(mux, StatusToken(a.key), loopback)
}

// requireToken guards h with the bearer token unless the listener is only
// reachable from this machine.
func requireToken(h http.Handler, token string, loopback bool) http.Handler {
	if loopback {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		got, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
		if !ok || subtle.ConstantTimeCompare([]byte(got), []byte(token)) != 1 {
			http.Error(w, "the status API needs the cluster's token (shoal ... --cluster-key-file)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

func (a *Agent) clusterStatus() ClusterStatus {
	v := a.store.Snapshot()
	st := ClusterStatus{
		Node:      a.cfg.NodeName,
		Leader:    a.node.Leader(),
		ClusterID: a.node.ClusterID(),
		Index:     v.Index(),
		Pinned:    v.PinnedRevision(),
		Nodes:     len(v.Nodes()),
		Pods:      len(v.Pods()),
	}
	for _, m := range a.node.Members() {
		st.Members = append(st.Members, Member{Name: m.Name, Addr: m.GossipAddr, Status: m.Status.String(), Since: m.Since})
	}
	revs := v.Revisions()
	if len(revs) > statusHistory {
		revs = revs[len(revs)-statusHistory:]
	}
	st.Revisions = revs
	if c, _ := a.src.newest(); c.Commit != "" {
		st.Fetched = c.Commit
	}
	return st
}

func nonNil[T any](s []T) []T {
	if s == nil {
		return []T{}
	}
	return s
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v) // the client went away
}

// Client reads an agent's status API.
type Client struct {
	// Server is the agent's address: "host:port" or an http:// URL.
	Server string
	// Token is sent as the bearer token when set (see StatusToken).
	Token string
	// HTTP is the client used; nil means one with a 10s timeout.
	HTTP *http.Client
}

// Status returns the cluster status.
func (c *Client) Status(ctx context.Context) (ClusterStatus, error) {
	var out ClusterStatus
	return out, c.get(ctx, "/v1/status", nil, &out)
}

// Nodes returns every node.
func (c *Client) Nodes(ctx context.Context) (NodeList, error) {
	var out NodeList
	return out, c.get(ctx, "/v1/nodes", nil, &out)
}

// Pods returns the pods of one namespace, or of all with "".
func (c *Client) Pods(ctx context.Context, namespace string) (PodList, error) {
	var out PodList
	q := url.Values{}
	if namespace != "" {
		q.Set("namespace", namespace)
	}
	return out, c.get(ctx, "/v1/pods", q, &out)
}

// newRequest builds a GET of path with query q on the server (http://
// unless it names a scheme), with the bearer token if there is one.
func (c *Client) newRequest(ctx context.Context, path string, q url.Values) (*http.Request, error) {
	base := c.Server
	if !strings.Contains(base, "://") {
		base = "http://" + base
	}
	u, err := url.Parse(strings.TrimRight(base, "/") + path)
	if err != nil {
		return nil, fmt.Errorf("server %q: %w", c.Server, err)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return nil, err
	}
	if c.Token != "" {
		req.Header.Set("Authorization", "Bearer "+c.Token)
	}
	return req, nil
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	req, err := c.newRequest(ctx, path, q)
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{Timeout: 10 * time.Second}
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("agent at %s: %w", c.Server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return fmt.Errorf("agent at %s: %s: %s", c.Server, resp.Status, strings.TrimSpace(string(b)))
	}
	if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
		return fmt.Errorf("agent at %s: decode %s: %w", c.Server, path, err)
	}
	return nil
}

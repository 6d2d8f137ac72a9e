package agent

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/shoal-dev/shoal/runtime"
)

// The logs of a pod's container are on the node that runs it. GET
// /v1/logs?namespace=NS&name=POD[&container=C][&follow=true] answers them
// on that node, as plain text (streamed while follow); any other node
// answers 421 Misdirected Request naming the pod's node, with its address
// in the X-Shoal-Node-Addr header, so the client can ask there.

// NodeAddrHeader carries the address of the node that runs the pod.
const NodeAddrHeader = "X-Shoal-Node-Addr"

// logReader is the part of a runtime that reads containers' logs.
type logReader interface {
	Logs(ctx context.Context, key runtime.PodKey, container string, opts runtime.LogOptions) (io.ReadCloser, error)
}

func (a *Agent) logsHandler(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	ns, name, container := q.Get("namespace"), q.Get("name"), q.Get("container")
	if ns == "" {
		ns = "default"
	}
	v := a.store.Snapshot()
	pod := v.PodByName(ns, name)
	if pod == nil {
		http.Error(w, fmt.Sprintf("no pod %s/%s", ns, name), http.StatusNotFound)
		return
	}
	if pod.NodeName != a.cfg.NodeName {
		if pod.NodeName == "" {
			http.Error(w, fmt.Sprintf("pod %s/%s is not placed on a node yet", ns, name), http.StatusNotFound)
			return
		}
		if n := v.Node(pod.NodeName); n != nil {
			w.Header().Set(NodeAddrHeader, n.Address)
		}
		http.Error(w, fmt.Sprintf("pod %s/%s runs on node %s: its logs are there", ns, name, pod.NodeName), http.StatusMisdirectedRequest)
		return
	}
	if container == "" {
		var names []string
		for _, c := range pod.Status.Containers {
			names = append(names, c.Name)
		}
		if len(names) != 1 {
			http.Error(w, fmt.Sprintf("pod %s/%s has containers %s: choose one", ns, name, strings.Join(names, ", ")), http.StatusBadRequest)
			return
		}
		container = names[0]
	}
	a.rtMu.Lock()
	rt := a.rt
	a.rtMu.Unlock()
	lr, ok := rt.(logReader)
	if !ok {
		http.Error(w, "this node's runtime is not running", http.StatusServiceUnavailable)
		return
	}
	rc, err := lr.Logs(r.Context(), runtime.PodKey{Namespace: ns, Name: name, UID: pod.UID}, container, runtime.LogOptions{Follow: q.Get("follow") == "true"})
	if err != nil {
		code := http.StatusInternalServerError
		if errors.Is(err, runtime.ErrPodNotFound) {
			code = http.StatusNotFound
		}
		http.Error(w, err.Error(), code)
		return
	}
	defer rc.Close()
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	flusher, _ := w.(http.Flusher)
	buf := make([]byte, 32<<10)
	for {
		n, err := rc.Read(buf)
		if n > 0 {
			if _, werr := w.Write(buf[:n]); werr != nil {
				return // the client went away
			}
			if flusher != nil {
				flusher.Flush()
			}
		}
		if err != nil {
			return
		}
	}
}

// MisdirectedError says which node to ask instead.
type MisdirectedError struct {
	Message  string
	NodeAddr string
}

func (e *MisdirectedError) Error() string { return e.Message }

// Logs writes a container's log to w; with follow it goes on until ctx
// ends. A pod on another node is a *MisdirectedError with that node's
// address.
func (c *Client) Logs(ctx context.Context, namespace, name, container string, follow bool, w io.Writer) error {
	q := url.Values{"namespace": {namespace}, "name": {name}}
	if container != "" {
		q.Set("container", container)
	}
	if follow {
		q.Set("follow", "true")
	}
	req, err := c.newRequest(ctx, "/v1/logs", q)
	if err != nil {
		return err
	}
	hc := c.HTTP
	if hc == nil {
		hc = &http.Client{} // no timeout: a followed log streams for as long as asked
	}
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("agent at %s: %w", c.Server, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		msg := strings.TrimSpace(string(b))
		if resp.StatusCode == http.StatusMisdirectedRequest {
			return &MisdirectedError{Message: msg, NodeAddr: resp.Header.Get(NodeAddrHeader)}
		}
		return fmt.Errorf("agent at %s: %s: %s", c.Server, resp.Status, msg)
	}
	_, err = io.Copy(w, resp.Body)
	if err != nil && ctx.Err() != nil {
		return nil // followed until told to stop
	}
	return err
}

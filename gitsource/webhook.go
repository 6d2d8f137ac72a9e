package gitsource

import (
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// maxWebhookBody bounds what a webhook request may make us read; GitHub
// caps payloads at 25 MB, push payloads are far smaller.
const maxWebhookBody = 25 << 20

// WebhookHandler returns a handler for push webhooks from GitHub, GitLab
// and Gitea (and Forgejo, which sends Gitea's headers). The provider is
// recognised by its event header. Each request is authenticated against
// secret: GitHub's X-Hub-Signature-256 and Gitea's X-Gitea-Signature are
// HMAC-SHA256 of the body, GitLab's X-Gitlab-Token is the secret itself.
// A verified push of the followed ref triggers a poll (202 Accepted); other
// refs and other events are acknowledged and ignored (200); bad or missing
// signatures get 401. With an empty secret every request is refused: an
// unauthenticated trigger would let anyone make every node poll.
func (w *Watcher) WebhookHandler(secret string) http.Handler {
	return &webhook{secret: []byte(secret), ref: string(w.repo.cfg.target()), trigger: w.Trigger, w: w}
}

type webhook struct {
	secret  []byte
	ref     string
	trigger func()
	w       *Watcher
}

func (h *webhook) ServeHTTP(rw http.ResponseWriter, req *http.Request) {
	if req.Method != http.MethodPost {
		http.Error(rw, "POST only", http.StatusMethodNotAllowed)
		return
	}
	if len(h.secret) == 0 {
		http.Error(rw, "webhook secret not configured", http.StatusForbidden)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(rw, req.Body, maxWebhookBody))
	if err != nil {
		http.Error(rw, "cannot read body", http.StatusBadRequest)
		return
	}
	provider, event, ok := h.authenticate(req.Header, body)
	if provider == "" {
		http.Error(rw, "unknown webhook provider (expected GitHub, GitLab or Gitea headers)", http.StatusBadRequest)
		return
	}
	log := h.w.log.With("provider", provider, "event", event)
	if !ok {
		log.Warn("webhook refused: bad signature")
		http.Error(rw, "bad signature", http.StatusUnauthorized)
		return
	}
	if !isPush(provider, event) {
		fmt.Fprintf(rw, "ignored %s event\n", event)
		return
	}
	var p struct {
		Ref string `json:"ref"`
	}
	if err := json.Unmarshal(body, &p); err != nil || p.Ref == "" {
		http.Error(rw, "push payload without ref", http.StatusBadRequest)
		return
	}
	if h.ref == "" || p.Ref != h.ref {
		log.Debug("webhook ignored: other ref", "pushed", p.Ref)
		fmt.Fprintf(rw, "ignored push to %s\n", p.Ref)
		return
	}
	log.Info("webhook: polling now", "ref", p.Ref)
	h.trigger()
	rw.WriteHeader(http.StatusAccepted)
	fmt.Fprintln(rw, "poll triggered")
}

// authenticate finds the provider and checks the request's credential.
func (h *webhook) authenticate(hdr http.Header, body []byte) (provider, event string, ok bool) {
	switch {
	case hdr.Get("X-Gitea-Event") != "" || hdr.Get("X-Forgejo-Event") != "":
		// Gitea also sends X-GitHub-Event for compatibility, so it is
		// recognised first.
		sig := hdr.Get("X-Gitea-Signature")
		if sig == "" {
			sig = hdr.Get("X-Forgejo-Signature")
		}
		event = hdr.Get("X-Gitea-Event")
		if event == "" {
			event = hdr.Get("X-Forgejo-Event")
		}
		return "gitea", event, h.hmacOK(sig, body)
	case hdr.Get("X-GitHub-Event") != "":
		sig, found := strings.CutPrefix(hdr.Get("X-Hub-Signature-256"), "sha256=")
		return "github", hdr.Get("X-GitHub-Event"), found && h.hmacOK(sig, body)
	case hdr.Get("X-Gitlab-Event") != "":
		tok := hdr.Get("X-Gitlab-Token")
		return "gitlab", hdr.Get("X-Gitlab-Event"), subtle.ConstantTimeCompare([]byte(tok), h.secret) == 1
	}
	return "", "", false
}

func (h *webhook) hmacOK(sigHex string, body []byte) bool {
	got, err := hex.DecodeString(sigHex)
	if err != nil || len(got) != sha256.Size {
		return false
	}
	m := hmac.New(sha256.New, h.secret)
	m.Write(body)
	return hmac.Equal(got, m.Sum(nil))
}

func isPush(provider, event string) bool {
	switch provider {
	case "gitlab":
		return event == "Push Hook" || event == "Tag Push Hook"
	default:
		return event == "push"
	}
}

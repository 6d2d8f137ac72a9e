package gitsource

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

func sign(secret, body string) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(body))
	return hex.EncodeToString(m.Sum(nil))
}

func TestWebhook(t *testing.T) {
	const secret = "hook-secret"
	r := &Repo{cfg: Config{Branch: "main"}, log: testLogger(t)}
	w := NewWatcher(r, WatchOptions{})
	h := w.WebhookHandler(secret)

	push := func(ref string) string { return `{"ref":"` + ref + `","after":"abc"}` }
	github := func(event, sig string) http.Header {
		return http.Header{"X-Github-Event": {event}, "X-Hub-Signature-256": {sig}}
	}
	gitlab := func(event, tok string) http.Header {
		return http.Header{"X-Gitlab-Event": {event}, "X-Gitlab-Token": {tok}}
	}
	gitea := func(event, sig string) http.Header {
		// Gitea sends GitHub's event header too, without GitHub's signature.
		return http.Header{"X-Gitea-Event": {event}, "X-Github-Event": {event}, "X-Gitea-Signature": {sig}}
	}
	main, other := push("refs/heads/main"), push("refs/heads/other")

	for _, tc := range []struct {
		name    string
		hdr     http.Header
		body    string
		code    int
		trigger bool
	}{
		{"github valid", github("push", "sha256="+sign(secret, main)), main, 202, true},
		{"github bad signature", github("push", "sha256="+sign("wrong", main)), main, 401, false},
		{"github unprefixed signature", github("push", sign(secret, main)), main, 401, false},
		{"github signature of another body", github("push", "sha256="+sign(secret, other)), main, 401, false},
		{"github other ref", github("push", "sha256="+sign(secret, other)), other, 200, false},
		{"github ping", github("ping", "sha256="+sign(secret, "{}")), "{}", 200, false},
		{"gitlab valid", gitlab("Push Hook", secret), main, 202, true},
		{"gitlab bad token", gitlab("Push Hook", "nope"), main, 401, false},
		{"gitlab missing token", gitlab("Push Hook", ""), main, 401, false},
		{"gitlab other ref", gitlab("Push Hook", secret), other, 200, false},
		{"gitea valid", gitea("push", sign(secret, main)), main, 202, true},
		{"gitea bad signature", gitea("push", sign("wrong", main)), main, 401, false},
		{"gitea other ref", gitea("push", sign(secret, other)), other, 200, false},
		{"unknown provider", http.Header{}, main, 400, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(tc.body))
			for k, v := range tc.hdr {
				req.Header[http.CanonicalHeaderKey(k)] = v
			}
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.code {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.code, rec.Body)
			}
			select {
			case <-w.trigger:
				if !tc.trigger {
					t.Fatal("poll triggered")
				}
			default:
				if tc.trigger {
					t.Fatal("poll not triggered")
				}
			}
		})
	}

	t.Run("tag push for a followed tag", func(t *testing.T) {
		r := &Repo{cfg: Config{Tag: "v1"}, log: testLogger(t)}
		w := NewWatcher(r, WatchOptions{})
		body := push("refs/tags/v1")
		req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(body))
		req.Header.Set("X-Gitlab-Event", "Tag Push Hook")
		req.Header.Set("X-Gitlab-Token", secret)
		rec := httptest.NewRecorder()
		w.WebhookHandler(secret).ServeHTTP(rec, req)
		if rec.Code != 202 || len(w.trigger) != 1 {
			t.Fatalf("status %d, triggered %d", rec.Code, len(w.trigger))
		}
	})

	t.Run("no secret refuses everything", func(t *testing.T) {
		req := httptest.NewRequest(http.MethodPost, "/hook", strings.NewReader(main))
		req.Header.Set("X-Gitlab-Event", "Push Hook")
		rec := httptest.NewRecorder()
		w.WebhookHandler("").ServeHTTP(rec, req)
		if rec.Code != http.StatusForbidden || len(w.trigger) != 0 {
			t.Fatalf("status %d", rec.Code)
		}
	})

	t.Run("GET refused", func(t *testing.T) {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, "/hook", nil))
		if rec.Code != http.StatusMethodNotAllowed {
			t.Fatalf("status %d", rec.Code)
		}
	})
}

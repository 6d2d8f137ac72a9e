package gitsource

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/transport"
	githttp "github.com/go-git/go-git/v5/plumbing/transport/http"
	gitssh "github.com/go-git/go-git/v5/plumbing/transport/ssh"
	"golang.org/x/crypto/ssh"
)

// ErrAuth is wrapped by every error caused by rejected or unusable
// credentials, so callers can tell "fix the config" from "retry later".
var ErrAuth = errors.New("authentication failed")

// authMethod builds the go-git auth for url from a. It reads the key and
// known_hosts files, so a missing or undecryptable key is reported at Open,
// not at the first fetch.
func authMethod(rawURL string, a Auth) (transport.AuthMethod, error) {
	ep, err := transport.NewEndpoint(rawURL)
	if err != nil {
		return nil, err
	}
	switch ep.Protocol {
	case "http", "https":
		switch {
		case a.Token != "":
			user := a.Username
			if user == "" {
				user = "git"
			}
			return &githttp.BasicAuth{Username: user, Password: a.Token}, nil
		case a.Username != "":
			return &githttp.BasicAuth{Username: a.Username, Password: a.Password}, nil
		}
		return nil, nil
	case "ssh":
		user := ep.User
		if user == "" {
			user = "git"
		}
		keys, err := gitssh.NewPublicKeysFromFile(user, a.SSHKeyFile, a.SSHKeyPassphrase)
		if err != nil {
			var missing *ssh.PassphraseMissingError
			if errors.As(err, &missing) {
				return nil, fmt.Errorf("%w: ssh key %s is encrypted: set Auth.SSHKeyPassphrase", ErrAuth, a.SSHKeyFile)
			}
			if errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("ssh key %s: %w", a.SSHKeyFile, err)
			}
			// x509/ssh decryption errors never contain the passphrase.
			return nil, fmt.Errorf("%w: ssh key %s: %v (check the file and Auth.SSHKeyPassphrase)", ErrAuth, a.SSHKeyFile, err)
		}
		if a.InsecureIgnoreHostKey {
			keys.HostKeyCallback = ssh.InsecureIgnoreHostKey()
		} else {
			cb, err := gitssh.NewKnownHostsCallback(a.KnownHostsFile)
			if err != nil {
				return nil, fmt.Errorf("known_hosts file %s: %w", a.KnownHostsFile, err)
			}
			keys.HostKeyCallback = cb
		}
		return keys, nil
	}
	return nil, nil
}

// authHint tells the user what to check when the server rejects us.
func authHint(a Auth, proto string) string {
	switch {
	case proto == "ssh":
		return "check the SSH key and that it is authorised for this repository"
	case a.Token != "":
		return "check the token"
	case a.Username != "":
		return "check the username and password"
	default:
		return "the server wants credentials: set a token or a username and password"
	}
}

// classify turns a go-git transport error into one a user can act on. It
// never includes credentials: URLs are redacted and any configured secret
// that appears in a message is masked.
func (r *Repo) classify(op string, err error) error {
	if err == nil {
		return nil
	}
	u := redactURL(r.cfg.URL)
	ep, _ := transport.NewEndpoint(r.cfg.URL)
	proto := ""
	if ep != nil {
		proto = ep.Protocol
	}
	msg := err.Error()
	switch {
	case errors.Is(err, ErrAuth):
	case errors.Is(err, transport.ErrAuthenticationRequired),
		errors.Is(err, transport.ErrAuthorizationFailed),
		strings.Contains(msg, "unable to authenticate"):
		err = fmt.Errorf("%w for %s: %s", ErrAuth, u, authHint(r.cfg.Auth, proto))
		return err
	case strings.Contains(msg, "knownhosts:") || strings.Contains(msg, "host key"):
		err = fmt.Errorf("%w for %s: host key not accepted (%v): check Auth.KnownHostsFile", ErrAuth, u, err)
	case errors.Is(err, transport.ErrRepositoryNotFound):
		err = fmt.Errorf("%s %s: repository not found (check the URL, or credentials if the repository is private): %w", op, u, err)
		return r.scrub(err)
	default:
		err = fmt.Errorf("%s %s: %w", op, u, err)
	}
	return r.scrub(err)
}

// scrubbedError masks secrets in a message while keeping the chain.
type scrubbedError struct {
	msg string
	err error
}

func (e *scrubbedError) Error() string { return e.msg }
func (e *scrubbedError) Unwrap() error { return e.err }

func (r *Repo) scrub(err error) error {
	msg := err.Error()
	masked := msg
	for _, s := range r.secrets() {
		if len(s) >= 3 {
			masked = strings.ReplaceAll(masked, s, "***")
		}
	}
	if masked == msg {
		return err
	}
	return &scrubbedError{msg: masked, err: err}
}

func (r *Repo) secrets() []string {
	s := []string{r.cfg.Auth.Password, r.cfg.Auth.Token, r.cfg.Auth.SSHKeyPassphrase}
	if u, err := url.Parse(r.cfg.URL); err == nil && u.User != nil {
		if p, ok := u.User.Password(); ok {
			s = append(s, p)
		}
	}
	return s
}

// redactURL drops any password from a URL so it can be logged.
func redactURL(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "***")
	}
	return u.String()
}

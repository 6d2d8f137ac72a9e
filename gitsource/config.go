package gitsource

import (
	"errors"
	"fmt"
	"log/slog"
	"path"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/go-git/go-git/v5/plumbing"
	"github.com/go-git/go-git/v5/plumbing/transport"
)

// DefaultPollInterval is how often a Watcher asks the remote for its head
// when Config.PollInterval is zero.
const DefaultPollInterval = 15 * time.Second

// DefaultBranch is followed when none of Branch, Tag and Commit is set.
const DefaultBranch = "main"

// Config says which repository to follow, where to keep the local clone and
// how to check what arrives.
type Config struct {
	// URL of the repository: https://host/owner/repo.git, http://...,
	// ssh://user@host[:port]/path, user@host:path (scp-like, ssh),
	// git://..., file:///path, or a local path (absolute or relative).
	URL string
	// Exactly one of Branch and Tag may be set. Commit pins a full 40-hex
	// commit hash; with Branch set as well, the commit is fetched from
	// that branch. When none is set, DefaultBranch is followed.
	Branch, Tag, Commit string
	// Path is the directory inside the repository that FS is rooted at,
	// slash-separated and relative ("deploy/prod"); empty means the root.
	Path string
	// Dir is where the local bare clone lives. Open creates it, and may
	// delete and re-create it when it is corrupt, so it must be dedicated
	// to shoal: Open refuses a non-empty directory it did not create.
	Dir string
	// Auth holds credentials for https and ssh remotes.
	Auth Auth
	// Shallow fetches only the followed commit (depth 1), not its history.
	// It cannot be combined with Commit.
	Shallow bool
	// PollInterval between remote-head checks; DefaultPollInterval if zero.
	PollInterval time.Duration
	// Verify says whether the followed commit must be signed.
	Verify VerifyConfig
	// Logger receives one structured line per event; nil discards logs.
	Logger *slog.Logger
}

// Auth holds credentials. Only the fields matching the URL's transport are
// used; setting fields of the other transport is an error, so a typo in a
// URL does not silently send a token nowhere.
type Auth struct {
	// Username and Password for HTTP basic auth. With Token, Username is
	// optional (defaults to "git"; GitHub, GitLab and Gitea accept any
	// non-empty user name with a personal access token).
	Username, Password string
	Token              string
	// SSHKeyFile is a private key file (OpenSSH or PEM), optionally
	// protected by SSHKeyPassphrase. Required for ssh URLs.
	SSHKeyFile, SSHKeyPassphrase string
	// KnownHostsFile lists the server's host keys, in OpenSSH known_hosts
	// format. Required for ssh URLs unless InsecureIgnoreHostKey is set.
	KnownHostsFile string
	// InsecureIgnoreHostKey accepts any ssh host key. Only for tests and
	// throwaway setups: it allows a man-in-the-middle to serve any commit.
	InsecureIgnoreHostKey bool
}

// VerifyMode selects commit signature verification.
type VerifyMode string

const (
	// VerifyOff accepts any commit. The zero value means VerifyOff.
	VerifyOff VerifyMode = "off"
	// VerifyHead requires the followed (head) commit to carry an OpenPGP
	// signature made by a key in the trusted keyring.
	VerifyHead VerifyMode = "head"
)

// VerifyConfig configures signature verification.
type VerifyConfig struct {
	Mode VerifyMode
	// KeyringFile is an ASCII-armored OpenPGP public keyring (for example
	// the output of `gpg --export --armor KEYID...`). Required with
	// VerifyHead. SSH allowed_signers files are not supported.
	KeyringFile string
}

var hexHash = regexp.MustCompile(`^[0-9a-f]{40}$`)

// Validate reports every problem with the configuration at once. It does
// not touch the disk or the network.
func (c Config) Validate() error {
	var errs []error
	add := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }

	proto := ""
	if c.URL == "" {
		add("gitsource: URL is required")
	} else if ep, err := transport.NewEndpoint(c.URL); err != nil {
		add("gitsource: URL %s: %v", redactURL(c.URL), err)
	} else {
		proto = ep.Protocol
	}
	if c.Dir == "" {
		add("gitsource: Dir (where the local clone is kept) is required")
	}
	if c.Branch != "" && c.Tag != "" {
		add("gitsource: set Branch or Tag, not both")
	}
	if c.Branch != "" && !validRefName(c.Branch) {
		add("gitsource: Branch %q is not a valid branch name", c.Branch)
	}
	if c.Tag != "" && !validRefName(c.Tag) {
		add("gitsource: Tag %q is not a valid tag name", c.Tag)
	}
	if c.Commit != "" {
		if !hexHash.MatchString(c.Commit) {
			add("gitsource: Commit %q must be a full 40-character lowercase hex hash", c.Commit)
		}
		if c.Tag != "" {
			add("gitsource: set Tag or Commit, not both")
		}
		if c.Shallow {
			add("gitsource: Shallow cannot be combined with a pinned Commit (the commit may be older than the branch tip)")
		}
	}
	if _, err := cleanPath(c.Path); err != nil {
		add("gitsource: %v", err)
	}
	if c.PollInterval < 0 {
		add("gitsource: PollInterval must not be negative")
	}
	switch proto {
	case "http", "https":
		a := c.Auth
		if a.Token != "" && a.Password != "" {
			add("gitsource: set Auth.Token or Auth.Password, not both")
		}
		if a.Password != "" && a.Username == "" {
			add("gitsource: Auth.Password needs Auth.Username")
		}
		if a.SSHKeyFile != "" || a.KnownHostsFile != "" || a.InsecureIgnoreHostKey {
			add("gitsource: ssh settings in Auth but URL %s is %s", redactURL(c.URL), proto)
		}
	case "ssh":
		a := c.Auth
		if a.SSHKeyFile == "" {
			add("gitsource: ssh URL %s needs Auth.SSHKeyFile", redactURL(c.URL))
		}
		if a.KnownHostsFile == "" && !a.InsecureIgnoreHostKey {
			add("gitsource: ssh URL %s needs Auth.KnownHostsFile (or, for tests only, InsecureIgnoreHostKey)", redactURL(c.URL))
		}
		if a.Token != "" || a.Password != "" {
			add("gitsource: token/password in Auth but URL %s is ssh", redactURL(c.URL))
		}
	case "file", "git":
		if c.Auth != (Auth{}) {
			add("gitsource: Auth is set but URL %s (%s) takes no credentials", redactURL(c.URL), proto)
		}
	}
	switch c.Verify.Mode {
	case "", VerifyOff:
	case VerifyHead:
		if c.Verify.KeyringFile == "" {
			add("gitsource: Verify.Mode %q needs Verify.KeyringFile", VerifyHead)
		}
	default:
		add("gitsource: Verify.Mode %q is not one of %q, %q", c.Verify.Mode, VerifyOff, VerifyHead)
	}
	return errors.Join(errs...)
}

// validRefName rejects the names git itself rejects that could change the
// meaning of a refspec (see git-check-ref-format).
func validRefName(s string) bool {
	return !strings.ContainsAny(s, " ~^:?*[\\\x7f") && !strings.Contains(s, "..") &&
		!strings.HasPrefix(s, "-") && !strings.HasPrefix(s, "/") && !strings.HasSuffix(s, "/") &&
		!strings.HasSuffix(s, ".lock") && !strings.Contains(s, "@{")
}

// target is the remote ref a Config follows.
func (c Config) target() plumbing.ReferenceName {
	switch {
	case c.Tag != "":
		return plumbing.NewTagReferenceName(c.Tag)
	case c.Branch != "":
		return plumbing.NewBranchReferenceName(c.Branch)
	case c.Commit != "":
		return "" // a pinned commit with no branch: any ref may hold it
	default:
		return plumbing.NewBranchReferenceName(DefaultBranch)
	}
}

// pollInterval returns the interval with the default applied.
func (c Config) pollInterval() time.Duration {
	if c.PollInterval == 0 {
		return DefaultPollInterval
	}
	return c.PollInterval
}

// cleanPath turns Config.Path into an fs.ValidPath ("." for the root).
func cleanPath(p string) (string, error) {
	if p == "" {
		return ".", nil
	}
	if strings.HasPrefix(p, "/") || strings.Contains(p, "\\") {
		return "", fmt.Errorf("Path %q must be relative and slash-separated", p)
	}
	cp := path.Clean(p)
	if cp == ".." || strings.HasPrefix(cp, "../") {
		return "", fmt.Errorf("Path %q leaves the repository", p)
	}
	return cp, nil
}

// normaliseURL makes local paths absolute so that the clone's remote does
// not depend on the working directory the agent was started in.
func normaliseURL(u string) (string, error) {
	ep, err := transport.NewEndpoint(u)
	if err != nil {
		return "", err
	}
	if ep.Protocol != "file" || strings.HasPrefix(u, "file://") {
		return u, nil
	}
	return filepath.Abs(u)
}

package runtime

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"path"
	"sort"
	"strings"

	"github.com/distribution/reference"
)

// Registry credentials from a pod's imagePullSecrets, as the kubelet reads
// them: each Secret of type kubernetes.io/dockerconfigjson holds, under
// the key .dockerconfigjson, {"auths": {"REGISTRY": {...}}}; the secrets
// are tried in the pod's order, and within one Secret the most specific
// registry key first (byMostSpecific). An image no Secret has credentials
// for is pulled anonymously. The Secrets are read at pull time as the
// node has them now (WithCurrentValues), not at the pod's revision, so a
// rotated password is used by the next pull of an existing pod too. (The
// agent's resolver answers at the pod's revision when it cannot read the
// node's current commit, so that such a pull is not anonymous.)
//
// Credentials live in memory only, for the duration of one pull: they are
// never logged, written to disk, or put into an error, a status message or
// an event. RegistryAuth prints without its secrets.

// DockerConfigJSONKey is the key of a dockerconfigjson Secret that holds
// the credentials.
const DockerConfigJSONKey = ".dockerconfigjson"

// RegistryAuth is one registry's credentials.
type RegistryAuth struct {
	Username string
	Password string
	// IdentityToken is an OAuth2 refresh token, exchanged for a bearer
	// token at the registry's token server (Username is then empty).
	IdentityToken string
}

// String never shows the password or token.
func (a RegistryAuth) String() string {
	return fmt.Sprintf("RegistryAuth{Username: %q, Password: %s, IdentityToken: %s}", a.Username, redacted(a.Password), redacted(a.IdentityToken))
}

// GoString is String, so that %#v does not print the secrets either.
func (a RegistryAuth) GoString() string { return a.String() }

func redacted(s string) string {
	if s == "" {
		return `""`
	}
	return "(redacted)"
}

// DockerConfig maps registry keys, as written in a dockerconfigjson
// ("index.docker.io", "https://index.docker.io/v1/", "registry:5000",
// "quay.io/team", "*.example.com"), to credentials.
type DockerConfig map[string]RegistryAuth

// ParseDockerConfigJSON reads the content of a .dockerconfigjson key. An
// entry's "auth" (base64 of user:password) wins over its username and
// password, as in the kubelet. Errors never quote the content.
func ParseDockerConfigJSON(data []byte) (DockerConfig, error) {
	var doc struct {
		Auths map[string]struct {
			Auth          string `json:"auth"`
			Username      string `json:"username"`
			Password      string `json:"password"`
			IdentityToken string `json:"identitytoken"`
		} `json:"auths"`
	}
	if err := json.Unmarshal(data, &doc); err != nil {
		var se *json.SyntaxError
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &se):
			return nil, fmt.Errorf("%s is not valid JSON (at byte %d)", DockerConfigJSONKey, se.Offset)
		case errors.As(err, &te):
			return nil, fmt.Errorf("%s: field %s must be %s", DockerConfigJSONKey, te.Field, te.Type)
		}
		return nil, fmt.Errorf("%s is not valid JSON", DockerConfigJSONKey)
	}
	if doc.Auths == nil {
		return nil, fmt.Errorf(`%s has no "auths" object`, DockerConfigJSONKey)
	}
	out := make(DockerConfig, len(doc.Auths))
	for key, e := range doc.Auths {
		a := RegistryAuth{Username: e.Username, Password: e.Password, IdentityToken: e.IdentityToken}
		if e.Auth != "" {
			raw, err := base64.StdEncoding.DecodeString(e.Auth)
			if err != nil {
				return nil, fmt.Errorf("%s: auths[%q].auth is not base64 of user:password", DockerConfigJSONKey, key)
			}
			user, pass, ok := strings.Cut(string(raw), ":")
			clear(raw)
			if !ok {
				return nil, fmt.Errorf("%s: auths[%q].auth is not base64 of user:password (no ':')", DockerConfigJSONKey, key)
			}
			a.Username, a.Password = user, pass
		}
		if a.IdentityToken == "" && (a.Username == "" || a.Password == "") {
			return nil, fmt.Errorf("%s: auths[%q] has neither auth, username and password, nor identitytoken", DockerConfigJSONKey, key)
		}
		out[key] = a
	}
	return out, nil
}

// PullSecret is one of a pod's imagePullSecrets, read for a pull.
type PullSecret struct {
	// Name is "namespace/name", for messages.
	Name string
	// Config is the Secret's credentials; nil when it could not be read.
	Config DockerConfig
	// Problem says why the Secret could not be used (missing, not a
	// dockerconfigjson, undecryptable); it never quotes a value.
	Problem string
}

// pullCred is one set of credentials to try, and the Secret it came from.
type pullCred struct {
	secret string
	auth   RegistryAuth
}

// dockerHubHosts are the names of Docker Hub: an image on docker.io matches
// credentials given for any of them, as with the kubelet and docker.
var dockerHubHosts = map[string]bool{"docker.io": true, "index.docker.io": true, "registry-1.docker.io": true}

// registryKey is a dockerconfigjson key as the kubelet matches it: host
// (with port), then an optional path prefix; scheme and a /v1/ or /v2/
// path are dropped. The prefix is a string prefix, as in the kubelet:
// "quay.io/team" also matches quay.io/teamevil/app.
type registryKey struct {
	host string
	path string
}

// moreSpecific orders registry keys most specific first: the longer path
// prefix, then an exact host before one with "*" labels (fewer first),
// then by text so that the order never depends on a map's. So
// "quay.io/team/app" comes before "https://quay.io/team", which comes
// before "quay.io", which comes before "*.io" (the scheme does not count).
func (k registryKey) moreSpecific(o registryKey) bool {
	if len(k.path) != len(o.path) {
		return len(k.path) > len(o.path)
	}
	if kw, ow := strings.Count(k.host, "*"), strings.Count(o.host, "*"); kw != ow {
		return kw < ow
	}
	if k.host != o.host {
		return k.host < o.host
	}
	return k.path < o.path
}

func parseRegistryKey(k string) (registryKey, bool) {
	v := k
	if !strings.HasPrefix(v, "https://") && !strings.HasPrefix(v, "http://") {
		v = "https://" + v
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" {
		return registryKey{}, false
	}
	p := u.Path
	if strings.HasPrefix(p, "/v1/") || strings.HasPrefix(p, "/v2/") {
		p = p[3:]
	}
	p = strings.Trim(p, "/")
	host := strings.ToLower(u.Host)
	if dockerHubHosts[host] {
		host = "docker.io"
	}
	return registryKey{host: host, path: p}, true
}

// matches reports whether the key applies to an image repository on host
// (normalised, docker.io for Docker Hub) with path repo: the host matches,
// with "*" globs per dot-separated label and the same port, and the key's
// path is a prefix of the repository's.
func (k registryKey) matches(host, repo string) bool {
	kh, kp := splitPort(k.host)
	ih, ip := splitPort(host)
	if kp != ip {
		return false
	}
	kl, il := strings.Split(kh, "."), strings.Split(ih, ".")
	if len(kl) != len(il) {
		return false
	}
	for i := range kl {
		if ok, err := path.Match(kl[i], il[i]); err != nil || !ok {
			return false
		}
	}
	return strings.HasPrefix(repo, k.path)
}

func splitPort(hostport string) (string, string) {
	if i := strings.LastIndexByte(hostport, ':'); i >= 0 && !strings.Contains(hostport[i:], "]") {
		return hostport[:i], hostport[i+1:]
	}
	return hostport, ""
}

// imageRepo returns the registry host of a normalised image reference
// (docker.io for Docker Hub) and its repository path.
func imageRepo(ref string) (host, repo string, err error) {
	named, err := reference.ParseNormalizedNamed(ref)
	if err != nil {
		return "", "", err
	}
	host = strings.ToLower(reference.Domain(named))
	if dockerHubHosts[host] {
		host = "docker.io"
	}
	return host, reference.Path(named), nil
}

// credentialsFor lists the credentials to try for image: the secrets in
// the pod's order; within one, the keys that match, most specific first
// (registryKey.moreSpecific).
func credentialsFor(image string, secrets []PullSecret) []pullCred {
	host, repo, err := imageRepo(image)
	if err != nil {
		return nil
	}
	type match struct {
		raw string
		key registryKey
	}
	var out []pullCred
	for _, s := range secrets {
		var ms []match
		for k := range s.Config {
			if rk, ok := parseRegistryKey(k); ok && rk.matches(host, repo) {
				ms = append(ms, match{k, rk})
			}
		}
		sort.Slice(ms, func(i, j int) bool {
			if ms[i].key != ms[j].key {
				return ms[i].key.moreSpecific(ms[j].key)
			}
			return ms[i].raw < ms[j].raw // "quay.io" and "https://quay.io/v1/"
		})
		seen := map[RegistryAuth]bool{}
		for _, m := range ms {
			if a := s.Config[m.raw]; !seen[a] {
				seen[a] = true
				out = append(out, pullCred{secret: s.Name, auth: a})
			}
		}
	}
	return out
}

// credsFunc gives containerd's docker authorizer the credentials for the
// image's registry only: a challenge from any other host (a redirect
// elsewhere) gets none. With Basic auth they go to that registry; with
// Bearer auth (most public registries) the authorizer sends them to the
// token server the registry's challenge names (its realm), as every
// registry client does, and the registry gets the token.
func credsFunc(image string, a RegistryAuth) func(string) (string, string, error) {
	imgHost, _, _ := imageRepo(image)
	return func(host string) (string, string, error) {
		h := strings.ToLower(host)
		if h != imgHost && !(imgHost == "docker.io" && dockerHubHosts[h]) {
			return "", "", nil
		}
		if a.IdentityToken != "" {
			return "", a.IdentityToken, nil
		}
		return a.Username, a.Password, nil
	}
}

// resolvePullSecrets reads a pod's imagePullSecrets through the
// ValueResolver as the node has them now (WithCurrentValues), with a cache
// of its own: the pod's environment reads the same names at the pod's
// revision. A Secret that cannot be used is kept with its Problem, so that
// a failed pull can say why it was not tried; as with the kubelet, the
// others are still used.
func resolvePullSecrets(ctx context.Context, res ValueResolver, namespace string, names []string) []PullSecret {
	if len(names) == 0 {
		return nil
	}
	ctx = WithCurrentValues(ctx)
	objs := newObjectCache(res, namespace)
	out := make([]PullSecret, 0, len(names))
	for _, name := range names {
		ps := PullSecret{Name: objs.namespace + "/" + name}
		vals, found, err := objs.get(ctx, "Secret", name)
		switch {
		case err != nil:
			ps.Problem = err.Error()
		case !found:
			ps.Problem = "not found"
		default:
			raw, ok := vals[DockerConfigJSONKey]
			if !ok {
				ps.Problem = "has no " + DockerConfigJSONKey + " key (type kubernetes.io/dockerconfigjson is required)"
				break
			}
			if ps.Config, err = ParseDockerConfigJSON(raw); err != nil {
				ps.Problem = err.Error()
			}
		}
		out = append(out, ps)
	}
	return out
}

// pullFailure is the error of a pull that failed with every credential
// tried: it names the secrets (and why any was not usable), never a
// credential.
func pullFailure(full string, secrets []PullSecret, tried []pullCred, errs []error) error {
	var b strings.Builder
	fmt.Fprintf(&b, "pull %s", full)
	if len(tried) > 0 {
		b.WriteString(": failed with the credentials of every imagePullSecret that has some for this registry:")
		for i, c := range tried {
			fmt.Fprintf(&b, " %s: %v;", c.secret, errs[i])
		}
	} else if len(errs) > 0 {
		fmt.Fprintf(&b, ": %v", errs[0])
		if len(secrets) > 0 {
			b.WriteString(" (no imagePullSecret has credentials for this registry:")
			for _, s := range secrets {
				b.WriteString(" " + s.Name)
			}
			b.WriteString(")")
		}
	}
	for _, s := range secrets {
		if s.Problem != "" {
			fmt.Fprintf(&b, " imagePullSecret %s not used: %s;", s.Name, s.Problem)
		}
	}
	return fmt.Errorf("%w: %s", ErrImagePull, strings.TrimSuffix(b.String(), ";"))
}

package manifest

import (
	"errors"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
	"k8s.io/apimachinery/pkg/util/validation"
	"sigs.k8s.io/yaml"
)

// ConfigFile is the repository's own shoal settings, at the root handed to Load. Being under a
// hidden directory, it is never read as a manifest.
const ConfigFile = ".shoal/config.yaml"

// repoConfig is the content of ConfigFile. Every field is an explicit choice of the repository's
// owners; an unknown field is an error, as in manifests.
type repoConfig struct {
	// PlaintextSecrets lists .gitignore-style patterns of files, relative to the root handed to
	// Load, in which a Secret may hold plaintext values: for a local development cluster only.
	// Everywhere else a Secret must be sops-encrypted.
	PlaintextSecrets []string `json:"plaintextSecrets,omitempty"`
	// GoneNodes names machines that are gone for good (decommissioned,
	// dead). The cluster marks such a node Gone once it is no longer alive
	// in gossip: its pods are lost at once, and its StatefulSet pods'
	// names are freed to run elsewhere. A listed node that is alive is
	// left alone.
	GoneNodes []string `json:"goneNodes,omitempty"`
}

// repoSettings is what readRepoConfig makes of ConfigFile.
type repoSettings struct {
	plaintextAllowed func(file string) bool // nil: nowhere
	goneNodes        []string
}

// readRepoConfig reads dir's ConfigFile, if there is one: a matcher for the files where plaintext
// Secrets are allowed (nil when none are) and the nodes declared gone.
func readRepoConfig(fsys fs.FS, dir string) (repoSettings, ErrorList) {
	data, err := fs.ReadFile(fsys, path.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return repoSettings{}, nil
	}
	if err != nil {
		return repoSettings{}, ErrorList{&Error{Source: Source{File: ConfigFile}, Message: "cannot read: " + unwrapAll(err).Error()}}
	}
	var cfg repoConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return repoSettings{}, ErrorList{&Error{Source: Source{File: ConfigFile},
			Message: "invalid: " + err.Error() + " (the settings are plaintextSecrets, a list of path patterns, and goneNodes, a list of node names)"}}
	}
	var out repoSettings
	var errs ErrorList
	seen := map[string]bool{}
	for _, n := range cfg.GoneNodes {
		if msgs := validation.IsDNS1123Subdomain(n); len(msgs) > 0 {
			errs = append(errs, &Error{Source: Source{File: ConfigFile}, Field: "goneNodes",
				Message: fmt.Sprintf("%q is not a node name: %s", n, strings.Join(msgs, "; "))})
			continue
		}
		if seen[n] {
			errs = append(errs, &Error{Source: Source{File: ConfigFile}, Field: "goneNodes", Message: fmt.Sprintf("%q is listed twice", n)})
			continue
		}
		seen[n] = true
		out.goneNodes = append(out.goneNodes, n)
	}
	sort.Strings(out.goneNodes)
	if len(cfg.PlaintextSecrets) == 0 {
		return out, errs
	}
	patterns := make([]gitignore.Pattern, 0, len(cfg.PlaintextSecrets))
	for _, p := range cfg.PlaintextSecrets {
		if strings.TrimSpace(p) == "" || strings.HasPrefix(p, "!") {
			return out, append(errs, &Error{Source: Source{File: ConfigFile}, Field: "plaintextSecrets",
				Message: "a pattern must name files to allow, not be empty or negated: " + p})
		}
		patterns = append(patterns, gitignore.ParsePattern(p, nil))
	}
	m := gitignore.NewMatcher(patterns)
	out.plaintextAllowed = func(file string) bool { return m.Match(strings.Split(file, "/"), false) }
	return out, errs
}

package manifest

import (
	"errors"
	"io/fs"
	"path"
	"strings"

	"github.com/go-git/go-git/v5/plumbing/format/gitignore"
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
}

// readRepoConfig reads dir's ConfigFile, if there is one, and returns a matcher for the files
// where plaintext Secrets are allowed (nil when none are).
func readRepoConfig(fsys fs.FS, dir string) (func(file string) bool, *Error) {
	data, err := fs.ReadFile(fsys, path.Join(dir, ConfigFile))
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, &Error{Source: Source{File: ConfigFile}, Message: "cannot read: " + unwrapAll(err).Error()}
	}
	var cfg repoConfig
	if err := yaml.UnmarshalStrict(data, &cfg); err != nil {
		return nil, &Error{Source: Source{File: ConfigFile}, Message: "invalid: " + err.Error() + " (the only setting is plaintextSecrets: a list of path patterns)"}
	}
	if len(cfg.PlaintextSecrets) == 0 {
		return nil, nil
	}
	patterns := make([]gitignore.Pattern, 0, len(cfg.PlaintextSecrets))
	for _, p := range cfg.PlaintextSecrets {
		if strings.TrimSpace(p) == "" || strings.HasPrefix(p, "!") {
			return nil, &Error{Source: Source{File: ConfigFile}, Field: "plaintextSecrets",
				Message: "a pattern must name files to allow, not be empty or negated: " + p}
		}
		patterns = append(patterns, gitignore.ParsePattern(p, nil))
	}
	m := gitignore.NewMatcher(patterns)
	return func(file string) bool { return m.Match(strings.Split(file, "/"), false) }, nil
}

package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"go.yaml.in/yaml/v3"
)

// SopsConfigFile is the file sops reads its creation rules from.
const SopsConfigFile = ".sops.yaml"

// CreationRule is the part of a .sops.yaml creation rule shoal uses.
type CreationRule struct {
	// Config is the .sops.yaml the rule came from.
	Config string
	// Recipients are the rule's age recipients.
	Recipients []string
	// EncryptedRegex and the other rules, as written (empty when not set).
	EncryptedRegex, UnencryptedRegex, EncryptedSuffix, UnencryptedSuffix string
	MACOnlyEncrypted                                                     bool
}

type sopsConfig struct {
	CreationRules []struct {
		PathRegex         string `yaml:"path_regex"`
		Age               any    `yaml:"age"` // a comma-separated string or a list
		EncryptedRegex    string `yaml:"encrypted_regex"`
		UnencryptedRegex  string `yaml:"unencrypted_regex"`
		EncryptedSuffix   string `yaml:"encrypted_suffix"`
		UnencryptedSuffix string `yaml:"unencrypted_suffix"`
		MACOnlyEncrypted  bool   `yaml:"mac_only_encrypted"`
	} `yaml:"creation_rules"`
}

// FindCreationRule finds the .sops.yaml nearest to file (in its directory or a parent) and
// returns its first creation rule whose path_regex matches file's path relative to the
// config's directory, as sops matches it. sops itself searches from the working directory;
// shoal searches from the file, so the answer does not depend on where the command runs.
func FindCreationRule(file string) (*CreationRule, error) {
	abs, err := filepath.Abs(file)
	if err != nil {
		return nil, err
	}
	for dir := filepath.Dir(abs); ; dir = filepath.Dir(dir) {
		cfg := filepath.Join(dir, SopsConfigFile)
		data, err := os.ReadFile(cfg)
		if err == nil {
			return creationRule(cfg, data, strings.TrimPrefix(abs, dir+string(filepath.Separator)))
		}
		if !errors.Is(err, fs.ErrNotExist) {
			return nil, err
		}
		if filepath.Dir(dir) == dir {
			return nil, fmt.Errorf("no %s found in the directory of %s or above it: pass --age age1...", SopsConfigFile, file)
		}
	}
}

func creationRule(cfg string, data []byte, rel string) (*CreationRule, error) {
	var c sopsConfig
	if err := yaml.Unmarshal(data, &c); err != nil {
		return nil, fmt.Errorf("%s: %s", cfg, yamlErrorLine(err))
	}
	for i, r := range c.CreationRules {
		if r.PathRegex != "" {
			re, err := regexp.Compile(r.PathRegex)
			if err != nil {
				return nil, fmt.Errorf("%s: creation rule %d: path_regex: %v", cfg, i+1, err)
			}
			if !re.MatchString(filepath.ToSlash(rel)) {
				continue
			}
		}
		out := &CreationRule{Config: cfg, EncryptedRegex: r.EncryptedRegex, UnencryptedRegex: r.UnencryptedRegex,
			EncryptedSuffix: r.EncryptedSuffix, UnencryptedSuffix: r.UnencryptedSuffix, MACOnlyEncrypted: r.MACOnlyEncrypted}
		switch age := r.Age.(type) {
		case string:
			out.Recipients = splitRecipients(age)
		case []any:
			for _, a := range age {
				if s, ok := a.(string); ok {
					out.Recipients = append(out.Recipients, splitRecipients(s)...)
				}
			}
		}
		if len(out.Recipients) == 0 {
			return nil, fmt.Errorf("%s: the creation rule for %s lists no age recipient", cfg, rel)
		}
		return out, nil
	}
	return nil, fmt.Errorf("%s: no creation rule matches %s", cfg, rel)
}

// splitRecipients splits a comma-separated list of recipients, as sops does.
func splitRecipients(s string) []string {
	var out []string
	for _, r := range strings.Split(s, ",") {
		if r = strings.TrimSpace(r); r != "" {
			out = append(out, r)
		}
	}
	return out
}

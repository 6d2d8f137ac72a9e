package manifest

import (
	"math/rand/v2"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/api/validate/content"
	"k8s.io/apimachinery/pkg/util/validation"
)

// TestSyntaxFastPathsMatchKubernetes checks every byte-loop checker against the upstream
// function it stands in for, on hand-picked edge cases and on random strings over an alphabet
// dense in the characters the rules care about: they must agree on valid versus invalid.
func TestSyntaxFastPathsMatchKubernetes(t *testing.T) {
	checks := []struct {
		name     string
		fast     func(string) []string
		upstream func(string) []string
	}{
		{"DNS label", dnsLabelErrs, validation.IsDNS1123Label},
		{"DNS subdomain", dnsSubdomainErrs, validation.IsDNS1123Subdomain},
		{"label key", labelKeyErrs, content.IsLabelKey},
		{"label value", labelValueErrs, content.IsLabelValue},
		{"port name", portNameErrs, validation.IsValidPortName},
		{"env var name", envVarNameErrs, validation.IsEnvVarName},
		{"config key", configKeyErrs, validation.IsConfigMapKey},
	}
	edge := []string{
		"", "a", "A", "0", "-", ".", "..", "...", "_", "/", "a/", "/a", "a/b", "a/b/c", "a.b/c", "-a/b", "a-/b",
		"a--b", "-a", "a-", "a.b", "a..b", ".a", "a.", "a_b", "_a", "a_", "1", "12", "1a", "a1", "http", "http-2",
		"h--p", "abcdefghijklmno", "abcdefghijklmnop", "..a", ".a.", "é", "a b", "a\n", "A.B", "Example.com/X",
		strings.Repeat("a", 63), strings.Repeat("a", 64), strings.Repeat("a", 253), strings.Repeat("a", 254),
		strings.Repeat("a.", 126) + "a", strings.Repeat("a", 64) + ".b", strings.Repeat("a", 253) + "/b",
		strings.Repeat("a", 254) + "/b", "a/" + strings.Repeat("b", 63), "a/" + strings.Repeat("b", 64),
	}
	rng := rand.New(rand.NewPCG(1, 2))
	const alphabet = "aZ09-._/ é"
	var random []string
	for range 20000 {
		n := rng.IntN(12)
		if rng.IntN(20) == 0 {
			n = 60 + rng.IntN(8)
		}
		var b strings.Builder
		for range n {
			b.WriteByte(alphabet[rng.IntN(len(alphabet))])
		}
		random = append(random, b.String())
	}
	for _, c := range checks {
		for _, s := range append(edge, random...) {
			fastOK := len(c.fast(s)) == 0
			upOK := len(c.upstream(s)) == 0
			if fastOK != upOK {
				t.Errorf("%s %q: fast path says valid=%v, Kubernetes says valid=%v", c.name, s, fastOK, upOK)
			}
		}
	}
}

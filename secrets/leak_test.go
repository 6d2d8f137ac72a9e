package secrets

import (
	"strings"
	"testing"
	"time"
)

// mutations returns damaged variants of a file: every line removed, duplicated, or with one
// character flipped, truncated, or made into bad YAML.
func mutations(data string) []string {
	lines := strings.SplitAfter(data, "\n")
	var out []string
	join := func(ls []string) string { return strings.Join(ls, "") }
	for i, l := range lines {
		rest := func(repl ...string) string {
			ls := append(append(append([]string{}, lines[:i]...), repl...), lines[i+1:]...)
			return join(ls)
		}
		out = append(out, rest(), rest(l, l))
		if len(l) > 8 {
			mid := len(l) / 2
			out = append(out,
				rest(l[:mid]+string(rune(l[mid]^1))+l[mid+1:]),
				rest(l[:mid]+"\n"),
				rest(l[:mid]+"\t: [\"\\q"+l[mid:]),
				rest(strings.Replace(l, ": ", ": \"", 1)),
			)
		}
	}
	return out
}

// No error, for any damage done to a file, quotes a plaintext value: decrypting damaged sops
// files, encrypting damaged plaintext, reading Secrets from both.
func TestNoErrorQuotesAValue(t *testing.T) {
	kr := keyring(t, keyA)
	a := []string{publicKey(t, keyA)}
	n := 0
	check := func(what string, err error) {
		if err != nil {
			n++
			noPlaintext(t, what, err.Error())
		}
	}
	for _, name := range []string{"sops-secret.yaml", "sops-types.yaml", "sops-secret.json", "shoal-secret.yaml"} {
		for _, m := range mutations(string(readFile(t, "testdata/"+name))) {
			p, err := Decrypt(name, []byte(m), kr)
			check("Decrypt error", err)
			if err == nil {
				_, err = p.Secret("shop", "app")
				check("Secret error", err)
			}
			_, err = Rotate(name, []byte(m), kr, a, time.Time{})
			check("Rotate error", err)
		}
	}
	for _, name := range []string{"secret.yaml", "types.yaml", "multi.yaml"} {
		for _, m := range mutations(string(readFile(t, "testdata/plain/"+name))) {
			_, err := Encrypt(name, []byte(m), EncryptOptions{Recipients: a})
			check("Encrypt error", err)
			p, err := ReadPlain(name, []byte(m))
			check("ReadPlain error", err)
			if err == nil {
				_, err = p.Secret("shop", "app")
				check("Secret error", err)
			}
		}
	}
	if n < 100 {
		t.Errorf("only %d errors were produced: the mutations are too gentle to prove anything", n)
	}
	t.Logf("%d errors scanned", n)
}

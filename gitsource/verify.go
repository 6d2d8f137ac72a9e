package gitsource

import (
	"bytes"
	"fmt"
	"os"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/go-git/go-git/v5/plumbing/object"
)

// loadKeyring reads an armored OpenPGP keyring and checks it holds at least
// one key. SSH keys and allowed_signers files are rejected with a clear
// message: go-git v5 can only verify OpenPGP signatures.
func loadKeyring(file string) (string, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return "", fmt.Errorf("gitsource: keyring: %w", err)
	}
	text := strings.TrimSpace(string(b))
	if looksLikeSSHKeys(text) {
		return "", fmt.Errorf("gitsource: keyring %s holds SSH keys: SSH commit signatures are not supported (go-git verifies OpenPGP only); export OpenPGP keys with `gpg --export --armor`", file)
	}
	ring, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(b))
	if err != nil {
		return "", fmt.Errorf("gitsource: keyring %s is not an ASCII-armored OpenPGP keyring (`gpg --export --armor KEYID`): %w", file, err)
	}
	if len(ring) == 0 {
		return "", fmt.Errorf("gitsource: keyring %s holds no keys", file)
	}
	return string(b), nil
}

func looksLikeSSHKeys(text string) bool {
	for _, line := range strings.Split(text, "\n") {
		for _, f := range strings.Fields(line) {
			if strings.HasPrefix(f, "ssh-") || strings.HasPrefix(f, "ecdsa-sha2-") || strings.HasPrefix(f, "sk-ssh-") {
				return true
			}
		}
	}
	return false
}

// verify describes c and, with VerifyHead, checks its signature. A failure
// is a *RefusedError naming the commit and the reason.
func (r *Repo) verify(c *object.Commit) (Revision, error) {
	msg, _, _ := strings.Cut(strings.TrimSpace(c.Message), "\n")
	rev := Revision{
		Commit:  c.Hash,
		Ref:     r.refString(),
		Message: msg,
		Author:  fmt.Sprintf("%s <%s>", c.Author.Name, c.Author.Email),
		Time:    c.Committer.When,
	}
	if r.cfg.Verify.Mode != VerifyHead {
		return rev, nil
	}
	refuse := func(format string, args ...any) (Revision, error) {
		return Revision{}, &RefusedError{Commit: c.Hash, Reason: fmt.Sprintf(format, args...)}
	}
	sig := strings.TrimSpace(c.PGPSignature)
	switch {
	case sig == "":
		return refuse("not signed, and %s requires a signature by a key in %s", r.refString(), r.cfg.Verify.KeyringFile)
	case strings.HasPrefix(sig, "-----BEGIN SSH SIGNATURE-----"):
		return refuse("signed with an SSH key, and SSH signatures are not supported (only OpenPGP)")
	case strings.HasPrefix(sig, "-----BEGIN SIGNED MESSAGE-----") || strings.HasPrefix(sig, "-----BEGIN CERTIFICATE-----"):
		return refuse("signed with X.509, and X.509 signatures are not supported (only OpenPGP)")
	}
	ent, err := c.Verify(r.keyring)
	if err != nil {
		return refuse("signature not made by a trusted key in %s: %v", r.cfg.Verify.KeyringFile, err)
	}
	rev.Signed = true
	rev.SignedBy = describeKey(ent)
	return rev, nil
}

func describeKey(e *openpgp.Entity) string {
	id := strings.ToUpper(e.PrimaryKey.KeyIdString())
	if pi := e.PrimaryIdentity(); pi != nil {
		return fmt.Sprintf("%s (%s)", pi.Name, id)
	}
	return id
}

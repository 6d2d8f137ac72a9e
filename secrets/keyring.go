package secrets

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"strings"
	"time"

	"filippo.io/age"
	"filippo.io/age/armor"
)

// Keyring is the age identities a node decrypts with. It may hold several, so that a file
// encrypted to an old key and one encrypted to its replacement both open during a rotation.
type Keyring struct {
	ids        []age.Identity
	recipients []string
}

// LoadKeyring reads age identity files (the format age-keygen writes: one AGE-SECRET-KEY-1...
// per line, # comments) and returns their identities together.
func LoadKeyring(paths ...string) (*Keyring, error) {
	if len(paths) == 0 {
		return nil, errors.New("no age key file given")
	}
	kr := &Keyring{}
	for _, p := range paths {
		data, err := os.ReadFile(p)
		if err != nil {
			return nil, fmt.Errorf("age key file: %w", err)
		}
		if err := kr.Add(p, data); err != nil {
			return nil, err
		}
	}
	return kr, nil
}

// Add parses the identities in data (read from the file called name) into the keyring. Only
// native age identities (X25519, and the post-quantum hybrid) are accepted.
func (kr *Keyring) Add(name string, data []byte) error {
	ids, err := age.ParseIdentities(bytes.NewReader(data))
	if err != nil {
		// age's messages may quote a line of the file, which is a private key: keep only the kind.
		return fmt.Errorf("age key file %s: not a list of age identities (AGE-SECRET-KEY-1... lines)", name)
	}
	for _, id := range ids {
		switch id := id.(type) {
		case *age.X25519Identity:
			kr.recipients = append(kr.recipients, id.Recipient().String())
		case *age.HybridIdentity:
			kr.recipients = append(kr.recipients, id.Recipient().String())
		default:
			return fmt.Errorf("age key file %s: unsupported identity type %T", name, id)
		}
		kr.ids = append(kr.ids, id)
	}
	return nil
}

// Recipients are the public keys of the keyring's identities, sorted: what a repository's
// .sops.yaml must list for this node to decrypt.
func (kr *Keyring) Recipients() []string {
	out := append([]string(nil), kr.recipients...)
	sort.Strings(out)
	return out
}

// Len is the number of identities.
func (kr *Keyring) Len() int { return len(kr.ids) }

// GenerateIdentity makes a new age X25519 identity and returns it in the format age-keygen
// writes, with its public key.
func GenerateIdentity(now time.Time) (keyFile []byte, recipient string, err error) {
	id, err := age.GenerateX25519Identity()
	if err != nil {
		return nil, "", err
	}
	recipient = id.Recipient().String()
	var b bytes.Buffer
	fmt.Fprintf(&b, "# created: %s\n# public key: %s\n%s\n", now.UTC().Format(time.RFC3339), recipient, id)
	return b.Bytes(), recipient, nil
}

// parseRecipient reads a native age recipient: age1... (X25519) or age1pq1... (hybrid).
func parseRecipient(s string) (age.Recipient, error) {
	s = strings.TrimSpace(s)
	if strings.HasPrefix(strings.ToUpper(s), "AGE-SECRET-KEY-") {
		// Never echo it: it is a private key given where a public one belongs.
		return nil, errors.New("a private key (AGE-SECRET-KEY-...) was given as a recipient: give its public key (age1...), which `shoal secret keygen` printed")
	}
	if strings.HasPrefix(s, "age1pq1") {
		return age.ParseHybridRecipient(s)
	}
	if strings.HasPrefix(s, "age1") {
		return age.ParseX25519Recipient(s)
	}
	return nil, fmt.Errorf("%q is not an age recipient (age1...)", s)
}

// wrapDataKey encrypts the data key to one recipient, armored, as sops stores it in enc.
func wrapDataKey(dataKey []byte, recipient string) (ageStanza, error) {
	r, err := parseRecipient(recipient)
	if err != nil {
		return ageStanza{}, err
	}
	var b bytes.Buffer
	aw := armor.NewWriter(&b)
	w, err := age.Encrypt(aw, r)
	if err != nil {
		return ageStanza{}, err
	}
	if _, err := w.Write(dataKey); err != nil {
		return ageStanza{}, err
	}
	if err := w.Close(); err != nil {
		return ageStanza{}, err
	}
	if err := aw.Close(); err != nil {
		return ageStanza{}, err
	}
	return ageStanza{Recipient: strings.TrimSpace(recipient), Enc: b.String()}, nil
}

// unwrapDataKey finds the data key with any identity of the keyring.
// Stanzas that no identity could read because they are damaged are returned for the message.
func (kr *Keyring) unwrapDataKey(m *metadata) (key []byte, damaged []string) {
	var malformed []string
	for _, s := range m.age {
		r, err := age.Decrypt(armor.NewReader(strings.NewReader(s.Enc)), kr.ids...)
		if err != nil {
			var nomatch *age.NoIdentityMatchError
			if !errors.As(err, &nomatch) {
				malformed = append(malformed, s.Recipient)
			}
			continue
		}
		key, err := io.ReadAll(io.LimitReader(r, dataKeySize+1))
		if err != nil || len(key) != dataKeySize {
			malformed = append(malformed, s.Recipient)
			continue
		}
		return key, nil
	}
	return nil, malformed
}

package secrets

import (
	"errors"
	"fmt"
)

// The kinds of failure, for errors.Is. Every error of this package is an *Error naming the file;
// none quotes a decrypted value, a MAC or a private key.
var (
	// ErrNotSOPS: the file has no sops metadata, or it is not a mapping of YAML or JSON.
	ErrNotSOPS = errors.New("not a sops-encrypted file")
	// ErrNoIdentity: none of the node's age identities is a recipient of the file.
	ErrNoIdentity = errors.New("no age identity of this node can decrypt the file")
	// ErrUnsupported: the file uses a sops feature shoal does not read (pgp or kms only, Shamir
	// key groups, comment regexes).
	ErrUnsupported = errors.New("unsupported sops file")
	// ErrTampered: a value or the MAC fails authentication, or the MAC does not match the values.
	ErrTampered = errors.New("the file fails verification")
	// ErrInvalid: the file is well-formed sops but its contents are not what was asked for (no
	// such Secret, data that is not base64, a value of the wrong shape).
	ErrInvalid = errors.New("invalid secret")
)

// Error is a failure about one file.
type Error struct {
	File   string
	Kind   error  // one of the Err* values above
	Detail string // what failed, where; never a value
}

func (e *Error) Error() string {
	if e.File == "" {
		return fmt.Sprintf("%v: %s", e.Kind, e.Detail)
	}
	return fmt.Sprintf("%s: %v: %s", e.File, e.Kind, e.Detail)
}

func (e *Error) Unwrap() error { return e.Kind }

func fileError(file string, kind error, format string, args ...any) *Error {
	return &Error{File: file, Kind: kind, Detail: fmt.Sprintf(format, args...)}
}

package secrets

import (
	"errors"
	"fmt"
	"io/fs"
	"path"

	"github.com/shoal-dev/shoal/manifest"
)

// Resolver reads Secrets at a commit for the node: it finds the Secret's file in the repository
// tree, decrypts it with the node's keyring, and returns the values and their content hash. It
// holds no plaintext between calls; a caller that wants a cache keys it by commit and Secret and
// keeps it in memory.
type Resolver struct {
	Keyring *Keyring
	Hasher  *ContentHasher
}

// Resolved is one Secret's contents.
type Resolved struct {
	Values Values
	// Hash is the keyed content hash (see ContentHasher): safe to store and show.
	Hash string
	// File is the file the Secret was read from, relative to the repository root given to Load.
	File string
}

// Validate checks that the resolver is wired.
func (r *Resolver) Validate() error {
	if r.Keyring == nil {
		return errors.New("secrets resolver: no keyring")
	}
	if r.Hasher == nil {
		return errors.New("secrets resolver: no content hasher")
	}
	return nil
}

// Resolve returns the Secret namespace/name of set, read from fsys: the tree at the pinned commit,
// rooted where manifest.Load was rooted when it built set. A Secret with sops metadata is
// decrypted and verified; one without is read as plaintext, which manifest.Load only lets
// through for paths the repository opted in (see manifest's PlaintextSecretsFile).
func (r *Resolver) Resolve(fsys fs.FS, set *manifest.Set, namespace, name string) (*Resolved, error) {
	if err := r.Validate(); err != nil {
		return nil, err
	}
	if namespace == "" {
		namespace = "default"
	}
	obj := set.Get(manifest.Key{Kind: "Secret", Namespace: namespace, Name: name})
	if obj == nil {
		return nil, fmt.Errorf("%w: Secret %s/%s is not in the repository", ErrInvalid, namespace, name)
	}
	file := obj.Source.File
	data, err := fs.ReadFile(fsys, path.Clean(file))
	if err != nil {
		return nil, fmt.Errorf("Secret %s/%s: %w", namespace, name, err)
	}
	var p *Plaintext
	if obj.Secret != nil && obj.Secret.SOPS != nil {
		p, err = Decrypt(file, data, r.Keyring)
	} else {
		p, err = ReadPlain(file, data)
	}
	if err != nil {
		return nil, err
	}
	v, err := p.Secret(namespace, name)
	p.wipe()
	if err != nil {
		return nil, err
	}
	return &Resolved{Values: v, Hash: r.Hasher.Sum(namespace, name, v), File: file}, nil
}

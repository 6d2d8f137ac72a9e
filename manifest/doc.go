// Package manifest turns a directory of Kubernetes-style YAML into a validated set of typed
// objects, and compares two such sets.
//
// It owns decoding (strict: an unknown kind or field is an error), Kubernetes' defaults, shoal's
// list of supported fields, validation, object identity (Key) and the field-level diff between
// two sets. It does no IO beyond reading the fs.FS it is handed, so the same code reads a working
// tree (os.DirFS) and a commit's tree (gitsource).
//
// The order of work is fixed: Load walks the tree (honouring .shoalignore), Decode turns each
// document into an Object with Kubernetes' defaults applied, and Validate checks the whole Set at
// once. Every problem found is reported, each as an *Error naming the file, line, object and
// field path; a caller never has to fix one error to see the next.
//
// Secret values are never decoded here. A Secret in Git is SOPS-encrypted; the Set records its
// keys and opaque ciphertext so that a change is noticed, and decryption happens on a node (the
// secrets package), never in this package.
package manifest

// Package secrets reads and writes sops-encrypted files with age recipients, and projects
// Secret and ConfigMap values into pods' volumes on tmpfs.
//
// It owns:
//   - Decrypt: a sops-compatible reader for YAML and JSON. It parses the sops metadata (age
//     recipients, lastmodified, mac, and the encrypted_regex, unencrypted_regex,
//     encrypted_suffix, unencrypted_suffix and mac_only_encrypted rules), unwraps the data key
//     with any identity of a Keyring, decrypts every ENC[AES256_GCM,...] value with its path as
//     additional data, and verifies the MAC exactly as sops computes it. Any failure refuses the
//     whole file.
//   - Encrypt and Rotate: a writer of the same format, which the real sops decrypts.
//   - Resolver: what a node calls to get a Secret's values at a commit, with a keyed content
//     hash (ContentHasher) that is safe to store in raft and show in status.
//   - Project and WriteProjection: the kubelet's layout for Secret and ConfigMap volumes (items,
//     defaultMode, the atomic ..data symlink swap) and SubPath; IsTmpfs.
//   - the helpers behind `shoal secret`: GenerateIdentity, FindCreationRule.
//
// It is built on filippo.io/age, not on the sops library: the sops module links about 120
// modules (every cloud KMS) and adds about 45 MiB to the binary, where this package and
// `shoal secret` add about 0.63 MiB and two modules (filippo.io/age, filippo.io/hpke).
// Compatibility is proved by test vectors the real sops made (testdata/README.md).
//
// The plaintext rule: decrypted values live in memory (Plaintext, Values) and are written only by
// WriteProjection, into a directory that IsTmpfs confirms is a tmpfs; any other directory is
// refused before a byte is written. No error of this package quotes a value, a MAC (a hash of
// the values) or a private key; Values and Plaintext print their keys only. The package does
// not log.
//
// What the caller does: the agent loads the node's Keyring once (LoadKeyring, from its
// --age-key-file), derives the content hash key from the cluster key (DeriveHashKey, HKDF), and
// wires a Resolver. The runtime, when it sets up a pod, resolves each Secret the pod uses, projects it
// (Project) into a tmpfs it mounted for the volume, writes it (WriteProjection), and drops the
// Values (Values.Wipe); env values go to the container's config only. On a new commit it
// resolves again and rewrites the volumes of pods that do not roll: the swap is atomic.
package secrets

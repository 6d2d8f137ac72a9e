package secrets

import (
	"crypto/hkdf"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash"
)

// ContentHasher computes the change-detection hash of a Secret's values: HMAC-SHA256, keyed,
// over the Secret's identity and its sorted keys and values, each length-prefixed so that no two
// different contents encode alike.
//
// Why keyed: the hash may be stored in raft, shown by `shoal status` and be part of a workload's
// template hash, and a plain SHA-256 of a short value (a 6-digit PIN, a dictionary password) is
// brute-forced in seconds. Why not node-local: every node must compute the same hash for the
// same contents, or the leader would roll workloads whenever leadership moved. So the key is a
// cluster-wide secret that never leaves the nodes; the agent derives it from the cluster key
// with DeriveHashKey. Whoever reads raft or status without that key learns only
// "changed" or "not changed". Including namespace/name means two Secrets with equal values have
// different hashes, so one cannot be used to confirm a guess about the other.
type ContentHasher struct {
	key []byte
}

// MinHashKeySize is the least key length NewContentHasher accepts.
const MinHashKeySize = 32

// NewContentHasher returns a hasher keyed with key (at least MinHashKeySize bytes).
func NewContentHasher(key []byte) (*ContentHasher, error) {
	if len(key) < MinHashKeySize {
		return nil, errors.New("secret content hash key must be at least 32 bytes: derive it from the cluster key with DeriveHashKey")
	}
	return &ContentHasher{key: append([]byte(nil), key...)}, nil
}

// HashKeyLabel is the HKDF-SHA256 info label DeriveHashKey derives the content hash key under,
// beside the cluster package's labels ("shoal cluster v1: ..."), so that the hash key is useless
// for anything else and the cluster key itself never keys an HMAC.
const HashKeyLabel = "shoal cluster v1: ConfigMap and Secret content hash"

// DeriveHashKey derives the content hash key from the cluster key (the 32 bytes of the agent's
// --cluster-key-file) with HKDF-SHA256 under HashKeyLabel. Every node holds the same cluster key,
// so every node derives the same hash key.
func DeriveHashKey(clusterKey []byte) []byte {
	k, err := hkdf.Key(sha256.New, clusterKey, nil, HashKeyLabel, 32)
	if err != nil {
		// hkdf.Key fails only for a length above 255*32 bytes.
		panic(err)
	}
	return k
}

// Sum is the hash of a Secret's (or ConfigMap's) values: "hmac-sha256:" and 64 hex digits.
func (h *ContentHasher) Sum(namespace, name string, v Values) string {
	m := hmac.New(sha256.New, h.key)
	writeField(m, []byte(namespace))
	writeField(m, []byte(name))
	for _, k := range v.Keys() {
		writeField(m, []byte(k))
		writeField(m, v[k])
	}
	return "hmac-sha256:" + hex.EncodeToString(m.Sum(nil))
}

func writeField(h hash.Hash, b []byte) {
	var n [8]byte
	binary.BigEndian.PutUint64(n[:], uint64(len(b)))
	h.Write(n[:])
	h.Write(b)
}

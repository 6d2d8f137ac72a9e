package cluster

import (
	"bytes"
	"crypto/ed25519"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"fmt"
	"math/big"
	"time"
)

// The cluster key is never used directly: each use gets its own key derived
// with HKDF-SHA256 and a purpose label, so a weakness in one protocol does
// not expose the key material of another.
const (
	purposeGossip = "shoal cluster v1: memberlist AES-GCM"
	purposeTLS    = "shoal cluster v1: ed25519 TLS identity"
	purposeID     = "shoal cluster v1: cluster id"

	alpnRaft = "shoal-raft/1"
	alpnRPC  = "shoal-rpc/1"
)

// ErrWrongKey is returned (wrapped) when the other side of a raft or RPC
// connection does not hold the same cluster key.
var ErrWrongKey = errors.New("peer does not hold this cluster's key")

type keys struct {
	gossip []byte // 32 bytes: memberlist AES-256-GCM
	pub    ed25519.PublicKey
	cert   tls.Certificate
}

func deriveKeys(clusterKey []byte) (*keys, error) {
	gossip, err := hkdf.Key(sha256.New, clusterKey, nil, purposeGossip, 32)
	if err != nil {
		return nil, err
	}
	seed, err := hkdf.Key(sha256.New, clusterKey, nil, purposeTLS, ed25519.SeedSize)
	if err != nil {
		return nil, err
	}
	priv := ed25519.NewKeyFromSeed(seed)
	pub := priv.Public().(ed25519.PublicKey)
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		Subject:      pkix.Name{CommonName: "shoal cluster member"},
		NotBefore:    time.Unix(0, 0),
		NotAfter:     time.Date(9999, 12, 31, 0, 0, 0, 0, time.UTC),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("cluster key: make TLS identity: %w", err)
	}
	return &keys{
		gossip: gossip,
		pub:    pub,
		cert:   tls.Certificate{Certificate: [][]byte{der}, PrivateKey: priv},
	}, nil
}

// verifyPeer accepts exactly one peer identity: a certificate for the public
// key derived from our cluster key. Only a holder of the cluster key can
// sign the TLS 1.3 CertificateVerify for it, so a completed handshake proves
// the peer holds the key; no CA, names or expiry are involved.
func (k *keys) verifyPeer(rawCerts [][]byte, _ [][]*x509.Certificate) error {
	if len(rawCerts) == 0 {
		return fmt.Errorf("no certificate presented: %w", ErrWrongKey)
	}
	c, err := x509.ParseCertificate(rawCerts[0])
	if err != nil {
		return fmt.Errorf("parse peer certificate: %w", err)
	}
	pub, ok := c.PublicKey.(ed25519.PublicKey)
	if !ok || !bytes.Equal(pub, k.pub) {
		return ErrWrongKey
	}
	return nil
}

// tlsConfig returns the TLS configuration for one protocol. Both ends
// present the derived certificate and check the other's; the ALPN value
// keeps a raft connection from being accepted by the RPC port and back.
func (k *keys) tlsConfig(alpn string) *tls.Config {
	return &tls.Config{
		MinVersion:            tls.VersionTLS13,
		Certificates:          []tls.Certificate{k.cert},
		ClientAuth:            tls.RequireAnyClientCert,
		InsecureSkipVerify:    true, // replaced by VerifyPeerCertificate: we pin one key, not a CA chain
		VerifyPeerCertificate: k.verifyPeer,
		NextProtos:            []string{alpn},
		ServerName:            "shoal",
	}
}

// clusterIDFor derives the cluster ID that every bootstrapping node
// computes from the same inputs: the sorted bootstrap members' names and
// boot nonces. Mixing in the key keeps clusters with different keys apart
// even if they were started with the same names and nonces.
func clusterIDFor(clusterKey []byte, members []bootMember) string {
	h := sha256.New()
	h.Write([]byte(purposeID))
	h.Write(clusterKey)
	for _, m := range members {
		fmt.Fprintf(h, "\x00%s\x00%s", m.name, m.nonce)
	}
	return fmt.Sprintf("%x", h.Sum(nil)[:16])
}

type bootMember struct{ name, nonce string }

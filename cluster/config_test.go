package cluster

import (
	"crypto/tls"
	"encoding/base64"
	"errors"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestConfigValidate(t *testing.T) {
	good := Config{NodeName: "n1", DataDir: "/d", BindAddr: "127.0.0.1", Key: testKey}.WithDefaults()
	if err := good.Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for _, tc := range []struct {
		name string
		mod  func(*Config)
		want string
	}{
		{"no name", func(c *Config) { c.NodeName = "" }, "node name: required"},
		{"name with slash", func(c *Config) { c.NodeName = "a/b" }, "without spaces or slashes"},
		{"no data dir", func(c *Config) { c.DataDir = "" }, "data dir: required"},
		{"wildcard advertise", func(c *Config) { c.AdvertiseAddr = "0.0.0.0" }, "wildcard"},
		{"short key", func(c *Config) { c.Key = []byte("short") }, "cluster key: 5 bytes, want 32"},
		{"expect above voters", func(c *Config) { c.BootstrapExpect = 7 }, "bootstrap-expect 7"},
		{"same ports", func(c *Config) { c.RaftPort, c.RPCPort = 7000, 7000 }, "must differ"},
		{"bad join", func(c *Config) { c.Join = []string{"nohost"} }, `join address "nohost"`},
		{"lease above heartbeat", func(c *Config) { c.Raft.LeaderLeaseTimeout = c.Raft.HeartbeatTimeout * 2 }, "leader lease"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.mod(&c)
			err := c.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestLoadKeyFile(t *testing.T) {
	dir := t.TempDir()
	write := func(name string, b []byte, mode os.FileMode) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, b, mode); err != nil {
			t.Fatal(err)
		}
		return p
	}
	if k, err := LoadKeyFile(write("raw", testKey, 0o600)); err != nil || string(k) != string(testKey) {
		t.Fatalf("raw key: %q, %v", k, err)
	}
	b64 := base64.StdEncoding.EncodeToString(testKey) + "\n"
	if k, err := LoadKeyFile(write("b64", []byte(b64), 0o600)); err != nil || string(k) != string(testKey) {
		t.Fatalf("base64 key: %q, %v", k, err)
	}
	if _, err := LoadKeyFile(write("open", testKey, 0o644)); err == nil || !strings.Contains(err.Error(), "chmod 600") {
		t.Fatalf("world-readable key: got %v", err)
	}
	if _, err := LoadKeyFile(write("bad", []byte("not a key"), 0o600)); err == nil {
		t.Fatal("malformed key accepted")
	}
}

// TestTLSIdentity checks the RPC/raft handshake: the same key connects,
// a different key is refused on both ends.
func TestTLSIdentity(t *testing.T) {
	handshake := func(serverKey, clientKey []byte) (serverErr, clientErr error) {
		sk, _ := deriveKeys(serverKey)
		ck, _ := deriveKeys(clientKey)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		done := make(chan error, 1)
		go func() {
			c, err := ln.Accept()
			if err != nil {
				done <- err
				return
			}
			defer c.Close()
			sc := tls.Server(c, sk.tlsConfig(alpnRPC))
			if err := sc.Handshake(); err != nil {
				done <- err
				return
			}
			b := make([]byte, 1) // echo one byte
			if _, err := sc.Read(b); err != nil {
				done <- err
				return
			}
			_, err = sc.Write(b)
			done <- err
		}()
		c, clientErr := tls.Dial("tcp", ln.Addr().String(), ck.tlsConfig(alpnRPC))
		if clientErr == nil {
			// TLS 1.3: the server's verdict on our certificate arrives
			// with the first read.
			b := []byte{42}
			if _, clientErr = c.Write(b); clientErr == nil {
				_, clientErr = c.Read(b)
			}
			if clientErr == nil && b[0] != 42 {
				clientErr = errors.New("echo mismatch")
			}
			c.Close()
		}
		return <-done, clientErr
	}
	if s, c := handshake(testKey, testKey); s != nil || c != nil {
		t.Fatalf("same key: server %v, client %v", s, c)
	}
	other := []byte("ffffffffffffffffffffffffffffffff")
	s, c := handshake(testKey, other)
	if !errors.Is(s, ErrWrongKey) && !errors.Is(c, ErrWrongKey) {
		t.Fatalf("different keys: server %v, client %v; want ErrWrongKey on a side", s, c)
	}
	if c == nil || s == nil {
		t.Fatalf("different keys: both sides must fail: server %v, client %v", s, c)
	}
}

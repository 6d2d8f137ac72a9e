package gitsource

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"golang.org/x/crypto/ssh"
)

// sshServer serves git-upload-pack for repositories under root over ssh on
// 127.0.0.1, accepting only clientKey. It stands in for GitHub's ssh
// endpoint: go-git runs `git-upload-pack '/path'` on a session channel.
type sshServer struct {
	addr    string
	hostKey ssh.PublicKey
}

func serveSSH(t *testing.T, root string, clientKey ssh.PublicKey) *sshServer {
	t.Helper()
	_, hostPriv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(hostPriv)
	if err != nil {
		t.Fatal(err)
	}
	cfg := &ssh.ServerConfig{
		PublicKeyCallback: func(_ ssh.ConnMetadata, k ssh.PublicKey) (*ssh.Permissions, error) {
			if bytes.Equal(k.Marshal(), clientKey.Marshal()) {
				return nil, nil
			}
			return nil, errors.New("unknown key")
		},
	}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); handleSSH(c, cfg, root) }()
		}
	}()
	return &sshServer{addr: ln.Addr().String(), hostKey: signer.PublicKey()}
}

func handleSSH(c net.Conn, cfg *ssh.ServerConfig, root string) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "session only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			return
		}
		for req := range creqs {
			if req.Type != "exec" || len(req.Payload) < 4 {
				req.Reply(req.Type == "env", nil)
				continue
			}
			command := string(req.Payload[4:])
			prog, arg, _ := strings.Cut(command, " ")
			repo := filepath.Join(root, filepath.Clean("/"+strings.Trim(arg, "'")))
			if prog != "git-upload-pack" {
				req.Reply(false, nil)
				continue
			}
			req.Reply(true, nil)
			cmd := exec.Command("git", "upload-pack", repo)
			cmd.Env = append(os.Environ(), gitEnv...)
			cmd.Stdin, cmd.Stdout, cmd.Stderr = ch, ch, ch.Stderr()
			status := uint32(0)
			if err := cmd.Run(); err != nil {
				status = 1
			}
			ch.SendRequest("exit-status", false, binary.BigEndian.AppendUint32(nil, status))
			ch.Close()
			break
		}
	}
}

func writeSSHKey(t *testing.T, dir, name, pass string) (string, ssh.PublicKey) {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	var blk *pem.Block
	if pass == "" {
		blk, err = ssh.MarshalPrivateKey(priv, "")
	} else {
		blk, err = ssh.MarshalPrivateKeyWithPassphrase(priv, "", []byte(pass))
	}
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, pem.EncodeToMemory(blk), 0o600); err != nil {
		t.Fatal(err)
	}
	sp, err := ssh.NewPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return p, sp
}

func TestSSH(t *testing.T) {
	u := newUpstream(t)
	c1 := u.commit(map[string]string{"a": "1"}, "one")
	dir := t.TempDir()
	keyFile, pub := writeSSHKey(t, dir, "id_ed25519", "pass phrase")
	otherKey, _ := writeSSHKey(t, dir, "id_other", "")
	srv := serveSSH(t, u.root, pub)
	_, port, _ := net.SplitHostPort(srv.addr)
	knownHosts := filepath.Join(dir, "known_hosts")
	line := "[127.0.0.1]:" + port + " " + string(ssh.MarshalAuthorizedKey(srv.hostKey))
	if err := os.WriteFile(knownHosts, []byte(line), 0o644); err != nil {
		t.Fatal(err)
	}
	_, strangerHost, _ := ed25519.GenerateKey(rand.Reader)
	strangerSigner, _ := ssh.NewSignerFromKey(strangerHost)
	wrongHosts := filepath.Join(dir, "wrong_hosts")
	if err := os.WriteFile(wrongHosts, []byte("[127.0.0.1]:"+port+" "+string(ssh.MarshalAuthorizedKey(strangerSigner.PublicKey()))), 0o644); err != nil {
		t.Fatal(err)
	}
	url := "ssh://git@" + srv.addr + "/repo.git"

	r := open(t, Config{URL: url, Auth: Auth{SSHKeyFile: keyFile, SSHKeyPassphrase: "pass phrase", KnownHostsFile: knownHosts}})
	if rev := mustFetch(t, r); rev.Commit != c1 {
		t.Fatal(rev)
	}
	c2 := u.commit(map[string]string{"a": "2"}, "two")
	if rev := mustFetch(t, r); rev.Commit != c2 {
		t.Fatal(rev)
	}
	if got := readFile(t, r, c2, "a"); got != "2" {
		t.Fatalf("a = %q", got)
	}

	r = open(t, Config{URL: url, Auth: Auth{SSHKeyFile: otherKey, KnownHostsFile: knownHosts}})
	_, err := r.Fetch(context.Background())
	t.Log(err)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "check the SSH key") {
		t.Fatalf("unauthorised key: %v", err)
	}

	r = open(t, Config{URL: url, Auth: Auth{SSHKeyFile: keyFile, SSHKeyPassphrase: "pass phrase", KnownHostsFile: wrongHosts}})
	_, err = r.Fetch(context.Background())
	t.Log(err)
	if !errors.Is(err, ErrAuth) || !strings.Contains(err.Error(), "host key") {
		t.Fatalf("wrong host key: %v", err)
	}
	if strings.Contains(err.Error(), "pass phrase") {
		t.Fatalf("error leaks the passphrase: %v", err)
	}

	r = open(t, Config{URL: url, Auth: Auth{SSHKeyFile: keyFile, SSHKeyPassphrase: "pass phrase", InsecureIgnoreHostKey: true}})
	if rev := mustFetch(t, r); rev.Commit != c2 {
		t.Fatal(rev)
	}
}

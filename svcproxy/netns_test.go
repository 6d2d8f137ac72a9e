package svcproxy

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"golang.org/x/sys/unix"
)

// Helpers for tests that program real iptables. Everything happens inside
// network namespaces the test creates (named shoal-t<pid>-<n>-<role>) and
// deletes in Cleanup; the host's own tables and links are never touched.

func requireNetAdmin(tb testing.TB) {
	tb.Helper()
	if os.Geteuid() != 0 {
		tb.Skip("needs root to create network namespaces and program iptables in them")
	}
	for _, bin := range []string{"ip", "iptables", "iptables-restore", "iptables-save"} {
		if _, err := exec.LookPath(bin); err != nil {
			tb.Skipf("needs %s: %v", bin, err)
		}
	}
}

// requireNFT skips unless the kernel takes the nftables backend's table
// (checked in a namespace of its own) and the nft command is there for
// the test to inspect and damage it.
func requireNFT(tb testing.TB) {
	tb.Helper()
	if _, err := exec.LookPath("nft"); err != nil {
		tb.Skipf("needs nft: %v", err)
	}
	ns := newNetns(tb, "probe")
	var err error
	inNetns(tb, ns, func() { err = ProbeNFTables() })
	if err != nil {
		tb.Skipf("kernel refuses the nftables backend: %v", err)
	}
}

var nsCounter atomic.Int64

func sh(tb testing.TB, args ...string) {
	tb.Helper()
	if out, err := exec.Command(args[0], args[1:]...).CombinedOutput(); err != nil {
		tb.Fatalf("%s: %v: %s", strings.Join(args, " "), err, out)
	}
}

// newNetns creates a namespace and deletes it (with every link in it) at
// the end of the test.
func newNetns(tb testing.TB, role string) string {
	tb.Helper()
	name := fmt.Sprintf("shoal-t%d-%d-%s", os.Getpid(), nsCounter.Add(1), role)
	sh(tb, "ip", "netns", "add", name)
	tb.Cleanup(func() {
		if out, err := exec.Command("ip", "netns", "del", name).CombinedOutput(); err != nil {
			tb.Errorf("ip netns del %s: %v: %s", name, err, out)
		}
	})
	sh(tb, "ip", "-n", name, "link", "set", "lo", "up")
	return name
}

// inNetns runs fn on a thread switched into namespace ns. Sockets opened
// and processes started by fn live in ns.
func inNetns(tb testing.TB, ns string, fn func()) {
	tb.Helper()
	runtime.LockOSThread()
	orig, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	defer orig.Close()
	target, err := os.Open("/run/netns/" + ns)
	if err != nil {
		runtime.UnlockOSThread()
		tb.Fatal(err)
	}
	defer target.Close()
	if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
		runtime.UnlockOSThread()
		tb.Fatalf("setns %s: %v", ns, err)
	}
	defer func() {
		// If the way back fails the thread stays locked and dies with
		// the goroutine instead of serving others in the wrong namespace.
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			tb.Errorf("setns back: %v", err)
			return
		}
		runtime.UnlockOSThread()
	}()
	fn()
}

// echoServers serves, in namespace ns, TCP and UDP on the given ports:
// each answers "<id> <client address>".
func echoServer(tb testing.TB, ns, id string, tcpPort, udpPort int) {
	tb.Helper()
	var ln net.Listener
	var pc net.PacketConn
	inNetns(tb, ns, func() {
		var err error
		if ln, err = net.Listen("tcp4", fmt.Sprintf(":%d", tcpPort)); err != nil {
			tb.Fatal(err)
		}
		if pc, err = net.ListenPacket("udp4", fmt.Sprintf(":%d", udpPort)); err != nil {
			tb.Fatal(err)
		}
	})
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			fmt.Fprintf(c, "%s %s\n", id, host)
			c.Close()
		}
	}()
	go func() {
		defer wg.Done()
		buf := make([]byte, 512)
		for {
			_, addr, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			host, _, _ := net.SplitHostPort(addr.String())
			pc.WriteTo(fmt.Appendf(nil, "%s %s\n", id, host), addr)
		}
	}()
	tb.Cleanup(func() {
		ln.Close()
		pc.Close()
		wg.Wait()
	})
}

func readLine(c net.Conn) (string, error) {
	line, err := bufio.NewReader(c).ReadString('\n')
	return strings.TrimSpace(line), err
}

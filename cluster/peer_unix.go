//go:build unix

package cluster

import (
	"net"
	"syscall"
)

// peerClosed reports whether the other end of an idle TCP connection has
// closed it (or sent bytes nobody asked for), without blocking: a
// non-blocking MSG_PEEK sees EOF if the FIN has arrived.
func peerClosed(c net.Conn) bool {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return true
	}
	closed := false
	var buf [1]byte
	err = rc.Read(func(fd uintptr) bool {
		_, _, rerr := syscall.Recvfrom(int(fd), buf[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
		// EAGAIN: nothing to read, still open. Anything else (EOF, an
		// error, or unsolicited bytes) makes it unusable.
		closed = !(rerr == syscall.EAGAIN || rerr == syscall.EWOULDBLOCK)
		return true // never wait for readiness
	})
	return closed || err != nil
}

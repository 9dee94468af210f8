//go:build unix

package endpoint

import (
	"errors"
	"net"
	"syscall"
)

// rawConn returns the raw connection of a TCP or Unix socket, for writes that must not
// wait; nil for others (TLS), whose writes then go through the flusher goroutine.
func rawConn(nc net.Conn) syscall.RawConn {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	return rc
}

// errWouldBlock means the socket took less than all of a write without waiting.
var errWouldBlock = errors.New("relay: socket send buffer full")

// writeNow writes what the socket takes at once, without waiting for it to drain.
func writeNow(rc syscall.RawConn, b []byte) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, err := syscall.Write(int(fd), b[n:])
			if m > 0 {
				n += m
			}
			if err == syscall.EINTR {
				continue
			}
			if err == syscall.EAGAIN {
				werr = errWouldBlock
				return true
			}
			if err != nil {
				werr = err
				return true
			}
			if m == 0 {
				werr = errWouldBlock
				return true
			}
		}
		return true // done, or not waiting for the socket
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

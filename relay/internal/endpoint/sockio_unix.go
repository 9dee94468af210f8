//go:build unix

package endpoint

import (
	"errors"
	"io"
	"net"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/globalsession/globalsession/internal/throttle"
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

// errWouldBlock means the socket took less than all of a write, or had nothing to read,
// without waiting.
var errWouldBlock = errors.New("relay: socket would block")

// sockCall makes a read or write system call on a non-blocking socket. It never blocks, so
// it goes without the scheduler's bookkeeping for calls that may (syscall.Read and Write
// do it, and it wakes the runtime's monitor thread now and then), which is a measurable
// part of answering a small request.
func sockCall(trap uintptr, fd uintptr, b []byte) (int, syscall.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	for {
		n, _, e := unix.RawSyscall(trap, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		if e == syscall.EINTR {
			continue
		}
		if e != 0 {
			return 0, e
		}
		return int(n), 0
	}
}

// writeNow writes what the socket takes at once, without waiting for it to drain.
func writeNow(rc syscall.RawConn, b []byte) (int, error) { return writeRaw(rc, b, false) }

// writeRaw writes b through the raw connection, each write without the scheduler's
// bookkeeping for calls that may block (see sockCall). When the socket's buffer is full
// it waits for the socket (through the runtime's poller, within the write deadline) if
// wait is set, and otherwise stops there with errWouldBlock.
func writeRaw(rc syscall.RawConn, b []byte, wait bool) (int, error) {
	var n int
	var werr error
	err := rc.Write(func(fd uintptr) bool {
		for n < len(b) {
			m, e := sockCall(unix.SYS_WRITE, fd, b[n:])
			switch {
			case e == syscall.EAGAIN || (e == 0 && m == 0):
				if wait {
					return false // wait until the socket takes more
				}
				werr = errWouldBlock
				return true
			case e != 0:
				werr = e
				return true
			}
			n += m
		}
		return true
	})
	if err != nil {
		return n, err
	}
	return n, werr
}

// monitorWakes lets a reader wake the runtime's monitor thread at most once every
// wakeEvery in the process.
var monitorWakes throttle.Throttle

// wakeEvery is the least time between two wake-ups of the monitor thread.
const wakeEvery = 50 * time.Microsecond

// wakeMonitor makes one system call with the scheduler's bookkeeping (getpid), at most
// once every wakeEvery in the process, when a reader finds its socket empty and is about
// to wait for it. Entering such a call wakes the runtime's monitor thread when the process
// had gone idle, and while that thread runs, idle processors are slower to halt: the reply
// that ends the wait is taken sooner, a third of a single request's round trip on this
// machine's virtual processors. Raw reads and writes (sockCall) never wake it; under load
// the monitor is awake anyway and the call is rare.
func wakeMonitor() {
	if !monitorWakes.Allow(wakeEvery) {
		return
	}
	unix.Syscall(unix.SYS_GETPID, 0, 0, 0)
}

// rawReader reads a non-blocking socket through its raw connection: like the net.Conn's
// Read (it waits for the socket through the runtime's poller and keeps its deadlines), but
// each read goes without the scheduler's bookkeeping for calls that may block (see
// sockCall).
type rawReader struct{ rc syscall.RawConn }

func (r rawReader) Read(p []byte) (int, error) {
	var n int
	var rerr error
	err := r.rc.Read(func(fd uintptr) bool {
		m, e := sockCall(unix.SYS_READ, fd, p)
		switch {
		case e == syscall.EAGAIN:
			wakeMonitor()
			return false // wait until the socket is readable
		case e != 0:
			rerr = e
		case m == 0 && len(p) > 0:
			rerr = io.EOF
		}
		n = m
		return true
	})
	if err != nil {
		return n, err
	}
	return n, rerr
}

// writeAll writes all of b, waiting for the socket whenever its buffer is full (see
// writeRaw).
func writeAll(rc syscall.RawConn, b []byte) (int, error) { return writeRaw(rc, b, true) }

// rawIOConn is a TCP connection whose reads and writes go through raw system calls (see
// rawReader and writeAll): the socket under a TLS connection, whose own reads and writes
// then cost no scheduler bookkeeping either.
type rawIOConn struct {
	net.Conn
	r  rawReader
	rc syscall.RawConn
}

func (c *rawIOConn) Read(p []byte) (int, error)  { return c.r.Read(p) }
func (c *rawIOConn) Write(p []byte) (int, error) { return writeAll(c.rc, p) }

// withRawIO returns nc with raw reads and writes where it is a socket, else nc itself.
func withRawIO(nc net.Conn) net.Conn {
	rc := rawConn(nc)
	if rc == nil {
		return nc
	}
	return &rawIOConn{Conn: nc, r: rawReader{rc}, rc: rc}
}

//go:build unix

package endpoint

import (
	"crypto/tls"
	"errors"
	"io"
	"net"
	"sync/atomic"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/globalsession/globalsession/internal/wire"
)

// rawSocket reads and writes a TCP or Unix socket through its raw connection (see
// sockCall). The callbacks it hands the raw connection are made once, with the state of a
// call in the rawSocket, so a read or write allocates nothing. Reads come from one
// goroutine at a time and so do writes (the connection's write lock, or the TLS
// connection's, orders them).
type rawSocket struct {
	rc    syscall.RawConn
	empty atomic.Uint64 // reads that found the socket empty
	// pollUntil (monoNow; 0 for never) is when a read that finds the socket empty stops
	// trying again at once and waits for it instead. Set and read by the reader.
	pollUntil int64

	rbuf   []byte
	rn     int
	rerr   error
	readFn func(fd uintptr) bool

	wbuf    []byte
	wn      int
	werr    error
	wait    bool
	writeFn func(fd uintptr) bool
}

// newRawSocket returns the raw socket under nc, or nil when nc is not a TCP or Unix
// socket (TLS), whose writes then go through the flusher goroutine.
func newRawSocket(nc net.Conn) *rawSocket {
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return nil
	}
	s := &rawSocket{rc: rc}
	s.readFn = s.readOnce
	s.writeFn = s.writeSome
	return s
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

// polling reports whether a read that found the socket empty should try again at once.
func (s *rawSocket) polling() bool { return s.pollUntil != 0 && monoNow() < s.pollUntil }

// pollSocket returns the raw socket a caller reads nc through: nc's own, or that under a
// TLS connection made with withRawIO; nil if there is none.
func pollSocket(nc net.Conn, raw *rawSocket) *rawSocket {
	if raw != nil {
		return raw
	}
	if tc, ok := nc.(*tls.Conn); ok {
		if rc, ok := tc.NetConn().(*rawIOConn); ok {
			return rc.s
		}
	}
	return nil
}

// writeNow writes what the socket takes at once, without waiting for it to drain.
func (s *rawSocket) writeNow(b []byte) (int, error) { return s.write(b, false) }

// writeAll writes all of b, waiting for the socket whenever its buffer is full.
func (s *rawSocket) writeAll(b []byte) (int, error) { return s.write(b, true) }

// write writes b, each write without the scheduler's bookkeeping for calls that may block
// (see sockCall). When the socket's buffer is full it waits for the socket (through the
// runtime's poller, within the write deadline) if wait is set, and otherwise stops there
// with errWouldBlock.
func (s *rawSocket) write(b []byte, wait bool) (int, error) {
	s.wbuf, s.wn, s.werr, s.wait = b, 0, nil, wait
	err := s.rc.Write(s.writeFn)
	n, werr := s.wn, s.werr
	s.wbuf, s.werr = nil, nil
	if err != nil {
		return n, err
	}
	return n, werr
}

func (s *rawSocket) writeSome(fd uintptr) bool {
	for s.wn < len(s.wbuf) {
		m, e := sockCall(unix.SYS_WRITE, fd, s.wbuf[s.wn:])
		switch {
		case e == syscall.EAGAIN || (e == 0 && m == 0):
			if s.wait {
				return false // wait until the socket takes more
			}
			s.werr = errWouldBlock
			return true
		case e != 0:
			s.werr = e
			return true
		}
		s.wn += m
	}
	return true
}

// Read reads the socket like the net.Conn's Read (it waits for the socket through the
// runtime's poller and keeps its deadlines), but each read goes without the scheduler's
// bookkeeping for calls that may block (see sockCall).
func (s *rawSocket) Read(p []byte) (int, error) {
	s.rbuf, s.rn, s.rerr = p, 0, nil
	err := s.rc.Read(s.readFn)
	n, rerr := s.rn, s.rerr
	s.rbuf, s.rerr = nil, nil
	if err != nil {
		return n, err
	}
	return n, rerr
}

// pump reads the socket into in, calling consume after each read that brings bytes,
// until a read or consume fails or the socket is closed. Until s.pollUntil a read that
// finds the socket empty is tried again at once instead of waiting. It waits for the
// socket to be readable within one RawConn.Read, so the readiness the runtime's poller
// reports while consume runs is kept for the next wait; and so, after a read that leaves
// the socket empty (it took less than the room it had, and left no frame half-read), it
// waits for readiness again instead of making the read that would find the socket empty
// and then wait: per batch of requests one read, as in an event loop, instead of two.
// consume runs within the wait, so it must not close the socket itself (conn.close closes
// it from a goroutine of its own).
func (s *rawSocket) pump(in *wire.Buffer, consume func() error) error {
	var err error
	wait := func(fd uintptr) bool {
		for {
			room, e := in.Space()
			if e != nil {
				err = e
				return true
			}
			n, errno := sockCall(unix.SYS_READ, fd, room)
			switch {
			case errno == syscall.EAGAIN:
				if s.polling() {
					continue
				}
				s.empty.Add(1)
				return false // wait until the socket is readable
			case errno != 0:
				err = errno
				return true
			case n == 0:
				err = in.EOF()
				return true
			}
			in.Wrote(n)
			if e := consume(); e != nil {
				err = e
				return true
			}
			if n < len(room) && !in.MidFrame() {
				return false // the socket is empty: wait for its next bytes
			}
			// The socket filled the room, or ended mid-frame: read again. A peer's end
			// that came with the bytes just read shows only in the next read, and the
			// poller, whose readiness it shared, will not report it again: a peer that
			// sent part of a frame and closed would be kept until a timer ended it.
		}
	}
	if e := s.rc.Read(wait); e != nil {
		return e
	}
	return err
}

func (s *rawSocket) readOnce(fd uintptr) bool {
	m, e := sockCall(unix.SYS_READ, fd, s.rbuf)
	for e == syscall.EAGAIN && s.polling() {
		m, e = sockCall(unix.SYS_READ, fd, s.rbuf)
	}
	switch {
	case e == syscall.EAGAIN:
		s.empty.Add(1)
		return false // wait until the socket is readable
	case e != 0:
		s.rerr = e
	case m == 0 && len(s.rbuf) > 0:
		s.rerr = io.EOF
	}
	s.rn = m
	return true
}

// shutdown ends both directions of the socket at once, without waiting for a reader
// within its wait (which Close does): the peer sees the end, and the reader's wait ends.
func (s *rawSocket) shutdown() {
	_ = s.rc.Control(func(fd uintptr) { _ = unix.Shutdown(int(fd), unix.SHUT_RDWR) })
}

// rawIOConn is a TCP connection whose reads and writes go through raw system calls (see
// rawSocket): the socket under a TLS connection, whose own reads and writes then cost no
// scheduler bookkeeping either.
type rawIOConn struct {
	net.Conn
	s *rawSocket
}

func (c *rawIOConn) Read(p []byte) (int, error)  { return c.s.Read(p) }
func (c *rawIOConn) Write(p []byte) (int, error) { return c.s.writeAll(p) }

// withRawIO returns nc with raw reads and writes where it is a socket, else nc itself.
func withRawIO(nc net.Conn) net.Conn {
	s := newRawSocket(nc)
	if s == nil {
		return nc
	}
	return &rawIOConn{Conn: nc, s: s}
}

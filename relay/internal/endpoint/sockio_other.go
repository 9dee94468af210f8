//go:build !unix

package endpoint

import (
	"errors"
	"net"
	"syscall"
)

// rawConn returns nil: without unix sockets, writes that must not wait go through the
// flusher goroutine.
func rawConn(net.Conn) syscall.RawConn { return nil }

var errWouldBlock = errors.New("relay: socket would block")

func writeNow(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }

func writeAll(syscall.RawConn, []byte) (int, error) { return 0, errWouldBlock }

type rawReader struct{ rc syscall.RawConn }

func (rawReader) Read([]byte) (int, error) { return 0, errWouldBlock }

func withRawIO(nc net.Conn) net.Conn { return nc }

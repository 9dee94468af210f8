//go:build !unix

package endpoint

import (
	"errors"
	"net"
	"sync/atomic"

	"github.com/globalsession/globalsession/internal/wire"
)

// rawSocket is not used without unix sockets: writes that must not wait go through the
// flusher goroutine.
type rawSocket struct {
	empty     atomic.Uint64 // reads that found the socket empty: none here
	pollUntil int64         // unused: nothing polls here
}

// newRawSocket returns nil: there are no raw sockets here.
func newRawSocket(net.Conn) *rawSocket { return nil }

var errWouldBlock = errors.New("relay: socket would block")

func (*rawSocket) writeNow([]byte) (int, error) { return 0, errWouldBlock }

func (*rawSocket) writeAll([]byte) (int, error) { return 0, errWouldBlock }

func (*rawSocket) Read([]byte) (int, error) { return 0, errWouldBlock }

func (*rawSocket) shutdown() {}

func (*rawSocket) pump(*wire.Buffer, func() error) error { return errWouldBlock }

func withRawIO(nc net.Conn) net.Conn { return nc }

// pollSocket returns nil: without raw sockets nothing polls.
func pollSocket(net.Conn, *rawSocket) *rawSocket { return nil }

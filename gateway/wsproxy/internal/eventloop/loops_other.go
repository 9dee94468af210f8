//go:build !linux

package eventloop

import (
	"errors"
	"net"

	"github.com/globalsession/globalsession/gateway/wsproxy/internal/tlsrecord"
)

// Loops is the event-loop data path, which only Linux has (loops_linux.go); elsewhere
// New returns nil and every proxied connection uses the proxy's goroutine pipe.
type Loops struct{}

// New returns nil: this system has no event loops.
func New(Config) *Loops { return nil }

// Pair is a pair of connections a loop relays; there are none on this system.
type Pair struct{}

// End does nothing: there are no pairs on this system.
func (p *Pair) End(int, string) {}

// Take fails: this system has no event loops.
func (t *Loops) Take(net.Conn, net.Conn, *tlsrecord.Stream, []byte, func()) (*Pair, error) {
	return nil, errors.New("gateway: no event loop on this system")
}

// Stats reports no loops.
func (t *Loops) Stats() Stats { return Stats{} }

// Shutdown does nothing.
func (t *Loops) Shutdown() {}

// Release does nothing.
func (t *Loops) Release() {}

//go:build !linux

package gateway

import (
	"errors"
	"net"
)

// tunnels is the event-loop data path, which only Linux has (tunnel_linux.go); elsewhere
// every proxied connection uses the goroutine pipe.
type tunnels struct{}

func newTunnels(*ProxyConfig) *tunnels { return nil }

func (t *tunnels) take(net.Conn, net.Conn, []byte, func()) error {
	return errors.New("gateway: no event loop on this system")
}

func (t *tunnels) open() int { return 0 }

func (t *tunnels) shutdown() {}

func (t *tunnels) release() {}

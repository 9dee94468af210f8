package wsproxy

import (
	"crypto/tls"
	"net"

	"github.com/globalsession/globalsession/gateway/wsproxy/internal/tlsrecord"
)

// NewTLSListener is tls.NewListener for a server that proxies wss:// connections: the
// proxy relays a browser's TLS connection accepted from it on its event loops, as it
// relays a plain one, instead of on a pair of goroutines. After the WebSocket upgrade
// crypto/tls hands the connection's record layer over (TLS 1.3 only; a TLS 1.2 connection
// stays on the goroutine pipe), and the loop encrypts and decrypts its records, handling
// key updates and close_notify. To learn each connection's traffic secrets the listener
// runs every handshake with a clone of config whose KeyLogWriter is the connection's own
// (config's own KeyLogWriter still receives every line).
//
// Every connection accepted is a *tls.Conn, usable by any handler of the server, as one
// of tls.NewListener's. Its reads hand crypto/tls one record at a time, which costs a
// system call or two more per request than tls.NewListener's.
func NewTLSListener(inner net.Listener, config *tls.Config) net.Listener {
	return tlsrecord.NewListener(inner, config)
}

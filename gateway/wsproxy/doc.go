// Package wsproxy is the gateway's WebSocket reverse proxy. A Proxy completes a browser's
// upgrade only once the backend its Route chose has accepted the connection, then relays
// frames both ways with the peers' own close codes, read limits, write deadlines and
// keepalive pings; SessionRoute routes by the login session, through a session service. On
// Linux, connections are relayed by a few epoll event loops (batching their socket calls
// through io_uring where the kernel has it) instead of two goroutines each: those that are
// plain TCP on both sides, and the browsers' wss:// connections accepted through
// NewTLSListener (TLS 1.3; the loops protect the records after crypto/tls's handshake).
//
// It is not a general HTTP reverse proxy (it accepts WebSocket upgrades only), it does not
// log users in or keep sessions (package gateway does; SessionRoute only reads them), and
// it does not choose backends itself (a Router, such as the discovery package's session
// service, does).
package wsproxy

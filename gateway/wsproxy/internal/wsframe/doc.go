// Package wsframe follows the frame headers of a WebSocket stream (RFC 6455 section 5.2)
// without decoding payloads, so that the proxy's event loops can relay a stream as its
// bytes arrive and still refuse a message over the limit, check close codes, and put pings
// and close frames between frames; it also encodes those control frames, and names the
// payload of the proxy's keepalive pings, which the goroutine pipe uses too. It is
// internal to the proxy. It is not a WebSocket implementation: it does no handshake, does not
// unmask or assemble messages, and never reads from or writes to a connection.
package wsframe

// Package eventloop relays proxied WebSocket connections on Linux with a few event loops
// instead of goroutines: the proxy hands a browser's and a backend's TCP connection to
// Loops.Take (the browser's with its TLS record layer, for wss://), and a loop waiting in
// epoll moves each side's bytes to the other as they arrive, reading only frame headers
// (to enforce the message limit and close codes, and to put keepalive pings and close
// frames between frames), with its socket calls batched through io_uring where the kernel
// allows it and made one by one where it does not. It is internal to the proxy. It is not
// a WebSocket implementation (no handshake, no messages decoded) nor a TLS one (the
// handshake is crypto/tls's; package tlsrecord protects the records), and elsewhere than
// on Linux it does nothing: New returns nil.
package eventloop

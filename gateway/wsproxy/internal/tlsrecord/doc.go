// Package tlsrecord carries on the record layer of a TLS 1.3 connection that crypto/tls
// has established, so that the proxy's event loops can relay a browser's wss:// connection
// as they relay a plain one.
//
// A gateway accepts connections through Listener, whose connections (Conn) follow, from
// outside crypto/tls, what it reads and writes: they learn the traffic secrets through the
// configuration's KeyLogWriter, count the application data records each way, and hand
// crypto/tls one record at a time, so that it never holds bytes it has not processed.
// Once the WebSocket upgrade is done, Handoff returns the connection's Stream (keys and
// sequence numbers of both directions) and its TCP connection, and the event loop decrypts
// and encrypts records with the Stream from then on. Key updates and close_notify are
// handled; anything else after the handshake (renegotiation does not exist in TLS 1.3) is
// an error. A connection that cannot be handed over (TLS 1.2, a key update before the
// upgrade, the middle of a record) stays with crypto/tls; one whose peer sent data that
// crypto/tls decrypted and nobody read (ErrDataHeld) is for the caller to close.
//
// It is internal to the proxy. It is not a TLS implementation: no handshake, no
// certificates, no TLS 1.2; crypto/tls does all of that.
package tlsrecord

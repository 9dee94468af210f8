// Package wsconn holds the ways the gateway's WebSocket endpoints (the proxy's goroutine
// pipe and the broker) end a github.com/gorilla/websocket connection: a close frame with a
// code that may go on the wire, and a close that does not lose the last frames. It is
// internal to the gateway; it does not read, write or relay messages.
package wsconn

// Package endpoint holds both ends of the relay protocol, the binary frame protocol of
// internal/wire that every hop of global-sessions speaks over TCP, TLS or an inherited
// socket pair: the Client that dials a server, and the Server that accepts clients. The
// relay tier (package relay) is built on top of it.
//
// What it is not: it knows nothing of tables, relief servers, outboxes, hints or key
// ownership. A Server hands the entry requests it receives (get, set, publish, delete,
// evict) to its Handler, and a Client hands those it receives to its Backend; what they
// mean is the tier's business.
//
// # Connections
//
// Either end of a connection may send requests; each is matched to its reply by id, so
// many are in flight at once. One goroutine reads, and only when the socket has bytes: it
// stays within one wait on the socket's readiness and handles what each read brings there,
// so it never makes a read that finds the socket empty. On a client's connection a caller
// alone in flight reads its own reply instead, sparing the hand-off from the reader
// goroutine (sharedread.go); the reader goroutine reads for the others, for pushes and
// for an idle connection. Writers share a buffered writer
// and the last writer in line flushes, so concurrent requests leave in few system calls,
// and the replies to a batch of pipelined requests leave in one write; on a client, the
// requests that callers send as soon as a batch of replies answered them leave together
// too (the last of those callers flushes). Replies never wait for the socket, so two peers
// whose send buffers are full never wedge each other. Both ends ping an idle connection
// and close it when the peer stays silent for two intervals.
//
// # Client
//
// A Client keeps one connection to one server and shares it between goroutines. Requests
// carry the context's deadline (RequestTimeout when it has none) and fail with ErrTimeout,
// ErrUnavailable or ErrClosed rather than wait forever. The client reconnects with
// exponential backoff and jitter when the connection is lost, detects a silent peer with
// heartbeats, and re-subscribes on every new connection (subscriptions, queue
// memberships, streams). A request in flight when the connection is lost is sent once
// more on the next one; every operation is idempotent. Requests the server sends to the
// client go to ClientConfig.Backend (a relief server answers its sibling this way).
//
// # Server
//
// A Server accepts connections and runs the hello: the protocol version, the shared
// secret (not asked of the link a child inherits from its parent), a hello deadline and a
// bound on open connections. It answers pings, keeps the subscriptions of each path
// (FanOut delivers a message to them; Subscribers and Generation let a role derive what it
// needs from them) and the queues below, and counts connections and requests
// (ServerStats). The rest goes to its Handler with the requesting Peer, which the handler
// answers through the Peer's Reply methods and may send requests of its own (Get, Send).
//
// A ChangeStream numbers the changes a server publishes on a path and keeps the latest of
// them, so a subscriber that reconnects (Client.SubscribeStream) gets the changes it
// missed, or learns that it missed more than the server kept (a gap).
//
// # Queues
//
// Every server also brokers work: clients Join a path's queue under a label, and a Request
// on that path goes to one member at a time, the one with the fewest requests in flight
// (taking turns among equals); the member's answer is the requester's reply. A member whose
// connection is lost while it holds a request loses the request to another member (up to
// QueueAttempts members in all), so a request may be handled twice (at least once, not
// exactly once: make handlers idempotent); with no member left the requester gets an
// error, never silence. A request sent while the queue has no member waits, within its
// deadline, for the first to join. A member leaves when it calls Leave or its connection
// drops, so Members always lists the live ones.
//
// # Faults
//
// A peer that sends a malformed or oversized frame (or an HTTP request) is disconnected
// with a logged reason; a subscriber that does not keep up with its messages is
// disconnected rather than allowed to hold up publishers; a peer that does not read what
// is sent to it is disconnected; nothing one peer does affects the others' connections.
package endpoint

// Package gateway is the front door of global-sessions for browsers: login and session
// cookies, the WebSocket proxy that routes each session to its backend, and the push hub.
//
// # Sessions
//
// A login (Login, with an Authenticator: Anonymous, UsersFile with bcrypt hashes, or your
// own) creates a Session: a random 256-bit id in a cookie (HttpOnly, SameSite=Lax, Secure
// over TLS) naming a record in the session store, a sessioncache.Manager, so every process
// of the host and every host behind the relay tier sees it. The record holds the user's
// identity and a JWT the gateway signs (TokenSigner, HS256 or ES256) for the backends; the
// browser never sees the JWT. Sessions slide: a use after half the TTL extends it, never
// past MaxAge. Logout deletes the session everywhere.
//
// # The WebSocket proxy
//
// A Proxy completes a browser's upgrade only once its Route has chosen a backend and the
// backend has accepted the connection, so a failure is a plain HTTP error (401 without a
// session, 403 for a foreign Origin, 503 with no healthy backend, 502 when it cannot be
// reached). SessionRoute is the seed's logic: login cookie, session, JWT (sent as
// Authorization: Bearer with the session header), session service. Frames then flow both
// ways: messages streamed (fragments are not buffered whole), pings and pongs passed
// through, the close handshake relayed with each side's own code (never the reserved 1005,
// 1006 or 1015 on the wire: a backend that vanishes is reported with 1011), a read limit in
// each direction, write deadlines and keepalive pings so a dead peer frees its resources.
// Shutdown closes the connections it holds with 1001, which http.Server.Shutdown would not.
//
// On Linux, a connection that is plain TCP on both sides is relayed by a few event loops
// (a goroutine each, waiting in epoll) that move its bytes as they arrive and read only the frame
// headers (to enforce the read limit and close codes, and to put pings and close frames
// between frames): an idle connection costs about 2 KiB and no goroutine, and a message one
// wake-up of a waiting thread. A loop reads all the sockets that are ready, and writes what
// it relays, in batches of one io_uring system call each where the kernel has io_uring
// (one call per socket otherwise). Connections over TLS, and all of them elsewhere or with
// ProxyConfig.GoroutinePipe, use two goroutines that decode and re-encode every frame.
//
// # The push hub
//
// A Hub (seed 001) is a WebSocket endpoint authenticated by the same cookie. Clients send
// JSON commands, {"type": name, "params": {...}}, from an extensible registry (Register):
// each command lists its required and optional parameters and has one handler, which does
// the setup and may add loop functions; a bad command gets a JSON error and the channel
// stays open. Channels are grouped per user: the tabs of a user share one short loop (5 s)
// and one long loop (3 min), every message (User.Send) reaches all of them, and the loops
// stop when the last tab closes. Every cycle first checks the session (and Validate); a
// session that ended gets an error and its channels are closed. With an EventSource (SSE
// is provided) the hub adds subscribe and unsubscribe over topics, one upstream
// subscription per topic for all its followers.
//
// # Broker mode, assignment and workers
//
// Seed 002's WebSocket service instances are gateway instances in broker mode. A Broker
// serves /ws/<group> to logged-in clients: each message goes on the relay to a worker
// queue (relay queues: exactly one live worker handles it, another one if the first dies
// holding it), and the worker's replies go to the sender, to one client (ToClient), or to
// every client of a group (ToGroup, a workbook) on whichever instance it is connected to:
// the instance that gets the replies delivers to its own members and publishes on the
// group's relay path, which reaches the other instances with members, each once. A failure
// is an error notice to the sender, never silence.
//
// Writing a worker is a Handler and NewWorker:
//
//	w, err := gateway.NewWorker(ctx, gateway.WorkerConfig{Relay: relayClient,
//		Handler: gateway.HandlerFunc(func(ctx context.Context, m *gateway.Message) ([]gateway.Reply, error) {
//			return []gateway.Reply{gateway.ToGroup(m.Group, m.Data)}, nil
//		})})
//
// Instances and workers register on start and disappear when their relay connection drops.
// MemberProvider lists the live instances for a discovery.Service, and an Assigner (the
// seed's main server duty) tells a client which instance to use for a group, chosen by a
// discovery.SessionService and recorded in the session so the client keeps it while it is
// healthy. A client whose instance dies sees its connection close, asks again, gets a live
// instance and rejoins its group.
package gateway

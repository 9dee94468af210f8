// Package relay is the relay tier of global-sessions: the client front ends use, the
// midway relay, and the sibling endpoint that pressure-relief servers connect to.
//
// # Shape
//
//	front end (sessioncache.Manager) --Client--> Relay --Backend--> Sibling <--Client-- relief
//
// Every hop speaks the binary frame protocol of internal/wire over TCP, TLS or (between a
// relay and a child sibling) an inherited socket pair. Either end of a connection may send
// requests; each is matched to its reply by id, so many are in flight at once.
//
// # Client
//
// A Client keeps one connection to one server and shares it between goroutines. Requests
// carry the context's deadline (RequestTimeout when it has none) and fail with ErrTimeout,
// ErrUnavailable or ErrClosed rather than wait forever. The client reconnects with
// exponential backoff and jitter when the connection is lost, detects a silent peer with
// heartbeats, and re-subscribes on every new connection. A request in flight when the
// connection is lost is sent once more on the next one; every operation is idempotent.
//
// # Relay
//
// A Relay serves front ends. It keeps its own shared-memory table (it creates it), and for
// its auth path it stores publications in the table, hands them to the tier below (its
// Lower Backend, the sibling) and delivers them to the other subscribed front ends. A Get
// that misses the table asks the sibling and keeps the answer. Deletes reach the table, the
// sibling and the subscribers; a deleted key is refused from the sibling for TombstoneTTL
// so an answer already on its way cannot bring it back. Entries the table evicts are handed
// to the sibling as evictions. Other paths are plain publish/subscribe.
//
// # Queues
//
// Every server also brokers work: clients Join a path's queue under a label, and a Request
// on that path goes to exactly one member, the one with the fewest requests in flight
// (taking turns among equals); the member's answer is the requester's reply. A member whose
// connection is lost while it holds a request loses the request to another member (up to
// QueueAttempts members in all); with no member left the requester gets an error, never
// silence. A member leaves when it calls Leave or its connection drops, so Members always
// lists the live ones: gateway instances register this way (see gateway.MemberProvider),
// and gateway workers serve their queue this way (see gateway.Worker).
//
// # Sibling
//
// A Sibling is the endpoint below the relay. Pressure-relief servers connect to it as
// clients and subscribe on the auth path; the sibling then sends them requests over those
// connections. It spreads keys over the servers of each kind by rendezvous hashing with
// replicas. New entries go to their expansion servers (and drop older versions from their
// aging servers), evictions to their aging servers, both as a stream without replies;
// deletions go to every relief server and are acknowledged; a miss of the relay asks the
// key's servers of both kinds, preferring an expansion server's answer. It runs in the relay's process, or as a child
// process (ChildSibling) that the relay starts, restarts when it dies, and stops on shutdown.
//
// # Faults
//
// A peer that sends a malformed or oversized frame is disconnected with a logged reason; a
// subscriber that does not keep up with its messages is disconnected rather than allowed to
// hold up publishers; nothing one peer does affects the others' connections.
package relay

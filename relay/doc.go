// Package relay is the relay tier of global-sessions: the midway relay, the sibling endpoint
// that pressure-relief servers connect to, and the client front ends use to reach them.
//
// # Shape
//
//	front end (sessioncache.Manager) --Client--> Relay --Backend--> Sibling <--Client-- relief
//
// Every hop speaks the binary frame protocol of internal/wire over TCP, TLS or (between a
// relay and a child sibling) an inherited socket pair. Either end of a connection may send
// requests; each is matched to its reply by id, so many are in flight at once.
//
// # Protocol
//
// The two ends of the protocol live in relay/internal/endpoint, which this package builds
// on and whose names it gives its importers: Client (and ClientConfig, Dial, NewClient),
// the server's ServerOptions and ServerStats, the Backend interfaces, and the errors. A
// Client keeps one connection to one server, shares it between goroutines, reconnects with
// backoff, detects a silent peer with heartbeats and re-subscribes on every connection;
// requests carry their context's deadline and fail with ErrTimeout, ErrUnavailable or
// ErrClosed rather than wait forever. Every server of this package (the Relay and the
// Sibling) is an endpoint server: it runs the hello, keeps subscriptions, fans messages
// out, brokers work queues (Client.Join and Client.Request: gateway instances register
// this way, see broker.MemberProvider in gateway/broker, and workers serve their queue
// this way, see broker.Worker), and disconnects a peer that misbehaves or does not keep
// up. What follows is the tier: what the relay and the sibling do with the entry requests
// the protocol hands them.
//
// # Relay
//
// A Relay serves front ends. It keeps its own shared-memory table (it creates it), and for
// its auth path it stores publications in the table, hands them to the tier below (its
// Lower Backend, the sibling) and delivers them to the other subscribed front ends. A Get
// that misses the table asks the sibling and keeps the answer. Other paths are plain
// publish/subscribe.
//
// Every version of a key carries a revision, and the relay's table keeps the newest one: a
// Delete leaves a tombstone (kept at least TombstoneTTL, and as long as the entry would
// have lived), so an older publication, or an answer from below already on its way, never
// brings a deleted key back. When the table has pushed a key's tombstone out to the tiers
// below, a write of that key older than what the table has pushed out (one held up in
// the network, say) is checked against the tiers below before it is accepted.
//
// What the tiers below must receive without fail, the entries the table evicts and the
// deletions, goes into the relay's outbox first (files beside its table, written before the
// entry leaves the table): the relay hands them to the sibling until the sibling confirms
// them, and a relay that was killed sends what is left when it starts again. New entries
// are handed to expansion relief on a best-effort basis, since the relay's table holds them
// and hands them to aging relief when it evicts them.
//
// A version that expired in the relay's table reads as the deletion of its revision: the
// relay answers from it without asking below and refuses older writes, and when the table
// takes the record back it hands that deletion down through the outbox (while the outbox
// is less than half full), so that no tier serves an older, longer-lived version of the
// key. What the tier below answers is cached as a copy, whose expiry (perhaps a relief
// server's cap) is not its version's: once it passes, the copy is not read as the deletion
// of its revision, nor handed down as one, in the table or in the outbox, but the relay
// still serves nothing older than it.
//
// The relay numbers the changes of its auth path and keeps the latest StreamBacklog of
// them, so a front end that reconnects gets the changes it missed (see Client's
// SubscribeStream and sessioncache.StreamRemote), or learns that it missed more than the
// relay kept. A publish with the strict write concern is answered once the key's aging
// relief servers hold the entry.
//
// # Sibling
//
// A Sibling is the endpoint below the relay. Pressure-relief servers connect to it as
// clients and subscribe on the auth path; the sibling then sends them requests over those
// connections. It spreads keys over the servers of each kind by rendezvous hashing of their
// stable ids, with replicas: over every relief server it has ever seen (recorded on disk)
// or is configured with, connected or not, so a server that is away keeps its keys. New
// entries go to their connected expansion servers as a stream without replies; evictions
// go to their aging servers and deletions to every relief server, with replies, and what
// an absent (or unresponsive) server should receive is kept for it in a hints file and
// handed over when it is back (hinted handoff, as in Dynamo and Cassandra); the sibling
// confirms to the relay once every owner has the change or it is kept for it. A miss of
// the relay asks the key's connected servers of both kinds and answers with the newest
// version among their answers. That answer is final when one of the key's aging servers
// that answered holds all it was given (nothing is kept for it as hints). Without one, a
// miss or a tombstone is not an answer (a newer version may have been pushed out to an
// aging server that is away), nor is an entry that no up-to-date server holds (a deletion
// kept as hints for the server that answered may have replaced it), nor an expansion
// server's version from before its connection (it may have missed the newer versions the
// relay streamed meanwhile): the front end gets an
// error (ErrOwnersBehind), as it does when a server failed, not a miss that would read as
// a logout or a session a logout ended. It runs in the relay's process, or as a child process
// (ChildSibling) that the relay starts, restarts when it dies, and stops on shutdown.
package relay

// Package relief provides the pressure-relief servers of global-sessions (the config files'
// full_edge mode): clients of the relay's sibling that take load and aged sessions off the
// relay.
//
// # Kinds
//
// An expansion server takes the newest entries, for a short while (Config.MaxLife, 15
// minutes by default), so capacity grows and shrinks with traffic. An aging server keeps
// the entries the relay's table pushed out under pressure, until they expire, so a session
// evicted by a burst of logins can still be recovered.
//
// The sibling spreads keys over the servers of each kind by rendezvous hashing of their
// IDs (relay.SiblingConfig.Replicas copies each, 1 by default, 2 recommended). A server
// keeps its keys while it is away: what it should receive meanwhile is kept for it by the
// sibling and handed over when it is back, so a server restarted with the same ID owns the
// same keys and misses nothing. When a new server joins, only the keys it comes to own
// move. A lookup asks the key's servers of both kinds at once, and the newest version
// among their answers wins.
//
// # Versions
//
// Every entry carries a revision and a store keeps only the newest version of each key. A
// deletion is a tombstone, kept until the entry it removed would have expired (and at
// least Config.TombstoneTTL), in the durable log too: an older entry arriving late, or
// replayed from a log after a restart, never brings a deleted session back.
//
// A version that expired reads as the deletion of its revision while the store keeps it
// (MemoryStore until its record is reused, LogStore and RedisStore for their
// KeepExpiredFor, an hour by default), and a deletion whose expiry has already passed (the
// relay hands down so each version that expired in its table) replaces an older entry the
// store holds, for as long as that entry would have lived, and is not kept otherwise. So a
// session set again with a shorter lifetime is not followed, once it expires, by the older
// and longer-lived version a server still held.
//
// # Stores
//
// A server keeps its entries in a Store: MemoryStore (a shared-memory LRU table of its
// own, the default), LogStore (a durable append-only log with an fsync policy and
// compaction, for aging servers that must keep what they acknowledged across restarts), or
// RedisStore (a Redis server or cluster, for aged sessions that outgrow the relief boxes).
//
// # Extending
//
// Embed *Server in a type of your own and override any of Get, Set, Delete and Evict,
// calling the embedded method to do the storing; pass your value to Start so the sibling's
// requests reach it. Client gives access to the connection, to publish or subscribe on
// paths of your own (for administration commands, say). examples/custom-relief shows it.
package relief

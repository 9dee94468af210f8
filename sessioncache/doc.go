// Package sessioncache keeps login sessions and other small, short-lived objects in a
// shared-memory LRU table that every process on a host can read and write.
//
// # Sharing a table
//
// A Table lives in a memory-mapped file on a shared-memory file system (/dev/shm by
// default). One process per host creates the section (Config.Create, the config files'
// manage_section or am_initializer); the others attach to it with the same Path. An
// attaching process checks the section's header (magic, layout version, el_count,
// record_size, max key size, seed, shards) against the non-zero fields of its Config and
// refuses a mismatch with a *LayoutError that names the field and both values. A creator
// that finds a section of the same shape reuses it, so sessions survive its restart; one of
// another shape is an error unless Config.Replace is set.
//
// # Entries
//
// A key and its value share one record of Config.RecordSize bytes; keys are at most
// Config.MaxKeySize bytes. Sizes are bytes. A Set that does not fit returns ErrValueTooLarge
// or ErrKeyTooLarge and changes nothing. Every entry carries an absolute expiry (or none);
// an expired entry is never returned (but by GetAppendIncludingExpired and to SetIf's
// decision, for callers that order versions), and its record is reused before any
// unexpired entry is evicted (Config.BeforeReclaim sees it go). The whole key is stored and compared on every Get: the hash only picks where to
// look, so two keys never read each other's value.
//
// # Eviction
//
// Each shard holds a fixed share of the records. When a shard is full, a Set evicts its
// least recently used entry by the CLOCK approximation of LRU (see evict.go): a Get marks
// its entry referenced without taking a lock, and the hand passes over referenced entries
// once. Unexpired evicted entries go to Config.OnEvict, so a caller can keep them in another
// tier instead of losing them.
//
// # Concurrency and crashes
//
// Any number of goroutines in any number of processes may use one table at once. Readers
// take no lock: each shard has a sequence counter that writers make odd while they change
// it, and a reader retries a lookup that overlapped a write, so it never sees a torn value
// (a seqlock). Writers take the shard's lock, a word in the shared memory that holds the
// owner's pid and process start time. A process killed while it holds a lock blocks the
// others for about a millisecond: a waiter sees in /proc that the owner is gone (or is a
// zombie, or its pid now names another process), takes the lock over and, if the dead
// writer stopped half-way, rebuilds the shard from its records, dropping the record that
// was being written. Verify checks every invariant of the layout.
//
// All processes sharing a table must see each other's pids, so they must share a pid
// namespace. Lock recovery reads /proc, so tables work on Linux only; Open returns
// ErrUnsupported elsewhere.
//
// # Memory
//
// The section is a 128-byte header, 192 bytes per shard, and el_count records of
// record_size bytes plus at most 48 bytes of overhead each (a 24-byte record header,
// padding to 8 bytes, 10 bytes of index and one bit of a bitmap that says which records are
// taken). Entries never live on the Go heap.
//
// # Manager and its guarantees
//
// A Manager is a host's view of the whole session tier: its table in front of one or more
// relays (see package relay), with the relief servers below them. With the relay, sibling
// and relief servers of this module it keeps these promises:
//
// Durability. Once Set returns nil, the entry stays readable from every host until it
// expires, is deleted, or is evicted for capacity with every relief tier full, through the
// loss of any one process (a front end, the relay, its sibling, any relief server: killed
// and restarted), a relief server that is away (what it should receive is kept for it), or
// a host cut off from the relay. By default Set is acknowledged once the relay holds the
// entry; with WriteDurable only once the key's aging relief servers hold it.
//
// Finality of Delete. Once Delete returns nil, no tier serves the key again: the deletion
// is a tombstone with a revision that every tier keeps until the entry would have expired,
// handed to relief servers that were away when they return, written to the aging log, and
// stronger than any older version, whatever order versions arrive in (revisions come from a
// hybrid clock on each host: see Entry.Rev). Once the newest version of a key expires, no
// tier serves an older one either: an expired version stands for the deletion of its
// revision in the relay's table and the relief servers' stores (see package relief for the
// limits).
//
// Bounded staleness on hosts. A connected host stops serving a deleted key as soon as the
// relay's change reaches it (one hop after the relay takes the delete). A host that lost
// every relay serves its local entries for at most StaleFor (counted from when it noticed:
// at once when the connection is closed, after two heartbeats when the link goes silent),
// then serves nothing from its table until a relay is back; on reconnection it resumes the
// relay's stream of changes where it stopped, and drops its local entries when the relay
// no longer has all it missed. The table records how far it has applied each relay's
// stream, so a process that attaches to a table nobody kept in sync catches up (or drops
// what the table holds) before NewManager returns.
package sessioncache

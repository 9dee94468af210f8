// Package wire is the binary frame protocol spoken on every hop of global-sessions: front
// end to relay, relay to sibling (over TCP, TLS or an inherited socket pair), and sibling to
// pressure-relief servers.
//
// # Frames
//
// A connection carries a stream of frames in both directions. Every frame is a 4-byte
// length prefix followed by that many bytes: a 36-byte header and three variable fields.
// Integers are big-endian.
//
//	offset size field
//	0      4    length   bytes after this field: 36 + path + key + value
//	4      1    version  2
//	5      1    op       see below
//	6      1    status   replies only (0 on every other frame)
//	7      1    flags    per op, see below
//	8      8    id       request id; on a message, its sequence number in the path's stream
//	                     of changes (0 when the sender keeps none)
//	16     8    expiry   absolute expiry, signed unix nanoseconds; 0 means none
//	24     8    rev      the revision of the entry or deletion the frame carries; 0: none
//	32     2    path_len
//	34     2    key_len
//	36     4    value_len
//	40     ...  path, key, value, in that order, exactly as long as their lengths say
//
// A receiver refuses a frame whose length exceeds its limit (1 MiB by default), whose
// version, op or status is unknown, or whose field lengths do not add up to its length; it
// then closes the connection, since it can no longer find the next frame boundary.
//
// # Operations
//
//	1  hello        first frame on a connection, from the side that dialed. value is one
//	                byte (the highest version the sender speaks) followed by the shared
//	                secret, if the server is configured with one; key is the sender's name.
//	                The answer is ok (value: one byte, the version to use) or error.
//	2  set          store key=value until expiry on path. Answer: ok.
//	3  get          fetch key on path. Answer: value (value, expiry, rev) or not found;
//	                a not found with a nonzero rev says the key was deleted at that
//	                revision (its tombstone lasts until expiry).
//	4  delete       remove key on path everywhere, as a deletion of revision rev, kept
//	                as a tombstone at least until expiry (0: the receiver's default).
//	                Answer: ok, flag 0x01 if it existed.
//	5  publish      store key=value on path if the receiver intercepts that path, and
//	                deliver it as a message to the path's other subscribers (flag 0x02 asks
//	                for no delivery). Answer: ok.
//	6  subscribe    deliver messages of path to this connection. Answer: ok.
//	7  unsubscribe  stop. Answer: ok.
//	8  ping         answer: ok. Either side may ping; a peer that does not answer within
//	                the heartbeat timeout is dead.
//	9  reply        the answer to a request, with the request's id. status: 0 ok, 1 value,
//	                2 not found, 3 error (value holds a UTF-8 message).
//	10 message      pushed to a subscriber, never answered; id 0. flag 0x01 means key was
//	                deleted, else key=value until expiry was published.
//	11 evict        key=value until expiry was pushed out of an upper tier's full table;
//	                keep it if you can (flag 0x01: it is a tombstone of revision rev).
//	                Answer: ok; flag 0x02 on it says the receiver knows no server to keep
//	                evictions and dropped it (a sibling no relief server ever joined).
//	12 request      hand key=value to one member of path's queue at a time (see below; at
//	                least once, not exactly once); expiry is the sender's deadline (0: the
//	                receiver's default), which does not travel to the member. Answer: the
//	                member's answer (ok or value with the member's value, or error).
//	13 members      list the members of path's queue. Answer: value, the members' labels
//	                separated by newlines.
//
// A subscribe or unsubscribe with flag 0x08 (queue) joins or leaves path's queue: key is
// the member's label (its advertised address, say; no newline), and the member stays in the
// queue until it leaves or its connection closes. The server hands each request on path to
// one member, the one with the fewest requests in flight (taking turns among equals), as a
// request of its own; when that member's connection is lost before it answered, the server
// tries another member, and answers error when none is left or none could answer. A member
// that answers error is not retried: the error goes back to the sender.
//
// A set or evict with flag 0x04 (no reply) is not answered and carries id 0: the sibling
// hands new entries to expansion relief servers this way, as a stream nothing waits on.
//
// An evict with flag 0x40 (batch) carries many hand-downs in one frame: key is empty and
// value holds evict and delete frames back to back, each with its length prefix (no batch
// inside a batch). The one answer, ok or error, is for all of them; a receiver that fails
// midway may have kept some, which does no harm since the sender hands the batch down again
// and every version carries a revision. A relay's outbox hands its evictions and deletions
// to the sibling this way, and the sibling hands each relief server its share. A relay
// itself answers a batch with an error.
//
// # Revisions
//
// Every set, publish, evict and delete carries a revision (rev): a receiver keeps, for each
// key, the version with the highest revision and ignores older ones, whatever order they
// arrive in; a deletion wins a tie, and is kept as a tombstone (until its expiry, or the
// expiry of the entry it removed if that is later) so that no older version can take the
// key's place. Revisions are hybrid clock readings of the writer (unix nanoseconds, moved
// past every revision the writer has seen). A frame with rev 0 is unordered: a relay gives
// it a revision of its own clock.
//
// # Streams of changes
//
// A relay numbers the changes (publishes and deletes) of its auth path from 1 within an
// epoch (a random number chosen when it starts), delivers them to the subscribers as
// messages whose id is that number, and keeps the latest of them. A subscribe with flag
// 0x10 (resume) carries in its value the stream's epoch and the last number the subscriber
// applied (8 bytes each; epoch 0: none). Its answer is a value: epoch (8 bytes), the current
// number (8), a mode (1: 0 complete, 1 gap, 2 partial) and the missed changes as message
// frames, each with its length prefix. Complete means every missed change is in the answer;
// partial that the first ones are (ask again from the last one); gap that the relay no
// longer has them (it restarted, or too much happened since), and the subscriber must drop
// or check what it holds. In every case the subscription is in place from the answer on.
//
// # Write concern
//
// A publish or set with flag 0x20 (durable) is answered once the key's aging relief
// servers hold the entry, and with an error when one of them is absent.
//
// # Requests and replies
//
// Either side may send requests. Each side numbers its own requests 1, 2, 3, ... on a
// connection, so ids increase monotonically, and sends every reply with the id of the
// request it answers; replies may come back in any order, and many requests may be in flight
// at once. Every reply has the same shape: the status says how to read it. A sender gives
// every request a deadline and fails it, never waiting forever, when no reply comes in time.
package wire

// Package wire is the binary frame protocol spoken on every hop of global-sessions: front
// end to relay, relay to sibling (over TCP, TLS or an inherited socket pair), and sibling to
// pressure-relief servers.
//
// # Frames
//
// A connection carries a stream of frames in both directions. Every frame is a 4-byte
// length prefix followed by that many bytes: a 28-byte header and three variable fields.
// Integers are big-endian.
//
//	offset size field
//	0      4    length   bytes after this field: 28 + path + key + value
//	4      1    version  1
//	5      1    op       see below
//	6      1    status   replies only (0 on every other frame)
//	7      1    flags    per op, see below
//	8      8    id       request id (0 on messages)
//	16     8    expiry   absolute expiry, signed unix nanoseconds; 0 means none
//	24     2    path_len
//	26     2    key_len
//	28     4    value_len
//	32     ...  path, key, value, in that order, exactly as long as their lengths say
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
//	3  get          fetch key on path. Answer: value (value, expiry) or not found.
//	4  delete       remove key on path everywhere. Answer: ok, flag 0x01 if it existed.
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
//	                keep it if you can. Answer: ok.
//	12 request      hand key=value to exactly one member of path's queue (see below); expiry
//	                is the sender's deadline (0: the receiver's default). Answer: the
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
// hands entries to pressure-relief servers this way, as a stream nothing waits on.
//
// # Requests and replies
//
// Either side may send requests. Each side numbers its own requests 1, 2, 3, ... on a
// connection, so ids increase monotonically, and sends every reply with the id of the
// request it answers; replies may come back in any order, and many requests may be in flight
// at once. Every reply has the same shape: the status says how to read it. A sender gives
// every request a deadline and fails it, never waiting forever, when no reply comes in time.
package wire

package sessioncache

import (
	"context"
	"time"
)

// Remote is a lower tier that a Manager falls through to and publishes to: a relay server,
// reached through a *relay.Client, which implements this interface.
type Remote interface {
	// Get returns the entry stored under key on path, or an error matching ErrNotFound.
	// With ErrNotFound, an Entry with Deleted set and a nonzero Rev says the key was
	// deleted at that revision.
	Get(ctx context.Context, path string, key []byte) (Entry, error)
	// Publish stores the entry on path and delivers it to the path's other subscribers.
	Publish(ctx context.Context, path string, key []byte, e Entry) error
	// Delete removes key from path everywhere below and from other subscribers, as a
	// deletion of revision e.Rev: no version of a lower revision is kept or served after it.
	// e.Expiry says how long the tombstone must be kept; zero leaves it to the receiver.
	Delete(ctx context.Context, path string, key []byte, e Entry) error
	// Subscribe delivers the changes other publishers make on path to fn until the Remote
	// is closed, across reconnections. fn must not block for long.
	Subscribe(ctx context.Context, path string, fn func(Change)) error
}

// Entry is one version of a key's entry as the tiers exchange it: the value with its
// expiry, or a deletion (a tombstone), ordered by its revision.
type Entry struct {
	// Value is the entry's value; empty for a deletion.
	Value []byte
	// Expiry is when the entry ends (the zero Time: never). For a deletion it is how long
	// the tombstone must be kept: until no version it overrides can still turn up.
	Expiry time.Time
	// Rev orders the versions of a key: a version with a higher revision replaces one with
	// a lower revision, never the other way round, and a deletion wins a tie. Revisions are
	// hybrid clock readings of the writing host (see Manager). 0 means unordered: such a
	// version always applies.
	Rev uint64
	// Deleted marks a tombstone: the key was deleted at Rev.
	Deleted bool
}

// Newer reports whether e should replace held, the version a tier holds for the same key:
// e has the higher revision, or the same one and is a deletion where held is not. A version
// of revision 0 always replaces.
func (e Entry) Newer(held Entry) bool {
	if e.Rev == 0 || held.Rev < e.Rev {
		return true
	}
	return held.Rev == e.Rev && e.Deleted && !held.Deleted
}

// Change is a publication or deletion made by another front end, delivered through a
// subscription.
type Change struct {
	Key     []byte
	Value   []byte    // empty when Deleted
	Expiry  time.Time // zero when none
	Deleted bool
	// Rev is the change's revision (see Entry.Rev).
	Rev uint64
	// Seq is the change's position in its server's stream of the path's changes, counted
	// from 1 (0 for paths the server keeps no stream of), and Epoch the stream's. A
	// subscriber that saw Seq n and reconnects resumes the stream after n.
	Seq, Epoch uint64
	// Event says what this is: a change of Key (the zero value), or a stream event of a
	// StreamRemote subscription, which carries no key.
	Event StreamEvent
}

// StreamPos is a position in a server's stream of a path's changes.
type StreamPos struct {
	// Epoch names the server's run: a server that restarts starts a new stream, and a
	// position of another epoch cannot be resumed. 0 means no position.
	Epoch uint64
	// Seq is the last change of the stream applied (changes count from 1).
	Seq uint64
}

// StreamEvent says what a Change delivered by a stream subscription is.
type StreamEvent uint8

// Stream events.
const (
	// StreamChange is a publication or deletion of Change.Key.
	StreamChange StreamEvent = iota
	// StreamResumed says the subscription is (again) in place and every change since the
	// position it was made from has been delivered: what the subscriber holds is current.
	StreamResumed
	// StreamGap says the subscription is (again) in place but changes were missed that the
	// server no longer has (it restarted, or the subscriber was away too long): what the
	// subscriber holds may be stale and must be dropped or checked.
	StreamGap
	// StreamLost says the connection was lost: changes may be missed until StreamResumed or
	// StreamGap.
	StreamLost
)

// StreamRemote is a Remote that numbers a path's changes and can resume them where a
// subscriber stopped (*relay.Client is one). A Manager subscribes this way, so that a host
// that was cut off, or a process that attaches to a table nobody kept in sync, does not
// serve a session that was deleted meanwhile.
type StreamRemote interface {
	Remote
	// SubscribeStream is Subscribe from position from: the changes after from that the
	// server still has are delivered first, then StreamResumed (or StreamGap when it does
	// not have them all), then the changes as they happen; on every reconnection the
	// subscription resumes after the last change delivered, with StreamLost when the
	// connection ends. Each change carries its Epoch and Seq.
	SubscribeStream(ctx context.Context, path string, from StreamPos, fn func(Change)) error
}

// DurableRemote is a Remote that can publish with the strict write concern: it answers once
// the entry is held durably below the relay (by the key's aging relief servers), and fails
// when that cannot be done. *relay.Client is one.
type DurableRemote interface {
	Remote
	PublishDurable(ctx context.Context, path string, key []byte, e Entry) error
}

// WriteConcern says when a Manager's Set is acknowledged.
type WriteConcern int

const (
	// WriteRelay acknowledges a Set once the key's relay holds the entry (the default):
	// the relay's table, and from there the tiers below, keep it through the loss of any
	// one process; an entry the tiers below cannot take is counted and logged.
	WriteRelay WriteConcern = iota
	// WriteDurable acknowledges a Set only once the key's aging relief servers hold the
	// entry durably (as Redis WAIT or Kafka acks=all), and returns an error when they
	// cannot be reached.
	WriteDurable
)

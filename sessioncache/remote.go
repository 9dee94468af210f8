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
	// from 1 (0 for paths the server keeps no stream of). A subscriber that saw Seq n and
	// reconnects resumes the stream after n.
	Seq uint64
}

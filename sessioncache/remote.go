package sessioncache

import (
	"context"
	"time"
)

// Remote is a lower tier that a Manager falls through to and publishes to: a relay server,
// reached through a *relay.Client, which implements this interface.
type Remote interface {
	// Get returns the entry stored under key on path, or an error matching ErrNotFound.
	Get(ctx context.Context, path string, key []byte) (value []byte, expiry time.Time, err error)
	// Publish stores the entry on path and delivers it to the path's other subscribers.
	Publish(ctx context.Context, path string, key, value []byte, expiry time.Time) error
	// Delete removes key from path everywhere below and from other subscribers.
	Delete(ctx context.Context, path string, key []byte) error
	// Subscribe delivers the changes other publishers make on path to fn until the Remote
	// is closed, across reconnections. fn must not block for long.
	Subscribe(ctx context.Context, path string, fn func(Change)) error
}

// Change is a publication or deletion made by another front end, delivered through a
// subscription.
type Change struct {
	Key     []byte
	Value   []byte    // empty when Deleted
	Expiry  time.Time // zero when none
	Deleted bool
}

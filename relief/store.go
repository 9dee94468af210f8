package relief

import (
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// ErrNotFound means a store has no unexpired entry for a key. It is
// sessioncache.ErrNotFound, so one value is tested for everywhere.
var ErrNotFound = sessioncache.ErrNotFound

// Store is where a relief server keeps its entries. Implementations must be safe for
// concurrent use, must never return an expired entry, and own the slices they are given
// only for the duration of a call.
type Store interface {
	// Get returns the value and expiry stored under key, or ErrNotFound.
	Get(key []byte) (value []byte, expiry time.Time, err error)
	// Set stores value under key until expiry (the zero Time means no expiry).
	Set(key, value []byte, expiry time.Time) error
	// Delete removes key; deleting a missing key is not an error.
	Delete(key []byte) error
	// Len returns the number of entries held, including expired ones not yet reclaimed.
	Len() int
	// Close releases the store.
	Close() error
}

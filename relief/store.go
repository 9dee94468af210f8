package relief

import (
	"context"

	"github.com/globalsession/globalsession/sessioncache"
)

// ErrNotFound means a store has no unexpired entry for a key. It is
// sessioncache.ErrNotFound, so one value is tested for everywhere.
var ErrNotFound = sessioncache.ErrNotFound

// ErrClosed means the server or store was closed. It is sessioncache.ErrClosed.
var ErrClosed = sessioncache.ErrClosed

// Store is where a relief server keeps its entries and tombstones. Implementations must be
// safe for concurrent use, must never return an expired entry, and own the slices they are
// given only for the duration of a call.
//
// Every version carries a revision (sessioncache.Entry.Rev), and a store keeps only the
// newest version of a key (sessioncache.Entry.Newer), whatever order versions arrive in: a
// deletion is a tombstone that stays until its expiry, or until the entry it replaced would
// have expired if that is later, so no older version can come back.
type Store interface {
	// Get returns the version stored under key. It returns ErrNotFound when the store
	// holds no live entry; with a tombstone, the returned Entry has Deleted and Rev set.
	Get(ctx context.Context, key []byte) (sessioncache.Entry, error)
	// Put stores e (an entry, or a tombstone when e.Deleted) unless the store holds a
	// newer version, and reports whether it did.
	Put(ctx context.Context, key []byte, e sessioncache.Entry) (bool, error)
	// Len returns the number of entries and tombstones held, including expired ones not
	// yet reclaimed (an estimate where counting exactly would be costly). It is for status
	// pages and metrics, so it must not scan a large store.
	Len() int
	// Close releases the store.
	Close() error
}

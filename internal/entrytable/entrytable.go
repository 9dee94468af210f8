// Package entrytable keeps versioned entries and tombstones (sessioncache.Entry) in a
// sessioncache.Table, for the tiers that must order the versions of a key: the relay's
// table and the relief servers' memory stores. It is not a cache of its own: it adds a
// 9-byte envelope (revision and flags) in front of each value and a compare-and-set that
// keeps the newest version.
//
// The compare-and-set is one step under the key's lock in the table (sessioncache's
// SetIf), so any number of processes may read and write a table through this package.
package entrytable

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/globalsession/globalsession/internal/wallclock"
	"github.com/globalsession/globalsession/sessioncache"
)

// Overhead is how many bytes the envelope adds to a value in a record: size a table's
// RecordSize as the largest key and value plus Overhead.
const Overhead = 9

const (
	flagDeleted = 1
	// flagCopy marks a copy of a version kept for less long than the version itself may
	// live (a tier's answer cached): its expiry passing is not the version's.
	flagCopy = 2
)

// ErrBadEnvelope means a record of the table does not hold an envelope this package wrote.
var ErrBadEnvelope = errors.New("entrytable: record is not a versioned entry")

// Table is a sessioncache.Table holding versioned entries. It is safe for concurrent use.
type Table struct {
	t    *sessioncache.Table
	bufs sync.Pool
}

// New wraps t, which must hold only entries written through this package.
func New(t *sessioncache.Table) *Table {
	return &Table{t: t, bufs: sync.Pool{New: func() any { b := make([]byte, 0, 512); return &b }}}
}

// Raw returns the underlying table.
func (t *Table) Raw() *sessioncache.Table { return t.t }

// Prefetch tells the table which keys come next (see sessioncache.Table.Prefetch).
func (t *Table) Prefetch(keys [][]byte) { t.t.Prefetch(keys) }

// Encode appends e's envelope and value to dst.
func Encode(dst []byte, e sessioncache.Entry) []byte {
	return encode(dst, e, 0)
}

func encode(dst []byte, e sessioncache.Entry, flags byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, e.Rev)
	if e.Deleted {
		flags |= flagDeleted
	}
	dst = append(dst, flags)
	if e.Deleted {
		return dst
	}
	return append(dst, e.Value...)
}

// Decode reads an envelope written by Encode; the entry's Value points into b and its
// Expiry is left for the caller to set.
func Decode(b []byte) (sessioncache.Entry, error) {
	if len(b) < Overhead {
		return sessioncache.Entry{}, fmt.Errorf("%w: %d bytes", ErrBadEnvelope, len(b))
	}
	e := sessioncache.Entry{Rev: binary.BigEndian.Uint64(b), Deleted: b[8]&flagDeleted != 0}
	if !e.Deleted {
		e.Value = b[Overhead:]
	}
	return e, nil
}

// GetAppend returns the version of key the table holds, its value appended to dst. It
// returns ErrNotFound when the table holds no live entry: then a returned Entry with
// Deleted set is the key's tombstone. A version whose expiry has passed, while the table
// still keeps its record, reads as a tombstone of its revision (with its expiry): every
// older version of the key is gone too, wherever it is kept. A copy (PutCopy) whose expiry
// has passed reads as no entry.
func (t *Table) GetAppend(dst, key []byte) (sessioncache.Entry, error) {
	n := len(dst)
	b, exp, err := t.t.GetAppendIncludingExpired(dst, key)
	if err != nil {
		return sessioncache.Entry{}, err
	}
	e, err := Decode(b[n:])
	if err != nil {
		return sessioncache.Entry{}, fmt.Errorf("%w: key %q", err, key)
	}
	e.Expiry = exp
	if !exp.IsZero() && exp.UnixNano() <= wallclock.Nanos() {
		if IsCopy(b[n:]) {
			return sessioncache.Entry{}, sessioncache.ErrNotFound
		}
		e.Deleted, e.Value = true, nil
	}
	if e.Deleted {
		return e, sessioncache.ErrNotFound
	}
	// Move the value to where the caller's dst ends, so the result extends dst.
	v := append(b[:n], e.Value...)
	e.Value = v[n:]
	return e, nil
}

// Put stores e under key unless the table holds a newer version (see Entry.Newer), and
// reports whether it did. A version the table holds whose expiry has passed counts as a
// tombstone of its revision until its record is reclaimed: an older version does not
// replace it. A tombstone is kept at least until the entry it replaces would have expired.
// An entry or tombstone whose expiry has passed is not stored (Put reports false), but it
// still removes an older version; a tombstone then stays, as above, while the entry it
// replaces would still have lived (Put reports true).
func (t *Table) Put(key []byte, e sessioncache.Entry) (bool, error) {
	_, ok, err := t.PutHeld(key, e)
	return ok, err
}

// PutHeld is Put that also returns what the key held before: the live entry (its value
// is not returned) or tombstone, or the zero Entry.
func (t *Table) PutHeld(key []byte, e sessioncache.Entry) (sessioncache.Entry, bool, error) {
	return t.put(key, e, 0)
}

// PutCopy is Put of a copy of a version that the table may keep for less long than the
// version lives (e.Expiry is then the copy's, not the version's): a tier's answer kept as
// a cache. Once its expiry passes it reads as no entry (see GetAppend), not as the deletion
// of its revision; it still keeps older versions out while its record stays.
func (t *Table) PutCopy(key []byte, e sessioncache.Entry) (bool, error) {
	_, ok, err := t.put(key, e, flagCopy)
	return ok, err
}

// IsCopy reports whether an envelope (a record's value, as Decode reads it) was written by
// PutCopy.
func IsCopy(b []byte) bool { return len(b) >= Overhead && b[8]&flagCopy != 0 }

func (t *Table) put(key []byte, e sessioncache.Entry, flags byte) (sessioncache.Entry, bool, error) {
	var exp int64
	if !e.Expiry.IsZero() {
		exp = e.Expiry.UnixNano()
	}
	bp := t.bufs.Get().(*[]byte)
	defer t.bufs.Put(bp)
	*bp = encode((*bp)[:0], e, flags)
	var held sessioncache.Entry
	// The check and the write are one step under the key's lock (SetIf). An e whose expiry
	// has passed is not stored but removes the older version it would replace, or leaves a
	// tombstone as long as that version would have lived.
	stored, err := t.t.SetIf(key, *bp, e.Expiry, Overhead, func(b []byte, heldExp int64, found bool) (bool, int64) {
		if !found {
			return true, exp
		}
		h, err := Decode(b)
		if err != nil {
			return true, exp // a record this package did not write: replace it
		}
		h.Value = nil
		if heldExp != 0 {
			h.Expiry = time.Unix(0, heldExp)
		}
		expired := heldExp != 0 && heldExp <= wallclock.Nanos()
		if expired {
			if IsCopy(b) && e.Rev == h.Rev {
				return true, exp // the version itself, of which an early copy expired here
			}
			h.Deleted = true // an expired version stands for the deletion of its revision
		}
		held = h
		if !e.Newer(h) {
			return false, 0
		}
		if expired {
			held = sessioncache.Entry{} // for PutHeld: nothing live was replaced
		}
		if e.Deleted && !h.Deleted && exp != 0 && (heldExp == 0 || heldExp > exp) {
			return true, heldExp // a tombstone lasts as long as the entry it replaces would have
		}
		return true, exp
	})
	return held, stored, err
}

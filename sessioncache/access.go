package sessioncache

import (
	"bytes"
	"fmt"
	"math"
	"sync/atomic"
	"time"
	"unsafe"
)

// Crash tests set these hooks to kill a process at exactly one point of a write.
var (
	// testHookMidWrite runs while a writer holds a shard lock with a record half written.
	testHookMidWrite func(key []byte)
	// testHookMidUpdate runs while a writer updating an entry out of place has written
	// the new version whole and not yet given up the old one.
	testHookMidUpdate func(key []byte)
)

// hash is the seeded hash of a key.
func (t *Table) hash(key []byte) uint64 { return seededHash(t.shape.seed, key) }

func (t *Table) checkKey(key []byte) error {
	if len(key) == 0 {
		return ErrEmptyKey
	}
	if len(key) > int(t.shape.maxKey) {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrKeyTooLarge, len(key), t.shape.maxKey)
	}
	return nil
}

// keyBytes returns the key stored in r; r.keyLen must be within bounds.
func (t *Table) keyBytes(r *recordHeader) []byte {
	return unsafe.Slice((*byte)(t.recordData(r)), r.keyLen)
}

// Get returns a copy of the value stored under key, or ErrNotFound if there is none or it
// has expired. The returned slice belongs to the caller.
func (t *Table) Get(key []byte) ([]byte, error) {
	v, _, err := t.GetAppend(nil, key)
	return v, err
}

// GetAppend appends the value stored under key to dst and returns the extended slice and
// the entry's expiry (the zero Time if it has none). It allocates nothing when dst has room
// for the value. On error it returns dst unchanged.
func (t *Table) GetAppend(dst, key []byte) ([]byte, time.Time, error) {
	dst, exp, err := t.get(dst, key, math.MaxUint32, false)
	if err != nil || exp == 0 {
		return dst, time.Time{}, err
	}
	return dst, time.Unix(0, exp), nil
}

// GetAppendIncludingExpired is GetAppend that also returns an entry whose expiry has
// passed, as long as its record has not been reclaimed (see Config.BeforeReclaim): the
// caller compares the expiry with the time. It is for callers that order the versions of
// a key, to whom an expired version still says that every older one is gone.
func (t *Table) GetAppendIncludingExpired(dst, key []byte) ([]byte, time.Time, error) {
	dst, exp, err := t.get(dst, key, math.MaxUint32, true)
	if err != nil || exp == 0 {
		return dst, time.Time{}, err
	}
	return dst, time.Unix(0, exp), nil
}

// PeekAppend is GetAppend that appends at most the first n bytes of the value: for a
// caller that needs only a header it keeps in front of its values.
func (t *Table) PeekAppend(dst, key []byte, n int) ([]byte, time.Time, error) {
	limit := uint32(math.MaxUint32)
	if n < 0 {
		limit = 0
	} else if uint64(n) < math.MaxUint32 {
		limit = uint32(n)
	}
	dst, exp, err := t.get(dst, key, limit, false)
	if err != nil || exp == 0 {
		return dst, time.Time{}, err
	}
	return dst, time.Unix(0, exp), nil
}

// lookupResult says what a lock-free lookup saw.
type lookupResult int

const (
	lookupMiss lookupResult = iota
	lookupHit
	lookupBroken // links or lengths out of range: a write was in progress, or corruption
)

// get appends to dst at most limit bytes of the value stored under key; with expired, also
// of an entry whose expiry has passed.
func (t *Table) get(dst, key []byte, limit uint32, expired bool) ([]byte, int64, error) {
	if t.closed.Load() {
		return dst, 0, ErrClosed
	}
	if err := t.checkKey(key); err != nil {
		return dst, 0, err
	}
	sh, tag := t.locate(t.hash(key))
	n0 := len(dst)
	var w backoff
	for {
		seq := atomic.LoadUint64(&sh.hdr.seq)
		if seq&1 != 0 {
			t.awaitWriter(sh, &w)
			continue
		}
		r, res := t.find(sh, tag, key)
		var exp int64
		if res == lookupHit {
			exp = r.expiry
			klen, vlen := uint32(r.keyLen), r.valLen
			if vlen > t.shape.recordSize || klen+vlen > t.shape.recordSize {
				res = lookupBroken
			} else {
				dst = append(dst[:n0], unsafe.Slice((*byte)(unsafe.Add(t.recordData(r), klen)), min(vlen, limit))...)
			}
		}
		if atomic.LoadUint64(&sh.hdr.seq) != seq {
			dst = dst[:n0]
			continue
		}
		switch {
		case res == lookupBroken:
			return dst[:n0], 0, t.corrupt(sh)
		case res == lookupMiss:
			sh.countMiss()
			return dst[:n0], 0, ErrNotFound
		case exp != 0 && exp <= t.now():
			sh.countMiss()
			if expired {
				return dst, exp, nil
			}
			return dst[:n0], 0, ErrNotFound
		}
		if atomic.LoadUint32(&r.ref) == 0 {
			r.ref = 1 // a hint for the CLOCK hand; written only when clear, so hot records stay clean
		}
		sh.countHit()
		return dst, exp, nil
	}
}

func (t *Table) corrupt(sh *shard) error {
	return fmt.Errorf("%w: shard %d of %s has a broken index (run Verify)", ErrCorrupt, t.shardIndex(sh), t.path)
}

// Set stores value under key until expiry (the zero Time means no expiry), replacing what
// was there. When the key's shard is full its least recently used entry is pushed out (see
// Config.OnEvict). An expiry in the past deletes the key. key and value may be changed by
// the caller after Set returns.
//
// Set finds an existing entry by the 40-bit hash tag alone, so it never has to read the old
// record (which keeps it off the cache misses of a large table). Two keys of one shard whose
// tags collide (about once in 2^40 pairs) therefore replace each other, like an eviction
// without the callback; a Get still compares the whole key, so neither can read the other's
// value. SetIf, which reads what the key holds anyway, never does: a key whose tag another
// key of its shard has gets a slot of its own, and from then on that shard's Sets find
// entries by the whole key too.
//
// A Set that replaces an entry whose record was not among its shard's recent writes writes
// the new version out of place, into the shard's next free record, points the index at it
// and gives the old record up without touching it: successive Sets of random keys then write
// neighbouring records, which the processor fetches ahead, instead of wherever each old
// version lies. It writes that record before it probes the index, so the record's stores
// and the rest of the Set overlap the index's cache miss instead of waiting for it. A
// recently written record (likely still in the processor's caches, as the records of a hot
// set are) and any record of a full shard are overwritten in place: a shard whose updates
// keep finding recent records probes first (see shard.hot).
func (t *Table) Set(key, value []byte, expiry time.Time) error {
	_, err := t.set(key, value, expiry, 0, nil)
	return err
}

// HeldFunc decides, for SetIf, whether to replace what a key holds: held is the first
// bytes of the value stored now, valid only during the call (nil when found is false: no
// entry), and heldExpiry its expiry in Unix nanoseconds (0 for none). An entry whose expiry
// has passed but whose record the table has not reclaimed yet is shown too, with its
// expiry: a caller that orders versions can still refuse one older than it.
// It returns whether to store the new value, and the expiry to store it with, in Unix
// nanoseconds: the one SetIf was given, a later one, or 0 for none (an earlier one counts
// as the one given). It runs with the key's shard locked, in every process: it must be
// quick and must not use the table.
type HeldFunc func(held []byte, heldExpiry int64, found bool) (store bool, expiry int64)

// SetIf is Set done only if decide approves, given what the key holds: check and write
// are one step under the key's lock, with one lookup, so no other writer (in any process)
// can come between them. decide sees at most the first n bytes of the held value. SetIf
// reports whether it stored. With an expiry that has passed, the key is deleted if decide
// approves (as Set deletes it), unless decide gives an expiry still to come (a tombstone
// kept as long as the entry it replaces would have lived), which is stored.
func (t *Table) SetIf(key, value []byte, expiry time.Time, n int, decide HeldFunc) (bool, error) {
	return t.set(key, value, expiry, max(n, 0), decide)
}

func (t *Table) set(key, value []byte, expiry time.Time, n int, decide HeldFunc) (bool, error) {
	if t.closed.Load() {
		return false, ErrClosed
	}
	if err := t.checkKey(key); err != nil {
		return false, err
	}
	if len(key)+len(value) > int(t.shape.recordSize) {
		return false, fmt.Errorf("%w: key %d + value %d bytes, record_size is %d", ErrValueTooLarge,
			len(key), len(value), t.shape.recordSize)
	}
	var exp int64
	expired := false
	if !expiry.IsZero() {
		if exp = expiry.UnixNano(); exp <= t.now() {
			if decide == nil {
				_, err := t.Delete(key)
				return false, err
			}
			expired = true
		}
	}
	sh, tag := t.locate(t.hash(key))

	var ev *evicted
	if t.onEvict != nil {
		ev = t.evictBuf()
		defer t.evictBufs.Put(ev)
	}
	prefetch(unsafe.Pointer(slot(sh, home(sh, tag))), slotSize)
	t.lockShard(sh)
	var at keySlot
	if decide != nil {
		store, storeExp, ok := t.askHeld(sh, tag, key, n, exp, decide, &at)
		if !ok {
			t.unlockShard(sh)
			return false, t.corrupt(sh)
		}
		if !store || expired && storeExp != 0 && storeExp <= t.now() {
			if store {
				t.deleteLocked(sh, tag, key) // it replaces what is held, and has expired itself
			}
			t.unlockShard(sh)
			return false, nil
		}
		exp = storeExp
	}
	ok := t.store(sh, tag, key, value, exp, ev, at)
	if ok {
		if exp != 0 && (sh.hdr.minExpiry == 0 || exp < sh.hdr.minExpiry) {
			sh.hdr.minExpiry = exp
		}
		sh.hdr.sets++
		t.prefetchNextWrite(sh)
	}
	t.unlockShard(sh)
	if !ok {
		return false, t.corrupt(sh)
	}
	if ev != nil && ev.ok {
		var e time.Time
		if ev.expiry != 0 {
			e = time.Unix(0, ev.expiry)
		}
		t.onEvict(ev.buf[:ev.keyLen], ev.buf[ev.keyLen:], e)
	}
	return true, nil
}

// keySlot is what a Set knows of its key's slot before it probes the index: from SetIf's
// lookup (known), whether the key has a slot (present) and where (pos).
type keySlot struct {
	known, present bool
	pos            uint32
}

// askHeld shows decide what key holds in a locked shard, and returns its answer and the
// expiry to store with (see HeldFunc); it records in at where the key's slot is. ok is false
// if the index is damaged.
func (t *Table) askHeld(sh *shard, tag uint64, key []byte, n int, exp int64, decide HeldFunc, at *keySlot) (store bool, newExp int64, ok bool) {
	r, pos, res := t.findAt(sh, tag, key)
	at.known, at.present, at.pos = res != lookupBroken, res == lookupHit, pos
	var held []byte
	var heldExp int64
	found := false
	switch res {
	case lookupBroken:
		return false, 0, false
	case lookupHit:
		klen, vlen := uint32(r.keyLen), r.valLen
		if vlen > t.shape.recordSize || klen+vlen > t.shape.recordSize {
			return false, 0, false
		}
		found, heldExp = true, r.expiry
		held = unsafe.Slice((*byte)(unsafe.Add(t.recordData(r), klen)), min(int(vlen), n))
	}
	store, newExp = decide(held, heldExp, found)
	switch {
	case !store:
		return false, 0, true
	case exp == 0 || newExp == 0:
		return true, 0, true
	}
	return true, max(exp, newExp), true
}

// store writes key's entry into a locked shard and indexes it, as Set describes; at says
// what the caller knows of the key's slot. It reports false if the index is damaged.
func (t *Table) store(sh *shard, tag uint64, key, value []byte, exp int64, ev *evicted, at keySlot) bool {
	tryFree := true
	if sh.hot.Load() < hotProbeFirst {
		next, free := t.takeFree(sh)
		if free {
			return t.writeAhead(sh, tag, next, key, value, exp, at)
		}
		tryFree = false
	}
	pos, s, ok := t.slotOf(sh, tag, key, at)
	if !ok {
		return false
	}
	if s != 0 {
		idx, ok := slotRecord(sh, s)
		if ok {
			t.replace(sh, pos, tag, idx, key, value, exp, tryFree)
		}
		return ok
	}
	idx := t.allocate(sh, t.nowIfExpiring(sh), ev, tryFree)
	// Allocation may have removed entries and shifted slots: probe again. The key has no
	// slot, and allocation gave it none.
	if pos, _, ok = t.slotOf(sh, tag, key, keySlot{known: true}); !ok {
		giveUp(sh, idx)
		return false
	}
	t.fill(t.record(sh, idx), key, value, exp)
	t.indexNew(sh, pos, tag, idx)
	return true
}

// slotOf returns, in a locked shard, the position of key's slot and its content, or (content
// 0) the empty slot where key goes. What at knows is used as it is; otherwise a slot holding
// key's tag is taken for key's (see Set), unless the shard has keys that share a tag, where
// the records are compared. Indexing a key after another key's slot with its tag marks the
// shard so (sameTags).
func (t *Table) slotOf(sh *shard, tag uint64, key []byte, at keySlot) (uint32, uint64, bool) {
	var pos uint32
	var same, ok bool
	switch {
	case at.present:
		return at.pos, *slot(sh, at.pos), true
	case !at.known:
		// An empty slot ends the probe before any slot with key's tag: key has none. Only
		// a slot with the tag needs the shard's mark (in the header's second cache line).
		if p, s, found := probeTag(sh, tag); !found || s == 0 || sh.hdr.sameTags == 0 {
			return p, s, found
		}
		pos, same, ok = t.probeKey(sh, tag, key)
	default:
		pos, same, ok = probeEmpty(sh, tag)
	}
	if !ok {
		return 0, 0, false
	}
	if s := *slot(sh, pos); s != 0 {
		return pos, s, true // key's own slot, found by probeKey
	}
	if same {
		sh.hdr.sameTags++
	}
	return pos, 0, true
}

// indexNew points empty slot pos of a locked shard at record idx, just filled with a new
// entry.
func (t *Table) indexNew(sh *shard, pos uint32, tag uint64, idx uint32) {
	t.record(sh, idx).ref = 0 // new entries start unreferenced (evict.go)
	*slot(sh, pos) = makeSlot(tag, idx)
	sh.hdr.live++
}

// switchVersion points slot pos of a locked shard, which holds the entry of record old, at
// record next, just filled with the entry's new version, and gives old up. The new version
// is whole before the old record is given up, and that is pending before the index points to
// the new one: a writer that dies here leaves the old version, the new one, or both (repair
// keeps one), but never the old one after a reader may have seen the new one.
func (t *Table) switchVersion(sh *shard, pos uint32, tag uint64, old, next uint32, key []byte) {
	t.record(sh, next).ref = 1
	if testHookMidUpdate != nil {
		testHookMidUpdate(key)
	}
	giveUp(sh, old)
	*slot(sh, pos) = makeSlot(tag, next)
}

// writeAhead writes key's entry into free record next of a locked shard, which it has
// taken, then indexes it: in place of the key's current version, which it gives up, or as a
// new entry. It reports false if the index is damaged.
func (t *Table) writeAhead(sh *shard, tag uint64, next uint32, key, value []byte, exp int64, at keySlot) bool {
	t.fill(t.record(sh, next), key, value, exp)
	pos, s, ok := t.slotOf(sh, tag, key, at)
	var idx uint32
	if ok && s != 0 {
		idx, ok = slotRecord(sh, s)
	}
	if !ok {
		giveUp(sh, next)
		return false
	}
	if s == 0 {
		t.indexNew(sh, pos, tag, next)
		return true
	}
	sh.noteUpdate(recentlyWritten(sh, idx))
	t.switchVersion(sh, pos, tag, idx, next, key)
	return true
}

// replace writes a new version of the entry in record idx, indexed by the slot at pos, of a
// locked shard that probed before writing. A record written recently (so probably still in
// the processor's caches) is overwritten in place; any other goes out of place into the
// shard's next free record, when it has one (tryFree false: it was just found to have none).
func (t *Table) replace(sh *shard, pos uint32, tag uint64, idx uint32, key, value []byte, exp int64, tryFree bool) {
	next, free := uint32(0), false
	recent := recentlyWritten(sh, idx)
	sh.noteUpdate(recent)
	if !recent && tryFree {
		next, free = t.takeFree(sh)
	}
	if !free {
		r := t.record(sh, idx)
		t.fill(r, key, value, exp)
		r.ref = 1
		return
	}
	t.fill(t.record(sh, next), key, value, exp)
	t.switchVersion(sh, pos, tag, idx, next, key)
}

// prefetchNextWrite starts fetching the record the locked shard's next write will most
// likely take (the next reserved one, or the one at the cursor), so that the write finds it
// in the cache. Without it, a Set's stores wait in the processor's store buffer for their
// lines to come from memory, and so does everything the Set's caller stores after them.
// With S shards the next write to this one comes about S Sets later: far enough for the
// fetch to finish, soon enough for the lines to still be there. A full shard's next write
// evicts wherever the CLOCK hand stops, so nothing is fetched for it.
func (t *Table) prefetchNextWrite(sh *shard) {
	i := sh.hdr.cursor
	if n := min(sh.hdr.nReserved, reserveCap); n > 0 {
		i = sh.hdr.reserved[n-1]
	} else if sh.hdr.live >= sh.count {
		return
	}
	if i < sh.count {
		prefetch(unsafe.Pointer(t.record(sh, i)), t.stride)
	}
}

// nowIfExpiring returns the time for a locked shard's expiry checks: 0 (before every
// expiry) when no entry of the shard expires, which saves reading the clock.
func (t *Table) nowIfExpiring(sh *shard) int64 {
	if sh.hdr.minExpiry == 0 {
		return 0
	}
	return t.now()
}

// fill writes a whole entry into r. The state is "writing" throughout, so a writer killed
// half-way leaves a record that repair drops instead of a torn one that it would keep.
func (t *Table) fill(r *recordHeader, key, value []byte, exp int64) {
	storeRelease32(&r.state, stateWriting)
	r.keyLen = uint16(len(key))
	r.valLen = uint32(len(value))
	r.expiry = exp
	data := unsafe.Slice((*byte)(t.recordData(r)), len(key)+len(value))
	copy(data, key)
	if testHookMidWrite != nil {
		copy(data[len(key):], value[:len(value)/2])
		testHookMidWrite(key)
	}
	copy(data[len(key):], value)
	storeRelease32(&r.state, stateLive)
}

// free gives up indexed shard-local record i, whose slot must already be removed.
func (t *Table) free(sh *shard, i uint32) {
	giveUp(sh, i)
	sh.hdr.live--
}

// Delete removes key and reports whether it held an unexpired entry.
func (t *Table) Delete(key []byte) (bool, error) {
	if t.closed.Load() {
		return false, ErrClosed
	}
	if err := t.checkKey(key); err != nil {
		return false, err
	}
	sh, tag := t.locate(t.hash(key))
	t.lockShard(sh)
	found := t.deleteLocked(sh, tag, key)
	t.unlockShard(sh)
	return found, nil
}

// deleteLocked removes key from a locked shard and reports whether it held an unexpired
// entry.
func (t *Table) deleteLocked(sh *shard, tag uint64, key []byte) bool {
	i := home(sh, tag)
	for range sh.nslots {
		s := *slot(sh, i)
		if s == 0 {
			return false
		}
		if s>>slotIndexBits == tag {
			idx, _ := slotRecord(sh, s)
			r := t.record(sh, idx)
			if bytes.Equal(t.keyBytes(r), key) {
				found := r.expiry == 0 || r.expiry > t.nowIfExpiring(sh)
				removeSlot(sh, i)
				t.free(sh, idx)
				sh.hdr.deletes++
				return found
			}
		}
		i = sh.next(i)
	}
	return false
}

// DeleteExpired reclaims every expired entry now rather than when its space is next needed,
// and returns how many it reclaimed. It locks one shard at a time.
func (t *Table) DeleteExpired() (int, error) {
	if t.closed.Load() {
		return 0, ErrClosed
	}
	n := 0
	for s := range t.shards {
		sh := &t.shards[s]
		t.lockShard(sh)
		n += t.reclaimExpired(sh, t.now())
		t.unlockShard(sh)
	}
	return n, nil
}

// reclaimExpired frees every expired entry of a locked shard, recomputes its minimum expiry
// and returns how many it freed.
func (t *Table) reclaimExpired(sh *shard, now int64) int {
	releaseAll(sh) // now a set bit means an indexed record
	n := 0
	var minExp int64
	for i := range sh.count {
		if !inUse(sh, i) {
			continue
		}
		r := t.record(sh, i)
		if r.expiry == 0 {
			continue
		}
		if r.expiry <= now {
			t.callBeforeReclaim(r)
			t.unindex(sh, i, r)
			markFree(sh, i)
			sh.hdr.live--
			n++
			continue
		}
		if minExp == 0 || r.expiry < minExp {
			minExp = r.expiry
		}
	}
	sh.hdr.minExpiry = minExp
	sh.hdr.expired += uint64(n)
	return n
}

func (t *Table) shardIndex(sh *shard) int {
	return int((uintptr(unsafe.Pointer(sh.hdr)) - uintptr(t.base) - tableHeaderSize) / shardHeaderSize)
}

// prefetchBatch is how many keys Prefetch takes in one pass.
const prefetchBatch = 64

// Prefetch starts bringing the index slots of keys, and the records they point to, into
// the processor's caches, for a caller about to read or write those keys one after another
// (a batch of hand-downs, say): their cache misses then overlap, where each operation would
// otherwise wait for its own in turn. It changes nothing, takes no lock and waits for no
// writer; an empty or unknown key costs a hash.
func (t *Table) Prefetch(keys [][]byte) {
	if t.closed.Load() {
		return
	}
	var hashes [prefetchBatch]uint64
	for len(keys) > 0 {
		n := min(len(keys), prefetchBatch)
		for i, k := range keys[:n] {
			hashes[i] = t.hash(k)
			sh, tag := t.locate(hashes[i])
			prefetch(unsafe.Pointer(slot(sh, home(sh, tag))), slotSize)
		}
		// The slots are on their way: look for each key's tag among the first slots of its
		// probe (a racing writer may move them; a wrong guess costs one fetch) and fetch
		// the start of the record it points to: its header, key and the value's first bytes.
		for _, h := range hashes[:n] {
			sh, tag := t.locate(h)
			i := home(sh, tag)
			for range 4 {
				s := atomic.LoadUint64(slot(sh, i))
				if s == 0 {
					break
				}
				if s>>slotIndexBits == tag {
					if idx, ok := slotRecord(sh, s); ok {
						prefetch(unsafe.Pointer(t.record(sh, idx)), min(t.stride, 128))
					}
					break
				}
				i = sh.next(i)
			}
		}
		keys = keys[n:]
	}
}

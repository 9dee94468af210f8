package sessioncache

import (
	"bytes"
	"fmt"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"
)

// testHookMidWrite, when set by a test, runs while a writer holds a shard lock with a record
// half written, so crash tests can kill a process at exactly that point.
var testHookMidWrite func(key []byte)

// hash is the seeded xxhash of a key. The top bits pick the shard, the low 32 the bucket.
func (t *Table) hash(key []byte) uint64 {
	var d xxhash.Digest
	d.ResetWithSeed(t.shape.seed)
	d.Write(key)
	return d.Sum64()
}

// locate returns the shard and the shard-local bucket of hash h.
func (t *Table) locate(h uint64) (*shard, uint32) {
	sh := &t.shards[h>>(64-t.shardBits)&(uint64(len(t.shards))-1)]
	return sh, bucketOf(sh, uint32(h))
}

func bucketOf(sh *shard, h32 uint32) uint32 {
	return uint32(uint64(h32) * uint64(sh.count) >> 32)
}

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
	dst, exp, err := t.get(dst, key)
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

func (t *Table) get(dst, key []byte) ([]byte, int64, error) {
	if t.closed.Load() {
		return dst, 0, ErrClosed
	}
	if err := t.checkKey(key); err != nil {
		return dst, 0, err
	}
	h := t.hash(key)
	sh, b := t.locate(h)
	h32 := uint32(h)
	n0 := len(dst)
	var w backoff
	for {
		seq := atomic.LoadUint64(&sh.hdr.seq)
		if seq&1 != 0 {
			t.awaitWriter(sh, &w)
			continue
		}
		r, res := t.find(sh, b, h32, key)
		var exp int64
		if res == lookupHit {
			exp = r.expiry
			klen, vlen := uint32(r.keyLen), r.valLen
			if vlen > t.shape.recordSize || klen+vlen > t.shape.recordSize {
				res = lookupBroken
			} else {
				dst = append(dst[:n0], unsafe.Slice((*byte)(unsafe.Add(t.recordData(r), klen)), vlen)...)
			}
		}
		if atomic.LoadUint64(&sh.hdr.seq) != seq {
			dst = dst[:n0]
			continue
		}
		switch {
		case res == lookupBroken:
			return dst[:n0], 0, fmt.Errorf("%w: shard %d of %s has a broken chain (run Verify)", ErrCorrupt, t.shardIndex(sh), t.path)
		case res == lookupMiss || (exp != 0 && exp <= t.now()):
			atomic.AddUint64(&sh.hdr.misses, 1)
			return dst[:n0], 0, ErrNotFound
		}
		if atomic.LoadUint32(&r.ref) == 0 {
			r.ref = 1 // a hint for the CLOCK hand; written only when clear, so hot records stay clean
		}
		atomic.AddUint64(&sh.hdr.hits, 1)
		return dst, exp, nil
	}
}

// find walks bucket b's chain without a lock. Every link and length is bounds-checked, since
// a writer may be changing them; the caller validates the result with the sequence counter.
func (t *Table) find(sh *shard, b, h32 uint32, key []byte) (*recordHeader, lookupResult) {
	idx := *bucket(sh, b)
	for hops := uint32(0); idx != 0; hops++ {
		if idx > sh.count || hops >= sh.count {
			return nil, lookupBroken
		}
		r := t.record(sh, idx-1)
		if r.hash == h32 && int(r.keyLen) == len(key) && r.state == stateLive &&
			bytes.Equal(unsafe.Slice((*byte)(t.recordData(r)), len(key)), key) {
			return r, lookupHit
		}
		idx = r.next
	}
	return nil, lookupMiss
}

// nowIfExpiring returns the time for a locked shard's expiry checks: 0 (before every
// expiry) when no entry of the shard expires, which saves reading the clock.
func (t *Table) nowIfExpiring(sh *shard) int64 {
	if sh.hdr.minExpiry == 0 {
		return 0
	}
	return t.now()
}

// findLocked walks bucket b's chain under the shard lock. It returns the record holding key
// (or nil) and the link that points to it. Expired entries of other keys met on the way are
// reclaimed.
func (t *Table) findLocked(sh *shard, b, h32 uint32, key []byte, now int64) (r *recordHeader, idx uint32, link *uint32) {
	link = bucket(sh, b)
	for *link != 0 {
		i := *link - 1
		r := t.record(sh, i)
		if r.hash == h32 && int(r.keyLen) == len(key) && bytes.Equal(t.keyBytes(r), key) {
			return r, i, link
		}
		if r.expiry != 0 && r.expiry <= now {
			*link = r.next
			t.free(sh, i, r)
			sh.hdr.expired++
			continue
		}
		link = &r.next
	}
	return nil, 0, nil
}

// Set stores value under key until expiry (the zero Time means no expiry), replacing what
// was there. When the shard is full the least recently used entry is pushed out (see
// Config.OnEvict). An expiry in the past deletes the key. key and value may be changed by
// the caller after Set returns.
func (t *Table) Set(key, value []byte, expiry time.Time) error {
	if t.closed.Load() {
		return ErrClosed
	}
	if err := t.checkKey(key); err != nil {
		return err
	}
	if len(key)+len(value) > int(t.shape.recordSize) {
		return fmt.Errorf("%w: key %d + value %d bytes, record_size is %d", ErrValueTooLarge,
			len(key), len(value), t.shape.recordSize)
	}
	var exp int64
	if !expiry.IsZero() {
		if exp = expiry.UnixNano(); exp <= t.now() {
			_, err := t.Delete(key)
			return err
		}
	}
	h := t.hash(key)
	sh, b := t.locate(h)
	h32 := uint32(h)

	var ev *evicted
	if t.onEvict != nil {
		ev = t.evictBuf()
		defer t.evictBufs.Put(ev)
	}
	t.lockShard(sh)
	now := t.nowIfExpiring(sh)
	r, _, _ := t.findLocked(sh, b, h32, key, now)
	if r != nil {
		t.fill(r, h32, key, value, exp)
		r.ref = 1
	} else {
		i := t.allocate(sh, now, ev)
		r = t.record(sh, i)
		t.fill(r, h32, key, value, exp)
		head := bucket(sh, b)
		r.next = *head
		*head = i + 1
		sh.hdr.live++
	}
	if exp != 0 && (sh.hdr.minExpiry == 0 || exp < sh.hdr.minExpiry) {
		sh.hdr.minExpiry = exp
	}
	sh.hdr.sets++
	t.unlockShard(sh)
	if ev != nil && ev.ok {
		var e time.Time
		if ev.expiry != 0 {
			e = time.Unix(0, ev.expiry)
		}
		t.onEvict(ev.buf[:ev.keyLen], ev.buf[ev.keyLen:], e)
	}
	return nil
}

// fill writes a whole entry into r. The state is "writing" throughout, so a writer killed
// half-way leaves a record that repair drops instead of a torn one that it would keep.
func (t *Table) fill(r *recordHeader, h32 uint32, key, value []byte, exp int64) {
	storeRelease32(&r.state, stateWriting)
	r.hash = h32
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

// free marks shard-local record i free and pushes it on the free list. It must already be
// unlinked from its chain.
func (t *Table) free(sh *shard, i uint32, r *recordHeader) {
	storeRelease32(&r.state, stateFree)
	r.ref = 0
	r.next = sh.hdr.freeHead
	sh.hdr.freeHead = i + 1
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
	h := t.hash(key)
	sh, b := t.locate(h)
	t.lockShard(sh)
	now := t.nowIfExpiring(sh)
	r, i, link := t.findLocked(sh, b, uint32(h), key, now)
	found := false
	if r != nil {
		found = r.expiry == 0 || r.expiry > now
		*link = r.next
		t.free(sh, i, r)
		sh.hdr.deletes++
	}
	t.unlockShard(sh)
	return found, nil
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
	n := 0
	var minExp int64
	for b := uint32(0); b < sh.count; b++ {
		link := bucket(sh, b)
		for *link != 0 {
			i := *link - 1
			r := t.record(sh, i)
			if r.expiry != 0 && r.expiry <= now {
				*link = r.next
				t.free(sh, i, r)
				n++
				continue
			}
			if r.expiry != 0 && (minExp == 0 || r.expiry < minExp) {
				minExp = r.expiry
			}
			link = &r.next
		}
	}
	sh.hdr.minExpiry = minExp
	sh.hdr.expired += uint64(n)
	return n
}

func (t *Table) shardIndex(sh *shard) int {
	return int((uintptr(unsafe.Pointer(sh.hdr)) - uintptr(t.base) - tableHeaderSize) / shardHeaderSize)
}

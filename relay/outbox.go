package relay

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"github.com/edsrzf/mmap-go"

	"github.com/globalsession/globalsession/internal/throttle"
	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/relay/internal/endpoint"
	"github.com/globalsession/globalsession/sessioncache"
)

// The outbox holds what the relay must hand to the tier below without fail (evictions and
// deletions) from the moment the relay accepts it until the tier below confirms it, in
// segment files that outlive the relay's process. A relay that restarts sends again what
// its outbox still holds; since every change carries a revision, a change delivered twice
// does no harm.
//
// A segment is a sequence of records: u32 length of the frame, u32 CRC-32C of the frame,
// then the frame as internal/wire encodes it (op evict or delete, key, value, expiry, rev).
// A torn record, or a length of zero (the unused rest of a segment), ends its replay. A
// record that is done (confirmed by the tier below, or superseded by a newer change of its
// key) has its checksum inverted in place, and replay skips it: a restarted relay neither
// sends it again nor answers lookups from it. That matters for an eviction: answered from
// after a restart, an old version could stand in for a newer one (or a deletion) that a
// later segment held and that the tier below has confirmed.
//
// An eviction of a key supersedes the key's older eviction still waiting (any newer change
// of the key does: the tier below keeps the newest version, and a deletion goes to every
// server an eviction goes to), so a key has at most one eviction waiting and a lookup is
// answered from the newest.
//
// A segment whose records are all confirmed is kept, mapped, as a spare (up to
// outboxSpares, named spare-N, which replay ignores) and becomes the next segment: its
// pages are already in memory, so appending costs no page faults. What a spare held
// before is not replayed: each append zeroes the length after its record before writing
// the record, so the records written since the reuse always end at a length of zero.

var outboxCRC = crc32.MakeTable(crc32.Castagnoli)

// ErrOutboxFull means the relay's outbox holds as much as it may: the tier below has not
// confirmed enough of what it was given.
var ErrOutboxFull = errors.New("relay: outbox is full")

const outboxSegmentSize = 4 << 20

// outboxSpares is how many confirmed segments the outbox keeps for reuse.
const outboxSpares = 2

// outbox is a durable queue of hand-downs with delivery workers.
type outbox struct {
	dir     string
	limit   int64
	log     *slog.Logger
	deliver func(ctx context.Context, frames []*wire.Frame) error

	mu        sync.Mutex
	cond      *sync.Cond
	queue     []*outRecord // waiting for a worker
	bytes     int64        // bytes of records not yet confirmed
	seg       *outSegment  // the segment appended to
	nextSeg   uint64
	mapped    map[*outSegment]struct{} // segments with a mapping, the current one included
	spares    []*outSegment            // confirmed segments kept for reuse, mapped
	nextSpare uint64
	tombs     map[string]uint64     // keys with a deletion not yet confirmed: the highest revision
	evicted   map[string]*outRecord // keys with an eviction of an entry not yet done: the only one
	arena     []byte                // the free rest of the block records' bytes are copied to
	recSlab   []outRecord           // the free rest of the block records are taken from
	closed    bool
	wg        sync.WaitGroup
	ctx       context.Context
	cancel    context.CancelFunc
	pending   atomic.Int64 // records not yet confirmed
	dropped   atomic.Int64 // records refused because the outbox was full
	// shadowsDropped counts the deletions of expired versions left out (addIfRoom).
	shadowsDropped atomic.Int64
	retries        atomic.Int64
	fullWarn       throttle.Throttle // warnings that the outbox is full
	retryWarn      throttle.Throttle // warnings about failed hand-downs
}

// outSegment is a segment file. The one appended to is mapped into memory, so appending a
// record is a copy into the shared mapping, not a system call: it is in the file (in the
// page cache) as soon as it is copied, whatever happens to the process next.
type outSegment struct {
	n           uint64
	path        string    // the file's name now
	mem         mmap.MMap // nil for a segment a previous run left (read, not mapped)
	file        *os.File  // a segment a previous run left, open to mark its records done
	size        int64     // bytes of records in it
	outstanding int       // records appended and not done (confirmed or superseded)
	sealed      bool
}

type outRecord struct {
	frame wire.Frame // owns its slices, which nothing changes
	seg   *outSegment
	off   int64 // where the record starts in its segment
	size  int64
	done  bool // confirmed or superseded; o.mu guards it
}

// openOutbox opens (creating) dir, queues what its segments hold and starts workers that
// hand records to deliver until they succeed.
func openOutbox(dir string, limit int64, workers int, log *slog.Logger, deliver func(context.Context, []*wire.Frame) error) (*outbox, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("relay: outbox %s: %w", dir, err)
	}
	o := &outbox{dir: dir, limit: limit, log: log, deliver: deliver, tombs: map[string]uint64{}, evicted: map[string]*outRecord{},
		mapped: map[*outSegment]struct{}{}}
	// Spares a previous run left hold nothing to replay.
	if old, err := filepath.Glob(filepath.Join(dir, "spare-*")); err == nil {
		for _, name := range old {
			os.Remove(name)
		}
	}
	o.cond = sync.NewCond(&o.mu)
	o.ctx, o.cancel = context.WithCancel(context.Background())
	if err := o.recover(); err != nil {
		return nil, err
	}
	if err := o.roll(0); err != nil {
		return nil, err
	}
	for range workers {
		o.wg.Add(1)
		go o.work()
	}
	return o, nil
}

func segmentName(n uint64) string { return fmt.Sprintf("%016d.outbox", n) }

// recover queues the records of the segments a previous process left.
func (o *outbox) recover() error {
	names, err := filepath.Glob(filepath.Join(o.dir, "*.outbox"))
	if err != nil {
		return err
	}
	sort.Strings(names)
	recovered := 0
	for _, name := range names {
		n, err := strconv.ParseUint(strings.TrimSuffix(filepath.Base(name), ".outbox"), 10, 64)
		if err != nil {
			continue
		}
		o.nextSeg = max(o.nextSeg, n+1)
		recs, err := readSegment(name)
		if err != nil {
			o.log.Warn("relay: outbox segment ends early", "file", name, "err", err)
		}
		seg := &outSegment{n: n, path: name, sealed: true}
		if len(recs) > 0 {
			if seg.file, err = os.OpenFile(name, os.O_RDWR, 0); err != nil {
				return fmt.Errorf("relay: outbox: %w", err)
			}
		}
		for _, r := range recs {
			o.enqueueLocked(&outRecord{frame: *r.frame, off: r.off}, seg)
		}
		recovered += len(recs)
		if seg.outstanding == 0 {
			o.retire(seg)
		}
	}
	if recovered > 0 {
		o.log.Info("relay: outbox holds changes a previous run did not hand down; sending them", "changes", recovered, "dir", o.dir)
	}
	return nil
}

// segmentRecord is a record read from a segment: its frame and where it starts.
type segmentRecord struct {
	frame *wire.Frame
	off   int64
}

// readSegment returns the records of a segment that are not done, up to its first torn
// record.
func readSegment(name string) ([]segmentRecord, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	r := bufio.NewReader(f)
	var out []segmentRecord
	var hdr [8]byte
	var off int64
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return out, fmt.Errorf("torn record header: %w", err)
		}
		n := binary.LittleEndian.Uint32(hdr[:])
		if n == 0 {
			return out, nil // the unused rest of the segment
		}
		if n > 64<<20 {
			return out, fmt.Errorf("record length %d", n)
		}
		b := make([]byte, n)
		if _, err := io.ReadFull(r, b); err != nil {
			return out, fmt.Errorf("torn record: %w", err)
		}
		at := off
		off += 8 + int64(n)
		switch sum := crc32.Checksum(b, outboxCRC); binary.LittleEndian.Uint32(hdr[4:]) {
		case sum:
		case ^sum:
			continue // done
		default:
			return out, errors.New("a record fails its checksum")
		}
		var fr wire.Frame
		if err := wire.Decode(b[4:], &fr); err != nil {
			return out, err
		}
		out = append(out, segmentRecord{&fr, at})
	}
}

// roll seals the current segment and starts a new one of at least size bytes: a spare
// when one is big enough, else a new file. Called with o.mu held or before the workers
// start.
func (o *outbox) roll(size int64) error {
	if o.seg != nil {
		o.seal(o.seg)
	}
	n := o.nextSeg
	o.nextSeg++
	path := filepath.Join(o.dir, segmentName(n))
	if k := len(o.spares); k > 0 && int64(len(o.spares[k-1].mem)) >= size {
		seg := o.spares[k-1]
		o.spares = o.spares[:k-1]
		binary.LittleEndian.PutUint32(seg.mem, 0) // what it held before is not replayed
		if err := os.Rename(seg.path, path); err == nil {
			*seg = outSegment{n: n, path: path, mem: seg.mem}
			o.seg = seg
			return nil
		}
		o.unmap(seg)
		os.Remove(seg.path)
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("relay: outbox: %w", err)
	}
	defer f.Close() // the mapping outlives the descriptor
	size = max(size, outboxSegmentSize)
	if err := f.Truncate(size); err != nil {
		os.Remove(path)
		return fmt.Errorf("relay: outbox: %w", err)
	}
	mem, err := mmap.Map(f, mmap.RDWR, 0)
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("relay: outbox: map %s: %w", path, err)
	}
	o.seg = &outSegment{n: n, path: path, mem: mem}
	o.mapped[o.seg] = struct{}{}
	return nil
}

// seal stops appending to seg and retires it if nothing in it awaits confirmation.
func (o *outbox) seal(seg *outSegment) {
	seg.sealed = true
	if seg.outstanding == 0 {
		o.retire(seg)
	}
}

// retire disposes of a sealed segment whose records are all confirmed: kept as a spare
// while there is room for one (and it is mapped, and not too big), else removed.
func (o *outbox) retire(seg *outSegment) {
	if len(seg.mem) == outboxSegmentSize && len(o.spares) < outboxSpares && !o.closed {
		spare := filepath.Join(o.dir, fmt.Sprintf("spare-%d", o.nextSpare))
		o.nextSpare++
		if err := os.Rename(seg.path, spare); err == nil {
			seg.path = spare
			o.spares = append(o.spares, seg)
			return
		}
	}
	o.unmap(seg)
	os.Remove(seg.path)
}

// unmap releases seg's mapping, or the file a recovered segment keeps open.
func (o *outbox) unmap(seg *outSegment) {
	if seg.file != nil {
		seg.file.Close()
		seg.file = nil
	}
	if seg.mem != nil {
		seg.mem.Unmap()
		seg.mem = nil
		delete(o.mapped, seg)
	}
}

// add records f durably and queues it for delivery. It fails when the outbox is full or
// closed, or the record cannot be written.
func (o *outbox) add(f *wire.Frame) error {
	return o.addWithin(f, o.limit, &o.dropped)
}

// addIfRoom is add for what may be left out under pressure (the deletion of a version that
// expired): it takes f only while the outbox holds less than half its limit, so that
// evictions and deletions, which must not be refused, keep the other half. It counts a
// refusal in shadowsDropped.
func (o *outbox) addIfRoom(f *wire.Frame) error {
	return o.addWithin(f, o.limit/2, &o.shadowsDropped)
}

func (o *outbox) addWithin(f *wire.Frame, limit int64, refused *atomic.Int64) error {
	size := int64(recordSize(f))
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.closed {
		return ErrClosed
	}
	if o.bytes+size > limit {
		refused.Add(1)
		return ErrOutboxFull
	}
	if o.seg.size+size > int64(len(o.seg.mem)) {
		if err := o.roll(size); err != nil {
			return err
		}
	}
	mem, start := o.seg.mem, o.seg.size
	// The length after the record first, then the record in place, its own length last
	// (appendRecord): at any moment the records end at a length of zero, never at a torn
	// record or in what a spare held.
	if end := start + size; end+4 <= int64(len(mem)) {
		binary.LittleEndian.PutUint32(mem[end:], 0)
	}
	rec, err := appendRecord(mem[start:start:start+size], f)
	if err != nil {
		return err
	}
	if int64(len(rec)) != size || &rec[0] != &mem[start] {
		return fmt.Errorf("relay: outbox: a %s frame encoded to %d bytes, not the %d it announced", f.Op, len(rec), size)
	}
	o.seg.size += size
	r := o.newRecordLocked()
	r.frame, r.off = *f, start
	o.ownLocked(&r.frame)
	o.enqueueLocked(r, o.seg)
	return nil
}

// Records and their bytes are carved from blocks, which saves an allocation (and the
// cache misses of fresh memory) for each. A block is freed once nothing refers to any
// record or bytes in it; records are confirmed about in the order they were added.
const (
	outboxArenaBlock = 64 << 10
	outboxRecordSlab = 128
)

// newRecordLocked returns a zero record; o.mu is held.
func (o *outbox) newRecordLocked() *outRecord {
	if len(o.recSlab) == 0 {
		o.recSlab = make([]outRecord, outboxRecordSlab)
	}
	rec := &o.recSlab[0]
	o.recSlab = o.recSlab[1:]
	return rec
}

// ownLocked points f's path, key and value at copies of them (see enqueueLocked: nothing
// changes the copies); o.mu is held.
func (o *outbox) ownLocked(f *wire.Frame) {
	n := len(f.Path) + len(f.Key) + len(f.Value)
	if len(o.arena) < n {
		o.arena = make([]byte, max(n, outboxArenaBlock))
	}
	b := o.arena[:n:n]
	o.arena = o.arena[n:]
	p := copy(b, f.Path)
	k := copy(b[p:], f.Key)
	copy(b[p+k:], f.Value)
	f.Path, f.Key, f.Value = b[:p:p], b[p:p+k:p+k], b[p+k:]
}

// enqueueLocked queues rec, whose frame and offset are set, as a record of seg. The key's
// older eviction of an entry still waiting is superseded (done without being handed down),
// and so is rec itself if it is an eviction older than the one waiting.
func (o *outbox) enqueueLocked(rec *outRecord, seg *outSegment) {
	f := &rec.frame
	rec.seg, rec.size = seg, int64(f.Len()+12)
	seg.outstanding++
	o.bytes += rec.size
	o.pending.Add(1)
	// The maps' keys share the record's bytes, which nothing changes once decoded: no copy.
	key := unsafe.String(unsafe.SliceData(f.Key), len(f.Key))
	entry := f.Op == wire.OpEvict && f.Flags&wire.FlagDeleted == 0
	if old := o.evicted[key]; old != nil {
		if entry && (old.frame.Rev > f.Rev || old.frame.Rev == f.Rev && f.Flags&wire.FlagCopy != 0 && outlives(&old.frame, f)) {
			// An older version than the one waiting, or a copy of it that ends no later
			// (a copy may end early: the version itself is what the tiers below need).
			o.doneLocked(rec)
			return
		}
		delete(o.evicted, key)
		o.doneLocked(old)
	}
	switch {
	case entry:
		o.evicted[key] = rec
	case f.Op == wire.OpDelete || f.Op == wire.OpEvict:
		if f.Rev > o.tombs[key] {
			o.tombs[key] = f.Rev
		}
	}
	o.queue = append(o.queue, rec)
	o.cond.Signal()
}

// doneLocked marks rec done (confirmed or superseded), in its segment too, so that a replay
// skips it, and retires its segment when nothing in it is left to confirm. A record done
// twice (superseded, then confirmed by a delivery already under way) counts once.
func (o *outbox) doneLocked(rec *outRecord) {
	if rec.done {
		return
	}
	rec.done = true
	o.markDone(rec)
	o.bytes -= rec.size
	o.pending.Add(-1)
	rec.seg.outstanding--
	if rec.seg.sealed && rec.seg.outstanding == 0 {
		o.retire(rec.seg)
	}
}

// markDone inverts rec's checksum in its segment (see readSegment). If a recovered
// segment's file cannot be written, the record is replayed by the next run: sent again, which
// does no harm, and answered from until it is confirmed again.
func (o *outbox) markDone(rec *outRecord) {
	at := rec.off + 4
	seg := rec.seg
	switch {
	case seg.mem != nil:
		p := seg.mem[at : at+4]
		binary.LittleEndian.PutUint32(p, ^binary.LittleEndian.Uint32(p))
	case seg.file != nil:
		var b [4]byte
		if _, err := seg.file.ReadAt(b[:], at); err != nil {
			o.log.Warn("relay: outbox: marking a record done", "file", seg.path, "err", err)
			return
		}
		binary.LittleEndian.PutUint32(b[:], ^binary.LittleEndian.Uint32(b[:]))
		if _, err := seg.file.WriteAt(b[:], at); err != nil {
			o.log.Warn("relay: outbox: marking a record done", "file", seg.path, "err", err)
		}
	}
}

// outlives reports whether entry frame a's expiry comes no earlier than b's (0 is none).
func outlives(a, b *wire.Frame) bool {
	return a.Expiry == 0 || b.Expiry != 0 && a.Expiry >= b.Expiry
}

// pendingEviction returns the newest unconfirmed eviction of key, if any, and whether it
// is a copy of a lower tier's answer (wire.FlagCopy): the entry is neither in the relay's
// table nor yet with aging relief, and a lookup is answered from it.
func (o *outbox) pendingEviction(key []byte) (e sessioncache.Entry, isCopy, ok bool) {
	o.mu.Lock()
	defer o.mu.Unlock()
	rec := o.evicted[string(key)]
	if rec == nil || o.tombs[string(key)] >= rec.frame.Rev {
		return sessioncache.Entry{}, false, false
	}
	f := &rec.frame
	return sessioncache.Entry{Value: clone(f.Value), Expiry: endpoint.UnixTime(f.Expiry), Rev: f.Rev}, f.Flags&wire.FlagCopy != 0, true
}

// deletedAt returns the revision of an unconfirmed deletion of key, or 0.
func (o *outbox) deletedAt(key []byte) uint64 {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.tombs[string(key)]
}

// work delivers queued records until the outbox closes, retrying each until it succeeds.
func (o *outbox) work() {
	defer o.wg.Done()
	var d deadline
	defer d.stop()
	for {
		o.mu.Lock()
		for len(o.queue) == 0 && !o.closed {
			o.cond.Wait()
		}
		if o.closed {
			o.mu.Unlock()
			return
		}
		// Take what is waiting, up to a batch: under load one wake-up, one frame and one
		// reply hand many records down. Records superseded since they were queued are
		// done already.
		n := min(len(o.queue), outboxBatch)
		var batch [outboxBatch]*outRecord
		k := 0
		for _, rec := range o.queue[:n] {
			if !rec.done {
				batch[k] = rec
				k++
			}
		}
		clear(o.queue[:n])
		if rest := len(o.queue) - n; rest <= 4*outboxBatch {
			// A short rest moves to the front, so appends reuse the array instead of
			// growing a new one each time they reach its end; a backlog just advances.
			copy(o.queue, o.queue[n:])
			clear(o.queue[rest:])
			o.queue = o.queue[:rest]
		} else {
			o.queue = o.queue[n:]
		}
		o.mu.Unlock()
		if k == 0 {
			continue
		}
		if !o.deliverBatch(d.get(o.ctx), batch[:k]) {
			return // closing: the records stay in their segments for the next run
		}
	}
}

// outboxBatch is how many records a worker takes at a time.
const outboxBatch = 64

// deadline is a context with a deadline that a worker gives to one call after another
// while at least a fifth of its span is left, instead of making a timer for each call.
type deadline struct {
	span   time.Duration // zero means five seconds
	ctx    context.Context
	cancel context.CancelFunc
	until  time.Time
}

// get returns a context of parent with between a fifth of the span and the span left.
func (d *deadline) get(parent context.Context) context.Context {
	if d.span == 0 {
		d.span = 5 * time.Second
	}
	if now := time.Now(); d.ctx == nil || d.until.Sub(now) < d.span/5 {
		d.stop()
		d.until = now.Add(d.span)
		d.ctx, d.cancel = context.WithDeadline(parent, d.until)
	}
	return d.ctx
}

func (d *deadline) stop() {
	if d.cancel != nil {
		d.cancel()
	}
}

// deliverBatch hands recs down in one call under ctx; if that fails, it hands them down one
// by one (so that one the tier below refuses holds up no other), each until it is
// confirmed. It reports false if the outbox closed first.
func (o *outbox) deliverBatch(ctx context.Context, recs []*outRecord) bool {
	if len(recs) > 0 {
		frames := make([]*wire.Frame, len(recs))
		for i, rec := range recs {
			frames[i] = &rec.frame
		}
		err := o.deliver(ctx, frames)
		if err == nil {
			o.confirmed(recs...)
			return true
		}
		if o.ctx.Err() != nil {
			return false
		}
		o.retries.Add(1)
		o.warnRetry(wire.OpEvict, err)
	}
	for _, rec := range recs {
		if !o.deliverOne(rec) {
			return false
		}
	}
	return true
}

// deliverOne hands rec down until it is confirmed, and reports false if the outbox closed
// first.
func (o *outbox) deliverOne(rec *outRecord) bool {
	backoff := 20 * time.Millisecond
	for {
		o.mu.Lock()
		done := rec.done
		o.mu.Unlock()
		if done {
			return true // superseded meanwhile
		}
		ctx, cancel := context.WithTimeout(o.ctx, 5*time.Second)
		err := o.deliver(ctx, []*wire.Frame{&rec.frame})
		cancel()
		if err == nil {
			o.confirmed(rec)
			return true
		}
		if o.ctx.Err() != nil {
			return false
		}
		o.retries.Add(1)
		o.warnRetry(rec.frame.Op, err)
		select {
		case <-time.After(backoff/2 + rand.N(backoff/2+1)):
		case <-o.ctx.Done():
			return false
		}
		backoff = min(2*backoff, time.Second)
	}
}

// confirmed forgets delivered records and removes (or keeps as a spare) each segment once
// it is sealed and every record of it is confirmed.
func (o *outbox) confirmed(recs ...*outRecord) {
	o.mu.Lock()
	defer o.mu.Unlock()
	for _, rec := range recs {
		if rec.done {
			continue // superseded while it was handed down
		}
		f := &rec.frame
		if rev, ok := o.tombs[string(f.Key)]; ok && rev <= f.Rev && (f.Op == wire.OpDelete || f.Flags&wire.FlagDeleted != 0) {
			delete(o.tombs, string(f.Key))
		}
		if o.evicted[string(f.Key)] == rec {
			delete(o.evicted, string(f.Key))
		}
		o.doneLocked(rec)
	}
}

// warnRetry logs a failed hand-down that will be tried again, at most once every ten
// seconds (with how many are waiting), so a tier below that stays away is not silent.
func (o *outbox) warnRetry(op wire.Op, err error) {
	if !o.retryWarn.Allow(10 * time.Second) {
		return
	}
	o.log.Warn("relay: the tier below does not take what the outbox hands it; retrying", "op", op.String(),
		"err", err, "pending", o.pending.Load(), "retries_total", o.retries.Load())
}

// warnFull logs a refusal at most once a second.
func (o *outbox) warnFull(what string, key []byte) {
	if !o.fullWarn.Allow(time.Second) {
		return
	}
	o.log.Error("relay: outbox is full; the tier below is not confirming what it is given", "refused", what,
		"key_len", len(key), "refused_total", o.dropped.Load(), "pending", o.pending.Load(), "dir", o.dir)
}

// close stops the workers; what is unconfirmed stays in the segments.
func (o *outbox) close() {
	o.mu.Lock()
	if o.closed {
		o.mu.Unlock()
		return
	}
	o.closed = true
	o.cond.Broadcast()
	o.mu.Unlock()
	o.cancel()
	o.wg.Wait()
	o.mu.Lock()
	if o.seg != nil && !o.seg.sealed {
		o.seal(o.seg)
	}
	for _, seg := range o.spares {
		o.unmap(seg)
		os.Remove(seg.path)
	}
	o.spares = nil
	for seg := range o.mapped {
		o.unmap(seg) // sealed with records unconfirmed: the files stay for the next run
	}
	o.mu.Unlock()
}

package endpoint

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/sessioncache"
)

// Backend answers the entry requests that arrive over a relay connection: the sibling
// answers its relay through one, a pressure-relief server answers its sibling through one.
// *Client implements it too, so a tier can hand its requests on to a server below.
//
// Every version carries a revision (sessioncache.Entry.Rev): a backend keeps the version of
// a key with the highest revision and ignores older ones, whatever order they arrive in, and
// keeps a deletion as a tombstone (until its Expiry, or longer if the entry it removed
// lived longer) so that no older version can take the key's place.
type Backend interface {
	// Get returns the entry under key on path, or an error matching ErrNotFound; with
	// ErrNotFound, an Entry with Deleted set reports the key's tombstone.
	Get(ctx context.Context, path string, key []byte) (sessioncache.Entry, error)
	// Set stores the entry under key on path unless a newer version is held.
	Set(ctx context.Context, path string, key []byte, e sessioncache.Entry) error
	// Delete replaces key's entry on path with a tombstone of revision e.Rev, kept until
	// e.Expiry (zero: the backend's default), unless a newer version is held.
	Delete(ctx context.Context, path string, key []byte, e sessioncache.Entry) error
	// Evict receives an entry pushed out of an upper tier's full table (or, with Deleted
	// set, a tombstone), to keep unless a newer version is held.
	Evict(ctx context.Context, path string, key []byte, e sessioncache.Entry) error
}

var _ Backend = (*Client)(nil)

// DurableBackend is a Backend that can store a new entry with the key's aging relief
// servers before it answers: the strict write concern (see sessioncache.WriteDurable). The
// sibling is one; a *Client to a sibling is one too.
type DurableBackend interface {
	Backend
	// SetDurable stores the entry with every aging relief server that owns key and
	// returns nil only once all of them confirmed; it fails when one is absent.
	SetDurable(ctx context.Context, path string, key []byte, e sessioncache.Entry) error
}

var _ DurableBackend = (*Client)(nil)

// HandDown is one change a tier hands to the tier below: an eviction (an entry, or with
// Entry.Deleted a tombstone, pushed out of its table), or with Delete set a deletion for
// every server below.
type HandDown struct {
	Key    []byte
	Entry  sessioncache.Entry
	Delete bool
}

// BatchBackend is a Backend that takes many hand-downs in one call: one frame and one reply
// for all of them instead of one each. The sibling is one; a *Client is one too.
type BatchBackend interface {
	Backend
	// HandDownBatch stores each change as Evict or Delete would and returns nil only once
	// every one of them is kept. A change may be kept even when it fails: since every
	// version carries a revision, handing the batch down again does no harm.
	HandDownBatch(ctx context.Context, path string, batch []HandDown) error
}

var _ BatchBackend = (*Client)(nil)

// StreamBackend is a Backend that takes new entries as a stream: SetStream queues the
// entry on its connection, without a reply, and returns at once; nothing confirms it. The
// relay hands new entries (which its table keeps) to such a tier from the request that
// stored them, instead of through worker goroutines. The sibling is one; a *Client is
// one too.
type StreamBackend interface {
	Backend
	// SetStream hands the entry down as Set would, without waiting for anything: it fails
	// only when the entry cannot be queued (no connection, or a peer that stopped reading).
	SetStream(path string, key []byte, e sessioncache.Entry) error
}

var _ StreamBackend = (*Client)(nil)

// InlineBackend is a Backend whose calls always return quickly (an in-memory store, say).
// When ServesInline reports true, a connection answers requests with it on its reader
// goroutine instead of one goroutine per request, which is cheaper and lets the replies to
// a batch of requests leave in one write. A backend that may block (on a disk flush or a
// remote store) must not claim it: it would hold up every request behind it.
type InlineBackend interface {
	Backend
	ServesInline() bool
}

// PrefetchBackend is a Backend that can be told which keys its next calls will be for,
// before they come: a connection tells it the keys of the requests it has already
// received, and a batch of hand-downs its keys, so that the backend's memory misses for
// them overlap (see sessioncache.Table.Prefetch). Prefetch must return quickly and change
// nothing; the keys are valid only during the call.
type PrefetchBackend interface {
	Backend
	Prefetch(keys [][]byte)
}

// backendDispatcher serves requests on a client connection with a Backend. Each request
// runs in its own goroutine with copies of its fields, since a backend may block.
type backendDispatcher struct {
	b Backend
}

func (d backendDispatcher) serve(c *conn, f *wire.Frame) {
	switch f.Op {
	case wire.OpPing:
		c.reply(f.ID, wire.StatusOK, 0, nil, 0)
		return
	case wire.OpGet, wire.OpSet, wire.OpDelete, wire.OpEvict:
		if d.b == nil {
			c.replyError(f.ID, f.Op.String()+": this client serves no requests")
			return
		}
	default:
		c.replyError(f.ID, f.Op.String()+" not accepted by a client")
		return
	}
	if ib, ok := d.b.(InlineBackend); ok && ib.ServesInline() {
		serveBackend(context.Background(), d.b, c, f, 0, true)
		return
	}
	req := CopyFrame(f)
	go serveBackend(context.Background(), d.b, c, req, c.timeout, false)
}

// serveBackend answers one request with a Backend and replies on c; inline says it runs on
// c's reader, within its handling of what a read brought.
func serveBackend(ctx context.Context, b Backend, c *conn, f *wire.Frame, timeout time.Duration, inline bool) {
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	path := c.pathOf(f.Path)
	var err error
	defer func() {
		if err != nil && f.Flags&wire.FlagNoReply != 0 {
			c.logger.Warn("relay: a hand-down failed", "op", f.Op.String(), "peer", c.name, "err", err)
		}
	}()
	switch f.Op {
	case wire.OpGet:
		var e sessioncache.Entry
		e, err = b.Get(ctx, path, f.Key)
		if err == nil || errors.Is(err, ErrNotFound) {
			c.replyEntry(f.ID, e, err)
			return
		}
	case wire.OpSet:
		if f.Flags&wire.FlagDurable != 0 {
			db, ok := b.(DurableBackend)
			if !ok {
				err = errors.New("set: this server cannot store entries durably")
				break
			}
			err = db.SetDurable(ctx, path, f.Key, FrameEntry(f))
			break
		}
		err = b.Set(ctx, path, f.Key, FrameEntry(f))
	case wire.OpDelete:
		err = b.Delete(ctx, path, f.Key, FrameEntry(f))
	case wire.OpEvict:
		if f.Flags&wire.FlagBatch != 0 {
			err = serveBatch(ctx, b, path, f.Value)
			break
		}
		err = b.Evict(ctx, path, f.Key, FrameEntry(f))
	}
	switch {
	case f.Flags&wire.FlagNoReply != 0:
		// Nothing waits for it.
	case errors.Is(err, ErrNoOwner):
		c.reply(f.ID, wire.StatusOK, wire.FlagNoOwner, nil, 0)
	case err == nil && f.Op != wire.OpGet:
		// The ack of a hand-down is bulk traffic, sent so that it shares a write with
		// others. Served on the reader it leaves with the other replies to what this read
		// brought (the reader holds the flush while whole frames remain), written by the
		// reader itself: handing it to the flusher goroutine woke a second thread per batch,
		// which on a small machine takes the processor the relay needs. From a goroutine of
		// its own it goes through the flusher, with the acks of the other goroutines.
		c.clock.done(f.ID, wire.StatusOK)
		ack := &wire.Frame{Op: wire.OpReply, ID: f.ID, Status: wire.StatusOK}
		if inline {
			_ = c.writeSoft(ack)
		} else {
			_ = c.writeDeferred(ack)
		}
	default:
		replyResult(c, f.ID, err)
	}
}

// serveBatch hands the changes of a batch's value to b: all at once if it takes batches,
// else one by one.
func serveBatch(ctx context.Context, b Backend, path string, v []byte) error {
	if pb, ok := b.(PrefetchBackend); ok {
		bp := batchKeys.Get().(*[][]byte)
		keys := (*bp)[:0]
		_ = wire.ParseBatch(v, func(f *wire.Frame) error {
			if len(keys) == cap(keys) {
				pb.Prefetch(keys)
				keys = keys[:0]
			}
			keys = append(keys, f.Key)
			return nil
		})
		pb.Prefetch(keys)
		clear(keys)
		batchKeys.Put(bp)
	}
	bb, ok := b.(BatchBackend)
	if !ok {
		return wire.ParseBatch(v, func(f *wire.Frame) error {
			if f.Op == wire.OpDelete {
				return b.Delete(ctx, path, f.Key, FrameEntry(f))
			}
			return b.Evict(ctx, path, f.Key, FrameEntry(f))
		})
	}
	var batch []HandDown
	if err := wire.ParseBatch(v, func(f *wire.Frame) error {
		batch = append(batch, HandDown{Key: f.Key, Entry: FrameEntry(f), Delete: f.Op == wire.OpDelete})
		return nil
	}); err != nil {
		return err
	}
	return bb.HandDownBatch(ctx, path, batch)
}

// batchKeys holds the buffers serveBatch collects a batch's keys in for Prefetch.
var batchKeys = sync.Pool{New: func() any {
	b := make([][]byte, 0, prefetchKeys)
	return &b
}}

// EntryFrame is the request of op (set, publish, evict or delete) carrying e on path: an
// evict of a tombstone when e.Deleted, with FlagDeleted and no value.
func EntryFrame(op wire.Op, path string, key []byte, e sessioncache.Entry) *wire.Frame {
	f := EntryFrameValue(op, []byte(path), key, e)
	return &f
}

// EntryFrameValue is EntryFrame as a value, for a caller that encodes the frame at once:
// kept on the caller's stack, it costs no allocation.
func EntryFrameValue(op wire.Op, path, key []byte, e sessioncache.Entry) wire.Frame {
	f := wire.Frame{Op: op, Path: path, Key: key, Value: e.Value, Expiry: UnixNano(e.Expiry), Rev: e.Rev}
	if e.Deleted && op == wire.OpEvict {
		f.Flags |= wire.FlagDeleted
		f.Value = nil
	}
	return f
}

// HandDownFrame is the request that carries h on path: a delete, or an evict (of a
// tombstone when h.Entry.Deleted).
func HandDownFrame(path string, h HandDown) *wire.Frame {
	if h.Delete {
		return &wire.Frame{Op: wire.OpDelete, Path: []byte(path), Key: h.Key, Expiry: UnixNano(h.Entry.Expiry), Rev: h.Entry.Rev}
	}
	return EntryFrame(wire.OpEvict, path, h.Key, h.Entry)
}

// FrameEntry is the entry a set, evict or delete frame carries (a tombstone for a delete,
// or an evict with FlagDeleted); its value points into f.
func FrameEntry(f *wire.Frame) sessioncache.Entry {
	e := sessioncache.Entry{Value: f.Value, Expiry: UnixTime(f.Expiry), Rev: f.Rev}
	if f.Op == wire.OpDelete || (f.Op == wire.OpEvict && f.Flags&wire.FlagDeleted != 0) {
		e.Value, e.Deleted = nil, true
	}
	return e
}

// replyResult answers ok, not found or error according to err.
func replyResult(c *conn, id uint64, err error) {
	switch {
	case err == nil:
		c.reply(id, wire.StatusOK, 0, nil, 0)
	case errors.Is(err, ErrNotFound):
		c.reply(id, wire.StatusNotFound, 0, nil, 0)
	default:
		c.replyError(id, err.Error())
	}
}

// CopyFrame returns a copy of f whose slices are its own, for a handler that answers after
// the reader has moved on.
func CopyFrame(f *wire.Frame) *wire.Frame {
	buf := make([]byte, 0, len(f.Path)+len(f.Key)+len(f.Value))
	buf = append(buf, f.Path...)
	buf = append(buf, f.Key...)
	buf = append(buf, f.Value...)
	g := *f
	g.Path = buf[:len(f.Path):len(f.Path)]
	g.Key = buf[len(f.Path) : len(f.Path)+len(f.Key) : len(f.Path)+len(f.Key)]
	g.Value = buf[len(f.Path)+len(f.Key):]
	return &g
}

// batchBytes bounds the value of a batch frame, well below any peer's frame limit.
const batchBytes = 256 << 10

// PackBatches packs evict and delete frames into batch frames (evicts with FlagBatch) of
// at most 256 KiB each (one frame larger than that goes alone), a new batch starting where
// the path changes. A single frame is sent as it is.
func PackBatches(frames []*wire.Frame) ([]*wire.Frame, error) {
	if len(frames) == 1 {
		return frames, nil
	}
	var out []*wire.Frame
	var cur *wire.Frame
	for i, f := range frames {
		if cur == nil || string(cur.Path) != string(f.Path) || len(cur.Value) > 0 && len(cur.Value)+4+f.Len() > batchBytes {
			// Sized for the frames it will hold, so it is written without growing.
			size := 0
			for _, g := range frames[i:] {
				n := 4 + g.Len()
				if string(g.Path) != string(f.Path) || size > 0 && size+n > batchBytes {
					break
				}
				size += n
			}
			cur = &wire.Frame{Op: wire.OpEvict, Flags: wire.FlagBatch, Path: f.Path, Value: batchBuffer(size)}
			out = append(out, cur)
		}
		var err error
		if cur.Value, err = wire.AppendBatch(cur.Value, f); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// batchBuffers holds the values of sent batches for the next ones (see ReleaseBatches).
var batchBuffers sync.Pool

// pooledBatch is the largest batch value kept for reuse.
const pooledBatch = 64 << 10

func batchBuffer(size int) []byte {
	if size <= pooledBatch {
		if bp, ok := batchBuffers.Get().(*[]byte); ok {
			if cap(*bp) >= size {
				return (*bp)[:0]
			}
		}
		size = max(size, 8<<10)
	}
	return make([]byte, 0, size)
}

// ReleaseBatches gives the values of the batch frames PackBatches made of frames back for
// reuse. Call it once packed has been sent (sending encodes a frame at once), when nothing
// refers to them any more.
func ReleaseBatches(frames, packed []*wire.Frame) {
	if len(frames) == 1 {
		return // PackBatches sent it as it was: not its to give back
	}
	for _, f := range packed {
		if f.Flags&wire.FlagBatch != 0 && cap(f.Value) <= pooledBatch {
			b := f.Value[:0]
			f.Value = nil
			batchBuffers.Put(&b)
		}
	}
}

package sessioncache

import (
	"errors"
	"fmt"
	"sync/atomic"
)

// Verify checks every invariant of the section's layout, one shard at a time under its lock
// (recovering locks left by dead processes first): the header; every bucket chain's links in
// range, acyclic, through live and whole records that hash to that shard and bucket, with no
// key twice; the free list's links in range, acyclic, through free records; every record on
// exactly one of them; and the shard's live count. It returns nil or an error wrapping
// ErrCorrupt that lists each violation.
func (t *Table) Verify() error {
	if t.closed.Load() {
		return ErrClosed
	}
	var errs []error
	h := t.hdr
	if string(h.magic[:]) != sectionMagic || atomic.LoadUint32(&h.ready) != readyValue ||
		h.version != layoutVersion || h.shape() != t.shape {
		errs = append(errs, errors.New("header changed since the section was opened"))
	}
	for s := range t.shards {
		sh := &t.shards[s]
		t.lockShard(sh)
		errs = append(errs, t.verifyShard(s, sh)...)
		t.unlockShard(sh)
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("%w: %s: %w", ErrCorrupt, t.path, errors.Join(errs...))
}

func (t *Table) verifyShard(s int, sh *shard) []error {
	var errs []error
	bad := func(format string, args ...any) {
		if len(errs) < 20 {
			errs = append(errs, fmt.Errorf("shard %d: "+format, append([]any{s}, args...)...))
		}
	}
	seen := make([]bool, sh.count)
	var live uint32
	for b := uint32(0); b < sh.count; b++ {
		keys := map[string]bool{}
		for idx, hops := *bucket(sh, b), uint32(0); idx != 0; hops++ {
			if idx > sh.count {
				bad("bucket %d links to record %d of %d", b, idx-1, sh.count)
				break
			}
			i := idx - 1
			if seen[i] {
				bad("record %d is reached twice (bucket %d)", i, b)
				break
			}
			seen[i] = true
			r := t.record(sh, i)
			switch {
			case r.state != stateLive:
				bad("record %d in bucket %d is in state %d, not live", i, b, r.state)
			case !t.recordWhole(sh, r):
				bad("record %d in bucket %d has bad lengths or a hash that is not its key's", i, b)
			case bucketOf(sh, r.hash) != b:
				bad("record %d is in bucket %d, its hash puts it in %d", i, b, bucketOf(sh, r.hash))
			case keys[string(t.keyBytes(r))]:
				bad("record %d repeats a key of bucket %d", i, b)
			case r.expiry != 0 && (sh.hdr.minExpiry == 0 || r.expiry < sh.hdr.minExpiry):
				bad("record %d expires at %d, before the shard's minimum expiry %d", i, r.expiry, sh.hdr.minExpiry)
			default:
				keys[string(t.keyBytes(r))] = true
			}
			live++
			idx = r.next
		}
	}
	for idx := sh.hdr.freeHead; idx != 0; {
		if idx > sh.count {
			bad("free list links to record %d of %d", idx-1, sh.count)
			break
		}
		i := idx - 1
		if seen[i] {
			bad("record %d is reached twice (free list)", i)
			break
		}
		seen[i] = true
		r := t.record(sh, i)
		if r.state != stateFree {
			bad("record %d on the free list is in state %d", i, r.state)
		}
		idx = r.next
	}
	for i, ok := range seen {
		if !ok {
			bad("record %d is neither in a bucket nor on the free list", i)
		}
	}
	if live != sh.hdr.live {
		bad("live count is %d, the chains hold %d", sh.hdr.live, live)
	}
	if sh.hdr.hand >= sh.count {
		bad("clock hand %d is past the last record %d", sh.hdr.hand, sh.count-1)
	}
	return errs
}

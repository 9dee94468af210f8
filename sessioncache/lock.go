package sessioncache

import (
	"runtime"
	"sync/atomic"
	"time"
)

// Each shard has a writer lock and a sequence counter in shared memory.
//
// Writers take the lock with a compare-and-swap of 0 to their owner word (pid and process
// start time), then make the sequence odd, change the shard, make it even and clear the lock.
// Readers take no lock: they read the sequence, look up and copy, and read it again; an odd
// or changed sequence means a writer was active, so they retry (a seqlock). A reader thus
// never writes the lines a writer owns and never returns a torn value.
//
// A process killed while it holds a lock leaves its owner word behind. Anyone waiting on
// that lock for about a millisecond checks, through /proc, whether the owner still runs; if
// not, it takes the lock over with a compare-and-swap and, when the sequence is odd (the dead
// writer stopped half-way), rebuilds the shard from its records (repair.go).

// recoverCheckInterval is how long a waiter waits between checks of the lock owner's life.
const recoverCheckInterval = time.Millisecond

// lockShard takes sh's writer lock and opens a write: the sequence becomes odd.
func (t *Table) lockShard(sh *shard) {
	if !atomic.CompareAndSwapUint64(&sh.hdr.lock, 0, t.owner) {
		t.lockSlow(sh)
	}
	// Only lock holders write seq, so a load and a release store make the increment.
	storeRelease64(&sh.hdr.seq, sh.hdr.seq+1)
}

// unlockShard closes the write (the sequence becomes even) and releases the lock.
func (t *Table) unlockShard(sh *shard) {
	storeRelease64(&sh.hdr.seq, sh.hdr.seq+1)
	storeRelease64(&sh.hdr.lock, 0)
}

func (t *Table) lockSlow(sh *shard) {
	var w backoff
	for {
		cur := atomic.LoadUint64(&sh.hdr.lock)
		if cur == 0 {
			if atomic.CompareAndSwapUint64(&sh.hdr.lock, 0, t.owner) {
				return
			}
			continue
		}
		if w.pause() && t.takeOverDead(sh, cur) {
			return
		}
	}
}

// awaitWriter is called by a reader that found the sequence odd. It waits a little and, when
// the writer has held the shard too long, checks whether it died and recovers the shard.
func (t *Table) awaitWriter(sh *shard, w *backoff) {
	if !w.pause() {
		return
	}
	cur := atomic.LoadUint64(&sh.hdr.lock)
	if cur != 0 && t.takeOverDead(sh, cur) {
		storeRelease64(&sh.hdr.lock, 0)
	}
}

// takeOverDead takes the lock from owner word cur if that process is dead, repairs what it
// left half-done, and reports whether the caller now holds the lock (with an even sequence).
func (t *Table) takeOverDead(sh *shard, cur uint64) bool {
	if cur == t.owner || ownerAlive(cur) {
		return false
	}
	if !atomic.CompareAndSwapUint64(&sh.hdr.lock, cur, t.owner) {
		return false
	}
	repaired := false
	if seq := atomic.LoadUint64(&sh.hdr.seq); seq&1 != 0 {
		t.repair(sh)
		storeRelease64(&sh.hdr.seq, seq+1)
		repaired = true
	}
	sh.hdr.recoveries++
	t.logger.Warn("sessioncache: recovered lock of a dead process", "path", t.path,
		"pid", cur>>32, "repaired", repaired)
	return true
}

// backoff paces a wait: a short spin, then yields, then sleeps of up to 100µs.
type backoff struct {
	n       int
	checkAt time.Time
}

// pause waits once and reports whether it is time to check the lock holder's life, which
// it does about every recoverCheckInterval.
func (b *backoff) pause() bool {
	b.n++
	switch {
	case b.n < 32:
		return false
	case b.n < 64:
		runtime.Gosched()
	default:
		time.Sleep(min(time.Duration(b.n-63)*5*time.Microsecond, 100*time.Microsecond))
	}
	now := time.Now()
	if b.checkAt.IsZero() {
		b.checkAt = now.Add(recoverCheckInterval)
		return false
	}
	if now.Before(b.checkAt) {
		return false
	}
	b.checkAt = now.Add(recoverCheckInterval)
	return true
}

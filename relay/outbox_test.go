package relay

import (
	"bufio"
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/relay/internal/endpoint"
	"github.com/globalsession/globalsession/sessioncache"
)

// TestOutboxReusesSegmentsWithoutReplayingThem: confirmed segments are reused as spares,
// and an outbox reopened after a stop replays the segment that holds unconfirmed records
// up to its last record, none of what it held before its reuse.
func TestOutboxReusesSegmentsWithoutReplayingThem(t *testing.T) {
	dir := t.TempDir()
	var down atomic.Bool
	var delivered atomic.Int64
	deliver := func(_ context.Context, frames []*wire.Frame) error {
		if down.Load() {
			return errDown
		}
		delivered.Add(int64(len(frames)))
		return nil
	}
	o, err := openOutbox(dir, 1<<30, 2, slog.New(slog.DiscardHandler), deliver)
	require.NoError(t, err)
	// Enough for several segments, each confirmed soon after it fills.
	const n = (outboxSpares + 2) * outboxSegmentSize / 450
	for i := range n {
		require.NoError(t, o.add(outboxFrame(i)))
	}
	eventually(t, "every record to be confirmed", func() bool { return delivered.Load() == n })
	o.mu.Lock()
	spares, segs := len(o.spares), o.nextSeg
	o.mu.Unlock()
	assert.Greater(t, segs, uint64(3), "records filled several segments")
	assert.Positive(t, spares, "confirmed segments are kept as spares")

	// Roll into a reused segment, then stop with three records unconfirmed in it.
	const m = outboxSegmentSize/450 + 10
	for i := range m {
		require.NoError(t, o.add(outboxFrame(n+i)))
	}
	eventually(t, "those to be confirmed", func() bool { return delivered.Load() == n+m })
	down.Store(true)
	for i := range 3 {
		require.NoError(t, o.add(outboxFrame(2*n+i)))
	}
	o.close()
	left, err := filepath.Glob(filepath.Join(dir, "spare-*"))
	require.NoError(t, err)
	assert.Empty(t, left, "spares are removed on close")
	segments, err := filepath.Glob(filepath.Join(dir, "*.outbox"))
	require.NoError(t, err)
	require.Len(t, segments, 1, "only the segment with unconfirmed records stays")
	raw, err := os.ReadFile(segments[0])
	require.NoError(t, err)
	recs, err := readSegment(segments[0])
	require.NoError(t, err)
	require.NotEmpty(t, recs)
	last := recs[len(recs)-1]
	end := int(last.off) + 12 + last.frame.Len() // length, checksum, the frame's own length prefix, the frame
	assert.NotEqual(t, make([]byte, 64), raw[end+4:end+68], "the segment was a reused one: older records follow its end")

	keys := replayOutbox(t, dir)
	// What was confirmed is marked done and not replayed; what the segment held before its
	// reuse would come after, with lower keys.
	assert.Equal(t, []string{fmt.Sprintf("key-%06d", 2*n), fmt.Sprintf("key-%06d", 2*n+1), fmt.Sprintf("key-%06d", 2*n+2)},
		keys, "only the unconfirmed records are replayed")
}

// outboxFrame is the eviction of key i, as the outbox tests write it.
func outboxFrame(i int) *wire.Frame {
	return endpoint.EntryFrame(wire.OpEvict, "auths", fmt.Appendf(nil, "key-%06d", i),
		sessioncache.Entry{Value: make([]byte, 400), Rev: uint64(i + 1), Expiry: time.Now().Add(time.Hour)})
}

// runOutboxWriter is the outbox writer process of TestOutboxKilledWhileWritingAReusedSegment:
// it fills and confirms three segments' worth of records in GS_OUTBOX_DIR, so that the
// segments it goes on with are reused ones, then adds records the tier below never
// confirms, printing the index of each once add has returned, until it is killed.
func runOutboxWriter() int {
	const confirmed = 3 * outboxSegmentSize / 450
	var delivered atomic.Int64
	o, err := openOutbox(os.Getenv("GS_OUTBOX_DIR"), 1<<30, 1, slog.New(slog.DiscardHandler),
		func(_ context.Context, frames []*wire.Frame) error {
			for _, f := range frames {
				if string(f.Key) >= fmt.Sprintf("key-%06d", confirmed) {
					return errDown
				}
			}
			delivered.Add(int64(len(frames)))
			return nil
		})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	for i := range confirmed {
		if err := o.add(outboxFrame(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
	}
	for i := 0; delivered.Load() < confirmed; i++ {
		if i == 10_000 {
			fmt.Fprintln(os.Stderr, "the first records were not confirmed within 10 s")
			return 1
		}
		time.Sleep(time.Millisecond)
	}
	fmt.Println("confirmed", confirmed)
	for i := confirmed; ; i++ {
		if err := o.add(outboxFrame(i)); err != nil {
			fmt.Fprintln(os.Stderr, err)
			return 1
		}
		fmt.Println(i)
	}
}

// TestOutboxKilledWhileWritingAReusedSegment: a process writing records into reused
// segments is SIGKILLed mid-stream; the next outbox on the directory replays every record
// whose add had returned, in order, and nothing a reused segment held before.
func TestOutboxKilledWhileWritingAReusedSegment(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	dir := t.TempDir()
	cmd := exec.Command(exe, "-test.run=^$")
	cmd.Env = append(os.Environ(), "GS_TEST_ROLE=outbox", "GS_OUTBOX_DIR="+dir)
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	cmd.Stderr = os.Stderr
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })

	lines := bufio.NewScanner(out)
	confirmed, last := -1, -1
	for lines.Scan() {
		line := lines.Text()
		if n, ok := strings.CutPrefix(line, "confirmed "); ok {
			confirmed, err = strconv.Atoi(n)
			require.NoError(t, err)
			continue
		}
		last, err = strconv.Atoi(line)
		require.NoError(t, err)
		if last >= confirmed+5000 { // well into a reused segment, mid-stream
			break
		}
	}
	require.Positive(t, confirmed, "the writer confirmed its first segments")
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	cmd.Wait()

	keys := replayOutbox(t, dir)
	assert.True(t, slices.IsSorted(keys), "replayed in order, nothing a reused segment held before")
	held := map[string]bool{}
	for _, k := range keys {
		held[k] = true
	}
	for i := confirmed; i <= last; i++ {
		if !held[fmt.Sprintf("key-%06d", i)] {
			t.Fatalf("record %d was added before the kill (the last added: %d) and is not replayed", i, last)
		}
	}
}

// replayOutbox opens the outbox in dir with a tier below that confirms everything, and
// returns the keys of the records it replays, in the order they are handed down.
func replayOutbox(t *testing.T, dir string) []string {
	t.Helper()
	var mu sync.Mutex
	var keys []string
	o, err := openOutbox(dir, 1<<30, 1, slog.New(slog.DiscardHandler), func(_ context.Context, frames []*wire.Frame) error {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range frames {
			keys = append(keys, string(f.Key))
		}
		return nil
	})
	require.NoError(t, err)
	defer o.close()
	eventually(t, "the records to be replayed", func() bool { return o.pending.Load() == 0 })
	mu.Lock()
	defer mu.Unlock()
	return slices.Clone(keys)
}

// TestAnEvictionSupersededIsNotAnswered: an eviction the tier below has not confirmed (its
// hand-down keeps failing) is superseded by the key's newer eviction, a tombstone: once
// that is confirmed, the relay answers a lookup of the key from neither, rather than with
// the old version a logout replaced, and the old record is done without being handed down.
func TestAnEvictionSupersededIsNotAnswered(t *testing.T) {
	key := []byte("session")
	hour := time.Now().Add(time.Hour)
	deliver := func(_ context.Context, frames []*wire.Frame) error {
		for _, f := range frames {
			if f.Rev == 1 {
				return errDown
			}
		}
		return nil
	}
	o, err := openOutbox(t.TempDir(), 1<<30, 2, slog.New(slog.DiscardHandler), deliver)
	require.NoError(t, err)
	defer o.close()
	require.NoError(t, o.add(endpoint.EntryFrame(wire.OpEvict, "auths", key, sessioncache.Entry{Value: []byte("v1"), Expiry: hour, Rev: 1})))
	e, _, ok := o.pendingEviction(key)
	require.True(t, ok, "v1 is answered from the outbox while it waits")
	assert.Equal(t, "v1", string(e.Value))
	require.NoError(t, o.add(endpoint.EntryFrame(wire.OpEvict, "auths", key, sessioncache.Entry{Expiry: hour, Rev: 2, Deleted: true})))
	eventually(t, "every record to be done", func() bool { return o.pending.Load() == 0 })
	_, _, ok = o.pendingEviction(key)
	assert.False(t, ok, "v1 was superseded by the confirmed tombstone")
	assert.Zero(t, o.deletedAt(key), "the tombstone is confirmed")
}

// TestAReplayedOutboxDoesNotBringBackAVersionItHandedDown: a confirmed eviction whose
// segment stays (another record in it is never confirmed) is not replayed by the next run,
// so that run does not answer a lookup with it while the key's newer version, a tombstone
// confirmed from a segment since removed, is what the tier below holds.
func TestAReplayedOutboxDoesNotBringBackAVersionItHandedDown(t *testing.T) {
	dir := t.TempDir()
	key, stuck := []byte("session"), []byte("stuck")
	hour := time.Now().Add(time.Hour)
	deliver := func(_ context.Context, frames []*wire.Frame) error {
		for _, f := range frames {
			if string(f.Key) == string(stuck) {
				return errDown
			}
		}
		return nil
	}
	o, err := openOutbox(dir, 1<<30, 2, slog.New(slog.DiscardHandler), deliver)
	require.NoError(t, err)
	require.NoError(t, o.add(endpoint.EntryFrame(wire.OpEvict, "auths", key, sessioncache.Entry{Value: []byte("v1"), Expiry: hour, Rev: 1})))
	require.NoError(t, o.add(endpoint.EntryFrame(wire.OpEvict, "auths", stuck, sessioncache.Entry{Value: []byte("s"), Expiry: hour, Rev: 1})))
	eventually(t, "v1's eviction to be confirmed", func() bool { return o.pending.Load() == 1 })
	// Roll into a second segment, put the tombstone there, and roll past it.
	const fill = outboxSegmentSize/450 + 10
	next := 0
	for range fill {
		require.NoError(t, o.add(outboxFrame(next)))
		next++
	}
	require.NoError(t, o.add(endpoint.EntryFrame(wire.OpEvict, "auths", key, sessioncache.Entry{Expiry: hour, Rev: 2, Deleted: true})))
	for range fill {
		require.NoError(t, o.add(outboxFrame(next)))
		next++
	}
	eventually(t, "all but the stuck record to be confirmed", func() bool { return o.pending.Load() == 1 })
	o.close()
	segments, err := filepath.Glob(filepath.Join(dir, "*.outbox"))
	require.NoError(t, err)
	require.Len(t, segments, 1, "only the first segment, with the stuck record, stays")

	again, err := openOutbox(dir, 1<<30, 1, slog.New(slog.DiscardHandler), func(context.Context, []*wire.Frame) error { return errDown })
	require.NoError(t, err)
	defer again.close()
	assert.Equal(t, int64(1), again.pending.Load(), "only the stuck record is replayed")
	_, _, ok := again.pendingEviction(key)
	assert.False(t, ok, "the confirmed eviction of v1 is not answered from")
}

// TestExpiredVersionsGiveWayUnderPressure: the deletions of expired versions take only
// the first half of the outbox's limit, counted when left out, so that evictions and
// deletions, which must not be refused, keep the other half.
func TestExpiredVersionsGiveWayUnderPressure(t *testing.T) {
	never := func(context.Context, []*wire.Frame) error { return errDown }
	o, err := openOutbox(t.TempDir(), 4096, 1, slog.New(slog.DiscardHandler), never)
	require.NoError(t, err)
	defer o.close()
	hour := time.Now().Add(time.Hour)
	shadow := func(i int) *wire.Frame {
		return endpoint.EntryFrame(wire.OpDelete, "auths", fmt.Appendf(nil, "expired-%d", i), sessioncache.Entry{Rev: uint64(i + 1), Deleted: true, Expiry: time.Now().Add(-time.Second)})
	}
	i := 0
	for ; i < 1000 && o.addIfRoom(shadow(i)) == nil; i++ {
	}
	require.Less(t, i, 1000, "the expired versions stop at half the limit")
	assert.Equal(t, int64(1), o.shadowsDropped.Load())
	assert.LessOrEqual(t, o.bytes, int64(2048))
	require.NoError(t, o.add(endpoint.EntryFrame(wire.OpEvict, "auths", []byte("live"), sessioncache.Entry{Value: []byte("v"), Expiry: hour, Rev: 1})),
		"an eviction still has room")
	assert.Zero(t, o.dropped.Load())
}

// TestACopyDoesNotSupersedeItsVersion: a copy of a lower tier's answer (which may end
// early, at a relief server's cap) pushed out while the version itself still waits in the
// outbox does not replace it; the version does replace a waiting copy.
func TestACopyDoesNotSupersedeItsVersion(t *testing.T) {
	o, err := openOutbox(t.TempDir(), 1<<30, 1, slog.New(slog.DiscardHandler), func(context.Context, []*wire.Frame) error { return errDown })
	require.NoError(t, err)
	defer o.close()
	own, capped := time.Now().Add(time.Hour), time.Now().Add(time.Minute)
	copyOf := func(key string, exp time.Time) *wire.Frame {
		f := endpoint.EntryFrame(wire.OpEvict, "auths", []byte(key), sessioncache.Entry{Value: []byte("v"), Expiry: exp, Rev: 7})
		f.Flags |= wire.FlagCopy
		return f
	}
	version := func(key string) *wire.Frame {
		return endpoint.EntryFrame(wire.OpEvict, "auths", []byte(key), sessioncache.Entry{Value: []byte("v"), Expiry: own, Rev: 7})
	}

	require.NoError(t, o.add(version("a")))
	require.NoError(t, o.add(copyOf("a", capped)))
	e, isCopy, ok := o.pendingEviction([]byte("a"))
	require.True(t, ok)
	assert.False(t, isCopy, "the version is kept")
	assert.True(t, e.Expiry.Equal(own), "expiry %v, want the version's own %v", e.Expiry, own)

	require.NoError(t, o.add(copyOf("b", capped)))
	require.NoError(t, o.add(version("b")))
	e, isCopy, ok = o.pendingEviction([]byte("b"))
	require.True(t, ok)
	assert.False(t, isCopy, "the version replaces the copy")
	assert.True(t, e.Expiry.Equal(own))
	require.NoError(t, o.add(copyOf("c", capped)))
	assert.Equal(t, int64(3), o.pending.Load(), "one record a key waits")

	// The mark survives a restart with the record.
	o.close()
	again, err := openOutbox(o.dir, 1<<30, 1, slog.New(slog.DiscardHandler), func(context.Context, []*wire.Frame) error { return errDown })
	require.NoError(t, err)
	defer again.close()
	_, isCopy, ok = again.pendingEviction([]byte("c"))
	require.True(t, ok)
	assert.True(t, isCopy, "c is a copy after the restart")
	_, isCopy, ok = again.pendingEviction([]byte("a"))
	require.True(t, ok)
	assert.False(t, isCopy)
}

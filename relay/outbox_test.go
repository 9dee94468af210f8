package relay

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
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
	value := make([]byte, 400)
	frame := func(i int) *wire.Frame {
		return endpoint.EntryFrame(wire.OpEvict, "auths", fmt.Appendf(nil, "key-%06d", i),
			sessioncache.Entry{Value: value, Rev: uint64(i + 1), Expiry: time.Now().Add(time.Hour)})
	}
	// Enough for several segments, each confirmed soon after it fills.
	const n = 3 * outboxSegmentSize / 450
	for i := range n {
		require.NoError(t, o.add(frame(i)))
	}
	eventually(t, "every record to be confirmed", func() bool { return delivered.Load() == n })
	o.mu.Lock()
	spares, segs := len(o.spares), o.nextSeg
	o.mu.Unlock()
	assert.Greater(t, segs, uint64(3), "records filled several segments")
	assert.Positive(t, spares, "confirmed segments are kept as spares")

	// Roll into a reused segment, then stop with three records unconfirmed in it.
	for i := range n / 3 {
		require.NoError(t, o.add(frame(n+i)))
	}
	eventually(t, "those to be confirmed", func() bool { return delivered.Load() == n+n/3 })
	down.Store(true)
	for i := range 3 {
		require.NoError(t, o.add(frame(2*n+i)))
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
	frames, err := readSegment(segments[0])
	require.NoError(t, err)
	end := 0
	for _, f := range frames {
		end += 8 + f.Len()
	}
	assert.NotEqual(t, make([]byte, 64), raw[end+4:end+68], "the segment was a reused one: older records follow its end")

	var mu sync.Mutex
	var keys []string
	o2, err := openOutbox(dir, 1<<30, 1, slog.New(slog.DiscardHandler), func(_ context.Context, frames []*wire.Frame) error {
		mu.Lock()
		defer mu.Unlock()
		for _, f := range frames {
			keys = append(keys, string(f.Key))
		}
		return nil
	})
	require.NoError(t, err)
	defer o2.close()
	eventually(t, "the unconfirmed records to be replayed", func() bool { return o2.pending.Load() == 0 })
	mu.Lock()
	defer mu.Unlock()
	// A segment is replayed whole (what was confirmed in it too, which does no harm), in
	// order; what the segment held before its reuse would come after, with lower keys.
	require.GreaterOrEqual(t, len(keys), 3)
	assert.Equal(t, []string{fmt.Sprintf("key-%06d", 2*n), fmt.Sprintf("key-%06d", 2*n+1), fmt.Sprintf("key-%06d", 2*n+2)},
		keys[len(keys)-3:], "the unconfirmed records are replayed, last")
	assert.True(t, slices.IsSorted(keys), "nothing older than the segment's reuse is replayed")
}

package sessioncache

import (
	"bytes"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestSetGetDelete(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 100, RecordSize: 64})
	_, err := tb.Get([]byte("a"))
	require.ErrorIs(t, err, ErrNotFound)

	require.NoError(t, tb.Set([]byte("a"), []byte("one"), time.Time{}))
	v, err := tb.Get([]byte("a"))
	require.NoError(t, err)
	assert.Equal(t, "one", string(v))

	require.NoError(t, tb.Set([]byte("a"), []byte("uno"), time.Time{}))
	v, err = tb.Get([]byte("a"))
	require.NoError(t, err)
	assert.Equal(t, "uno", string(v))
	assert.Equal(t, 1, tb.Len())

	require.NoError(t, tb.Set([]byte("empty"), nil, time.Time{}))
	v, err = tb.Get([]byte("empty"))
	require.NoError(t, err)
	assert.Empty(t, v)

	ok, err := tb.Delete([]byte("a"))
	require.NoError(t, err)
	assert.True(t, ok)
	ok, err = tb.Delete([]byte("a"))
	require.NoError(t, err)
	assert.False(t, ok)
	_, err = tb.Get([]byte("a"))
	require.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, 1, tb.Len())
	require.NoError(t, tb.Verify())
}

func TestGetAppendFillsCallerBuffer(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 16, RecordSize: 64})
	exp := time.Now().Add(time.Hour).Truncate(0)
	require.NoError(t, tb.Set([]byte("k"), []byte("value"), exp))
	buf := make([]byte, 3, 64)
	copy(buf, "xyz")
	out, gotExp, err := tb.GetAppend(buf, []byte("k"))
	require.NoError(t, err)
	assert.Equal(t, "xyzvalue", string(out))
	assert.Equal(t, &buf[0], &out[0], "GetAppend must reuse the caller's buffer")
	assert.True(t, exp.Equal(gotExp), "expiry %v, want %v", gotExp, exp)

	out, _, err = tb.GetAppend(buf, []byte("missing"))
	require.ErrorIs(t, err, ErrNotFound)
	assert.Equal(t, "xyz", string(out))

	allocs := testing.AllocsPerRun(100, func() {
		out, _, _ = tb.GetAppend(buf[:0], []byte("k"))
	})
	assert.Zero(t, allocs)
}

func TestPeekAppendReadsAPrefix(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 16, RecordSize: 64})
	exp := time.Now().Add(time.Hour).Truncate(0)
	require.NoError(t, tb.Set([]byte("k"), []byte("header+body"), exp))
	for _, c := range []struct {
		n    int
		want string
	}{{6, "header"}, {0, ""}, {-1, ""}, {100, "header+body"}} {
		out, gotExp, err := tb.PeekAppend([]byte("x"), []byte("k"), c.n)
		require.NoError(t, err)
		assert.Equal(t, "x"+c.want, string(out), "n=%d", c.n)
		assert.True(t, exp.Equal(gotExp))
	}
	_, _, err := tb.PeekAppend(nil, []byte("missing"), 6)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestInputErrors(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 16, RecordSize: 64, MaxKeySize: 16})
	tests := []struct {
		name       string
		key, value []byte
		want       error
	}{
		{"empty key", nil, []byte("v"), ErrEmptyKey},
		{"key too large", bytes.Repeat([]byte("k"), 17), []byte("v"), ErrKeyTooLarge},
		{"value too large", []byte("k"), bytes.Repeat([]byte("v"), 64), ErrValueTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tb.Set(tt.key, tt.value, time.Time{})
			require.ErrorIs(t, err, tt.want)
			if tt.want != ErrEmptyKey {
				_, err = tb.Get(tt.key)
				if tt.want == ErrKeyTooLarge {
					require.ErrorIs(t, err, tt.want)
				}
			}
		})
	}
	// The exact fit is accepted.
	require.NoError(t, tb.Set([]byte("k"), bytes.Repeat([]byte("v"), 63), time.Time{}))
	err := tb.Set([]byte("k"), bytes.Repeat([]byte("v"), 64), time.Time{})
	assert.Contains(t, err.Error(), "record_size is 64")
	v, err := tb.Get([]byte("k"))
	require.NoError(t, err)
	assert.Len(t, v, 63, "a refused Set must leave the old value")
}

func TestExpiry(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 8, RecordSize: 32, Shards: 1})
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	clock.install(tb)

	require.NoError(t, tb.Set([]byte("short"), []byte("s"), clock.at(time.Second)))
	require.NoError(t, tb.Set([]byte("long"), []byte("l"), clock.at(time.Hour)))
	require.NoError(t, tb.Set([]byte("never"), []byte("n"), time.Time{}))

	clock.advance(time.Second - 1)
	_, err := tb.Get([]byte("short"))
	require.NoError(t, err, "one nanosecond before its expiry an entry is live")
	clock.advance(1)
	_, err = tb.Get([]byte("short"))
	require.ErrorIs(t, err, ErrNotFound, "at its expiry an entry is gone")
	ok, err := tb.Delete([]byte("short"))
	require.NoError(t, err)
	assert.False(t, ok, "deleting an expired entry reports it was not there")

	// An expiry in the past deletes.
	require.NoError(t, tb.Set([]byte("long"), []byte("x"), clock.at(-time.Second)))
	_, err = tb.Get([]byte("long"))
	require.ErrorIs(t, err, ErrNotFound)

	clock.advance(1000 * time.Hour)
	_, err = tb.Get([]byte("never"))
	require.NoError(t, err)

	// Expired space is reused: fill the table with short-lived entries, let them expire,
	// then fill it again; nothing unexpired is evicted.
	for i := range 7 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "t%d", i), []byte("v"), clock.at(time.Minute)))
	}
	clock.advance(time.Minute)
	for i := range 7 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "u%d", i), []byte("v"), clock.at(time.Minute)))
	}
	st := tb.Stats()
	assert.Zero(t, st.Evictions, "expired entries must be reused before live ones are evicted")
	assert.Equal(t, uint64(7), st.Expired)
	_, err = tb.Get([]byte("never"))
	require.NoError(t, err)
	require.NoError(t, tb.Verify())

	clock.advance(time.Minute)
	n, err := tb.DeleteExpired()
	require.NoError(t, err)
	assert.Equal(t, 7, n)
	assert.Equal(t, 1, tb.Len())
	require.NoError(t, tb.Verify())
}

func TestEvictionOrderAndCallback(t *testing.T) {
	type ev struct {
		key, value string
		expiry     time.Time
	}
	var got []ev
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	tb := openTest(t, Config{ElementCount: 10, RecordSize: 32, Shards: 1,
		OnEvict: func(k, v []byte, e time.Time) { got = append(got, ev{string(k), string(v), e}) }})
	clock.install(tb)
	exp := clock.at(time.Hour)
	for i := range 10 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i), exp))
	}
	// Use the even keys; the odd ones are the least recently used.
	for i := 0; i < 10; i += 2 {
		_, err := tb.Get(fmt.Appendf(nil, "k%d", i))
		require.NoError(t, err)
	}
	for i := range 5 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "n%d", i), []byte("new"), exp))
	}
	for i := range 10 {
		_, err := tb.Get(fmt.Appendf(nil, "k%d", i))
		if i%2 == 0 {
			assert.NoError(t, err, "recently used k%d was evicted", i)
		} else {
			assert.ErrorIs(t, err, ErrNotFound, "unused k%d survived", i)
		}
	}
	require.Len(t, got, 5)
	for _, e := range got {
		assert.Equal(t, "v"+strings.TrimPrefix(e.key, "k"), e.value)
		assert.True(t, e.expiry.Equal(exp))
	}
	st := tb.Stats()
	assert.Equal(t, uint64(5), st.Evictions)
	assert.Equal(t, 10, st.Len)

	// Expired entries are reclaimed without reaching the callback.
	got = nil
	clock.advance(2 * time.Hour)
	for i := range 10 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "z%d", i), []byte("z"), clock.at(time.Hour)))
	}
	assert.Empty(t, got)
	require.NoError(t, tb.Verify())
}

// TestHashCollisions checks that the key, not its hash, decides what a Get returns. Keys
// that share a home slot live side by side; keys whose tags collide replace each other, and
// neither ever reads the other's value.
func TestHashCollisions(t *testing.T) {
	t.Run("same home slot", func(t *testing.T) {
		tb := openTest(t, Config{ElementCount: 64, RecordSize: 64, Shards: 1})
		sh := &tb.shards[0]
		var keys [][]byte
		for i := 0; len(keys) < 20 && i < 1_000_000; i++ {
			k := fmt.Appendf(nil, "key-%d", i)
			if _, tag := tb.locate(tb.hash(k)); home(sh, tag) == 7 {
				keys = append(keys, k)
			}
		}
		require.Len(t, keys, 20)
		for i, k := range keys {
			require.NoError(t, tb.Set(k, fmt.Appendf(nil, "v%d", i), time.Time{}))
		}
		for i, k := range keys {
			v, err := tb.Get(k)
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("v%d", i), string(v))
		}
		for i := 0; i < len(keys); i += 2 {
			ok, err := tb.Delete(keys[i])
			require.NoError(t, err)
			require.True(t, ok)
			require.NoError(t, tb.Verify(), "after deleting %d", i)
		}
		for i, k := range keys {
			v, err := tb.Get(k)
			if i%2 == 0 {
				require.ErrorIs(t, err, ErrNotFound)
			} else {
				require.NoError(t, err)
				assert.Equal(t, fmt.Sprintf("v%d", i), string(v))
			}
		}
	})
	t.Run("same tag", func(t *testing.T) {
		tb := openTest(t, Config{ElementCount: 64, RecordSize: 64, Shards: 1})
		sh := &tb.shards[0]
		require.NoError(t, tb.Set([]byte("alice"), []byte("alice's session"), time.Time{}))
		// Make the index look as if bob's hash tag were alice's: her record now sits under
		// bob's tag on bob's probe path.
		_, aliceTag := tb.locate(tb.hash([]byte("alice")))
		_, bobTag := tb.locate(tb.hash([]byte("bob")))
		pos, s, ok := probeTag(sh, aliceTag)
		require.True(t, ok)
		idx, _ := slotRecord(sh, s)
		removeSlot(sh, pos)
		pos, _, _ = probeTag(sh, bobTag)
		*slot(sh, pos) = makeSlot(bobTag, idx)

		_, err := tb.Get([]byte("bob"))
		require.ErrorIs(t, err, ErrNotFound, "bob must not read alice's value")
		ok, err = tb.Delete([]byte("bob"))
		require.NoError(t, err)
		require.False(t, ok, "deleting bob must not delete alice")
		require.NoError(t, tb.Set([]byte("bob"), []byte("bob's session"), time.Time{}))
		_, err = tb.Get([]byte("alice"))
		require.ErrorIs(t, err, ErrNotFound, "alice must not read bob's value")
		v, err := tb.Get([]byte("bob"))
		require.NoError(t, err)
		assert.Equal(t, "bob's session", string(v))
		require.NoError(t, tb.Verify())
		assert.Equal(t, 1, tb.Len())
	})
}

func TestStatsAndClose(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 32, RecordSize: 32})
	require.NoError(t, tb.Set([]byte("a"), []byte("1"), time.Time{}))
	_, _ = tb.Get([]byte("a"))
	_, _ = tb.Get([]byte("b"))
	_, _ = tb.Delete([]byte("a"))
	st := tb.Stats()
	assert.Equal(t, Stats{Capacity: 32, Hits: 1, Misses: 1, Sets: 1, Deletes: 1}, st)

	require.NoError(t, tb.Close())
	require.NoError(t, tb.Close(), "Close is idempotent")
	_, err := tb.Get([]byte("a"))
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, tb.Set([]byte("a"), nil, time.Time{}), ErrClosed)
	_, err = tb.Delete([]byte("a"))
	assert.ErrorIs(t, err, ErrClosed)
	assert.ErrorIs(t, tb.Verify(), ErrClosed)
}

// TestReadCountsAreBatched checks how one Table sees another's hits and misses: in batches
// of readBatch per shard while the other is open, all of them once it has closed, while
// each Table's own counts are exact.
func TestReadCountsAreBatched(t *testing.T) {
	path := filepath.Join(t.TempDir(), "test.table")
	creator := openTest(t, Config{Path: path, ElementCount: 32, RecordSize: 32, Shards: 1})
	reader, err := Open(Config{Path: path})
	require.NoError(t, err)
	t.Cleanup(func() { reader.Close() })
	require.NoError(t, creator.Set([]byte("a"), []byte("1"), time.Time{}))
	for range 100 {
		_, err := reader.Get([]byte("a"))
		require.NoError(t, err)
	}
	for range 3 {
		_, err := reader.Get([]byte("b"))
		require.ErrorIs(t, err, ErrNotFound)
	}
	assert.Equal(t, uint64(100), reader.Stats().Hits)
	assert.Equal(t, uint64(3), reader.Stats().Misses)
	assert.Equal(t, uint64(readBatch), creator.Stats().Hits, "one whole batch is in the section")
	assert.Zero(t, creator.Stats().Misses)

	require.NoError(t, reader.Close())
	st := creator.Stats()
	assert.Equal(t, uint64(100), st.Hits, "Close adds the rest")
	assert.Equal(t, uint64(3), st.Misses)
}

func TestVerifyFindsCorruption(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 16, RecordSize: 32, Shards: 1})
	for i := range 8 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "k%d", i), []byte("v"), time.Time{}))
	}
	require.NoError(t, tb.Verify())
	sh := &tb.shards[0]
	sh.hdr.live++
	err := tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "live count")
	sh.hdr.live--

	_, tag := tb.locate(tb.hash([]byte("k3")))
	pos, s, ok := probeTag(sh, tag)
	require.True(t, ok)
	require.NotZero(t, s)
	idx, _ := slotRecord(sh, s)
	r := tb.record(sh, idx)
	r.keyLen = 0
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "bad lengths")
	r.keyLen = 2

	*slot(sh, pos) ^= 1 << 40
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "tag")
	*slot(sh, pos) ^= 1 << 40

	free := uint32(0)
	for inUse(sh, free) {
		free++
	}
	markUsed(sh, free)
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "neither indexed nor listed")
	markFree(sh, free)

	markFree(sh, idx)
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "has its bit clear")
	markUsed(sh, idx)

	n := sh.hdr.nPending
	sh.hdr.pending[n], sh.hdr.nPending = idx, n+1
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "on the pending list and indexed")
	sh.hdr.nPending = pendingCap + 1
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "at most")
	sh.hdr.nPending = n

	sh.hdr.cursor = sh.count + 1
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "allocation cursor")
	sh.hdr.cursor = 0
	require.NoError(t, tb.Verify())
}

// TestDamagedListsAreNotFollowed damages a shard's reserved and pending lists (lengths past
// their capacity, entries past the last record), as a stray write to the section could:
// Verify reports it, and writes go on without following the bad entries, leaving a shard
// that Verify accepts again.
func TestDamagedListsAreNotFollowed(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 64, RecordSize: 64, Shards: 1})
	require.NoError(t, tb.Set([]byte("a"), []byte("1"), time.Time{}))
	sh := &tb.shards[0]
	releaseAll(sh) // the damage below then leaks no record
	sh.hdr.nReserved, sh.hdr.nPending = 1000, 1000
	for i := range sh.hdr.reserved {
		sh.hdr.reserved[i] = sh.count + uint32(i)
	}
	for i := range sh.hdr.pending {
		sh.hdr.pending[i] = 1 << 31
	}
	err := tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "at most")

	for i := range 200 {
		key := fmt.Appendf(nil, "k%d", i%40)
		require.NoError(t, tb.Set(key, key, time.Time{}))
		if i%3 == 0 {
			_, err := tb.Delete(key)
			require.NoError(t, err)
		}
	}
	v, err := tb.Get([]byte("a"))
	require.NoError(t, err)
	assert.Equal(t, []byte("1"), v)
	require.NoError(t, tb.Verify())
}

// TestBeforeEvictSeesWhatOnEvictSees: both callbacks get every unexpired evicted entry,
// BeforeEvict first.
func TestBeforeEvictSeesWhatOnEvictSees(t *testing.T) {
	var order []string
	tb := openTest(t, Config{ElementCount: 8, RecordSize: 32, Shards: 1,
		BeforeEvict: func(k, v []byte, _ time.Time) { order = append(order, "before "+string(k)+"="+string(v)) },
		OnEvict:     func(k, v []byte, _ time.Time) { order = append(order, "after "+string(k)+"="+string(v)) }})
	for i := range 10 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "k%d", i), fmt.Appendf(nil, "v%d", i), time.Time{}))
	}
	assert.Equal(t, []string{"before k0=v0", "after k0=v0", "before k1=v1", "after k1=v1"}, order)
}

func TestClearRemovesEveryEntry(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 256, RecordSize: 32, Shards: 4})
	for i := range 200 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "k%d", i), []byte("v"), time.Now().Add(time.Hour)))
	}
	n, err := tb.Clear()
	require.NoError(t, err)
	assert.Equal(t, 200, n)
	assert.Zero(t, tb.Len())
	require.NoError(t, tb.Verify())
	_, err = tb.Get([]byte("k7"))
	require.ErrorIs(t, err, ErrNotFound)
	for i := range 256 {
		require.NoError(t, tb.Set(fmt.Appendf(nil, "n%d", i), []byte("v"), time.Time{}), "the cleared records are reused")
	}
	require.NoError(t, tb.Verify())
}

func TestStreamPositionsAreRecordedInTheSection(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 64, RecordSize: 32})
	_, ok := tb.streamPos(11)
	assert.False(t, ok)
	tb.setStreamPos(11, StreamPos{Epoch: 5, Seq: 10})
	tb.setStreamPos(11, StreamPos{Epoch: 5, Seq: 7}) // never back within an epoch
	tb.setStreamPos(22, StreamPos{Epoch: 9, Seq: 1})
	other, err := Open(Config{Path: tb.Path()})
	require.NoError(t, err)
	defer other.Close()
	pos, ok := other.streamPos(11)
	require.True(t, ok)
	assert.Equal(t, StreamPos{Epoch: 5, Seq: 10}, pos)
	tb.setStreamPos(11, StreamPos{Epoch: 6, Seq: 2}) // a new epoch replaces the old one
	pos, _ = other.streamPos(11)
	assert.Equal(t, StreamPos{Epoch: 6, Seq: 2}, pos)
	pos, _ = other.streamPos(22)
	assert.Equal(t, StreamPos{Epoch: 9, Seq: 1}, pos)
}

// TestPrefetchChangesNothing: Prefetch takes any keys (present, absent, empty, too long,
// more than one pass's worth), on an open or a closed table, and every entry reads as it
// was, with the table whole.
func TestPrefetchChangesNothing(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 512, RecordSize: 64, Shards: 4})
	var keys [][]byte
	for i := range 300 {
		k := fmt.Appendf(nil, "key-%d", i)
		if i%2 == 0 {
			require.NoError(t, tb.Set(k, fmt.Appendf(nil, "v%d", i), time.Time{}))
		}
		keys = append(keys, k)
	}
	keys = append(keys, nil, []byte{}, make([]byte, 4096))
	tb.Prefetch(keys)
	tb.Prefetch(nil)
	for i, k := range keys[:300] {
		v, err := tb.Get(k)
		if i%2 == 0 {
			require.NoError(t, err)
			assert.Equal(t, fmt.Sprintf("v%d", i), string(v))
		} else {
			require.ErrorIs(t, err, ErrNotFound)
		}
	}
	require.NoError(t, tb.Verify())
	assert.Equal(t, 150, tb.Len())
	require.NoError(t, tb.Close())
	tb.Prefetch(keys) // a closed table is left alone
}

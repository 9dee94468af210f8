package sessioncache

import (
	"bytes"
	"errors"
	"fmt"
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

// TestHashCollisionsNeverShareValues stores keys whose 32-bit stored hashes are equal and
// checks that each reads only its own value: the key is compared, not just the hash.
func TestHashCollisionsNeverShareValues(t *testing.T) {
	tb := openTest(t, Config{ElementCount: 64, RecordSize: 64, Shards: 1})
	seen := map[uint32]string{}
	var a, b string
	for i := 0; i < 1<<22 && a == ""; i++ {
		k := fmt.Sprintf("session-%d", i)
		h := uint32(tb.hash([]byte(k)))
		if o, ok := seen[h]; ok {
			a, b = o, k
		}
		seen[h] = k
	}
	require.NotEmpty(t, a, "no 32-bit collision found")
	require.NoError(t, tb.Set([]byte(a), []byte("value of a"), time.Time{}))
	_, err := tb.Get([]byte(b))
	require.ErrorIs(t, err, ErrNotFound, "%q must not read %q's value", b, a)
	require.NoError(t, tb.Set([]byte(b), []byte("value of b"), time.Time{}))
	va, err := tb.Get([]byte(a))
	require.NoError(t, err)
	vb, err := tb.Get([]byte(b))
	require.NoError(t, err)
	assert.Equal(t, "value of a", string(va))
	assert.Equal(t, "value of b", string(vb))
	_, err = tb.Delete([]byte(a))
	require.NoError(t, err)
	vb, err = tb.Get([]byte(b))
	require.NoError(t, err)
	assert.Equal(t, "value of b", string(vb))
	require.NoError(t, tb.Verify())
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

	r := tb.record(sh, *bucket(sh, bucketOf(sh, uint32(tb.hash([]byte("k3")))))-1)
	r.keyLen = 0
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "bad lengths")
	r.keyLen = 2

	sh.hdr.freeHead = sh.count + 5
	err = tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "free list links")
	assert.True(t, errors.Is(err, ErrCorrupt))
}

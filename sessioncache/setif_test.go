package sessioncache

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSetIf: decide sees the first n bytes of the live value and its expiry; a refusal
// leaves the value; an approval may lengthen the expiry but never shorten it; an expired
// entry is shown with its expiry (until its record is reclaimed); a write whose expiry has passed deletes only what decide
// approves replacing, and is stored only with a later expiry decide gives.
func TestSetIf(t *testing.T) {
	tbl := openTest(t, Config{ElementCount: 64, RecordSize: 128})
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	clock.install(tbl)
	key := []byte("k")

	type seen struct {
		held  string
		exp   int64
		found bool
	}
	var got seen
	ask := func(store bool, exp int64) HeldFunc {
		return func(held []byte, heldExp int64, found bool) (bool, int64) {
			got = seen{string(held), heldExp, found}
			return store, exp
		}
	}
	stored, err := tbl.SetIf(key, []byte("first-value"), clock.at(time.Minute), 5, ask(true, clock.at(time.Minute).UnixNano()))
	require.NoError(t, err)
	assert.True(t, stored)
	assert.Equal(t, seen{}, got, "nothing held")

	stored, err = tbl.SetIf(key, []byte("refused"), clock.at(time.Minute), 5, ask(false, 0))
	require.NoError(t, err)
	assert.False(t, stored)
	assert.Equal(t, seen{"first", clock.at(time.Minute).UnixNano(), true}, got, "the first 5 bytes and the expiry")
	v, exp, err := tbl.GetAppend(nil, key)
	require.NoError(t, err)
	assert.Equal(t, "first-value", string(v), "a refusal leaves the value")
	assert.Equal(t, clock.at(time.Minute), exp)

	// Lengthened by decide; an earlier expiry from decide counts as the one given.
	_, err = tbl.SetIf(key, []byte("second"), clock.at(time.Minute), 100, ask(true, clock.at(time.Hour).UnixNano()))
	require.NoError(t, err)
	_, exp, _ = tbl.GetAppend(nil, key)
	assert.Equal(t, clock.at(time.Hour), exp)
	assert.Equal(t, "first-value", got.held, "n longer than the value shows the value")
	_, err = tbl.SetIf(key, []byte("third"), clock.at(2*time.Minute), 5, ask(true, clock.at(time.Second).UnixNano()))
	require.NoError(t, err)
	_, exp, _ = tbl.GetAppend(nil, key)
	assert.Equal(t, clock.at(2*time.Minute), exp)

	// 0 from decide: no expiry.
	_, err = tbl.SetIf(key, []byte("fourth"), clock.at(time.Minute), 5, ask(true, 0))
	require.NoError(t, err)
	_, exp, _ = tbl.GetAppend(nil, key)
	assert.True(t, exp.IsZero())

	// Expired: shown with its expiry until its record is reclaimed, and refusable.
	_, err = tbl.SetIf(key, []byte("fifth"), clock.at(time.Minute), 5, ask(true, clock.at(time.Minute).UnixNano()))
	require.NoError(t, err)
	fifthExp := clock.at(time.Minute).UnixNano()
	clock.advance(2 * time.Minute)
	stored, err = tbl.SetIf(key, []byte("older"), clock.at(time.Minute), 5, ask(false, 0))
	require.NoError(t, err)
	assert.False(t, stored)
	assert.Equal(t, seen{"fifth", fifthExp, true}, got, "an expired entry is shown with its expiry")
	_, err = tbl.Get(key)
	assert.ErrorIs(t, err, ErrNotFound, "the expired entry is not served")
	v, exp, err = tbl.GetAppendIncludingExpired(nil, key)
	require.NoError(t, err)
	assert.Equal(t, "fifth", string(v))
	assert.Equal(t, time.Unix(0, fifthExp), exp)
	_, err = tbl.SetIf(key, []byte("sixth"), clock.at(time.Minute), 5, ask(true, clock.at(time.Minute).UnixNano()))
	require.NoError(t, err)

	// A passed expiry stores nothing: the key is deleted if decide approves, kept if not.
	stored, err = tbl.SetIf(key, []byte("late"), clock.at(-time.Second), 5, ask(false, 0))
	require.NoError(t, err)
	assert.False(t, stored)
	assert.Equal(t, "sixth", got.held, "decide is asked")
	v, _, err = tbl.GetAppend(nil, key)
	require.NoError(t, err, "a refusal keeps what is held")
	assert.Equal(t, "sixth", string(v))
	stored, err = tbl.SetIf(key, []byte("late"), clock.at(-time.Second), 5, ask(true, clock.at(-time.Second).UnixNano()))
	require.NoError(t, err)
	assert.False(t, stored)
	_, err = tbl.Get(key)
	assert.ErrorIs(t, err, ErrNotFound, "an approval deletes it")

	// ... unless decide gives an expiry still to come: then it is stored with that one.
	require.NoError(t, tbl.Set(key, []byte("live"), clock.at(time.Hour)))
	stored, err = tbl.SetIf(key, []byte("tomb"), clock.at(-time.Second), 5, ask(true, clock.at(time.Hour).UnixNano()))
	require.NoError(t, err)
	assert.True(t, stored)
	v, exp, err = tbl.GetAppend(nil, key)
	require.NoError(t, err)
	assert.Equal(t, "tomb", string(v))
	assert.Equal(t, clock.at(time.Hour), exp)
	require.NoError(t, tbl.Verify())
}

// TestBeforeReclaimSeesExpiredEntries: an expired entry whose record the table takes back
// (to make room, or by DeleteExpired) goes to BeforeReclaim, whole, and never to
// BeforeEvict; one replaced or deleted by key goes to neither.
func TestBeforeReclaimSeesExpiredEntries(t *testing.T) {
	type call struct{ key, value string }
	var reclaimed, evicted []call
	tbl := openTest(t, Config{ElementCount: 16, RecordSize: 64, Shards: 1,
		BeforeReclaim: func(k, v []byte, exp time.Time) {
			reclaimed = append(reclaimed, call{string(k), string(v)})
		},
		BeforeEvict: func(k, v []byte, exp time.Time) {
			evicted = append(evicted, call{string(k), string(v)})
		},
	})
	clock := &fakeClock{now: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano()}
	clock.install(tbl)
	require.NoError(t, tbl.Set([]byte("short"), []byte("s"), clock.at(time.Second)))
	require.NoError(t, tbl.Set([]byte("replaced"), []byte("r"), clock.at(time.Second)))
	require.NoError(t, tbl.Set([]byte("deleted"), []byte("d"), clock.at(time.Second)))
	clock.advance(time.Minute)
	require.NoError(t, tbl.Set([]byte("replaced"), []byte("r2"), clock.at(time.Hour)))
	_, err := tbl.Delete([]byte("deleted"))
	require.NoError(t, err)
	assert.Empty(t, reclaimed, "replaced and deleted by key")

	n, err := tbl.DeleteExpired()
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, []call{{"short", "s"}}, reclaimed)

	// Filling the table past its capacity reclaims the expired entries first.
	reclaimed = nil
	for i := range tbl.Capacity() - 1 {
		require.NoError(t, tbl.Set(fmt.Appendf(nil, "k%d", i), []byte("v"), clock.at(time.Second)))
	}
	clock.advance(time.Minute)
	require.NoError(t, tbl.Set([]byte("one-more"), []byte("v"), clock.at(time.Hour)))
	assert.NotEmpty(t, reclaimed)
	assert.Empty(t, evicted, "nothing unexpired was pushed out")
	require.NoError(t, tbl.Verify())
}

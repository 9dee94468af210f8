package entrytable

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

// mustPut is tb.Put that fails the test on an error, and reports whether it stored.
func mustPut(t *testing.T, tb *Table, k []byte, e sessioncache.Entry) bool {
	t.Helper()
	ok, err := tb.Put(k, e)
	require.NoError(t, err)
	return ok
}

func newTable(t *testing.T) *Table {
	t.Helper()
	raw, err := sessioncache.Open(sessioncache.Config{
		Path: fmt.Sprintf("/dev/shm/gs-entrytable-test-%d", time.Now().UnixNano()), Create: true,
		ElementCount: 64, RecordSize: 128})
	require.NoError(t, err)
	t.Cleanup(func() { raw.Remove() })
	return New(raw)
}

func TestTheNewestVersionWins(t *testing.T) {
	tb := newTable(t)
	hour := time.Now().Add(time.Hour)
	k := []byte("sid")
	assert.True(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("v5"), Expiry: hour, Rev: 5}))
	assert.False(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("v3"), Expiry: hour, Rev: 3}), "an older version does not replace a newer one")
	e, err := tb.GetAppend(nil, k)
	require.NoError(t, err)
	assert.Equal(t, "v5", string(e.Value))
	assert.Equal(t, uint64(5), e.Rev)

	assert.True(t, mustPut(t, tb, k, sessioncache.Entry{Rev: 5, Deleted: true, Expiry: time.Now().Add(time.Minute)}), "a deletion wins a tie")
	e, err = tb.GetAppend(nil, k)
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
	assert.True(t, e.Deleted)
	assert.Equal(t, uint64(5), e.Rev)
	assert.WithinDuration(t, hour, e.Expiry, time.Millisecond, "the tombstone lasts as long as the entry would have")

	assert.False(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("v4"), Expiry: hour, Rev: 4}), "an older set does not bring a deleted key back")
	assert.True(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("v6"), Expiry: hour, Rev: 6}), "a newer set after the deletion is a new entry")
	e, err = tb.GetAppend(nil, k)
	require.NoError(t, err)
	assert.Equal(t, "v6", string(e.Value))
}

func TestGetAppendExtendsDst(t *testing.T) {
	tb := newTable(t)
	_, err := tb.Put([]byte("k"), sessioncache.Entry{Value: []byte("value"), Rev: 1})
	require.NoError(t, err)
	dst := append(make([]byte, 0, 64), "abc"...)
	e, err := tb.GetAppend(dst, []byte("k"))
	require.NoError(t, err)
	assert.Equal(t, "abcvalue", string(dst[:3+len(e.Value)]))
	assert.Equal(t, "value", string(e.Value))
}

// TestExpiredVersionsRemoveOlderOnes: a version whose expiry has passed is not stored, but
// it removes (or, a deletion, outlives) the older version it would replace.
func TestExpiredVersionsRemoveOlderOnes(t *testing.T) {
	tb := newTable(t)
	k := []byte("k")
	_, err := tb.Put(k, sessioncache.Entry{Value: []byte("v"), Rev: 1, Expiry: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.False(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("w"), Rev: 2, Expiry: time.Now().Add(-time.Second)}))
	_, err = tb.GetAppend(nil, k)
	assert.ErrorIs(t, err, sessioncache.ErrNotFound)

	// An expired version older than the one held removes nothing.
	_, err = tb.Put(k, sessioncache.Entry{Value: []byte("x"), Rev: 5, Expiry: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.False(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("y"), Rev: 4, Expiry: time.Now().Add(-time.Second)}))
	e, err := tb.GetAppend(nil, k)
	require.NoError(t, err)
	assert.Equal(t, "x", string(e.Value))

	// An expired deletion newer than the entry held leaves a tombstone as long as the entry
	// would have lived, so an older copy of it arriving later stays out.
	assert.True(t, mustPut(t, tb, k, sessioncache.Entry{Rev: 6, Deleted: true, Expiry: time.Now().Add(-time.Second)}))
	e, err = tb.GetAppend(nil, k)
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
	assert.True(t, e.Deleted)
	assert.False(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("x"), Rev: 5, Expiry: time.Now().Add(time.Hour)}), "the older copy does not come back")
}

func TestForeignRecordsAreReplaced(t *testing.T) {
	tb := newTable(t)
	require.NoError(t, tb.Raw().Set([]byte("k"), []byte("short"), time.Time{}))
	_, err := tb.GetAppend(nil, []byte("k"))
	require.ErrorIs(t, err, ErrBadEnvelope)
	ok, err := tb.Put([]byte("k"), sessioncache.Entry{Value: []byte("v"), Rev: 1})
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestAnExpiredVersionShadowsOlderOnes: a version whose expiry has passed, while its record
// is kept, reads as a tombstone of its revision and keeps older versions out, however long
// they would live; a newer version replaces it.
func TestAnExpiredVersionShadowsOlderOnes(t *testing.T) {
	tb := newTable(t)
	k := []byte("k")
	exp := time.Now().Add(30 * time.Millisecond)
	_, err := tb.Put(k, sessioncache.Entry{Value: []byte("short"), Rev: 5, Expiry: exp})
	require.NoError(t, err)
	time.Sleep(time.Until(exp) + time.Millisecond) // the expiry itself is what is waited for

	e, err := tb.GetAppend(nil, k)
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
	assert.Equal(t, sessioncache.Entry{Rev: 5, Deleted: true, Expiry: time.Unix(0, exp.UnixNano())}, e)

	assert.False(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("older"), Rev: 4, Expiry: time.Now().Add(time.Hour)}), "an older version stays out")
	assert.False(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("same"), Rev: 5, Expiry: time.Now().Add(time.Hour)}), "so does the same version again")
	_, err = tb.GetAppend(nil, k)
	require.ErrorIs(t, err, sessioncache.ErrNotFound)

	held, ok, err := tb.PutHeld(k, sessioncache.Entry{Value: []byte("newer"), Rev: 6, Expiry: time.Now().Add(time.Hour)})
	require.NoError(t, err)
	assert.True(t, ok)
	assert.Equal(t, sessioncache.Entry{}, held, "nothing live was replaced")
	e, err = tb.GetAppend(nil, k)
	require.NoError(t, err)
	assert.Equal(t, "newer", string(e.Value))
}

// TestACopyThatExpiresIsNotTheVersionsEnd: a copy kept for less long than its version reads
// as no entry once it expires (not as the deletion of its revision), still keeps older
// versions out, and takes its version again.
func TestACopyThatExpiresIsNotTheVersionsEnd(t *testing.T) {
	tb := newTable(t)
	k := []byte("k")
	exp := time.Now().Add(30 * time.Millisecond)
	_, err := tb.PutCopy(k, sessioncache.Entry{Value: []byte("copy"), Rev: 5, Expiry: exp})
	require.NoError(t, err)
	e, err := tb.GetAppend(nil, k)
	require.NoError(t, err)
	assert.Equal(t, "copy", string(e.Value))
	time.Sleep(time.Until(exp) + time.Millisecond) // the expiry itself is what is waited for

	e, err = tb.GetAppend(nil, k)
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
	assert.False(t, e.Deleted, "an expired copy says nothing of its version")
	assert.False(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("older"), Rev: 4, Expiry: time.Now().Add(time.Hour)}), "an older version stays out")
	assert.True(t, mustPut(t, tb, k, sessioncache.Entry{Value: []byte("copy"), Rev: 5, Expiry: time.Now().Add(time.Hour)}), "the version itself comes back")
	e, err = tb.GetAppend(nil, k)
	require.NoError(t, err)
	assert.Equal(t, "copy", string(e.Value))
}

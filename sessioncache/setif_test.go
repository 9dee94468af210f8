package sessioncache

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestSetIf: decide sees the first n bytes of the live value and its expiry; a refusal
// leaves the value; an approval may lengthen the expiry but never shorten it; an expired
// entry is shown as absent; a write whose expiry has passed deletes only what decide
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

	// Expired: shown as absent.
	_, err = tbl.SetIf(key, []byte("fifth"), clock.at(time.Minute), 5, ask(true, clock.at(time.Minute).UnixNano()))
	require.NoError(t, err)
	clock.advance(2 * time.Minute)
	_, err = tbl.SetIf(key, []byte("sixth"), clock.at(time.Minute), 5, ask(true, clock.at(time.Minute).UnixNano()))
	require.NoError(t, err)
	assert.Equal(t, seen{}, got, "an expired entry is not held")

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

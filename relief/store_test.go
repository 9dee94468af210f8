package relief

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

// everyStore returns an opener for each kind of store, its files in dir and its Redis keys
// under the prefix "tag:"; an opener called again reopens the same store.
func everyStore(dir, tag string) map[string]func(t *testing.T) Store {
	return map[string]func(t *testing.T) Store{
		"memory": func(t *testing.T) Store {
			s, err := NewMemoryStore(sessioncache.Config{Path: filepath.Join(dir, tag+".table"), ElementCount: 64, RecordSize: 64})
			require.NoError(t, err)
			return s
		},
		"log": func(t *testing.T) Store {
			s, err := OpenLog(LogConfig{Path: filepath.Join(dir, tag+".log"), Sync: SyncAlways})
			require.NoError(t, err)
			return s
		},
		"redis": func(t *testing.T) Store {
			addr := startRedisOnce(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := NewRedisStore(ctx, RedisConfig{Addrs: []string{addr}, Prefix: tag + ":"})
			require.NoError(t, err)
			return s
		},
	}
}

// TestStoresKeepTheNewestVersion runs the Store contract on every store: versions of a
// key arrive in any order and the newest wins, a tombstone keeps older versions out for as
// long as the entry it replaced would have lived, and (for the durable stores) all of it
// holds after the store is reopened.
func TestStoresKeepTheNewestVersion(t *testing.T) {
	for name, open := range everyStore(t.TempDir(), "contract") {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			hour, minute := time.Now().Add(time.Hour), time.Now().Add(time.Minute)
			k := []byte("sid")
			mustPut := func(e sessioncache.Entry, want bool) {
				t.Helper()
				ok, err := s.Put(context.Background(), k, e)
				require.NoError(t, err)
				require.Equal(t, want, ok, "put %+v", e)
			}
			mustPut(sessioncache.Entry{Value: []byte("v5"), Expiry: hour, Rev: 5}, true)
			mustPut(sessioncache.Entry{Value: []byte("v3"), Expiry: hour, Rev: 3}, false)
			e, err := s.Get(context.Background(), k)
			require.NoError(t, err)
			assert.Equal(t, "v5", string(e.Value))
			assert.Equal(t, uint64(5), e.Rev)

			mustPut(sessioncache.Entry{Rev: 6, Deleted: true, Expiry: minute}, true)
			mustPut(sessioncache.Entry{Value: []byte("v4"), Expiry: hour, Rev: 4}, false)
			e, err = s.Get(context.Background(), k)
			require.ErrorIs(t, err, ErrNotFound)
			assert.True(t, e.Deleted)
			assert.Equal(t, uint64(6), e.Rev)
			assert.WithinDuration(t, hour, e.Expiry, time.Second, "the tombstone lasts as long as the entry would have")

			if name != "memory" {
				require.NoError(t, s.Close())
				s = open(t)
				mustPut(sessioncache.Entry{Value: []byte("v4"), Expiry: hour, Rev: 4}, false)
				_, err = s.Get(context.Background(), k)
				require.ErrorIs(t, err, ErrNotFound, "the tombstone survives a reopen")
			}
			mustPut(sessioncache.Entry{Value: []byte("v7"), Expiry: hour, Rev: 7}, true)
			e, err = s.Get(context.Background(), k)
			require.NoError(t, err)
			assert.Equal(t, "v7", string(e.Value))
			require.NoError(t, s.Close())
		})
	}
}

// TestStoresKeepExpiredVersionsAsDeletions: the deletion of a version that expired (as the
// relay hands it down, its expiry already passed) replaces an older entry a store holds for
// as long as that entry would have lived; and a version that expires in the store reads as
// the deletion of its revision, keeping older ones out.
func TestStoresKeepExpiredVersionsAsDeletions(t *testing.T) {
	for name, open := range everyStore(t.TempDir(), "expired") {
		t.Run(name, func(t *testing.T) {
			s := open(t)
			ctx := context.Background()
			hour, past := time.Now().Add(time.Hour), time.Now().Add(-time.Second)
			put := func(k string, e sessioncache.Entry) bool {
				t.Helper()
				ok, err := s.Put(ctx, []byte(k), e)
				require.NoError(t, err)
				return ok
			}
			require.True(t, put("held", sessioncache.Entry{Value: []byte("v5"), Expiry: hour, Rev: 5}))
			assert.True(t, put("held", sessioncache.Entry{Rev: 6, Deleted: true, Expiry: past}), "it replaces the older entry")
			e, err := s.Get(ctx, []byte("held"))
			require.ErrorIs(t, err, ErrNotFound)
			assert.True(t, e.Deleted)
			assert.Equal(t, uint64(6), e.Rev)
			assert.WithinDuration(t, hour, e.Expiry, time.Second, "as long as the entry would have lived")
			assert.False(t, put("held", sessioncache.Entry{Value: []byte("v4"), Expiry: hour, Rev: 4}))
			_, err = s.Get(ctx, []byte("held"))
			require.ErrorIs(t, err, ErrNotFound)

			short := time.Now().Add(50 * time.Millisecond)
			require.True(t, put("expiring", sessioncache.Entry{Value: []byte("v8"), Expiry: short, Rev: 8}))
			time.Sleep(time.Until(short) + 2*time.Millisecond) // the expiry itself is what is waited for
			e, err = s.Get(ctx, []byte("expiring"))
			require.ErrorIs(t, err, ErrNotFound)
			want := time.Unix(0, short.UnixNano())
			if name == "redis" {
				want = time.UnixMilli(short.UnixMilli()) // Redis keeps expiries to the millisecond
			}
			assert.Equal(t, sessioncache.Entry{Rev: 8, Deleted: true, Expiry: want}, e)
			assert.False(t, put("expiring", sessioncache.Entry{Value: []byte("v7"), Expiry: hour, Rev: 7}), "an older version stays out")
			if name == "log" {
				require.NoError(t, s.Close())
				s = open(t)
				assert.False(t, put("expiring", sessioncache.Entry{Value: []byte("v7"), Expiry: hour, Rev: 7}), "after a reopen too")
				require.NoError(t, s.(*LogStore).rewrite())
				require.NoError(t, s.Close())
				s = open(t)
				assert.False(t, put("expiring", sessioncache.Entry{Value: []byte("v7"), Expiry: hour, Rev: 7}), "and a compaction")
			}
			assert.True(t, put("expiring", sessioncache.Entry{Value: []byte("v9"), Expiry: hour, Rev: 9}))
			v, _, err := entryParts(s.Get(ctx, []byte("expiring")))
			require.NoError(t, err)
			assert.Equal(t, "v9", string(v))
			require.NoError(t, s.Close())
		})
	}
}

// TestALogStoreForgetsExpiredVersionsInTime: past KeepExpiredFor, a version that expired is
// gone from the log store (through a reopen) and no longer keeps older ones out.
func TestALogStoreForgetsExpiredVersionsInTime(t *testing.T) {
	path := filepath.Join(t.TempDir(), "aging.log")
	s, err := OpenLog(LogConfig{Path: path, KeepExpiredFor: time.Millisecond})
	require.NoError(t, err)
	short := time.Now().Add(20 * time.Millisecond)
	_, err = s.Put(context.Background(), []byte("k"), sessioncache.Entry{Value: []byte("v8"), Expiry: short, Rev: 8})
	require.NoError(t, err)
	require.NoError(t, s.Close())
	time.Sleep(time.Until(short) + 5*time.Millisecond) // the expiry itself is what is waited for
	s, err = OpenLog(LogConfig{Path: path, KeepExpiredFor: time.Millisecond})
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, 0, s.Len())
	e, err := s.Get(context.Background(), []byte("k"))
	require.ErrorIs(t, err, ErrNotFound)
	assert.False(t, e.Deleted)
	ok, err := s.Put(context.Background(), []byte("k"), sessioncache.Entry{Value: []byte("v7"), Expiry: time.Now().Add(time.Hour), Rev: 7})
	require.NoError(t, err)
	assert.True(t, ok)
}

// TestARedisStoreForgetsExpiredVersionsInTime: Redis keeps a version that expired as the
// deletion of its revision for KeepExpiredFor, then drops the key; with a negative
// KeepExpiredFor it drops it at its expiry.
func TestARedisStoreForgetsExpiredVersionsInTime(t *testing.T) {
	addr := startRedisOnce(t)
	ctx := ctxT(t)
	for _, keep := range []time.Duration{100 * time.Millisecond, -1} {
		s, err := NewRedisStore(ctx, RedisConfig{Addrs: []string{addr}, Prefix: fmt.Sprintf("forget%d:", keep), KeepExpiredFor: keep})
		require.NoError(t, err)
		short := time.Now().Add(30 * time.Millisecond)
		_, err = s.Put(ctx, []byte("k"), sessioncache.Entry{Value: []byte("v8"), Expiry: short, Rev: 8})
		require.NoError(t, err)
		ttl, err := s.c.PTTL(ctx, s.key([]byte("k"))).Result()
		require.NoError(t, err)
		assert.InDelta(t, time.Until(short)+max(keep, 0), ttl, float64(20*time.Millisecond), "Redis expires the key after %v", keep)
		time.Sleep(time.Until(short) + 2*time.Millisecond) // the expiry itself is what is waited for
		e, err := s.Get(ctx, []byte("k"))
		require.ErrorIs(t, err, ErrNotFound)
		assert.Equal(t, keep > 0, e.Deleted, "read as the deletion of revision 8 while it is kept")
		ok, err := s.Put(ctx, []byte("k"), sessioncache.Entry{Value: []byte("v7"), Expiry: time.Now().Add(time.Hour), Rev: 7})
		require.NoError(t, err)
		assert.Equal(t, keep < 0, ok, "an older version is refused only while the expired one is kept")
		require.NoError(t, s.Close())
	}
}

// TestAnEntryThatExpiredOnItsWayEndsTheOlderOne: an entry handed over after its expiry
// (an eviction delayed while the server was away) is not kept, but it replaces the older
// version the server holds, as the deletion of its revision, for as long as that version
// would have lived.
func TestAnEntryThatExpiredOnItsWayEndsTheOlderOne(t *testing.T) {
	log, err := OpenLog(LogConfig{Path: filepath.Join(t.TempDir(), "aging.log")})
	require.NoError(t, err)
	s, err := New(Config{Kind: Aging, ID: "a1", Store: log})
	require.NoError(t, err)
	defer s.Close()
	ctx := context.Background()
	hour := time.Now().Add(time.Hour)
	require.NoError(t, s.Evict(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v1"), Expiry: hour, Rev: 1}))
	require.NoError(t, s.Evict(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v2"), Expiry: time.Now().Add(-time.Second), Rev: 2}))
	e, err := s.Get(ctx, "auths", []byte("k"))
	require.ErrorIs(t, err, ErrNotFound)
	assert.True(t, e.Deleted)
	assert.Equal(t, uint64(2), e.Rev)
	assert.WithinDuration(t, hour, e.Expiry, time.Second)
	require.NoError(t, s.Evict(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v1"), Expiry: hour, Rev: 1}))
	_, err = s.Get(ctx, "auths", []byte("k"))
	require.ErrorIs(t, err, ErrNotFound, "the older version, handed over again, stays out")
}

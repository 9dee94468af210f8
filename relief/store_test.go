package relief

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

// TestStoresKeepTheNewestVersion runs the Store contract on every store: versions of a
// key arrive in any order and the newest wins, a tombstone keeps older versions out for as
// long as the entry it replaced would have lived, and (for the durable stores) all of it
// holds after the store is reopened.
func TestStoresKeepTheNewestVersion(t *testing.T) {
	dir := t.TempDir()
	stores := map[string]func(t *testing.T) Store{
		"memory": func(t *testing.T) Store {
			s, err := NewMemoryStore(sessioncache.Config{Path: filepath.Join(dir, "memory.table"), ElementCount: 64, RecordSize: 64})
			require.NoError(t, err)
			return s
		},
		"log": func(t *testing.T) Store {
			s, err := OpenLog(LogConfig{Path: filepath.Join(dir, "aging.log"), Sync: SyncAlways})
			require.NoError(t, err)
			return s
		},
		"redis": func(t *testing.T) Store {
			addr := startRedisOnce(t)
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			s, err := NewRedisStore(ctx, RedisConfig{Addrs: []string{addr}, Prefix: "contract:"})
			require.NoError(t, err)
			return s
		},
	}
	for name, open := range stores {
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

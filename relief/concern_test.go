package relief

import (
	"context"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// TestDurableWriteConcern: with WriteDurable a Set returns once the key's aging server has
// the entry in its log, and fails while that server is away; the default concern goes on
// acknowledging meanwhile.
func TestDurableWriteConcern(t *testing.T) {
	tr := startTier(t, 64, 64, 1)
	dir := t.TempDir()
	startAging := func() *Server {
		log, err := OpenLog(LogConfig{Path: filepath.Join(dir, "aging.log"), Sync: SyncAlways})
		require.NoError(t, err)
		s, err := New(Config{Kind: Aging, ID: "aging-1", Store: log, Sibling: relay.ClientConfig{Addr: tr.sib.Addr().String()}})
		require.NoError(t, err)
		require.NoError(t, s.Start(ctxT(t), nil))
		t.Cleanup(func() { s.Close() })
		return s
	}
	aging := startAging()
	waitRelief(t, tr.sib, 0, 1)
	c, err := relay.Dial(ctxT(t), relay.ClientConfig{Addr: tr.relay.Addr().String()})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	strict, err := sessioncache.NewManager(sessioncache.ManagerConfig{
		Table:        sessioncache.Config{Path: filepath.Join(dir, "strict.table"), Create: true, ElementCount: 64, RecordSize: 128},
		Remotes:      []sessioncache.Remote{c},
		WriteConcern: sessioncache.WriteDurable,
	})
	require.NoError(t, err)
	t.Cleanup(func() { strict.Close() })

	ctx := ctxT(t)
	require.NoError(t, strict.Set(ctx, []byte("sid-1"), []byte("alice"), time.Hour))
	e, err := aging.Store().Get(context.Background(), []byte("sid-1"))
	require.NoError(t, err, "acknowledged only once aging holds it")
	assert.Equal(t, "alice", string(e.Value))

	require.NoError(t, aging.Close())
	waitRelief(t, tr.sib, 0, 0)
	err = strict.Set(ctx, []byte("sid-2"), []byte("bob"), time.Hour)
	require.Error(t, err, "the aging owner is away: the strict concern cannot be met")
	assert.Contains(t, err.Error(), "not connected")
	_, err = strict.Table().Get([]byte("sid-2"))
	require.ErrorIs(t, err, sessioncache.ErrNotFound, "an unacknowledged entry is not kept locally")
	require.NoError(t, tr.front.Set(ctx, []byte("sid-3"), []byte("carol"), time.Hour), "the default concern goes on")

	aging = startAging()
	waitRelief(t, tr.sib, 0, 1)
	require.NoError(t, strict.Set(ctx, []byte("sid-2"), []byte("bob"), time.Hour))
	e, err = aging.Store().Get(context.Background(), []byte("sid-2"))
	require.NoError(t, err)
	assert.Equal(t, "bob", string(e.Value))
}

package sessioncache_test

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/faultproxy"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// cutHost is a host whose link to the relay goes through a proxy the test can cut.
type cutHost struct {
	proxy *faultproxy.Proxy
	c     *relay.Client
	m     *sessioncache.Manager
	path  string
}

func newCutHost(t *testing.T, relayAddr, path string, staleFor time.Duration) *cutHost {
	t.Helper()
	p, err := faultproxy.Start(relayAddr)
	require.NoError(t, err)
	t.Cleanup(func() { p.Close() })
	h := &cutHost{proxy: p, path: path}
	h.start(t, staleFor)
	return h
}

// start runs a Manager (a process of the host) on the host's table.
func (h *cutHost) start(t *testing.T, staleFor time.Duration) {
	t.Helper()
	h.c = client(t, h.proxy.Addr())
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{
		Table:    sessioncache.Config{Path: h.path, Create: true, ElementCount: 1000, RecordSize: 256},
		Remotes:  []sessioncache.Remote{h.c},
		StaleFor: staleFor,
	})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	h.m = m
}

func localHas(m *sessioncache.Manager, key string) bool {
	_, err := m.Table().Get([]byte(key))
	return err == nil
}

// TestACutOffHostCatchesUpOnTheDeletesItMissed: a host cut off from the relay misses a
// logout; when the link is back, the relay hands it the changes it missed and its local
// copy goes, without dropping the rest of its table.
func TestACutOffHostCatchesUpOnTheDeletesItMissed(t *testing.T) {
	r := startRelay(t, nil)
	dir := t.TempDir()
	a := newCutHost(t, r.Addr().String(), filepath.Join(dir, "a.table"), time.Hour)
	b := manager(t, filepath.Join(dir, "b.table"), true, client(t, r.Addr().String()))
	ctx := ctxT(t)
	require.NoError(t, b.Set(ctx, []byte("alice"), []byte("v"), time.Hour))
	require.NoError(t, b.Set(ctx, []byte("bob"), []byte("v"), time.Hour))
	eventually(t, "A to hold both sessions", func() bool { return localHas(a.m, "alice") && localHas(a.m, "bob") })

	a.proxy.Cut()
	eventually(t, "A to notice", func() bool { return !a.c.Connected() })
	require.NoError(t, b.Delete(ctx, []byte("alice")))
	require.NoError(t, b.Set(ctx, []byte("carol"), []byte("v"), time.Hour))
	v, err := a.m.Get(ctx, []byte("alice"))
	require.NoError(t, err, "within StaleFor a cut-off host serves what it holds")
	assert.Equal(t, "v", string(v))

	a.proxy.Heal()
	// The missed changes are applied in order, one at a time: the logout, then the login.
	eventually(t, "A to learn of the logout and the login it missed", func() bool {
		return !localHas(a.m, "alice") && localHas(a.m, "carol")
	})
	assert.True(t, localHas(a.m, "bob"), "the rest of its table stays: the changes were replayed, not a gap")
	_, err = a.m.Get(ctx, []byte("alice"))
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
}

// TestAHostThatMissedTooMuchDropsItsTable: when the relay no longer has every change the
// host missed (its backlog overflowed, or it restarted), the host drops its local entries.
func TestAHostThatMissedTooMuchDropsItsTable(t *testing.T) {
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0", StreamBacklog: 4,
		Table: sessioncache.Config{Path: filepath.Join(t.TempDir(), "relay.table"), ElementCount: 1000, RecordSize: 256}})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	dir := t.TempDir()
	a := newCutHost(t, r.Addr().String(), filepath.Join(dir, "a.table"), time.Hour)
	b := manager(t, filepath.Join(dir, "b.table"), true, client(t, r.Addr().String()))
	ctx := ctxT(t)
	require.NoError(t, b.Set(ctx, []byte("alice"), []byte("v"), time.Hour))
	eventually(t, "A to hold the session", func() bool { return localHas(a.m, "alice") })

	a.proxy.Cut()
	eventually(t, "A to notice", func() bool { return !a.c.Connected() })
	require.NoError(t, b.Delete(ctx, []byte("alice")))
	for i := range 10 {
		require.NoError(t, b.Set(ctx, fmt.Appendf(nil, "k%d", i), []byte("v"), time.Hour))
	}
	a.proxy.Heal()
	eventually(t, "A to drop its table", func() bool { return a.m.Table().Len() == 0 || !localHas(a.m, "alice") })
	_, err = a.m.Get(ctx, []byte("alice"))
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
	v, err := a.m.Get(ctx, []byte("k3"))
	require.NoError(t, err, "what it dropped comes back from the relay")
	assert.Equal(t, "v", string(v))
}

// TestStaleForBoundsWhatACutOffHostServes: after StaleFor without a relay, a host serves
// nothing from its table; a negative StaleFor serves nothing from the moment the link is
// lost.
func TestStaleForBoundsWhatACutOffHostServes(t *testing.T) {
	for _, staleFor := range []time.Duration{50 * time.Millisecond, -1} {
		t.Run(fmt.Sprint(staleFor), func(t *testing.T) {
			r := startRelay(t, nil)
			a := newCutHost(t, r.Addr().String(), filepath.Join(t.TempDir(), "a.table"), staleFor)
			ctx := ctxT(t)
			require.NoError(t, a.m.Set(ctx, []byte("alice"), []byte("v"), time.Hour))
			a.proxy.Cut()
			eventually(t, "A to notice", func() bool { return !a.c.Connected() })
			eventually(t, "A to stop serving its table", func() bool {
				short, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
				defer cancel()
				_, err := a.m.Get(short, []byte("alice"))
				return err != nil && !errors.Is(err, sessioncache.ErrNotFound)
			})
			assert.True(t, localHas(a.m, "alice"), "the entry stays in the table, unserved")
			a.proxy.Heal()
			eventually(t, "A to serve again", func() bool {
				v, err := a.m.Get(ctx, []byte("alice"))
				return err == nil && string(v) == "v"
			})
		})
	}
}

// TestANewProcessDoesNotServeWhatWasDeletedWhileNoneRan: the host's processes all stop; a
// session it holds is deleted elsewhere; the host's next process attaches to the table it
// finds and catches up (from the position the table records) before it serves anything.
func TestANewProcessDoesNotServeWhatWasDeletedWhileNoneRan(t *testing.T) {
	for _, restartRelay := range []bool{false, true} {
		t.Run(fmt.Sprintf("relay restarted=%v", restartRelay), func(t *testing.T) {
			dir := t.TempDir()
			rcfg := relay.RelayConfig{Addr: "127.0.0.1:0",
				Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 1000, RecordSize: 256}}
			r, err := relay.NewRelay(rcfg)
			require.NoError(t, err)
			t.Cleanup(func() { r.Close() })
			a := newCutHost(t, r.Addr().String(), filepath.Join(dir, "a.table"), time.Hour)
			b := manager(t, filepath.Join(dir, "b.table"), true, client(t, r.Addr().String()))
			ctx := ctxT(t)
			require.NoError(t, b.Set(ctx, []byte("alice"), []byte("v"), time.Hour))
			require.NoError(t, b.Set(ctx, []byte("bob"), []byte("v"), time.Hour))
			eventually(t, "A to hold the sessions", func() bool { return localHas(a.m, "alice") && localHas(a.m, "bob") })
			require.NoError(t, a.m.Close())
			a.c.Close()

			require.NoError(t, b.Delete(ctx, []byte("alice")))
			if restartRelay {
				addr := r.Addr().String()
				require.NoError(t, r.Close())
				rcfg.Addr = addr
				r, err = relay.NewRelay(rcfg)
				require.NoError(t, err)
				t.Cleanup(func() { r.Close() })
			}
			a.start(t, time.Hour)
			assert.False(t, localHas(a.m, "alice"), "caught up before NewManager returned")
			_, err = a.m.Get(ctx, []byte("alice"))
			require.ErrorIs(t, err, sessioncache.ErrNotFound)
			if !restartRelay {
				assert.True(t, localHas(a.m, "bob"), "the changes were replayed: the rest of the table stays")
			}
		})
	}
}

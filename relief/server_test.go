package relief

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// tier is an in-process session tier: a sibling, a relay in front of it, and a front end.
type tier struct {
	sib   *relay.Sibling
	relay *relay.Relay
	front *sessioncache.Manager
}

func startTier(t *testing.T, relayRecords, frontRecords, replicas int) *tier {
	t.Helper()
	dir := t.TempDir()
	sib, err := relay.NewSibling(relay.SiblingConfig{Addr: "127.0.0.1:0", Replicas: replicas})
	require.NoError(t, err)
	t.Cleanup(func() { sib.Close() })
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0", Lower: sib,
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: relayRecords, RecordSize: 128, Shards: 1}})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	c, err := relay.Dial(ctxT(t), relay.ClientConfig{Addr: r.Addr().String()})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	m, err := sessioncache.New(sessioncache.Config{Path: filepath.Join(dir, "front.table"), Create: true,
		ElementCount: frontRecords, RecordSize: 128, Shards: 1}, c)
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return &tier{sib: sib, relay: r, front: m}
}

func (tr *tier) addRelief(t *testing.T, kind, id string, records int, h func(*Server) relay.Backend) *Server {
	t.Helper()
	s, err := New(Config{Kind: kind, ID: id, Sibling: relay.ClientConfig{Addr: tr.sib.Addr().String()},
		Memory: sessioncache.Config{Path: filepath.Join(t.TempDir(), id+".table"), ElementCount: records, RecordSize: 128, Shards: 1}})
	require.NoError(t, err)
	var b relay.Backend
	if h != nil {
		b = h(s)
	}
	require.NoError(t, s.Start(ctxT(t), b))
	t.Cleanup(func() { s.Close() })
	return s
}

func waitRelief(t *testing.T, sib *relay.Sibling, expansion, aging int) {
	t.Helper()
	for range 1000 {
		if sib.ReliefOf(Expansion) == expansion && sib.ReliefOf(Aging) == aging {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("relief servers did not all subscribe")
}

// TestNothingLostToPressure fills the front end's and the relay's tables many times over;
// every key stays readable from the front end, served by relief when the tables lost it.
func TestNothingLostToPressure(t *testing.T) {
	tr := startTier(t, 64, 32, 1)
	exp := []*Server{tr.addRelief(t, Expansion, "e1", 256, nil), tr.addRelief(t, Expansion, "e2", 256, nil)}
	aging := []*Server{tr.addRelief(t, Aging, "a1", 1024, nil), tr.addRelief(t, Aging, "a2", 1024, nil)}
	waitRelief(t, tr.sib, 2, 2)
	ctx := ctxT(t)
	const n = 600
	for i := range n {
		require.NoError(t, tr.front.Set(ctx, fmt.Appendf(nil, "sid-%d", i), fmt.Appendf(nil, "session %d", i), time.Hour))
	}
	// Hand-downs to relief are asynchronous; wait until the relay's evictions have arrived.
	evicted := tr.relay.Table().Stats().Evictions
	for range 2000 {
		got := aging[0].Stats().Evictions + aging[1].Stats().Evictions
		if uint64(got) >= evicted {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	for i := range n {
		v, err := tr.front.Get(ctx, fmt.Appendf(nil, "sid-%d", i))
		require.NoError(t, err, "sid-%d was lost", i)
		assert.Equal(t, fmt.Sprintf("session %d", i), string(v))
	}
	assert.Positive(t, exp[0].Stats().Sets+exp[1].Stats().Sets)
	assert.Positive(t, aging[0].Stats().Hits+aging[1].Stats().Hits, "aging relief served some of the lost keys")

	// A logout is gone everywhere, relief included.
	require.NoError(t, tr.front.Delete(ctx, []byte("sid-3")))
	_, err := tr.front.Get(ctx, []byte("sid-3"))
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
	// The relay hands the deletion to relief from its outbox, after it answered.
	for i := 0; tr.relay.Outbox().Pending > 0; i++ {
		require.Less(t, i, 2000, "the relay's outbox did not drain")
		time.Sleep(5 * time.Millisecond)
	}
	for _, s := range append(exp, aging...) {
		_, _, err := entryParts(s.Store().Get(context.Background(), []byte("sid-3")))
		require.ErrorIs(t, err, ErrNotFound, "relief %s still has a deleted key", s.ID())
	}
}

// auditing is a relief server extended by embedding: it counts what it is asked and can
// refuse keys by prefix, without touching the relief package.
type auditing struct {
	*Server
	lookups atomic.Int64
	refused atomic.Int64
}

func (a *auditing) Get(ctx context.Context, path string, key []byte) (sessioncache.Entry, error) {
	a.lookups.Add(1)
	return a.Server.Get(ctx, path, key)
}

func (a *auditing) Set(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	if len(key) > 4 && string(key[:4]) == "tmp-" {
		a.refused.Add(1)
		return nil
	}
	return a.Server.Set(ctx, path, key, e)
}

func TestExtendByEmbedding(t *testing.T) {
	tr := startTier(t, 16, 16, 1)
	var a *auditing
	tr.addRelief(t, Expansion, "audited", 256, func(s *Server) relay.Backend {
		a = &auditing{Server: s}
		return a
	})
	waitRelief(t, tr.sib, 1, 0)
	ctx := ctxT(t)
	require.NoError(t, tr.front.Set(ctx, []byte("tmp-1"), []byte("x"), time.Hour))
	require.NoError(t, tr.front.Set(ctx, []byte("keep-1"), []byte("y"), time.Hour))
	for range 1000 {
		if a.refused.Load() == 1 && a.Stats().Sets == 1 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	assert.Equal(t, int64(1), a.refused.Load(), "the override saw the Set")
	assert.Equal(t, int64(1), a.Stats().Sets, "and passed the other on to the embedded server")
	v, _, err := entryParts(tr.sib.Get(ctx, "auths", []byte("keep-1")))
	require.NoError(t, err)
	assert.Equal(t, "y", string(v))
	assert.Equal(t, int64(1), a.lookups.Load())
}

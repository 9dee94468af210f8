package relay

import (
	"fmt"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

// reliefClients connects n relief backends of a kind to the sibling.
func reliefClients(t *testing.T, s *Sibling, kind string, n int) ([]*memBackend, []*Client) {
	t.Helper()
	var bs []*memBackend
	var cs []*Client
	for i := range n {
		b := newMemBackend()
		c := dial(t, ClientConfig{Addr: s.Addr().String(), Name: ReliefName(kind, fmt.Sprintf("%s-%d", kind, i)), Backend: b})
		require.NoError(t, c.Subscribe(ctxT(t), "auths", func(sessioncache.Change) {}))
		bs, cs = append(bs, b), append(cs, c)
	}
	return bs, cs
}

func holders(bs []*memBackend, key string) int {
	n := 0
	for _, b := range bs {
		if b.has(key) {
			n++
		}
	}
	return n
}

func TestSiblingSpreadsKeysByKind(t *testing.T) {
	for _, replicas := range []int{1, 2} {
		t.Run(fmt.Sprintf("replicas=%d", replicas), func(t *testing.T) {
			s := startSibling(t, SiblingConfig{Replicas: replicas})
			exp, _ := reliefClients(t, s, ReliefExpansion, 3)
			aging, agingClients := reliefClients(t, s, ReliefAging, 3)
			eventually(t, "relief servers to subscribe", func() bool {
				return s.ReliefOf(ReliefExpansion) == 3 && s.ReliefOf(ReliefAging) == 3
			})
			ctx := ctxT(t)
			const keys = 60
			for i := range keys {
				k := fmt.Appendf(nil, "k%d", i)
				require.NoError(t, s.Set(ctx, "auths", k, sessioncache.Entry{Value: []byte("new")}))
				require.NoError(t, s.Evict(ctx, "auths", fmt.Appendf(nil, "old%d", i), sessioncache.Entry{Value: []byte("old")}))
			}
			// Entries and evictions are a stream without replies: wait until all arrived.
			eventually(t, "the hand-downs to arrive", func() bool {
				n := 0
				for _, b := range append(exp, aging...) {
					b.mu.Lock()
					n += len(b.m)
					b.mu.Unlock()
				}
				return n == 2*keys*replicas
			})
			spread := map[int]int{}
			for i := range keys {
				require.Equal(t, replicas, holders(exp, fmt.Sprintf("k%d", i)), "new entries go to their expansion owners only")
				require.Zero(t, holders(aging, fmt.Sprintf("k%d", i)))
				require.Equal(t, replicas, holders(aging, fmt.Sprintf("old%d", i)), "evictions go to their aging owners only")
				for j, b := range aging {
					if b.has(fmt.Sprintf("old%d", i)) {
						spread[j]++
					}
				}
			}
			assert.Len(t, spread, 3, "keys are spread over every aging server")

			// Gets find both kinds; deletes reach everyone.
			v, _, err := entryParts(s.Get(ctx, "auths", []byte("old7")))
			require.NoError(t, err)
			assert.Equal(t, "old", string(v))
			require.NoError(t, s.Delete(ctx, "auths", []byte("old7"), sessioncache.Entry{}))
			assert.Zero(t, holders(aging, "old7"))

			// One aging server goes away: with two replicas every key is still found.
			require.NoError(t, agingClients[0].Close())
			eventually(t, "the sibling to notice", func() bool { return s.ReliefOf(ReliefAging) == 2 })
			missing := 0
			for i := range keys {
				if i == 7 {
					continue
				}
				if _, _, err := entryParts(s.Get(ctx, "auths", fmt.Appendf(nil, "old%d", i))); err != nil {
					missing++
					assert.True(t, aging[0].has(fmt.Sprintf("old%d", i)), "only the dead server's keys may be missing")
				}
			}
			if replicas == 2 {
				assert.Zero(t, missing)
			} else {
				assert.Positive(t, missing)
			}
		})
	}
}

// TestSiblingNeverServesAStaleVersion: relief servers of both kinds hold versions of an
// entry; the sibling answers with the newest revision, whichever server holds it, and a
// newer tombstone hides every older version.
func TestSiblingNeverServesAStaleVersion(t *testing.T) {
	s := startSibling(t, SiblingConfig{})
	exp, expClients := reliefClients(t, s, ReliefExpansion, 1)
	aging, _ := reliefClients(t, s, ReliefAging, 1)
	eventually(t, "relief servers to subscribe", func() bool {
		return s.ReliefOf(ReliefExpansion) == 1 && s.ReliefOf(ReliefAging) == 1
	})
	ctx := ctxT(t)
	require.NoError(t, s.Evict(ctx, "auths", []byte("sid"), sessioncache.Entry{Value: []byte("v1"), Rev: 1}))
	require.True(t, aging[0].has("sid"), "an eviction is confirmed once aging holds it")
	require.NoError(t, s.Set(ctx, "auths", []byte("sid"), sessioncache.Entry{Value: []byte("v2"), Rev: 2}))
	eventually(t, "v2 to reach expansion", func() bool { return exp[0].has("sid") })
	v, _, err := entryParts(s.Get(ctx, "auths", []byte("sid")))
	require.NoError(t, err)
	assert.Equal(t, "v2", string(v), "the newer version at expansion wins over aging's")

	// Aging holds a newer version than expansion: it wins.
	require.NoError(t, aging[0].Set(ctx, "auths", []byte("sid"), sessioncache.Entry{Value: []byte("v3"), Rev: 3}))
	for range 20 {
		v, _, err := entryParts(s.Get(ctx, "auths", []byte("sid")))
		require.NoError(t, err)
		require.Equal(t, "v3", string(v))
	}
	// A tombstone at aging newer than every version: not found, with the tombstone.
	require.NoError(t, aging[0].Delete(ctx, "auths", []byte("sid"), sessioncache.Entry{Rev: 4}))
	e, err := s.Get(ctx, "auths", []byte("sid"))
	require.ErrorIs(t, err, ErrNotFound)
	assert.True(t, e.Deleted)
	assert.Equal(t, uint64(4), e.Rev)

	// Without the expansion server, aging's answer is all there is.
	require.NoError(t, aging[0].Set(ctx, "auths", []byte("sid"), sessioncache.Entry{Value: []byte("v5"), Rev: 5}))
	require.NoError(t, expClients[0].Close())
	eventually(t, "the sibling to notice", func() bool { return s.ReliefOf(ReliefExpansion) == 0 })
	v, _, err = entryParts(s.Get(ctx, "auths", []byte("sid")))
	require.NoError(t, err)
	assert.Equal(t, "v5", string(v))
}

// prefetchBackend is a memBackend that records the keys it is told to prefetch.
type prefetchBackend struct {
	*memBackend
	pmu        sync.Mutex
	prefetched map[string]bool
}

func (b *prefetchBackend) Prefetch(keys [][]byte) {
	b.pmu.Lock()
	defer b.pmu.Unlock()
	for _, k := range keys {
		b.prefetched[string(k)] = true
	}
}

// TestReliefIsToldTheKeysComing: a relief backend that can prefetch (PrefetchBackend) is
// told every key of a batch of hand-downs before the batch is served, and of pipelined
// entries only keys it is then handed; what it stores is as without prefetching.
func TestReliefIsToldTheKeysComing(t *testing.T) {
	s := startSibling(t, SiblingConfig{})
	b := &prefetchBackend{memBackend: newMemBackend(), prefetched: map[string]bool{}}
	c := dial(t, ClientConfig{Addr: s.Addr().String(), Name: ReliefName(ReliefAging, "a1"), Backend: b})
	require.NoError(t, c.Subscribe(ctxT(t), "auths", func(sessioncache.Change) {}))
	eventually(t, "the relief server to subscribe", func() bool { return s.ReliefOf(ReliefAging) == 1 })
	ctx := ctxT(t)

	var batch []HandDown
	for i := range 40 {
		batch = append(batch, HandDown{Key: fmt.Appendf(nil, "evicted-%d", i), Entry: sessioncache.Entry{Value: []byte("old"), Rev: 1}})
	}
	require.NoError(t, s.HandDownBatch(ctx, "auths", batch))
	for _, h := range batch {
		assert.True(t, b.has(string(h.Key)), "%s is kept", h.Key)
		b.pmu.Lock()
		assert.True(t, b.prefetched[string(h.Key)], "%s was prefetched with its batch", h.Key)
		b.pmu.Unlock()
	}

	// Entries stream to expansion relief without replies, so they arrive back to back.
	e := &prefetchBackend{memBackend: newMemBackend(), prefetched: map[string]bool{}}
	ec := dial(t, ClientConfig{Addr: s.Addr().String(), Name: ReliefName(ReliefExpansion, "e1"), Backend: e})
	require.NoError(t, ec.Subscribe(ctxT(t), "auths", func(sessioncache.Change) {}))
	eventually(t, "the expansion server to subscribe", func() bool { return s.ReliefOf(ReliefExpansion) == 1 })
	const sets = 2000
	for i := range sets {
		require.NoError(t, s.Set(ctx, "auths", fmt.Appendf(nil, "new-%d", i), sessioncache.Entry{Value: []byte("v"), Rev: 2}))
	}
	// Served each in a goroutine of its own (memBackend is not inline): in any order.
	eventually(t, "the entries to arrive", func() bool {
		e.mu.Lock()
		defer e.mu.Unlock()
		return len(e.m) == sets
	})
	e.pmu.Lock()
	defer e.pmu.Unlock()
	t.Logf("%d of %d streamed keys were prefetched", len(e.prefetched), sets)
	for k := range e.prefetched {
		assert.True(t, e.has(k), "prefetched %s, which the relief server was never handed", k)
	}
}

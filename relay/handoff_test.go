package relay

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

// connectRelief connects a relief backend named kind/id to the sibling and waits until the
// sibling counts it.
func connectRelief(t *testing.T, s *Sibling, kind, id string, b *memBackend) *Client {
	t.Helper()
	before := s.ReliefOf(kind)
	c := dial(t, ClientConfig{Addr: s.Addr().String(), Name: ReliefName(kind, id), Backend: b})
	require.NoError(t, c.Subscribe(ctxT(t), "auths", func(sessioncache.Change) {}))
	eventually(t, "the sibling to count "+id, func() bool { return s.ReliefOf(kind) > before })
	return c
}

// TestSiblingKeepsWhatAnAbsentOwnerShouldReceive: an aging server that has never been
// connected (a configured member) owns keys all the same; what it should receive is kept
// on disk through the sibling's restart and handed over when it connects, and a tombstone
// overrides the older version the returning server holds.
func TestSiblingKeepsWhatAnAbsentOwnerShouldReceive(t *testing.T) {
	dir := t.TempDir()
	s, err := NewSibling(SiblingConfig{Addr: "127.0.0.1:0", HintDir: dir, Members: []string{"aging/a1"}})
	require.NoError(t, err)
	ctx := ctxT(t)
	hour := time.Now().Add(time.Hour)
	require.NoError(t, s.Evict(ctx, "auths", []byte("old"), sessioncache.Entry{Value: []byte("v"), Expiry: hour, Rev: 1}))
	require.NoError(t, s.Delete(ctx, "auths", []byte("gone"), sessioncache.Entry{Rev: 5, Expiry: hour}))
	assert.Equal(t, int64(2), s.Hints().Added)
	require.NoError(t, s.Close())

	s2 := startSibling(t, SiblingConfig{HintDir: dir})
	assert.Equal(t, []string{ReliefName(ReliefAging, "a1")}, s2.Members(), "members are recorded beside the hints")
	b := newMemBackend()
	b.put([]byte("gone"), sessioncache.Entry{Value: []byte("stale"), Rev: 3, Expiry: hour})
	connectRelief(t, s2, ReliefAging, "a1", b)
	eventually(t, "the hints to be handed over", func() bool { return s2.Hints().Delivered == 2 })
	assert.True(t, b.has("old"))
	assert.False(t, b.has("gone"), "the tombstone replaced the older version the server held")
	left, err := filepath.Glob(filepath.Join(dir, "*.hints"))
	require.NoError(t, err)
	delivering, err := filepath.Glob(filepath.Join(dir, "*.delivering"))
	require.NoError(t, err)
	assert.Empty(t, append(left, delivering...), "delivered hints are removed")
}

// TestOwnershipDoesNotMoveWhileAnOwnerIsAway: with two aging servers, one goes away;
// evictions of the keys it owns are kept for it instead of going to the other, and it gets
// them when it is back.
func TestOwnershipDoesNotMoveWhileAnOwnerIsAway(t *testing.T) {
	s := startSibling(t, SiblingConfig{HintDir: t.TempDir()})
	a1, a2 := newMemBackend(), newMemBackend()
	c1 := connectRelief(t, s, ReliefAging, "a1", a1)
	connectRelief(t, s, ReliefAging, "a2", a2)
	require.NoError(t, c1.Close())
	eventually(t, "the sibling to notice a1 left", func() bool { return s.ReliefOf(ReliefAging) == 1 })

	ctx := ctxT(t)
	const n = 200
	for i := range n {
		require.NoError(t, s.Evict(ctx, "auths", fmt.Appendf(nil, "k%d", i), sessioncache.Entry{Value: []byte("v"), Rev: 1}))
	}
	held := holders([]*memBackend{a2}, "")
	for i := range n {
		held += holders([]*memBackend{a2}, fmt.Sprintf("k%d", i))
	}
	hinted := s.Hints().Added
	assert.Positive(t, hinted, "a1 owns some keys")
	assert.Equal(t, int64(n), int64(held)+hinted, "every key went to its owner or was kept for it")

	a1again := newMemBackend()
	connectRelief(t, s, ReliefAging, "a1", a1again)
	eventually(t, "a1 to receive its keys", func() bool { return s.Hints().Delivered == hinted })
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		assert.Equal(t, 1, holders([]*memBackend{a1again, a2}, k), "%s is held by exactly its owner", k)
	}
}

// downBackend is a lower tier that fails evictions and deletions while down.
type downBackend struct {
	*memBackend
	down    atomic.Bool
	getDown atomic.Bool // gets fail too
}

func (b *downBackend) Get(ctx context.Context, path string, key []byte) (sessioncache.Entry, error) {
	if b.getDown.Load() {
		return sessioncache.Entry{}, errDown
	}
	return b.memBackend.Get(ctx, path, key)
}

var errDown = errors.New("test: the tier below is down")

func (b *downBackend) Evict(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	if b.down.Load() {
		return errDown
	}
	return b.memBackend.Evict(ctx, path, key, e)
}

func (b *downBackend) Delete(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	if b.down.Load() {
		return errDown
	}
	return b.memBackend.Delete(ctx, path, key, e)
}

// TestRelayOutboxOutlivesTheRelay: the tier below is down while the relay's small table
// evicts and a key is deleted; the relay stops with all of it unconfirmed, and the next
// relay on the same table hands it all down.
func TestRelayOutboxOutlivesTheRelay(t *testing.T) {
	tc := tableConfig(t, 64)
	lower := &downBackend{memBackend: newMemBackend()}
	lower.down.Store(true)
	cfg := RelayConfig{Addr: "127.0.0.1:0", Table: tc, Lower: lower, LowerWorkers: 4}
	r, err := NewRelay(cfg)
	require.NoError(t, err)
	c := dial(t, ClientConfig{Addr: r.Addr().String()})
	ctx := ctxT(t)
	const n = 300
	hour := time.Now().Add(time.Hour)
	for i := range n {
		require.NoError(t, c.Publish(ctx, "auths", fmt.Appendf(nil, "k%d", i), sessioncache.Entry{Value: []byte("v"), Expiry: hour}))
	}
	require.NoError(t, c.Delete(ctx, "auths", []byte("k299"), sessioncache.Entry{}),
		"a deletion is confirmed once it is in the outbox, with the tier below down")
	pending := r.Outbox().Pending
	assert.Greater(t, pending, int64(n-64), "the evictions and the deletion wait in the outbox")
	for _, k := range []string{"k0", "k1", "k2"} {
		v, _, err := entryParts(c.Get(ctx, "auths", []byte(k)))
		require.NoError(t, err, "%s is evicted and waits in the outbox: the relay answers from there", k)
		assert.Equal(t, "v", string(v))
	}
	require.NoError(t, r.Close())
	segments, err := filepath.Glob(filepath.Join(tc.Path+".outbox", "*.outbox"))
	require.NoError(t, err)
	require.NotEmpty(t, segments)

	lower.down.Store(false)
	r2, err := NewRelay(cfg)
	require.NoError(t, err)
	t.Cleanup(func() { r2.Close() })
	eventually(t, "the outbox to drain", func() bool { return r2.Outbox().Pending == 0 })
	for i := range n - 1 {
		k := fmt.Sprintf("k%d", i)
		_, err := r2.Lookup([]byte(k))
		assert.True(t, err == nil || lower.has(k), "%s is in the relay's table or was handed down", k)
	}
	e, err := lower.Get(ctx, "auths", []byte("k299"))
	require.ErrorIs(t, err, ErrNotFound)
	assert.True(t, e.Deleted, "the tier below holds the tombstone")
	require.NoError(t, r2.Close())
	left, err := filepath.Glob(filepath.Join(tc.Path+".outbox", "*.outbox"))
	require.NoError(t, err)
	assert.Empty(t, left, "a relay that stops with nothing unconfirmed leaves no segment")
}

// TestForgetADecommissionedServer: a forgotten member owns no keys any more and its hints
// are gone, on disk too.
func TestForgetADecommissionedServer(t *testing.T) {
	dir := t.TempDir()
	s := startSibling(t, SiblingConfig{HintDir: dir, Members: []string{"aging/a1", "aging/a2"}})
	a2 := newMemBackend()
	connectRelief(t, s, ReliefAging, "a2", a2)
	ctx := ctxT(t)
	require.NoError(t, s.Evict(ctx, "auths", []byte("k1"), sessioncache.Entry{Value: []byte("v"), Rev: 1}))
	require.NoError(t, s.Evict(ctx, "auths", []byte("k2"), sessioncache.Entry{Value: []byte("v"), Rev: 1}))
	require.NoError(t, s.Evict(ctx, "auths", []byte("k3"), sessioncache.Entry{Value: []byte("v"), Rev: 1}))
	require.Error(t, s.Forget("a1"), "a relief name is kind and id")
	require.NoError(t, s.Forget(ReliefName(ReliefAging, "a1")))
	assert.Equal(t, []string{ReliefName(ReliefAging, "a2")}, s.Members())
	files, err := filepath.Glob(filepath.Join(dir, "*.hints"))
	require.NoError(t, err)
	assert.Empty(t, files)
	for _, k := range []string{"k4", "k5", "k6", "k7"} {
		require.NoError(t, s.Evict(ctx, "auths", []byte(k), sessioncache.Entry{Value: []byte("v"), Rev: 1}))
		assert.True(t, a2.has(k), "%s goes to the one member left", k)
	}
}

// TestADelayedWriteDoesNotUndoAnEvictedDeletion: a publish held up in the network arrives
// after a later deletion of its key, whose tombstone the relay's table has since pushed
// down to the tier below; the relay asks the tier below before it accepts the old write.
func TestADelayedWriteDoesNotUndoAnEvictedDeletion(t *testing.T) {
	lower := &downBackend{memBackend: newMemBackend()}
	r := startRelay(t, RelayConfig{Table: tableConfig(t, 64), Lower: lower, LowerWorkers: 4})
	c := dial(t, ClientConfig{Addr: r.Addr().String()})
	ctx := ctxT(t)
	hour := time.Now().Add(time.Hour)
	rev := uint64(time.Now().UnixNano())
	require.NoError(t, c.Publish(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v1"), Expiry: hour, Rev: rev + 1}))
	require.NoError(t, c.Delete(ctx, "auths", []byte("k"), sessioncache.Entry{Rev: rev + 3}))
	for i := range 300 {
		require.NoError(t, c.Publish(ctx, "auths", fmt.Appendf(nil, "fill%d", i), sessioncache.Entry{Value: []byte("x"), Expiry: hour}))
	}
	eventually(t, "the tombstone to be pushed down", func() bool {
		_, err := r.Lookup([]byte("k"))
		e, _ := lower.Get(ctx, "auths", []byte("k"))
		return errors.Is(err, ErrNotFound) && e.Deleted && r.Outbox().Pending == 0
	})
	// The delayed write: older than the deletion.
	require.NoError(t, c.Publish(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v2"), Expiry: hour, Rev: rev + 2}))
	_, err := c.Get(ctx, "auths", []byte("k"))
	require.ErrorIs(t, err, ErrNotFound, "the delayed write was older than the deletion")
	// A newer write is a new entry.
	require.NoError(t, c.Publish(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v4"), Expiry: hour, Rev: rev + 4}))
	v, _, err := entryParts(c.Get(ctx, "auths", []byte("k")))
	require.NoError(t, err)
	assert.Equal(t, "v4", string(v))
	// While the tier below cannot answer, an old write is refused rather than guessed at.
	lower.down.Store(true)
	lower.getDown.Store(true)
	err = c.Publish(ctx, "auths", []byte("fill3"), sessioncache.Entry{Value: []byte("old"), Expiry: hour, Rev: rev})
	if _, lerr := r.Lookup([]byte("fill3")); errors.Is(lerr, ErrNotFound) {
		require.Error(t, err, "fill3 was pushed out: its old write cannot be checked")
	}
}

// TestBatchesReachEveryOwner: a batch of evictions and deletions handed to the sibling over
// the wire (as the relay's outbox hands them) reaches each key's owners with one batch per
// server: evictions to the key's aging owner, deletions to every relief server; what an
// absent owner should get is kept and handed over, in batches too, when it is back.
func TestBatchesReachEveryOwner(t *testing.T) {
	s := startSibling(t, SiblingConfig{HintDir: t.TempDir()})
	a1, a2, x1 := newMemBackend(), newMemBackend(), newMemBackend()
	c1 := connectRelief(t, s, ReliefAging, "a1", a1)
	connectRelief(t, s, ReliefAging, "a2", a2)
	connectRelief(t, s, ReliefExpansion, "x1", x1)
	require.NoError(t, c1.Close())
	eventually(t, "the sibling to notice a1 left", func() bool { return s.ReliefOf(ReliefAging) == 1 })

	hour := time.Now().Add(time.Hour)
	const n = 300
	var batch []HandDown
	for i := range n {
		batch = append(batch, HandDown{Key: fmt.Appendf(nil, "k%d", i), Entry: sessioncache.Entry{Value: []byte("v"), Expiry: hour, Rev: 2}})
	}
	for i := range n / 3 { // a third of the keys are deleted in the same batch
		batch = append(batch, HandDown{Key: fmt.Appendf(nil, "k%d", i), Entry: sessioncache.Entry{Expiry: hour, Rev: 3}, Delete: true})
	}
	relayside := dial(t, ClientConfig{Addr: s.Addr().String()})
	require.NoError(t, relayside.HandDownBatch(ctxT(t), "auths", batch))
	assert.Positive(t, s.Hints().Added, "a1 owns some keys and is away")

	a1again := newMemBackend()
	connectRelief(t, s, ReliefAging, "a1", a1again)
	eventually(t, "a1 to receive what was kept for it", func() bool {
		h := s.Hints()
		return h.Delivered == h.Added
	})
	for i := range n {
		k := fmt.Sprintf("k%d", i)
		if i < n/3 {
			assert.Zero(t, holders([]*memBackend{a1again, a2, x1}, k), "%s was deleted", k)
			continue
		}
		assert.Equal(t, 1, holders([]*memBackend{a1again, a2}, k), "%s is held by exactly its owner", k)
	}
	assert.Equal(t, n/3, len(x1.deleted()), "every deletion reached the expansion server too")
}

// TestARelayRefusesBatches: a batch is for the tier below a relay; a relay answers one with
// an error that says so and stores nothing.
func TestARelayRefusesBatches(t *testing.T) {
	r := startRelay(t, RelayConfig{Table: tableConfig(t, 64)})
	c := dial(t, ClientConfig{Addr: r.Addr().String()})
	batch := []HandDown{{Key: []byte("a"), Entry: sessioncache.Entry{Value: []byte("v"), Rev: 1}}, {Key: []byte("b"), Entry: sessioncache.Entry{Value: []byte("v"), Rev: 1}}}
	err := c.HandDownBatch(ctxT(t), "auths", batch)
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Message, "takes no batches")
	_, err = r.Lookup([]byte("a"))
	assert.ErrorIs(t, err, ErrNotFound)
}

// TestEvictionsWithNoReliefAreDroppedAndCounted: a sibling that no relief server ever
// joined keeps no evictions; it says so (ErrNoOwner), and the relay then drops its
// evictions, counting them, instead of writing each to its outbox for nothing. Deletions
// still go down, and once an aging server joins, evictions reach it again.
func TestEvictionsWithNoReliefAreDroppedAndCounted(t *testing.T) {
	s := startSibling(t, SiblingConfig{HintDir: t.TempDir()})
	ctx := ctxT(t)
	require.ErrorIs(t, s.Evict(ctx, "auths", []byte("x"), sessioncache.Entry{Value: []byte("v"), Rev: 1}), ErrNoOwner)

	// Over the wire, as a child sibling answers: the same error.
	relayside := dial(t, ClientConfig{Addr: s.Addr().String()})
	require.ErrorIs(t, relayside.Evict(ctx, "auths", []byte("y"), sessioncache.Entry{Value: []byte("v"), Rev: 1}), ErrNoOwner)
	require.ErrorIs(t, relayside.HandDownBatch(ctx, "auths", []HandDown{
		{Key: []byte("a"), Entry: sessioncache.Entry{Value: []byte("v"), Rev: 1}},
		{Key: []byte("b"), Entry: sessioncache.Entry{Rev: 2}, Delete: true},
	}), ErrNoOwner)

	r := startRelay(t, RelayConfig{Table: tableConfig(t, 64), Lower: relayside})
	c := dial(t, ClientConfig{Addr: r.Addr().String()})
	hour := time.Now().Add(time.Hour)
	for i := range 300 {
		require.NoError(t, c.Publish(ctx, "auths", fmt.Appendf(nil, "k%d", i), sessioncache.Entry{Value: []byte("v"), Expiry: hour}))
	}
	eventually(t, "the outbox to drain", func() bool { return r.Outbox().Pending == 0 })
	assert.Positive(t, r.Outbox().Unplaced, "the relay dropped evictions itself")
	assert.Positive(t, s.Hints().Unplaced, "the sibling counted those it was handed")

	aging := newMemBackend()
	connectRelief(t, s, ReliefAging, "a1", aging)
	for i := 0; ; i++ { // bounded: evictions reach the new server within about a second
		k := fmt.Appendf(nil, "later%d", i)
		require.NoError(t, c.Publish(ctx, "auths", k, sessioncache.Entry{Value: []byte("v"), Expiry: hour}))
		if len(aging.keys()) > 0 {
			break
		}
		require.Less(t, i, 100000, "no eviction reached the aging server")
		if i%100 == 99 {
			time.Sleep(10 * time.Millisecond) // give the relay's second of dropping time to pass
		}
	}
}

// TestAFailingReliefServerIsNotANotFound: when the relief server that owns a key fails a
// lookup, the sibling answers with an error, not "not found" (which a front end would take
// for a logout), and counts it.
func TestAFailingReliefServerIsNotANotFound(t *testing.T) {
	s := startSibling(t, SiblingConfig{HintDir: t.TempDir()})
	b := &downBackend{memBackend: newMemBackend()}
	c := dial(t, ClientConfig{Addr: s.Addr().String(), Name: ReliefName(ReliefAging, "a1"), Backend: b})
	require.NoError(t, c.Subscribe(ctxT(t), "auths", func(sessioncache.Change) {}))
	eventually(t, "the sibling to count a1", func() bool { return s.ReliefOf(ReliefAging) == 1 })
	ctx := ctxT(t)
	_, err := s.Get(ctx, "auths", []byte("missing"))
	require.ErrorIs(t, err, ErrNotFound, "a plain miss")

	b.getDown.Store(true)
	_, err = s.Get(ctx, "auths", []byte("missing"))
	require.Error(t, err)
	assert.NotErrorIs(t, err, ErrNotFound, "a failure is not a miss")
	assert.Equal(t, int64(1), s.GetErrors())
}

// gatedBackend is a lower tier whose evictions wait until the gate opens.
type gatedBackend struct {
	*memBackend
	gate chan struct{}
}

func (b *gatedBackend) Evict(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	select {
	case <-b.gate:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.memBackend.Evict(ctx, path, key, e)
}

// TestAMissIsAnAnswerOnlyFromAnUpToDateOwner: while the key's only aging server is away,
// or back but not yet handed what was kept for it, the sibling cannot tell an entry it
// pushed out from one that never was: a lookup fails with ErrOwnersBehind, and a front
// end asking the relay gets an error, not a miss that would read as a logout. Once the
// server has everything, its miss is a miss.
func TestAMissIsAnAnswerOnlyFromAnUpToDateOwner(t *testing.T) {
	s := startSibling(t, SiblingConfig{HintDir: t.TempDir(), Members: []string{"aging/a1"}})
	r := startRelay(t, RelayConfig{Lower: s})
	front := dial(t, ClientConfig{Addr: r.Addr().String()})
	ctx := ctxT(t)
	hour := time.Now().Add(time.Hour)
	require.NoError(t, s.Evict(ctx, "auths", []byte("pushed-out"), sessioncache.Entry{Value: []byte("v"), Expiry: hour, Rev: 1}))

	for _, key := range []string{"pushed-out", "never-set"} {
		_, err := s.Get(ctx, "auths", []byte(key))
		require.ErrorIs(t, err, ErrOwnersBehind, "%s, the owner away", key)
		_, err = front.Get(ctx, "auths", []byte(key))
		require.Error(t, err, "%s through the relay, the owner away", key)
		assert.NotErrorIs(t, err, ErrNotFound, "%s through the relay, the owner away", key)
	}
	assert.Equal(t, int64(2), r.LowerGetFailures())

	b := &gatedBackend{memBackend: newMemBackend(), gate: make(chan struct{})}
	c := dial(t, ClientConfig{Addr: s.Addr().String(), Name: ReliefName(ReliefAging, "a1"), Backend: b})
	require.NoError(t, c.Subscribe(ctx, "auths", func(sessioncache.Change) {}))
	eventually(t, "the sibling to count a1", func() bool { return s.ReliefOf(ReliefAging) == 1 })
	_, err := s.Get(ctx, "auths", []byte("never-set"))
	require.ErrorIs(t, err, ErrOwnersBehind, "the owner is back but its hints are not handed over")

	close(b.gate)
	eventually(t, "the hints to be handed over", func() bool { return s.Hints().Delivered == 1 })
	_, err = s.Get(ctx, "auths", []byte("never-set"))
	require.ErrorIs(t, err, ErrNotFound, "an up-to-date owner's miss")
	e, err := front.Get(ctx, "auths", []byte("pushed-out"))
	require.NoError(t, err)
	assert.Equal(t, "v", string(e.Value))
}

// TestAnAnswerFromServersThatAreBehindIsNotFinal: while a key's aging server is away, or
// back with what was kept for it not yet handed over, neither an up-to-date expansion
// server's tombstone nor the behind aging server's entry is the answer. The tombstone may
// hide a newer version pushed out to the aging server (a session set again after a logout
// would read as logged out, and, cached by the relay, stay so); the entry may be one that a
// deletion kept for the server has replaced (a logout undone). The sibling answers
// ErrOwnersBehind and the relay an error that is not a miss, caching nothing; once the
// server holds all it was given, the newest version is the answer.
func TestAnAnswerFromServersThatAreBehindIsNotFinal(t *testing.T) {
	s := startSibling(t, SiblingConfig{HintDir: t.TempDir()})
	r := startRelay(t, RelayConfig{Lower: s})
	front := dial(t, ClientConfig{Addr: r.Addr().String()})
	ctx := ctxT(t)
	hour := time.Now().Add(time.Hour)
	x1, a1 := newMemBackend(), newMemBackend()
	connectRelief(t, s, ReliefExpansion, "x1", x1)
	c1 := connectRelief(t, s, ReliefAging, "a1", a1)

	// "relogin" is deleted, then set again while a1 is away and pushed out to it. "logout"
	// is pushed out to a1, then deleted while a1 is away; x1 no longer holds its tombstone
	// (an expansion server keeps one only for its MaxLife).
	relogin, logout := []byte("relogin"), []byte("logout")
	require.NoError(t, s.Delete(ctx, "auths", relogin, sessioncache.Entry{Expiry: hour, Rev: 1}))
	require.NoError(t, s.Evict(ctx, "auths", logout, sessioncache.Entry{Value: []byte("v1"), Expiry: hour, Rev: 1}))
	require.NoError(t, c1.Close())
	eventually(t, "the sibling to notice a1 left", func() bool { return s.ReliefOf(ReliefAging) == 0 })
	require.NoError(t, s.Evict(ctx, "auths", relogin, sessioncache.Entry{Value: []byte("v2"), Expiry: hour, Rev: 2}))
	require.NoError(t, s.Delete(ctx, "auths", logout, sessioncache.Entry{Expiry: hour, Rev: 2}))
	x1.mu.Lock()
	delete(x1.m, string(logout))
	x1.mu.Unlock()
	require.True(t, x1.wasDeleted(string(relogin)), "x1 holds relogin's tombstone")

	behind := func(state string) {
		t.Helper()
		for _, key := range [][]byte{relogin, logout} {
			_, err := s.Get(ctx, "auths", key)
			require.ErrorIs(t, err, ErrOwnersBehind, "%s, %s", key, state)
			_, err = front.Get(ctx, "auths", key)
			require.Error(t, err, "%s through the relay, %s", key, state)
			assert.NotErrorIs(t, err, ErrNotFound, "%s through the relay, %s", key, state)
		}
	}
	behind("a1 away")

	b := &gatedBackend{memBackend: a1, gate: make(chan struct{})}
	c := dial(t, ClientConfig{Addr: s.Addr().String(), Name: ReliefName(ReliefAging, "a1"), Backend: b})
	require.NoError(t, c.Subscribe(ctx, "auths", func(sessioncache.Change) {}))
	eventually(t, "the sibling to count a1", func() bool { return s.ReliefOf(ReliefAging) == 1 })
	behind("a1 back, its hints not handed over")

	close(b.gate)
	eventually(t, "the hints to be handed over", func() bool { h := s.Hints(); return h.Delivered == h.Added })
	e, err := front.Get(ctx, "auths", relogin)
	require.NoError(t, err, "relogin, a1 up to date")
	assert.Equal(t, "v2", string(e.Value))
	_, err = front.Get(ctx, "auths", logout)
	require.ErrorIs(t, err, ErrNotFound, "logout, a1 up to date")
}

// wasDeleted reports whether b holds a tombstone for key.
func (b *memBackend) wasDeleted(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	return ok && e.Deleted
}

// TestARelayWaitingForItsTierBelowDoesNotAnswerAMiss: a relay made with LowerLater (its
// sibling still starting, as the binary starts it) neither answers a miss of its table as
// "not found" nor accepts a write older than its start unchecked; once the tier below is
// attached, both are answered from it.
func TestARelayWaitingForItsTierBelowDoesNotAnswerAMiss(t *testing.T) {
	r := startRelay(t, RelayConfig{LowerLater: true})
	front := dial(t, ClientConfig{Addr: r.Addr().String()})
	ctx := ctxT(t)
	key := []byte("pushed-out-earlier")
	old := sessioncache.Entry{Value: []byte("v"), Expiry: time.Now().Add(time.Hour), Rev: 1}
	_, err := front.Get(ctx, "auths", key)
	require.Error(t, err, "a miss while the tier below is not attached")
	assert.NotErrorIs(t, err, ErrNotFound, "a miss while the tier below is not attached")
	require.Error(t, front.Publish(ctx, "auths", key, old), "a write older than the relay, unchecked")

	r.SetLower(startSibling(t, SiblingConfig{HintDir: t.TempDir()}))
	_, err = front.Get(ctx, "auths", key)
	require.ErrorIs(t, err, ErrNotFound, "the tier below (no aging server ever known) answers the miss")
	require.NoError(t, front.Publish(ctx, "auths", key, old), "the tier below holds nothing newer")
	e, err := front.Get(ctx, "auths", key)
	require.NoError(t, err)
	assert.Equal(t, "v", string(e.Value))
}

// TestAVersionThatExpiredKeepsOlderOnesBelowOut: a session set again with a shorter
// lifetime than the version the tier below holds stays ended once it expires. While the
// relay's table keeps the expired version's record, the relay answers from it (a miss,
// without asking below) and refuses older writes; when the table takes the record back, the
// version's deletion is handed down and replaces the older version there.
func TestAVersionThatExpiredKeepsOlderOnesBelowOut(t *testing.T) {
	lower := newMemBackend()
	r, c, ctx := relayAbove(t, lower)
	key := []byte("k")
	rev := uint64(time.Now().UnixNano())
	lower.put(key, sessioncache.Entry{Value: []byte("long-lived"), Expiry: time.Now().Add(time.Hour), Rev: rev + 1})

	short := time.Now().Add(50 * time.Millisecond)
	require.NoError(t, c.Publish(ctx, "auths", key, sessioncache.Entry{Value: []byte("short-lived"), Expiry: short, Rev: rev + 2}))
	time.Sleep(time.Until(short) + time.Millisecond) // the expiry itself is what is waited for
	e, err := c.Get(ctx, "auths", key)
	require.ErrorIs(t, err, ErrNotFound, "the newest version expired: the older one below is not served")
	assert.True(t, e.Deleted)
	assert.Equal(t, rev+2, e.Rev)
	require.NoError(t, c.Publish(ctx, "auths", key, sessioncache.Entry{Value: []byte("late"), Expiry: time.Now().Add(time.Hour), Rev: rev + 1}))
	_, err = c.Get(ctx, "auths", key)
	require.ErrorIs(t, err, ErrNotFound, "a write older than the expired version is refused")
	assert.True(t, lower.has("k"), "the tier below was not asked to change anything yet")

	n, err := r.Table().DeleteExpired()
	require.NoError(t, err)
	require.Equal(t, 1, n)
	eventually(t, "the expired version's deletion to be handed down", func() bool {
		return !lower.has("k") && r.Outbox().Pending == 0
	})
	_, err = c.Get(ctx, "auths", key)
	require.ErrorIs(t, err, ErrNotFound, "the tier below answers with the deletion now")

	// A newer version is a new session.
	require.NoError(t, c.Publish(ctx, "auths", key, sessioncache.Entry{Value: []byte("new"), Expiry: time.Now().Add(time.Hour), Rev: rev + 3}))
	v, _, err := entryParts(c.Get(ctx, "auths", key))
	require.NoError(t, err)
	assert.Equal(t, "new", string(v))
}

// TestAnExpansionServerVouchesOnlyForWhatTheStreamBroughtIt: while a key's aging server is
// away, an expansion server's version is an answer only if it was written after the
// stream of new entries began to reach that server (plus the clock margin): an older one
// it may hold from before it was away, having missed the newer versions set meanwhile.
func TestAnExpansionServerVouchesOnlyForWhatTheStreamBroughtIt(t *testing.T) {
	s := startSibling(t, SiblingConfig{HintDir: t.TempDir(), Members: []string{"aging/a1"}})
	ctx := ctxT(t)
	key := []byte("k")
	x1 := newMemBackend()
	x1.put(key, sessioncache.Entry{Value: []byte("from-before"), Expiry: time.Now().Add(time.Hour), Rev: uint64(time.Now().UnixNano())})
	connectRelief(t, s, ReliefExpansion, "x1", x1)
	_, err := s.Get(ctx, "auths", key)
	require.ErrorIs(t, err, ErrOwnersBehind, "x1 may have missed a newer version while it was away")

	// A version written (by its host's clock) well after the stream reached x1.
	rev := uint64(time.Now().Add(streamClockMargin + time.Second).UnixNano())
	require.NoError(t, s.Set(ctx, "auths", key, sessioncache.Entry{Value: []byte("streamed"), Expiry: time.Now().Add(time.Hour), Rev: rev}))
	eventually(t, "the stream to reach x1", func() bool {
		e, err := x1.Get(ctx, "auths", key)
		return err == nil && e.Rev == rev
	})
	e, err := s.Get(ctx, "auths", key)
	require.NoError(t, err)
	assert.Equal(t, "streamed", string(e.Value))
}

// TestAnEvictionThatExpiresWhileWaitingStillEndsOlderVersions: a version pushed out of
// the relay's table waits in the outbox while the tier below is down, and expires there.
// The relay answers for the key from it (the deletion of its revision) instead of asking
// the tier below, which holds an older, longer-lived version.
func TestAnEvictionThatExpiresWhileWaitingStillEndsOlderVersions(t *testing.T) {
	lower := &downBackend{memBackend: newMemBackend()}
	lower.down.Store(true)
	r, c, ctx := relayAbove(t, lower)
	key := []byte("k")
	rev := uint64(time.Now().UnixNano())
	hour := time.Now().Add(time.Hour)
	lower.put(key, sessioncache.Entry{Value: []byte("long-lived"), Expiry: hour, Rev: rev + 1})
	short := time.Now().Add(time.Second)
	require.NoError(t, c.Publish(ctx, "auths", key, sessioncache.Entry{Value: []byte("short-lived"), Expiry: short, Rev: rev + 2}))
	for i := range 300 {
		require.NoError(t, c.Publish(ctx, "auths", fmt.Appendf(nil, "fill%d", i), sessioncache.Entry{Value: []byte("x"), Expiry: hour}))
	}
	held, err := r.Lookup(key)
	require.ErrorIs(t, err, ErrNotFound, "k was pushed out")
	require.False(t, held.Deleted)
	v, _, err := entryParts(c.Get(ctx, "auths", key))
	require.NoError(t, err, "the relay answers from the outbox")
	require.Equal(t, "short-lived", string(v), "the relay answers from the outbox")

	time.Sleep(time.Until(short) + time.Millisecond) // the expiry itself is what is waited for
	e, err := c.Get(ctx, "auths", key)
	require.ErrorIs(t, err, ErrNotFound, "the expired version still ends the older one below")
	assert.Equal(t, rev+2, e.Rev)
	assert.True(t, e.Deleted)
}

// TestACappedCopyDoesNotEndTheVersion: an expansion server keeps a version for at most its
// MaxLife, after which its copy reads as the deletion of that revision; the aging server's
// copy of the same version, whose own expiry is still to come, is the answer.
func TestACappedCopyDoesNotEndTheVersion(t *testing.T) {
	s, x1, a1 := siblingWithTwoReliefServers(t)
	ctx := ctxT(t)
	key := []byte("k")
	rev := uint64(time.Now().UnixNano())
	x1.put(key, sessioncache.Entry{Rev: rev, Deleted: true, Expiry: time.Now().Add(-time.Second)})
	a1.put(key, sessioncache.Entry{Value: []byte("v"), Rev: rev, Expiry: time.Now().Add(time.Hour)})
	e, err := s.Get(ctx, "auths", key)
	require.NoError(t, err)
	assert.Equal(t, "v", string(e.Value))

	// Once the version's own expiry has passed, the deletion of its revision is the answer.
	a1.mu.Lock()
	a1.m["k"] = sessioncache.Entry{Value: []byte("v"), Rev: rev, Expiry: time.Now().Add(-time.Millisecond)}
	a1.mu.Unlock()
	e, err = s.Get(ctx, "auths", key)
	require.ErrorIs(t, err, ErrNotFound)
	assert.True(t, e.Deleted)
}

// TestAnAnswerFromBelowIsCachedAsACopy: the relay caches what the tier below answers, whose
// expiry may be a relief server's cap rather than the version's own. When that passes, the
// relay asks below again (no "deleted" answer of its own), and reclaiming the cached copy
// hands no deletion down.
func TestAnAnswerFromBelowIsCachedAsACopy(t *testing.T) {
	r, c, ctx, lower, rev := relayWithExpiredCopy(t)
	key := []byte("k")

	// The version's own expiry, below.
	lower.replace("k", sessioncache.Entry{Value: []byte("v"), Expiry: time.Now().Add(time.Hour), Rev: rev})
	n, err := r.Table().DeleteExpired()
	require.NoError(t, err)
	require.Equal(t, 1, n)
	assert.Zero(t, r.Outbox().Pending, "no deletion handed down for a copy")
	v, _, err := entryParts(c.Get(ctx, "auths", key))
	require.NoError(t, err, "the relay asks below again")
	assert.Equal(t, "v", string(v))
	assert.False(t, lower.wasDeleted("k"))
}

// TestOfTwoCopiesTheLongerLivedIsTheAnswer: an expansion server's copy of a version, capped
// by its max_life, and the aging server's copy of the same version: the answer carries the
// version's own (later) expiry, whichever answered first.
func TestOfTwoCopiesTheLongerLivedIsTheAnswer(t *testing.T) {
	s, x1, a1 := siblingWithTwoReliefServers(t)
	ctx := ctxT(t)
	rev := uint64(time.Now().UnixNano())
	capped, own := time.Now().Add(time.Minute), time.Now().Add(time.Hour)
	x1.put([]byte("k"), sessioncache.Entry{Value: []byte("v"), Rev: rev, Expiry: capped})
	a1.put([]byte("k"), sessioncache.Entry{Value: []byte("v"), Rev: rev, Expiry: own})
	for range 20 { // the answers arrive in either order
		e, err := s.Get(ctx, "auths", []byte("k"))
		require.NoError(t, err)
		require.True(t, e.Expiry.Equal(own), "got the expiry %v, want %v", e.Expiry, own)
	}
}

// readCappedCopy has the relay read key from lower, which holds it at revision rev until
// capped (a relief server's cap), so the relay caches a copy.
func readCappedCopy(ctx context.Context, t *testing.T, c *Client, lower *memBackend, key string, rev uint64, capped time.Time) {
	t.Helper()
	lower.put([]byte(key), sessioncache.Entry{Value: []byte("v"), Expiry: capped, Rev: rev})
	v, _, err := entryParts(c.Get(ctx, "auths", []byte(key)))
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
}

// siblingWithTwoReliefServers starts a sibling with an expansion server x1 and an aging
// server a1 connected, each over a memory backend.
func siblingWithTwoReliefServers(t *testing.T) (s *Sibling, x1, a1 *memBackend) {
	t.Helper()
	s = startSibling(t, SiblingConfig{HintDir: t.TempDir()})
	x1, a1 = newMemBackend(), newMemBackend()
	connectRelief(t, s, ReliefExpansion, "x1", x1)
	connectRelief(t, s, ReliefAging, "a1", a1)
	return s, x1, a1
}

// relayWithExpiredCopy starts a relay over a memory backend whose answer for "k" (at
// revision rev) was capped at 50 ms, has the relay cache it, and returns once the cap has
// passed: the relay's table holds an expired copy.
func relayWithExpiredCopy(t *testing.T) (r *Relay, c *Client, ctx context.Context, lower *memBackend, rev uint64) {
	t.Helper()
	lower = newMemBackend()
	r, c, ctx = relayAbove(t, lower)
	rev = uint64(time.Now().UnixNano())
	capped := time.Now().Add(50 * time.Millisecond)
	readCappedCopy(ctx, t, c, lower, "k", rev, capped)
	time.Sleep(time.Until(capped) + time.Millisecond) // the expiry itself is what is waited for
	return r, c, ctx, lower, rev
}

// relayAbove starts a relay with a 64-record table over lower, and a client of it.
func relayAbove(t *testing.T, lower Backend) (*Relay, *Client, context.Context) {
	t.Helper()
	r := startRelay(t, RelayConfig{Table: tableConfig(t, 64), Lower: lower, LowerWorkers: 2})
	return r, dial(t, ClientConfig{Addr: r.Addr().String()}), ctxT(t)
}

// TestACopyWaitingInTheOutboxIsNotItsVersionsEnd: a copy of a lower tier's answer, capped
// by a relief server's max_life, is pushed out of the relay's table while the tier below
// takes no hand-downs. Once the cap passes, the relay asks below (where the version lives
// on) instead of answering that the version ended; an older version below is not served.
func TestACopyWaitingInTheOutboxIsNotItsVersionsEnd(t *testing.T) {
	lower := &downBackend{memBackend: newMemBackend()}
	r, c, ctx := relayAbove(t, lower)
	rev := uint64(time.Now().UnixNano())
	capped, hour := time.Now().Add(100*time.Millisecond), time.Now().Add(time.Hour)
	readCappedCopy(ctx, t, c, lower.memBackend, "k", rev, capped)
	readCappedCopy(ctx, t, c, lower.memBackend, "older-below", rev, capped)
	lower.down.Store(true)
	for i := range 300 {
		require.NoError(t, c.Publish(ctx, "auths", fmt.Appendf(nil, "fill%d", i), sessioncache.Entry{Value: []byte("x"), Expiry: hour}))
	}
	for _, k := range []string{"k", "older-below"} {
		_, err := r.Lookup([]byte(k))
		require.ErrorIs(t, err, ErrNotFound, "%s was pushed out", k)
	}
	time.Sleep(time.Until(capped) + time.Millisecond) // the expiry itself is what is waited for

	lower.replace("k", sessioncache.Entry{Value: []byte("v"), Expiry: hour, Rev: rev}) // the version's own
	lower.replace("older-below", sessioncache.Entry{Value: []byte("old"), Expiry: hour, Rev: rev - 1})
	v, _, err := entryParts(c.Get(ctx, "auths", []byte("k")))
	require.NoError(t, err, "the relay asks below")
	assert.Equal(t, "v", string(v))
	_, err = c.Get(ctx, "auths", []byte("older-below"))
	assert.ErrorIs(t, err, ErrNotFound, "a version older than the copy is not served")
}

// TestAnExpiredCopyInTheTableKeepsOlderVersionsOut: the relay's table holds a copy whose
// expiry (a relief server's cap) has passed; the tier below now answers with an older
// version, which the relay does not serve.
func TestAnExpiredCopyInTheTableKeepsOlderVersionsOut(t *testing.T) {
	_, c, ctx, lower, rev := relayWithExpiredCopy(t)
	key := []byte("k")
	lower.replace("k", sessioncache.Entry{Value: []byte("old"), Expiry: time.Now().Add(time.Hour), Rev: rev - 1})
	_, err := c.Get(ctx, "auths", key)
	assert.ErrorIs(t, err, ErrNotFound, "a version older than the copy is not served")
}

package sessioncache_test

import (
	"bytes"
	"context"
	"fmt"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

func startRelay(t *testing.T, lower relay.Backend) *relay.Relay {
	t.Helper()
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0", Lower: lower,
		Table: sessioncache.Config{Path: filepath.Join(t.TempDir(), "relay.table"), ElementCount: 1000, RecordSize: 256}})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return r
}

func client(t *testing.T, addr string) *relay.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: addr, BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func manager(t *testing.T, path string, create bool, remotes ...sessioncache.Remote) *sessioncache.Manager {
	t.Helper()
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{
		Table:   sessioncache.Config{Path: path, Create: create, ElementCount: 1000, RecordSize: 256},
		Remotes: remotes,
	})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	return m
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// eventually polls for state that another connection changes asynchronously; bounded.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 1000 {
		if cond() {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

// TestManagerAcrossHosts has two hosts (two tables) and, on the first, a second process
// that only attaches, all behind one relay.
func TestManagerAcrossHosts(t *testing.T) {
	r := startRelay(t, nil)
	dir := t.TempDir()
	hostA := filepath.Join(dir, "a.table")
	a := manager(t, hostA, true, client(t, r.Addr().String()))
	a2 := manager(t, hostA, false, client(t, r.Addr().String()))
	b := manager(t, filepath.Join(dir, "b.table"), true, client(t, r.Addr().String()))
	ctx := ctxT(t)

	require.NoError(t, a.Set(ctx, []byte("sid-1"), []byte("alice"), time.Hour))
	// The other process of host A shares the table: a local hit.
	v, err := a2.Table().Get([]byte("sid-1"))
	require.NoError(t, err)
	assert.Equal(t, "alice", string(v))
	// Host B got it through its subscription, or else falls through to the relay.
	v, err = b.Get(ctx, []byte("sid-1"))
	require.NoError(t, err)
	assert.Equal(t, "alice", string(v))
	eventually(t, "the publication to reach host B's table", func() bool {
		_, err := b.Table().Get([]byte("sid-1"))
		return err == nil
	})

	// A key that only the relay has (B's table never saw it: it was set with fan-out off
	// in effect because B subscribed later is not needed; delete it from B's table) is
	// fetched and kept locally.
	_, err = b.Table().Delete([]byte("sid-1"))
	require.NoError(t, err)
	v, err = b.Get(ctx, []byte("sid-1"))
	require.NoError(t, err)
	assert.Equal(t, "alice", string(v))
	_, err = b.Table().Get([]byte("sid-1"))
	require.NoError(t, err, "a fetched answer is kept in the local table")

	// Logout on B: gone from B, the relay, and host A (through its subscription).
	require.NoError(t, b.Delete(ctx, []byte("sid-1")))
	_, err = b.Get(ctx, []byte("sid-1"))
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
	_, err = r.Lookup([]byte("sid-1"))
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
	eventually(t, "the delete to reach host A", func() bool {
		_, err := a.Table().Get([]byte("sid-1"))
		return err != nil
	})
	_, err = a2.Get(ctx, []byte("sid-1"))
	require.ErrorIs(t, err, sessioncache.ErrNotFound)

	require.ErrorIs(t, a.Set(ctx, []byte("k"), []byte("v"), 0), sessioncache.ErrInvalidTTL)
}

// countingRemote counts Gets and can hold them until released.
type countingRemote struct {
	sessioncache.Remote
	gets    atomic.Int64
	hold    chan struct{}
	entered chan struct{}
}

func (c *countingRemote) Get(ctx context.Context, path string, key []byte) (sessioncache.Entry, error) {
	c.gets.Add(1)
	if c.entered != nil {
		c.entered <- struct{}{}
	}
	if c.hold != nil {
		<-c.hold
	}
	return c.Remote.Get(ctx, path, key)
}

func TestConcurrentMissesMakeOneRequest(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctxT(t)
	setter := client(t, r.Addr().String())
	require.NoError(t, setter.Publish(ctx, "auths", []byte("hot"), sessioncache.Entry{Value: []byte("value"), Expiry: time.Now().Add(time.Hour)}))

	cr := &countingRemote{Remote: client(t, r.Addr().String()), hold: make(chan struct{}), entered: make(chan struct{}, 100)}
	m := manager(t, filepath.Join(t.TempDir(), "m.table"), true, cr)
	var wg sync.WaitGroup
	var started sync.WaitGroup
	for range 50 {
		started.Add(1)
		wg.Go(func() {
			started.Done()
			v, err := m.Get(ctx, []byte("hot"))
			assert.NoError(t, err)
			assert.Equal(t, "value", string(v))
		})
	}
	started.Wait()
	<-cr.entered // the one remote request is in flight while the others pile up
	time.Sleep(20 * time.Millisecond)
	close(cr.hold)
	wg.Wait()
	assert.LessOrEqual(t, cr.gets.Load(), int64(2), "50 concurrent misses should make (about) one request")
	// Now it is local: no more requests.
	before := cr.gets.Load()
	_, err := m.Get(ctx, []byte("hot"))
	require.NoError(t, err)
	assert.Equal(t, before, cr.gets.Load())
}

func TestDeletedKeyDoesNotComeBack(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctxT(t)
	setter := client(t, r.Addr().String())
	require.NoError(t, setter.Publish(ctx, "auths", []byte("s"), sessioncache.Entry{Value: []byte("v"), Expiry: time.Now().Add(time.Hour)}))
	cr := &countingRemote{Remote: client(t, r.Addr().String()), hold: make(chan struct{}), entered: make(chan struct{}, 1)}
	m := manager(t, filepath.Join(t.TempDir(), "m.table"), true, cr)
	done := make(chan error)
	go func() {
		_, err := m.Get(ctx, []byte("s"))
		done <- err
	}()
	<-cr.entered
	// The fetch is in flight and will find the entry at the relay... unless the logout
	// that happens now wins, which it must.
	require.NoError(t, m.Delete(ctx, []byte("s")))
	close(cr.hold)
	require.ErrorIs(t, <-done, sessioncache.ErrNotFound)
	_, err := m.Table().Get([]byte("s"))
	require.ErrorIs(t, err, sessioncache.ErrNotFound)
}

// TestRelaysFailOver spreads keys over two relays and keeps working when one goes away.
func TestRelaysFailOver(t *testing.T) {
	r1, r2 := startRelay(t, nil), startRelay(t, nil)
	c1, c2 := client(t, r1.Addr().String()), client(t, r2.Addr().String())
	m := manager(t, filepath.Join(t.TempDir(), "m.table"), true, c1, c2)
	ctx := ctxT(t)
	for i := range 40 {
		require.NoError(t, m.Set(ctx, fmt.Appendf(nil, "k%d", i), []byte("v"), time.Hour))
	}
	n1, n2 := r1.Table().Len(), r2.Table().Len()
	assert.Equal(t, 40, n1+n2)
	assert.Positive(t, n1, "rendezvous hashing should use both relays")
	assert.Positive(t, n2)

	require.NoError(t, r1.Close())
	eventually(t, "the client to notice", func() bool { return !c1.Connected() })
	short, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	for i := range 40 {
		require.NoError(t, m.Set(short, fmt.Appendf(nil, "late%d", i), []byte("v"), time.Hour), "key %d", i)
	}
	assert.Equal(t, n2+40, r2.Table().Len(), "every key of the dead relay failed over to the live one")
}

// heldRemote holds the changes its subscription delivers while holding is set, and
// delivers them in order on release.
type heldRemote struct {
	sessioncache.Remote
	mu      sync.Mutex
	holding bool
	held    []sessioncache.Change
	fn      func(sessioncache.Change)
	arrived chan struct{}
}

func (h *heldRemote) Subscribe(ctx context.Context, path string, fn func(sessioncache.Change)) error {
	h.mu.Lock()
	h.fn = fn
	h.mu.Unlock()
	return h.Remote.Subscribe(ctx, path, func(ch sessioncache.Change) {
		h.mu.Lock()
		defer h.mu.Unlock()
		if h.holding {
			ch.Key, ch.Value = bytes.Clone(ch.Key), bytes.Clone(ch.Value)
			h.held = append(h.held, ch)
			h.arrived <- struct{}{}
			return
		}
		fn(ch)
	})
}

func (h *heldRemote) release() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, ch := range h.held {
		h.fn(ch)
	}
	h.held, h.holding = nil, false
}

// TestAnOlderChangeDoesNotReplaceANewerSet: host B sets a key, and before the relay's
// change reaches host A, A sets it again (a newer version, which the relay keeps). The
// relay never sends A its own write back, so when B's older change arrives at A it must not
// replace A's newer version: otherwise A would serve B's value, which no other tier holds,
// until the key's next change.
func TestAnOlderChangeDoesNotReplaceANewerSet(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctxT(t)
	dir := t.TempDir()
	ha := &heldRemote{Remote: client(t, r.Addr().String()), arrived: make(chan struct{}, 1)}
	a := manager(t, filepath.Join(dir, "a.table"), true, ha)
	b := manager(t, filepath.Join(dir, "b.table"), true, client(t, r.Addr().String()))
	for i, hosts := range [][2]*sessioncache.Manager{{a, b}, {b, a}} { // both hosts subscribed
		key := fmt.Appendf(nil, "warm-%d", i)
		require.NoError(t, hosts[0].Set(ctx, key, []byte("up"), time.Minute))
		eventually(t, "a change to reach the other host", func() bool {
			_, err := hosts[1].Table().Get(key)
			return err == nil
		})
	}

	ha.mu.Lock()
	ha.holding = true
	ha.mu.Unlock()
	require.NoError(t, b.Set(ctx, []byte("sid"), []byte("from-b"), time.Minute))
	<-ha.arrived // B's change reached A, and waits
	require.NoError(t, a.Set(ctx, []byte("sid"), []byte("from-a"), time.Minute))
	ha.release()

	got, err := a.Get(ctx, []byte("sid"))
	require.NoError(t, err)
	assert.Equal(t, "from-a", string(got), "host A keeps its newer version")
	e, err := r.Lookup([]byte("sid"))
	require.NoError(t, err)
	assert.Equal(t, "from-a", string(e.Value), "the relay keeps the newer version")
	eventually(t, "host B to get A's version", func() bool {
		v, err := b.Get(ctx, []byte("sid"))
		return err == nil && string(v) == "from-a"
	})
}

// TestWatchSeesEveryChange: a watcher hears the Manager's own Set and Delete at once and
// another host's changes as the relay delivers them; after stop it hears nothing.
func TestWatchSeesEveryChange(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctxT(t)
	dir := t.TempDir()
	a := manager(t, filepath.Join(dir, "a.table"), true, client(t, r.Addr().String()))
	b := manager(t, filepath.Join(dir, "b.table"), true, client(t, r.Addr().String()))
	var mu sync.Mutex
	var seen []string
	stop := a.Watch(func(ch sessioncache.Change) {
		mu.Lock()
		defer mu.Unlock()
		seen = append(seen, fmt.Sprintf("%s deleted=%v", ch.Key, ch.Deleted))
	})
	has := func(s string) bool {
		mu.Lock()
		defer mu.Unlock()
		return slices.Contains(seen, s)
	}
	require.NoError(t, a.Set(ctx, []byte("mine"), []byte("v"), time.Minute))
	require.NoError(t, a.Delete(ctx, []byte("mine")))
	snapshot := func() []string {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(seen)
	}
	assert.True(t, has("mine deleted=false") && has("mine deleted=true"), "its own changes, at once: %v", snapshot())
	require.NoError(t, b.Set(ctx, []byte("theirs"), []byte("v"), time.Minute))
	require.NoError(t, b.Delete(ctx, []byte("theirs")))
	eventually(t, "the other host's delete", func() bool { return has("theirs deleted=true") })
	stop()
	require.NoError(t, a.Delete(ctx, []byte("after")))
	assert.False(t, has("after deleted=true"))
}

// TestAnOlderDeletionDoesNotHideANewerFetchedVersion: while host A fetches a key from the
// relay, the change stream brings A an older deletion of it (the session was logged out,
// then logged in again; the deletion's change was late). The fetched version is newer than
// the deletion, so A serves it: "not found" would read as a logout of the new session.
func TestAnOlderDeletionDoesNotHideANewerFetchedVersion(t *testing.T) {
	r := startRelay(t, nil)
	ctx := ctxT(t)
	dir := t.TempDir()
	cr := &countingRemote{Remote: client(t, r.Addr().String()), hold: make(chan struct{}), entered: make(chan struct{}, 1)}
	ha := &heldRemote{Remote: cr, arrived: make(chan struct{}, 1)}
	a := manager(t, filepath.Join(dir, "a.table"), true, ha)
	b := manager(t, filepath.Join(dir, "b.table"), true, client(t, r.Addr().String()))
	require.NoError(t, b.Set(ctx, []byte("warm"), []byte("up"), time.Minute))
	eventually(t, "A to be subscribed", func() bool {
		_, err := a.Table().Get([]byte("warm"))
		return err == nil
	})

	ha.mu.Lock()
	ha.holding = true
	ha.mu.Unlock()
	key := []byte("sid")
	require.NoError(t, b.Set(ctx, key, []byte("first-login"), time.Minute))
	<-ha.arrived
	require.NoError(t, b.Delete(ctx, key))
	<-ha.arrived
	require.NoError(t, b.Set(ctx, key, []byte("second-login"), time.Minute))
	<-ha.arrived

	got := make(chan error, 1)
	var value []byte
	go func() {
		v, err := a.Get(ctx, key)
		value = v
		got <- err
	}()
	<-cr.entered // A's fetch is on its way; now the first login and its logout reach A
	ha.mu.Lock()
	for _, ch := range ha.held[:2] {
		ha.fn(ch)
	}
	ha.held = ha.held[2:]
	ha.mu.Unlock()
	close(cr.hold)
	require.NoError(t, <-got, "the fetched version is newer than the deletion")
	assert.Equal(t, "second-login", string(value))
	ha.release()
	v, err := a.Get(ctx, key)
	require.NoError(t, err)
	assert.Equal(t, "second-login", string(v))
}

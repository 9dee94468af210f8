package relay

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// TestMain lets the test binary act as a child sibling (GS_TEST_ROLE=sibling) or as a
// process that writes an outbox until it is killed (GS_TEST_ROLE=outbox).
func TestMain(m *testing.M) {
	switch os.Getenv("GS_TEST_ROLE") {
	case "sibling":
		os.Exit(runChildSibling())
	case "outbox":
		os.Exit(runOutboxWriter())
	}
	os.Exit(m.Run())
}

func runChildSibling() int {
	link, err := InheritedLink()
	if err != nil || link == nil {
		fmt.Fprintln(os.Stderr, "no inherited link:", err)
		return 2
	}
	s, err := NewSibling(SiblingConfig{Addr: os.Getenv("GS_SIBLING_ADDR"), HintDir: os.Getenv("GS_HINT_DIR"),
		ServerOptions: ServerOptions{Secret: os.Getenv("GS_SIBLING_SECRET")}})
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		return 1
	}
	<-s.ServeRelayConn(link)
	s.Close()
	return 0
}

func tableConfig(tb testing.TB, records int) sessioncache.Config {
	return sessioncache.Config{Path: filepath.Join(tb.TempDir(), "relay.table"), ElementCount: records, RecordSize: 512}
}

func startRelay(tb testing.TB, cfg RelayConfig) *Relay {
	tb.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	if cfg.Table.Path == "" {
		cfg.Table = tableConfig(tb, 1000)
	}
	r, err := NewRelay(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { r.Close() })
	return r
}

func startSibling(tb testing.TB, cfg SiblingConfig) *Sibling {
	tb.Helper()
	if cfg.Addr == "" {
		cfg.Addr = "127.0.0.1:0"
	}
	s, err := NewSibling(cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { s.Close() })
	return s
}

func dial(tb testing.TB, cfg ClientConfig) *Client {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := Dial(ctx, cfg)
	if err != nil {
		tb.Fatal(err)
	}
	tb.Cleanup(func() { c.Close() })
	return c
}

func ctxT(tb testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// changes collects what a subscription delivers and signals each arrival.
type changes struct {
	mu  sync.Mutex
	got []sessioncache.Change
	ch  chan struct{}
}

func newChanges() *changes { return &changes{ch: make(chan struct{}, 1000)} }

func (c *changes) add(ch sessioncache.Change) {
	c.mu.Lock()
	c.got = append(c.got, sessioncache.Change{Key: clone(ch.Key), Value: clone(ch.Value), Expiry: ch.Expiry, Deleted: ch.Deleted,
		Rev: ch.Rev, Seq: ch.Seq})
	c.mu.Unlock()
	c.ch <- struct{}{}
}

// wait blocks until n changes arrived in all or the test's deadline passes.
func (c *changes) wait(tb testing.TB, n int) []sessioncache.Change {
	tb.Helper()
	deadline := time.After(10 * time.Second)
	for {
		c.mu.Lock()
		if len(c.got) >= n {
			out := append([]sessioncache.Change(nil), c.got...)
			c.mu.Unlock()
			return out
		}
		c.mu.Unlock()
		select {
		case <-c.ch:
		case <-deadline:
			tb.Fatalf("waited for %d changes, got %d", n, len(c.got))
		}
	}
}

// memBackend is a relief-like backend in memory for tests: it keeps the newest version of
// each key, tombstones included.
type memBackend struct {
	mu      sync.Mutex
	m       map[string]sessioncache.Entry
	evicted map[string]bool
}

func newMemBackend() *memBackend {
	return &memBackend{m: map[string]sessioncache.Entry{}, evicted: map[string]bool{}}
}

func (b *memBackend) Get(_ context.Context, _ string, key []byte) (sessioncache.Entry, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[string(key)]
	if !ok {
		return sessioncache.Entry{}, ErrNotFound
	}
	if e.Deleted {
		return e, ErrNotFound
	}
	return e, nil
}

func (b *memBackend) put(key []byte, e sessioncache.Entry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if held, ok := b.m[string(key)]; ok && !e.Newer(held) {
		return
	}
	e.Value = clone(e.Value)
	b.m[string(key)] = e
}

// replace makes e what b holds for key, whatever it held (a tier below whose version
// changed behind the relay's back).
func (b *memBackend) replace(key string, e sessioncache.Entry) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.m[key] = e
}

func (b *memBackend) Set(_ context.Context, _ string, key []byte, e sessioncache.Entry) error {
	b.put(key, e)
	return nil
}

func (b *memBackend) Delete(_ context.Context, _ string, key []byte, e sessioncache.Entry) error {
	e.Deleted, e.Value = true, nil
	b.put(key, e)
	return nil
}

func (b *memBackend) Evict(_ context.Context, _ string, key []byte, e sessioncache.Entry) error {
	b.mu.Lock()
	b.evicted[string(key)] = true
	b.mu.Unlock()
	b.put(key, e)
	return nil
}

func (b *memBackend) has(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	e, ok := b.m[key]
	return ok && !e.Deleted
}

func (b *memBackend) wasEvicted(key string) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.evicted[key]
}

// eventually polls cond (a bounded number of times) for state that arrives asynchronously
// through another process or connection, where no signal exists to wait on.
func eventually(tb testing.TB, what string, cond func() bool) {
	tb.Helper()
	for i := 0; i < 1000; i++ {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	tb.Fatalf("timed out waiting for %s", what)
}

// entryParts splits a Get's answer into value, expiry and error.
func entryParts(e sessioncache.Entry, err error) ([]byte, time.Time, error) {
	return e.Value, e.Expiry, err
}

// deleted returns the keys b holds a tombstone for.
func (b *memBackend) deleted() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for k, e := range b.m {
		if e.Deleted {
			out = append(out, k)
		}
	}
	return out
}

// keys returns the keys b holds a live entry for.
func (b *memBackend) keys() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for k, e := range b.m {
		if !e.Deleted {
			out = append(out, k)
		}
	}
	return out
}

package relief

import (
	"context"

	"github.com/globalsession/globalsession/internal/entrytable"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// MemoryStore keeps entries in a shared-memory LRU table of its own (the config files' relief
// lru block with manage_section: true). When the table is full its least recently used
// entries (and tombstones) make room. Each record also holds the entry's revision, so the
// table's RecordSize is raised by relay.RecordOverhead.
type MemoryStore struct {
	t *entrytable.Table
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore creates (or reuses) the table cfg describes; Create is forced on.
func NewMemoryStore(cfg sessioncache.Config) (*MemoryStore, error) {
	cfg = relay.TableWithRevisions(cfg)
	cfg.Create = true
	t, err := sessioncache.Open(cfg)
	if err != nil {
		return nil, err
	}
	return &MemoryStore{t: entrytable.New(t)}, nil
}

// Table returns the underlying table. Its values carry a 9-byte revision envelope.
func (m *MemoryStore) Table() *sessioncache.Table { return m.t.Raw() }

// Get implements Store.
func (m *MemoryStore) Get(_ context.Context, key []byte) (sessioncache.Entry, error) {
	return m.t.GetAppend(nil, key)
}

// Put implements Store.
func (m *MemoryStore) Put(_ context.Context, key []byte, e sessioncache.Entry) (bool, error) {
	return m.t.Put(key, e)
}

// Prefetch starts bringing the table's memory for keys into the processor's caches (see
// sessioncache.Table.Prefetch).
func (m *MemoryStore) Prefetch(keys [][]byte) { m.t.Prefetch(keys) }

// Len implements Store.
func (m *MemoryStore) Len() int { return m.t.Raw().Len() }

// Close implements Store. The table's file stays, so a restarted server on the same host
// finds its entries (see sessioncache.Table.Remove to delete it).
func (m *MemoryStore) Close() error { return m.t.Raw().Close() }

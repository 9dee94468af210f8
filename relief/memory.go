package relief

import (
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// MemoryStore keeps entries in a shared-memory LRU table of its own (the seed's relief
// lru block with manage_section: true). When the table is full its least recently used
// entries make room.
type MemoryStore struct {
	t *sessioncache.Table
}

var _ Store = (*MemoryStore)(nil)

// NewMemoryStore creates (or reuses) the table cfg describes; Create is forced on.
func NewMemoryStore(cfg sessioncache.Config) (*MemoryStore, error) {
	cfg.Create = true
	t, err := sessioncache.Open(cfg)
	if err != nil {
		return nil, err
	}
	return &MemoryStore{t: t}, nil
}

// Table returns the underlying table.
func (m *MemoryStore) Table() *sessioncache.Table { return m.t }

// Get implements Store.
func (m *MemoryStore) Get(key []byte) ([]byte, time.Time, error) { return m.t.GetAppend(nil, key) }

// Set implements Store.
func (m *MemoryStore) Set(key, value []byte, expiry time.Time) error {
	return m.t.Set(key, value, expiry)
}

// Delete implements Store.
func (m *MemoryStore) Delete(key []byte) error {
	_, err := m.t.Delete(key)
	return err
}

// Len implements Store.
func (m *MemoryStore) Len() int { return m.t.Len() }

// Close implements Store. The table's file stays, so a restarted server on the same host
// finds its entries (see sessioncache.Table.Remove to delete it).
func (m *MemoryStore) Close() error { return m.t.Close() }

package gateway

import (
	"bytes"
	"crypto/rand"
	"errors"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// TestOIDCStoreChunks: a value larger than a record is sealed and split into chunks that
// each fit the default 384-byte record; a new value replaces the old one's chunks; a
// missing or altered chunk is an error, never a wrong value; delete removes every record.
func TestOIDCStoreChunks(t *testing.T) {
	m, err := sessioncache.New(sessioncache.Config{Path: filepath.Join(t.TempDir(), "t.table"), Create: true, ElementCount: 200})
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	aead, err := deriveAEAD([]byte(strings.Repeat("k", 32)), "test")
	if err != nil {
		t.Fatal(err)
	}
	s := &oidcStore{m: m, aead: aead, mac: []byte("mac")}
	ctx := t.Context()
	key := tokensKey("backend-id-of-22-chars")
	first := []byte(rand.Text() + strings.Repeat("a", 3000))
	if err := s.put(ctx, key, first, time.Minute); err != nil {
		t.Fatal(err)
	}
	got, err := s.get(ctx, key)
	if err != nil || !bytes.Equal(got, first) {
		t.Fatalf("get = %d bytes, %v; want the %d bytes put", len(got), err, len(first))
	}
	gen, n, err := s.head(ctx, key)
	if err != nil || n < 8 {
		t.Fatalf("head = %q %d %v; want 8 chunks or more", gen, n, err)
	}

	second := []byte("short")
	if err := s.put(ctx, key, second, time.Minute); err != nil {
		t.Fatal(err)
	}
	if got, err := s.get(ctx, key); err != nil || !bytes.Equal(got, second) {
		t.Fatalf("get after a second put = %q, %v", got, err)
	}
	for i := range n {
		if _, err := m.Get(ctx, []byte(chunkKey(key, gen, i))); !errors.Is(err, sessioncache.ErrNotFound) {
			t.Fatalf("old chunk %d: %v; want it deleted", i, err)
		}
	}

	// A value under another key does not open under this one (the key is bound in).
	gen2, _, _ := s.head(ctx, key)
	chunk, _ := m.Get(ctx, []byte(chunkKey(key, gen2, 0)))
	other := tokensKey("another-backend-id-xxx")
	if err := m.Set(ctx, []byte(other), []byte(gen2+":1"), time.Minute); err != nil {
		t.Fatal(err)
	}
	if err := m.Set(ctx, []byte(chunkKey(other, gen2, 0)), chunk, time.Minute); err != nil {
		t.Fatal(err)
	}
	if _, err := s.get(ctx, other); !errors.Is(err, errStoreValue) {
		t.Fatalf("a value moved to another key: %v; want errStoreValue", err)
	}

	if err := s.put(ctx, key, first, time.Minute); err != nil {
		t.Fatal(err)
	}
	gen, _, _ = s.head(ctx, key)
	if err := m.Delete(ctx, []byte(chunkKey(key, gen, 3))); err != nil {
		t.Fatal(err)
	}
	if _, err := s.get(ctx, key); !errors.Is(err, errStoreValue) {
		t.Fatalf("a lost chunk: %v; want errStoreValue", err)
	}
	if err := s.delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if _, err := s.get(ctx, key); !errors.Is(err, sessioncache.ErrNotFound) {
		t.Fatalf("after delete: %v; want ErrNotFound", err)
	}
	if _, err := m.Get(ctx, []byte(chunkKey(key, gen, 0))); !errors.Is(err, sessioncache.ErrNotFound) {
		t.Fatalf("chunk after delete: %v", err)
	}
}

package gateway

import (
	"bytes"
	"context"
	"crypto/cipher"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/globalsession/globalsession/gateway/internal/web"
	"github.com/globalsession/globalsession/sessioncache"
)

// oidcStore keeps what the OIDC login must remember beside a session — its provider
// tokens, the index from the provider's session and subject to gateway sessions, the
// states and logout tokens already used — in the sessions' own store, so that every
// gateway process and host sees it.
//
// A value is sealed (AES-GCM, bound to its key) and, since a record of the session tier is
// small (384 bytes by default), split into chunks that each fit a record: a head record
// under the key names a generation and the number of chunks, stored under
// key.generation.i. A new value is written under a new generation before the head names
// it, so a reader never mixes two versions; the old chunks are then deleted. Keys start
// with "oidc/": none is a session id, so WatchEnds never reports them.
type oidcStore struct {
	m    *sessioncache.Manager
	aead cipher.AEAD
	mac  []byte // keys the index keys
}

// indexKey is the store key of the index of kind ("sid" or "sub") for a provider's value:
// a keyed hash, so the store does not show the provider's identifiers.
func (s *oidcStore) indexKey(kind, issuer, value string) string {
	m := hmac.New(sha256.New, s.mac)
	m.Write([]byte(kind + "\x00" + issuer + "\x00" + value))
	return "oidc/" + kind + "/" + base64.RawURLEncoding.EncodeToString(m.Sum(nil)[:18])
}

// tokensKey is the store key of a session's tokens, by its backend id.
func tokensKey(backendID string) string { return "oidc/t/" + backendID }

// errStoreValue means a stored value is damaged or incomplete (a chunk evicted, say).
var errStoreValue = errors.New("gateway: oidc: a stored value is damaged or incomplete")

// put seals plain under key for ttl.
func (s *oidcStore) put(ctx context.Context, key string, plain []byte, ttl time.Duration) error {
	if ttl <= 0 {
		return ErrNoSession
	}
	nonce := make([]byte, s.aead.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return err
	}
	sealed := s.aead.Seal(nonce, nonce, plain, []byte(key))
	gen, err := web.RandomID(6) // 8 characters
	if err != nil {
		return err
	}
	room := s.m.Table().RecordSize() - len(chunkKey(key, gen, 999))
	if room < 32 {
		return fmt.Errorf("gateway: oidc: records of %d bytes leave no room for a value under %q", s.m.Table().RecordSize(), key)
	}
	n := (len(sealed) + room - 1) / room
	if n > 999 {
		return fmt.Errorf("gateway: oidc: a value of %d bytes needs more than 999 records", len(sealed))
	}
	for i := range n {
		part := sealed[i*room : min((i+1)*room, len(sealed))]
		if err := s.m.Set(ctx, []byte(chunkKey(key, gen, i)), part, ttl); err != nil {
			return fmt.Errorf("gateway: oidc: store: %w", err)
		}
	}
	oldGen, oldN, oldErr := s.head(ctx, key)
	if err := s.m.Set(ctx, []byte(key), []byte(gen+":"+strconv.Itoa(n)), ttl); err != nil {
		return fmt.Errorf("gateway: oidc: store: %w", err)
	}
	if oldErr == nil && oldGen != gen {
		s.deleteChunks(ctx, key, oldGen, oldN)
	}
	return nil
}

// get returns the value under key, or sessioncache.ErrNotFound.
func (s *oidcStore) get(ctx context.Context, key string) ([]byte, error) {
	gen, n, err := s.head(ctx, key)
	if err != nil {
		return nil, err
	}
	var sealed []byte
	for i := range n {
		part, err := s.m.Get(ctx, []byte(chunkKey(key, gen, i)))
		if errors.Is(err, sessioncache.ErrNotFound) {
			return nil, errStoreValue
		}
		if err != nil {
			return nil, fmt.Errorf("gateway: oidc: store: %w", err)
		}
		sealed = append(sealed, part...)
	}
	ns := s.aead.NonceSize()
	if len(sealed) < ns {
		return nil, errStoreValue
	}
	plain, err := s.aead.Open(nil, sealed[:ns], sealed[ns:], []byte(key))
	if err != nil {
		return nil, errStoreValue
	}
	return plain, nil
}

// delete removes the value under key: its head first, so no reader finds it, then its
// chunks.
func (s *oidcStore) delete(ctx context.Context, key string) error {
	gen, n, err := s.head(ctx, key)
	if errors.Is(err, sessioncache.ErrNotFound) {
		return nil
	}
	if err := s.m.Delete(ctx, []byte(key)); err != nil {
		return fmt.Errorf("gateway: oidc: store: %w", err)
	}
	if err == nil {
		s.deleteChunks(ctx, key, gen, n)
	}
	return nil
}

// deleteChunks deletes a generation's chunks, best effort: they expire anyway.
func (s *oidcStore) deleteChunks(ctx context.Context, key, gen string, n int) {
	for i := range n {
		_ = s.m.Delete(ctx, []byte(chunkKey(key, gen, i)))
	}
}

// head reads the head record under key: the generation and the number of chunks.
func (s *oidcStore) head(ctx context.Context, key string) (string, int, error) {
	b, err := s.m.Get(ctx, []byte(key))
	if errors.Is(err, sessioncache.ErrNotFound) {
		return "", 0, err
	}
	if err != nil {
		return "", 0, fmt.Errorf("gateway: oidc: store: %w", err)
	}
	gen, count, ok := bytes.Cut(b, []byte(":"))
	n, convErr := strconv.Atoi(string(count))
	if !ok || convErr != nil || n < 1 || n > 999 {
		return "", 0, errStoreValue
	}
	return string(gen), n, nil
}

func chunkKey(key, gen string, i int) string { return key + "." + gen + "." + strconv.Itoa(i) }

// mark records key as used until ttl has passed and reports whether it was already: the
// check against replays of states and logout tokens. Two uses racing on two hosts may
// both pass; a code can be redeemed at the provider only once anyway.
func (s *oidcStore) mark(ctx context.Context, key string, ttl time.Duration) (used bool, err error) {
	_, err = s.m.Get(ctx, []byte(key))
	switch {
	case err == nil:
		return true, nil
	case !errors.Is(err, sessioncache.ErrNotFound):
		return false, fmt.Errorf("gateway: oidc: store: %w", err)
	}
	if err := s.m.Set(ctx, []byte(key), []byte{1}, max(ttl, time.Second)); err != nil {
		return false, fmt.Errorf("gateway: oidc: store: %w", err)
	}
	return false, nil
}

// usedKey is the store key that marks a value of kind ("state", "jti") as used.
func (s *oidcStore) usedKey(kind, value string) string {
	return s.indexKey("used-"+kind, "", value)
}

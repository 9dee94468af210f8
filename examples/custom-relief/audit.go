package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"sync"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
	"github.com/globalsession/globalsession/sessioncache"
)

// AuditedRelief is a pressure-relief server extended by embedding: it keeps an audit trail
// of what the sibling asks of it, refuses to keep entries whose keys carry a configured
// prefix (say, short-lived CSRF tokens), and answers an administration command published
// on its own path. The relief package is untouched; relief.Server does the storing.
type AuditedRelief struct {
	*relief.Server
	// SkipPrefix: keys starting with it are not kept.
	SkipPrefix string

	mu    sync.Mutex
	trail []string
}

var _ relay.Backend = (*AuditedRelief)(nil)

// AdminPath is where administration commands for this server are published.
const AdminPath = "relief-admin"

func (a *AuditedRelief) record(format string, args ...any) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.trail = append(a.trail, fmt.Sprintf(format, args...))
}

// Set keeps a new entry unless its key has the skipped prefix.
func (a *AuditedRelief) Set(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	if a.SkipPrefix != "" && strings.HasPrefix(string(key), a.SkipPrefix) {
		a.record("skip %s", key)
		return nil
	}
	a.record("set %s", key)
	return a.Server.Set(ctx, path, key, e)
}

// Evict keeps an entry the relay pushed out.
func (a *AuditedRelief) Evict(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	a.record("evict %s", key)
	return a.Server.Evict(ctx, path, key, e)
}

// Get answers a lookup.
func (a *AuditedRelief) Get(ctx context.Context, path string, key []byte) (sessioncache.Entry, error) {
	e, err := a.Server.Get(ctx, path, key)
	a.record("get %s: %v", key, err == nil)
	return e, err
}

// Delete forgets a key (keeping a tombstone, so no older version comes back).
func (a *AuditedRelief) Delete(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	a.record("delete %s", key)
	return a.Server.Delete(ctx, path, key, e)
}

// Start connects the embedded server with this type answering the sibling, and listens
// for administration commands published on AdminPath: "dump" writes the trail to w and
// then signals done (if not nil).
func (a *AuditedRelief) Start(ctx context.Context, w io.Writer, done chan<- struct{}) error {
	if err := a.Server.Start(ctx, a); err != nil {
		return err
	}
	return a.Client().Subscribe(ctx, AdminPath, func(ch sessioncache.Change) {
		if string(ch.Key) != "dump" {
			return
		}
		for _, line := range a.Trail() {
			fmt.Fprintln(w, "  audit:", line)
		}
		if done != nil {
			done <- struct{}{}
		}
	})
}

// Trail returns the audit trail so far.
func (a *AuditedRelief) Trail() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.trail...)
}

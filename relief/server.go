package relief

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/internal/wallclock"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// Kinds of relief server (see relay.ReliefExpansion and relay.ReliefAging).
const (
	Expansion = relay.ReliefExpansion
	Aging     = relay.ReliefAging
)

// DefaultExpansionLife is how long an expansion server keeps an entry at most, whatever
// its expiry: expansion servers take the newest entries for a short while.
const DefaultExpansionLife = 15 * time.Minute

// Config configures a relief server.
type Config struct {
	// Kind is Expansion or Aging. Empty means Expansion.
	Kind string
	// ID is the server's stable identity: the sibling spreads keys over servers by it, so a
	// server that restarts with the same ID gets its keys back. Empty means the host name
	// and the kind.
	ID string
	// Sibling says where the sibling endpoint is and how to reach it (the config files'
	// message_relay block: address, port, tls). Name and Backend are set by the server.
	Sibling relay.ClientConfig
	// AuthPath is the path to subscribe on. Empty means relay.DefaultAuthPath.
	AuthPath string
	// Store keeps the entries. Nil means a MemoryStore over Memory.
	Store Store
	// Memory is the table of the default MemoryStore (the config files' lru block).
	Memory sessioncache.Config
	// MaxLife caps how long an entry is kept, whatever its own expiry. Zero means
	// DefaultExpansionLife for expansion servers and no cap for aging servers; negative
	// means no cap. Tombstones are not capped.
	MaxLife time.Duration
	// TombstoneTTL is how long a deletion is kept at least when the sibling gives it no
	// expiry and the server holds no entry that lives longer. Zero means one hour.
	TombstoneTTL time.Duration
	// Logger receives connection events and store failures. Nil means no logging.
	Logger *slog.Logger
}

// Server is a pressure-relief server: a client of the sibling endpoint that keeps the
// entries the sibling hands it (newest entries for an expansion server, entries the relay's
// table pushed out for an aging one) and answers the sibling's requests for them. It offers
// no further way down.
//
// Extend it by embedding: a type that embeds *Server and overrides some of Get, Set,
// Delete and Evict (calling the Server's own for the actual work) is passed to Start, and
// the sibling's requests then reach its methods. See examples/custom-relief.
type Server struct {
	cfg    Config
	store  Store
	client *relay.Client
	log    *slog.Logger
	once   sync.Once
	use    sync.RWMutex // held for reading while a request uses the store
	closed bool         // under use

	sets, evictions, gets, hits, deletes atomic.Int64
}

var _ relay.Backend = (*Server)(nil)

// New prepares a relief server: it opens its store but does not connect yet (see Start).
func New(cfg Config) (*Server, error) {
	if cfg.Kind == "" {
		cfg.Kind = Expansion
	}
	if cfg.Kind != Expansion && cfg.Kind != Aging {
		return nil, fmt.Errorf("relief: kind %q is neither %q nor %q", cfg.Kind, Expansion, Aging)
	}
	if cfg.ID == "" {
		host, _ := os.Hostname()
		cfg.ID = host + "-" + cfg.Kind
	}
	if cfg.AuthPath == "" {
		cfg.AuthPath = relay.DefaultAuthPath
	}
	if cfg.MaxLife == 0 && cfg.Kind == Expansion {
		cfg.MaxLife = DefaultExpansionLife
	}
	if cfg.TombstoneTTL == 0 {
		cfg.TombstoneTTL = time.Hour
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger}
	if s.store == nil {
		m, err := NewMemoryStore(cfg.Memory)
		if err != nil {
			return nil, fmt.Errorf("relief: memory store: %w", err)
		}
		s.store = m
	}
	return s, nil
}

// Start connects to the sibling and subscribes on the auth path; from then on h answers
// the sibling's requests. A nil h means the server itself; a type that embeds *Server
// passes itself. Start returns once the subscription is requested; the client reconnects
// on its own if the sibling goes away.
func (s *Server) Start(ctx context.Context, h relay.Backend) error {
	if h == nil {
		h = s
	}
	cc := s.cfg.Sibling
	cc.Name = relay.ReliefName(s.cfg.Kind, s.cfg.ID)
	cc.Backend = h
	if cc.Logger == nil {
		cc.Logger = s.log
	}
	c, err := relay.NewClient(cc)
	if err != nil {
		return err
	}
	s.client = c
	if err := c.Subscribe(ctx, s.cfg.AuthPath, func(sessioncache.Change) {}); err != nil {
		// The subscription is remembered and made on every connection; a sibling that
		// is not up yet is not an error.
		s.log.Warn("relief: sibling not reachable yet; will keep trying", "sibling", cc.Addr, "err", err)
	}
	s.log.Debug("relief: started", "kind", s.cfg.Kind, "id", s.cfg.ID, "sibling", cc.Addr)
	return nil
}

// ServesInline reports whether the server's store answers at memory speed, so the
// sibling's requests can be served on the connection's reader (see relay.InlineBackend).
// A type that embeds *Server and overrides methods with slow work should shadow this with
// one that returns false.
func (s *Server) ServesInline() bool {
	_, mem := s.store.(*MemoryStore)
	return mem
}

// Prefetch tells the store which keys the sibling's next requests are for, when the store
// can use it (a MemoryStore): see relay.PrefetchBackend.
func (s *Server) Prefetch(keys [][]byte) {
	if p, ok := s.store.(interface{ Prefetch([][]byte) }); ok {
		p.Prefetch(keys)
	}
}

// Kind returns Expansion or Aging.
func (s *Server) Kind() string { return s.cfg.Kind }

// ID returns the server's identity.
func (s *Server) ID() string { return s.cfg.ID }

// Store returns the server's store.
func (s *Server) Store() Store { return s.store }

// Client returns the connection to the sibling (nil before Start), for extensions that
// publish or subscribe on their own paths.
func (s *Server) Client() *relay.Client { return s.client }

// Stats are a relief server's counters.
type Stats struct {
	Entries   int   // entries in the store
	Sets      int64 // new entries handed in
	Evictions int64 // evicted entries handed in
	Gets      int64 // lookups asked
	Hits      int64 // lookups answered with an entry
	Deletes   int64 // deletions (tombstones handed in)
}

// Stats returns the server's counters (Entries is 0 once the server is closed).
func (s *Server) Stats() Stats {
	entries := 0
	if s.enter() {
		entries = s.store.Len()
		s.leave()
	}
	return Stats{Entries: entries, Sets: s.sets.Load(), Evictions: s.evictions.Load(),
		Gets: s.gets.Load(), Hits: s.hits.Load(), Deletes: s.deletes.Load()}
}

// capExpiry applies MaxLife.
func (s *Server) capExpiry(expiry time.Time) time.Time {
	if s.cfg.MaxLife <= 0 {
		return expiry
	}
	limit := wallclock.Nanos() + int64(s.cfg.MaxLife)
	if expiry.IsZero() || expiry.UnixNano() > limit {
		return time.Unix(0, limit)
	}
	return expiry
}

// Get answers the sibling's lookup from the store: the entry, or ErrNotFound with the
// key's tombstone if it has one.
func (s *Server) Get(ctx context.Context, _ string, key []byte) (sessioncache.Entry, error) {
	s.gets.Add(1)
	if !s.enter() {
		return sessioncache.Entry{}, ErrClosed
	}
	defer s.leave()
	e, err := s.store.Get(ctx, key)
	if err == nil {
		s.hits.Add(1)
	}
	return e, err
}

// Set keeps an entry the sibling hands over (a new entry), for at most MaxLife, unless the
// store holds a newer version.
func (s *Server) Set(ctx context.Context, _ string, key []byte, e sessioncache.Entry) error {
	s.sets.Add(1)
	return s.keep(ctx, key, e)
}

// Evict keeps an entry (or tombstone) the relay's table pushed out, for at most MaxLife,
// unless the store holds a newer version. An entry that expired on its way (Set's too) is
// kept as the deletion of its revision in place of an older entry the store holds, for as
// long as that entry would have lived.
func (s *Server) Evict(ctx context.Context, _ string, key []byte, e sessioncache.Entry) error {
	s.evictions.Add(1)
	return s.keep(ctx, key, e)
}

func (s *Server) keep(ctx context.Context, key []byte, e sessioncache.Entry) error {
	if e.Deleted {
		return s.tombstone(ctx, key, e)
	}
	if !e.Expiry.IsZero() && e.Expiry.UnixNano() <= wallclock.Nanos() {
		// Expired on its way here: nothing to serve, but it still ends the older version
		// the store may hold, as the deletion of its revision (see tombstone).
		return s.tombstone(ctx, key, sessioncache.Entry{Rev: e.Rev, Deleted: true, Expiry: e.Expiry})
	}
	e.Expiry = s.capExpiry(e.Expiry)
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	if _, err := s.store.Put(ctx, key, e); err != nil {
		s.log.Warn("relief: store refused an entry", "err", err)
		return err
	}
	return nil
}

// Delete replaces key's entry with a tombstone, kept until e.Expiry, TombstoneTTL from
// now, or the entry's own expiry, whichever is latest. A deletion whose expiry has already
// passed (the relay hands down so each version that expired in its table) replaces only an
// older entry the store holds, and lasts as long as that entry would have lived.
func (s *Server) Delete(ctx context.Context, _ string, key []byte, e sessioncache.Entry) error {
	s.deletes.Add(1)
	return s.tombstone(ctx, key, e)
}

func (s *Server) tombstone(ctx context.Context, key []byte, e sessioncache.Entry) error {
	e.Value, e.Deleted = nil, true
	expired := !e.Expiry.IsZero() && e.Expiry.UnixNano() <= wallclock.Nanos()
	if floor := time.Now().Add(s.cfg.TombstoneTTL); !expired && e.Expiry.Before(floor) {
		e.Expiry = floor
	}
	if !s.enter() {
		return ErrClosed
	}
	defer s.leave()
	if _, err := s.store.Put(ctx, key, e); err != nil {
		s.log.Warn("relief: store refused a tombstone", "err", err)
		return err
	}
	return nil
}

// enter starts a use of the store; it reports false once the server is closed.
func (s *Server) enter() bool {
	s.use.RLock()
	if s.closed {
		s.use.RUnlock()
		return false
	}
	return true
}

func (s *Server) leave() { s.use.RUnlock() }

// Close disconnects from the sibling, waits for the requests being served, and closes the
// store; requests that come later fail with ErrClosed.
func (s *Server) Close() error {
	var err error
	s.once.Do(func() {
		if s.client != nil {
			err = s.client.Close()
		}
		s.use.Lock()
		s.closed = true
		s.use.Unlock()
		if cerr := s.store.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

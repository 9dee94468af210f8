package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"time"

	"github.com/globalsession/globalsession/internal/rendezvous"
	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/sessioncache"
)

// SiblingConfig configures the relay's sibling endpoint (the seed's half_edge mode), the
// server that pressure-relief servers connect to.
type SiblingConfig struct {
	// Addr is where pressure-relief servers connect, host:port.
	Addr string
	// ServerOptions holds TLS, secret, frame limit, heartbeat, timeouts and logger.
	ServerOptions
	// AuthPath is the path relief servers subscribe on. Empty means DefaultAuthPath.
	AuthPath string
	// Table, when set, is the relay's table, attached to (never created: Create is
	// forced off, the seed's am_initializer false).
	Table *sessioncache.Config
	// Replicas is how many relief servers of each kind hold each key. Zero means 1; 2 is
	// recommended so a relief server can die without losing its keys.
	Replicas int
}

// Sibling is the endpoint below the relay. Pressure-relief servers are its clients: they
// subscribe on the auth path, and the sibling hands them the entries the relay stores,
// deletes and evicts, and asks them for entries the relay misses. It implements Backend,
// which is how the relay reaches it (in process, or over IPC when it runs as a child).
type Sibling struct {
	cfg   SiblingConfig
	srv   *server
	table *sessioncache.Table
	log   *slog.Logger
	once  sync.Once

	mu    sync.Mutex
	rings *reliefRings
}

// reliefRings spreads keys over the relief servers of each kind, as of one generation of
// the subscriptions.
type reliefRings struct {
	gen       uint64
	expansion *rendezvous.Ring[*peer]
	aging     *rendezvous.Ring[*peer]
	other     []*peer // subscribers that are not relief servers: they get everything
	all       []*peer
}

var _ Backend = (*Sibling)(nil)

// NewSibling binds cfg.Addr and starts serving relief servers. Stop it with Shutdown.
func NewSibling(cfg SiblingConfig) (*Sibling, error) {
	cfg.ServerOptions.setDefaults()
	if cfg.AuthPath == "" {
		cfg.AuthPath = DefaultAuthPath
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	s := &Sibling{cfg: cfg, log: cfg.Logger}
	if cfg.Table != nil {
		tcfg := *cfg.Table
		tcfg.Create = false
		t, err := sessioncache.Open(tcfg)
		if err != nil {
			return nil, fmt.Errorf("sibling: attach the relay's table: %w", err)
		}
		s.table = t
	}
	ln, err := listen(cfg.Addr, &cfg.ServerOptions)
	if err != nil {
		if s.table != nil {
			s.table.Close()
		}
		return nil, err
	}
	s.srv = newServer(ln, cfg.ServerOptions, s)
	s.srv.serve()
	s.log.Info("sibling: serving relief servers", "addr", ln.Addr().String(), "auth_path", cfg.AuthPath)
	return s, nil
}

// Addr returns the address relief servers connect to.
func (s *Sibling) Addr() net.Addr { return s.srv.ln.Addr() }

// Table returns the attached relay table, or nil.
func (s *Sibling) Table() *sessioncache.Table { return s.table }

// Relief returns how many relief servers (and other subscribers) are subscribed on the
// auth path.
func (s *Sibling) Relief() int { return len(s.currentRings().all) }

// ReliefOf returns how many relief servers of a kind (ReliefExpansion or ReliefAging) are
// subscribed on the auth path.
func (s *Sibling) ReliefOf(kind string) int {
	r := s.currentRings()
	switch kind {
	case ReliefExpansion:
		return r.expansion.Len()
	case ReliefAging:
		return r.aging.Len()
	}
	return 0
}

// currentRings returns the rings for the current subscriptions, rebuilding them when the
// subscriptions changed.
func (s *Sibling) currentRings() *reliefRings {
	gen := s.srv.generation()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rings != nil && s.rings.gen == gen {
		return s.rings
	}
	peers, gen := s.srv.subscribers(s.cfg.AuthPath)
	var exp, aging []*peer
	r := &reliefRings{gen: gen, all: peers}
	for _, p := range peers {
		switch kind, _, _ := ParseReliefName(p.id); kind {
		case ReliefExpansion:
			exp = append(exp, p)
		case ReliefAging:
			aging = append(aging, p)
		default:
			r.other = append(r.other, p)
		}
	}
	name := func(p *peer) string { return p.id }
	r.expansion, r.aging = rendezvous.New(exp, name), rendezvous.New(aging, name)
	s.rings = r
	return r
}

// ServeRelayConn serves the relay over an already connected link (the inherited socket of
// child mode). The relay speaks first, as a client. The returned channel is closed when
// the link ends, which tells a child sibling its relay is gone.
func (s *Sibling) ServeRelayConn(nc net.Conn) <-chan struct{} {
	done := make(chan struct{})
	p := s.srv.serveConn(nc, "relay (ipc)")
	if p == nil {
		close(done)
		return done
	}
	go func() {
		<-p.c.done
		close(done)
	}()
	return done
}

// serveRequest handles a peer's entry request. Entry requests come from above (the
// relay): they are answered by asking the relief servers.
func (s *Sibling) serveRequest(p *peer, f *wire.Frame) {
	switch f.Op {
	case wire.OpGet, wire.OpSet, wire.OpDelete, wire.OpEvict:
		go serveBackend(context.Background(), s, p.c, copyFrame(f), s.cfg.RequestTimeout)
	case wire.OpPublish:
		s.srv.fanOut(&wire.Frame{Op: wire.OpMessage, Path: f.Path, Key: f.Key, Value: f.Value, Expiry: f.Expiry}, p)
		p.c.reply(f.ID, wire.StatusOK, 0, nil, 0)
	default:
		p.c.replyError(f.ID, fmt.Sprintf("%s is not a request the sibling serves", f.Op))
	}
}

// owners returns the relief servers that a request of op for key goes to: the key's
// expansion servers for entries the relay stores, its aging servers for evictions, both
// for gets, and every relief server for deletes (a key may linger on a server that owned
// it before others joined). Subscribers that are not relief servers get everything.
func (s *Sibling) owners(op wire.Op, key []byte) []*peer {
	r := s.currentRings()
	if op == wire.OpDelete {
		return r.all
	}
	out := append([]*peer(nil), r.other...)
	n := s.cfg.Replicas
	switch op {
	case wire.OpSet:
		out = r.expansion.Owners(out, key, n)
	case wire.OpEvict:
		out = r.aging.Owners(out, key, n)
	case wire.OpGet:
		out = r.expansion.Owners(out, key, n)
		out = r.aging.Owners(out, key, n)
	}
	return out
}

// Get asks the relief servers that may hold key, all at once. An expansion server's answer
// wins as soon as it comes; an aging server's only once every expansion server has said
// it has nothing, since an expansion server holds the newest version of an entry.
func (s *Sibling) Get(ctx context.Context, path string, key []byte) ([]byte, time.Time, error) {
	owners := s.owners(wire.OpGet, key)
	if len(owners) == 0 {
		return nil, time.Time{}, ErrNotFound
	}
	aging := map[*peer]bool{}
	for _, p := range s.currentRings().aging.Owners(nil, key, s.cfg.Replicas) {
		aging[p] = true
	}
	type answer struct {
		v     []byte
		exp   int64
		err   error
		aging bool
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan answer, len(owners))
	for _, p := range owners {
		go func() {
			a := answer{aging: aging[p]}
			cl, err := p.c.roundTrip(ctx, &wire.Frame{Op: wire.OpGet, Path: []byte(path), Key: key})
			if err == nil {
				if err = replyErr(wire.OpGet, cl); err == nil {
					a.v, a.exp = clone(cl.value), cl.expiry
				}
				putCall(cl)
			}
			a.err = err
			answers <- a
		}()
	}
	var fallback *answer
	var firstErr error
	fresh := len(owners) - len(aging) // answers still awaited from servers that are not aging
	for range owners {
		a := <-answers
		if !a.aging {
			fresh--
		}
		switch {
		case a.err == nil && !a.aging:
			return a.v, unixTime(a.exp), nil
		case a.err == nil && fallback == nil:
			fallback = &a
		case a.err != nil && !errors.Is(a.err, ErrNotFound) && firstErr == nil:
			firstErr = a.err
		}
		if fallback != nil && fresh == 0 {
			return fallback.v, unixTime(fallback.exp), nil
		}
	}
	if firstErr != nil {
		s.log.Debug("sibling: a relief server failed a get", "err", firstErr)
	}
	return nil, time.Time{}, ErrNotFound
}

// Set hands an entry the relay stored to the key's expansion servers.
func (s *Sibling) Set(ctx context.Context, path string, key, value []byte, expiry time.Time) error {
	return s.toOwners(ctx, &wire.Frame{Op: wire.OpSet, Path: []byte(path), Key: key, Value: value, Expiry: unixNano(expiry)})
}

// Delete removes key from every relief server.
func (s *Sibling) Delete(ctx context.Context, path string, key []byte) error {
	return s.toOwners(ctx, &wire.Frame{Op: wire.OpDelete, Path: []byte(path), Key: key})
}

// Evict hands an entry the relay's table pushed out to the key's aging servers.
func (s *Sibling) Evict(ctx context.Context, path string, key, value []byte, expiry time.Time) error {
	return s.toOwners(ctx, &wire.Frame{Op: wire.OpEvict, Path: []byte(path), Key: key, Value: value, Expiry: unixNano(expiry)})
}

// toOwners sends f to every owner of its key. Entries and evictions are a stream that
// nothing waits on: they go without a reply, in deferred writes that many share; an entry
// also tells the key's aging servers to drop the older version they may hold. Deletes wait
// for every owner's answer, since a logout must not be left behind anywhere.
func (s *Sibling) toOwners(ctx context.Context, f *wire.Frame) error {
	owners := s.owners(f.Op, f.Key)
	if f.Op == wire.OpSet || f.Op == wire.OpEvict {
		g := *f
		g.Flags |= wire.FlagNoReply
		var errs []error
		send := func(p *peer, fr *wire.Frame) {
			if err := p.c.writeDeferred(fr); err != nil {
				errs = append(errs, err)
			}
		}
		for _, p := range owners {
			send(p, &g)
		}
		if f.Op == wire.OpSet {
			drop := wire.Frame{Op: wire.OpDelete, Flags: wire.FlagNoReply, Path: f.Path, Key: f.Key}
			for _, p := range s.currentRings().aging.Owners(nil, f.Key, s.cfg.Replicas) {
				send(p, &drop)
			}
		}
		return errors.Join(errs...)
	}
	errs := make(chan error, len(owners))
	for _, p := range owners {
		go func() {
			g := *f
			errs <- simple(ctx, p.c, &g)
		}()
	}
	var all []error
	for range owners {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	return errors.Join(all...)
}

// Shutdown stops serving, closes every connection and detaches from the table.
func (s *Sibling) Shutdown(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		err = s.srv.shutdown(ctx)
		if s.table != nil {
			if cerr := s.table.Close(); err == nil {
				err = cerr
			}
		}
	})
	return err
}

// Close is Shutdown without a deadline.
func (s *Sibling) Close() error { return s.Shutdown(context.Background()) }

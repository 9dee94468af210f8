package sessioncache

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/globalsession/globalsession/internal/rendezvous"
	"github.com/globalsession/globalsession/internal/revision"
	"github.com/globalsession/globalsession/internal/tombstone"
)

// DefaultAuthPath is the path a Manager publishes sessions on when its config names none
// (the config files' auth_path).
const DefaultAuthPath = "auths"

// ErrInvalidTTL means a Set was asked to store an entry with no positive lifetime.
var ErrInvalidTTL = errors.New("sessioncache: ttl must be positive")

// ManagerConfig configures a Manager (the SessionCacheManager of the original design).
type ManagerConfig struct {
	// Table is the local shared-memory table. Table.Create is the config files' manage_section:
	// one process per host creates it, the others attach.
	Table Config
	// Remotes are the relays this host falls through to and publishes to (usually
	// *relay.Client). Keys are spread over them by rendezvous hashing; a key whose relay is
	// unavailable fails over to the next one in its order. None makes a local-only manager.
	Remotes []Remote
	// AuthPath is the path sessions are published and fetched on. Empty means
	// DefaultAuthPath.
	AuthPath string
	// FireAndForget makes Set return after the local write, publishing in the background.
	// By default Set waits for the relay's acknowledgement.
	FireAndForget bool
	// WriteConcern says when Set is acknowledged; the zero value is WriteRelay. With
	// WriteDurable every remote must implement DurableRemote.
	WriteConcern WriteConcern
	// TombstoneTTL is how long a deleted key is refused from the relays, so a fetch that
	// raced with the delete cannot bring it back. Zero means one minute.
	TombstoneTTL time.Duration
	// StaleFor is how long the host keeps serving entries from its local table once it has
	// lost every relay (a logout made elsewhere meanwhile reaches it only when a relay is
	// back): after it, a Get asks the relays, and fails while none answers. Zero means
	// DefaultStaleFor; negative means not at all (fail closed: nothing is served that was
	// not verified). It applies to relays that implement StreamRemote.
	StaleFor time.Duration
	// SyncTimeout bounds how long NewManager waits for its relays' change streams before
	// it returns; until a stream is in sync, local entries are not served. Zero means 5s.
	SyncTimeout time.Duration
	// Logger receives failures of background publications and subscriptions. Nil means no
	// logging.
	Logger *slog.Logger
}

// Manager is a host's view of the session tier: a local shared-memory table in front of
// one or more relays. A Get that hits locally costs a table lookup; a miss asks the key's
// relay, once for any number of concurrent callers, and keeps the answer locally. Set and
// Delete reach the relays, and through their subscriptions the other hosts. Every method is
// safe for concurrent use.
type Manager struct {
	cfg    ManagerConfig
	table  *Table
	ring   *rendezvous.Ring[remoteNode]
	flight singleflight.Group
	tombs  *tombstone.Set
	newest *newestSeen // the newest revision of each key seen, so an older one is not kept
	clock  revision.Clock
	log    *slog.Logger
	sync   *streamSync // nil when no relay keeps a stream
	// watchers are the functions Watch registered, replaced whole on each change.
	watchers atomic.Pointer[[]*watcher]
	watchMu  sync.Mutex
	use      sync.RWMutex // held for reading while a relay's change is applied
	closed   bool         // under use
	wg       sync.WaitGroup
	ctx      context.Context
	cancel   context.CancelFunc
	once     sync.Once
}

type remoteNode struct {
	name string
	r    Remote
}

// New is the original design's constructor, new SessionCacheManager(lru_conf, message_relays): a
// Manager over the table that table describes and the given relays.
func New(table Config, remotes ...Remote) (*Manager, error) {
	return NewManager(ManagerConfig{Table: table, Remotes: remotes})
}

// NewManager opens (or creates) the local table and subscribes to the relays. Close
// releases it; the remotes stay open, since the caller made them.
func NewManager(cfg ManagerConfig) (*Manager, error) {
	if cfg.AuthPath == "" {
		cfg.AuthPath = DefaultAuthPath
	}
	if cfg.TombstoneTTL == 0 {
		cfg.TombstoneTTL = time.Minute
	}
	if cfg.StaleFor == 0 {
		cfg.StaleFor = DefaultStaleFor
	}
	if cfg.SyncTimeout == 0 {
		cfg.SyncTimeout = 5 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Table.Logger == nil {
		cfg.Table.Logger = cfg.Logger
	}
	if cfg.WriteConcern == WriteDurable {
		for i, r := range cfg.Remotes {
			if _, ok := r.(DurableRemote); !ok {
				return nil, fmt.Errorf("sessioncache: write concern durable: remote %d (%T) cannot publish durably", i, r)
			}
		}
	}
	t, err := Open(cfg.Table)
	if err != nil {
		return nil, err
	}
	nodes := make([]remoteNode, len(cfg.Remotes))
	for i, r := range cfg.Remotes {
		name := strconv.Itoa(i)
		if a, ok := r.(interface{ Addr() string }); ok {
			name = a.Addr()
		}
		nodes[i] = remoteNode{name: name, r: r}
	}
	m := &Manager{cfg: cfg, table: t, tombs: tombstone.New(cfg.TombstoneTTL), newest: new(newestSeen), log: cfg.Logger,
		ring: rendezvous.New(nodes, func(n remoteNode) string { return n.name })}
	m.ctx, m.cancel = context.WithCancel(context.Background())
	m.subscribe(nodes)
	return m, nil
}

// Table returns the local table.
func (m *Manager) Table() *Table { return m.table }

// watcher is a function Watch registered.
type watcher struct{ fn func(Change) }

// Watch calls fn with each change this Manager learns of: publications and deletions from
// other hosts as the relays deliver them, its own Sets and Deletes, and a Change with
// Event StreamGap (no key) when changes were missed and the local table was dropped. fn
// runs on the goroutine that made or applied the change and must not block. A gateway
// uses it to end a session's connections at once when the session is deleted anywhere.
// The returned function stops the calls.
func (m *Manager) Watch(fn func(Change)) (stop func()) {
	w := &watcher{fn: fn}
	m.watchMu.Lock()
	defer m.watchMu.Unlock()
	var list []*watcher
	if p := m.watchers.Load(); p != nil {
		list = append(list, *p...)
	}
	list = append(list, w)
	m.watchers.Store(&list)
	return func() {
		m.watchMu.Lock()
		defer m.watchMu.Unlock()
		p := m.watchers.Load()
		if p == nil {
			return
		}
		list := slices.DeleteFunc(slices.Clone(*p), func(x *watcher) bool { return x == w })
		m.watchers.Store(&list)
	}
}

// notify calls the watchers with ch.
func (m *Manager) notify(ch Change) {
	if p := m.watchers.Load(); p != nil {
		for _, w := range *p {
			w.fn(ch)
		}
	}
}

// apply puts a change published by another front end into the local table.
func (m *Manager) apply(ch Change) {
	if !m.enter() {
		return // closed: the table is gone
	}
	defer m.leave()
	defer m.notify(ch)
	m.clock.Observe(ch.Rev)
	newest := m.newest.admit(ch.Key, ch.Rev)
	if ch.Deleted {
		// Even an older deletion is applied: a miss costs a fetch, never a stale answer.
		m.tombs.AddRev(ch.Key, ch.Rev)
		if _, err := m.table.Delete(ch.Key); err != nil {
			m.log.Warn("sessioncache: applying a remote delete", "err", err)
		}
		return
	}
	if !newest || m.tombs.Covers(ch.Key, ch.Rev) {
		return // older than a version or deletion already here
	}
	m.tombs.Clear(ch.Key)
	if err := m.table.Set(ch.Key, ch.Value, ch.Expiry); err != nil {
		m.log.Warn("sessioncache: applying a remote publication", "err", err)
	}
}

// enter starts applying a change from a relay; it reports false once the Manager closed.
func (m *Manager) enter() bool {
	m.use.RLock()
	if m.closed {
		m.use.RUnlock()
		return false
	}
	return true
}

func (m *Manager) leave() { m.use.RUnlock() }

// owners returns the relays for key in the order to try them: rendezvous order, with the
// relays known to be disconnected moved to the end, so a dead relay's keys fail over at once.
func (m *Manager) owners(key []byte) []remoteNode {
	all := m.ring.Owners(make([]remoteNode, 0, m.ring.Len()), key, m.ring.Len())
	out := all[:0:0]
	var down []remoteNode
	for _, n := range all {
		if c, ok := n.r.(interface{ Connected() bool }); ok && !c.Connected() {
			down = append(down, n)
			continue
		}
		out = append(out, n)
	}
	return append(out, down...)
}

// attempt gives one of several relays its share of what is left of ctx's time, so a relay
// that does not answer leaves time for the next.
func attempt(ctx context.Context, left int) (context.Context, context.CancelFunc) {
	d, ok := ctx.Deadline()
	if !ok || left <= 1 {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, time.Until(d)/time.Duration(left))
}

// eachOwner calls fn with key's relays in order until fn returns nil or ErrNotFound (which
// it returns) or the relays run out (it returns every error, joined).
func (m *Manager) eachOwner(ctx context.Context, key []byte, what string, fn func(context.Context, remoteNode) error) error {
	owners := m.owners(key)
	var errs []error
	notFound := false
	for i, n := range owners {
		actx, cancel := attempt(ctx, len(owners)-i)
		err := fn(actx, n)
		cancel()
		switch {
		case err == nil:
			return nil
		case errors.Is(err, ErrNotFound):
			notFound = true
			continue
		}
		errs = append(errs, fmt.Errorf("relay %s: %w", n.name, err))
		if ctx.Err() != nil {
			break
		}
	}
	if notFound {
		return ErrNotFound
	}
	return fmt.Errorf("sessioncache: %s: %w", what, errors.Join(errs...))
}

// Set stores value under key for ttl in the local table and publishes it to the key's relay
// (which keeps it, hands it down and tells the other hosts). It returns once the relay has
// acknowledged, or right after the local write with FireAndForget.
//
// The entry gets a revision from the Manager's clock (see Entry.Rev): every tier keeps the
// version with the highest revision, so a Set made after a Delete of the same key that this
// host saw is ordered after it, and one made before it never overrides it.
func (m *Manager) Set(ctx context.Context, key, value []byte, ttl time.Duration) (err error) {
	if ttl <= 0 {
		return fmt.Errorf("%w: %v", ErrInvalidTTL, ttl)
	}
	expiry := time.Now().Add(ttl)
	rev := m.clock.Next()
	m.newest.admit(key, rev)
	m.tombs.Clear(key)
	defer func() {
		if err == nil {
			m.notify(Change{Key: key, Value: value, Expiry: expiry, Rev: rev})
		}
	}()
	if err := m.table.Set(key, value, expiry); err != nil {
		return err
	}
	if m.ring.Len() == 0 {
		return nil
	}
	defer func() {
		if err != nil {
			// Not acknowledged: the host must not serve what no relay holds.
			m.table.Delete(key)
		}
	}()
	if m.cfg.FireAndForget {
		k, v := append([]byte(nil), key...), append([]byte(nil), value...)
		m.wg.Add(1)
		go func() {
			defer m.wg.Done()
			ctx, cancel := context.WithTimeout(m.ctx, 10*time.Second)
			defer cancel()
			if err := m.publish(ctx, k, Entry{Value: v, Expiry: expiry, Rev: rev}); err != nil {
				m.log.Warn("sessioncache: background publish failed", "err", err)
			}
		}()
		return nil
	}
	return m.publish(ctx, key, Entry{Value: value, Expiry: expiry, Rev: rev})
}

// publish sends the entry to the first relay of its order that takes it.
func (m *Manager) publish(ctx context.Context, key []byte, e Entry) error {
	return m.eachOwner(ctx, key, "publish", func(ctx context.Context, n remoteNode) error {
		if m.cfg.WriteConcern == WriteDurable {
			return n.r.(DurableRemote).PublishDurable(ctx, m.cfg.AuthPath, key, e)
		}
		return n.r.Publish(ctx, m.cfg.AuthPath, key, e)
	})
}

// Get returns the value stored under key: from the local table, or else from the key's
// relay (the answer is then kept locally). It returns ErrNotFound when no tier has it.
func (m *Manager) Get(ctx context.Context, key []byte) ([]byte, error) {
	v, _, err := m.GetAppend(ctx, nil, key)
	return v, err
}

// GetAppend is Get appending the value to dst; a local hit allocates nothing when dst has
// room. It also returns the entry's expiry.
func (m *Manager) GetAppend(ctx context.Context, dst, key []byte) ([]byte, time.Time, error) {
	if m.sync == nil || m.sync.trusted.Load() {
		v, exp, err := m.table.GetAppend(dst, key)
		if !errors.Is(err, ErrNotFound) || m.ring.Len() == 0 {
			return v, exp, err
		}
	}
	type found struct {
		v   []byte
		exp time.Time
	}
	res, err, _ := m.flight.Do(string(key), func() (any, error) {
		seq := m.tombs.Seq()
		e, err := m.fetch(ctx, key)
		m.clock.Observe(e.Rev)
		if err != nil {
			return nil, err
		}
		if m.tombs.DeletedAfterRev(key, seq, e.Rev) {
			return nil, ErrNotFound // deleted while the answer was on its way
		}
		// When a newer version arrived meanwhile, answer with this one but keep that one.
		if m.newest.admit(key, e.Rev) {
			if err := m.table.Set(key, e.Value, e.Expiry); err != nil {
				m.log.Warn("sessioncache: keeping a relay's answer locally", "err", err)
			}
		}
		return found{e.Value, e.Expiry}, nil
	})
	if err != nil {
		return dst, time.Time{}, err
	}
	f := res.(found)
	return append(dst, f.v...), f.exp, nil
}

// fetch asks the key's relays in order until one has it. A key published while its
// first relay was down lives on the next one, so not found from one relay passes the
// search on too; but an entry older than a deletion (or an expired version) that an
// earlier relay answered with is not taken.
func (m *Manager) fetch(ctx context.Context, key []byte) (Entry, error) {
	var e Entry
	err := m.eachOwner(ctx, key, "get", func(ctx context.Context, n remoteNode) error {
		got, err := n.r.Get(ctx, m.cfg.AuthPath, key)
		if err == nil && e.Deleted && !got.Newer(e) {
			return ErrNotFound
		}
		if got.Rev > e.Rev || err == nil {
			e = got
		}
		return err
	})
	return e, err
}

// Delete removes key from the local table and, through the relays, from every tier and
// every subscribed host (a logout). It tells every relay, not only the key's first one,
// since a key published while that relay was down lives on another, and returns nil only
// once every relay has confirmed: from then on no tier serves the key again (the deletion
// is a tombstone with a revision that every tier keeps until the entry would have
// expired), and a relay's answer already on its way does not bring it back. A Delete that
// returns an error may have reached some tiers; call it again until it succeeds.
func (m *Manager) Delete(ctx context.Context, key []byte) error {
	rev := m.clock.Next()
	m.tombs.AddRev(key, rev)
	m.newest.admit(key, rev)
	if _, err := m.table.Delete(key); err != nil {
		return err
	}
	m.notify(Change{Key: key, Deleted: true, Rev: rev}) // gone here at once, whatever the relays answer
	owners := m.owners(key)
	if len(owners) == 0 {
		return nil
	}
	errs := make([]error, len(owners))
	var wg sync.WaitGroup
	for i, n := range owners {
		wg.Go(func() {
			if err := n.r.Delete(ctx, m.cfg.AuthPath, key, Entry{Rev: rev, Deleted: true}); err != nil {
				errs[i] = fmt.Errorf("relay %s: %w", n.name, err)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("sessioncache: delete is not confirmed by every relay: %w", err)
	}
	return nil
}

// Close waits for background publications, then closes the local table. It does not close
// the remotes. Like Table.Close it must be called once the Manager's other calls have
// returned; calls after it fail with ErrClosed.
func (m *Manager) Close() error {
	var err error
	m.once.Do(func() {
		m.wg.Wait()
		m.cancel()
		m.use.Lock() // changes being applied from the relays' streams are done
		m.closed = true
		m.use.Unlock()
		if m.sync != nil {
			m.sync.close()
		}
		err = m.table.Close()
	})
	return err
}

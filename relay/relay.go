package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/globalsession/globalsession/internal/entrytable"
	"github.com/globalsession/globalsession/internal/revision"
	"github.com/globalsession/globalsession/internal/throttle"
	"github.com/globalsession/globalsession/internal/tombstone"
	"github.com/globalsession/globalsession/internal/wallclock"
	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/relay/internal/endpoint"
	"github.com/globalsession/globalsession/sessioncache"
)

// DefaultAuthPath is the path sessions are published on when a config names none
// (auth_path in the config files).
const DefaultAuthPath = "auths"

// RelayConfig configures the midway relay (the config files' edge_supported_relay mode).
type RelayConfig struct {
	// Addr is where front ends connect, host:port. ":0" picks a free port (see Addr()).
	Addr string
	// ServerOptions holds TLS, secret, frame limit, heartbeat, timeouts and logger.
	ServerOptions
	// AuthPath is the path type whose publications the relay intercepts: stores in its
	// table, hands to its sibling and fans out. Empty means DefaultAuthPath.
	AuthPath string
	// Table is the relay's own shared-memory table. The relay creates it (Create is forced
	// on, the config files' am_initializer) and hands its evictions to the sibling. Each record
	// also holds the entry's revision: RecordSize is raised by 9 bytes (see
	// RecordOverhead), so the same record_size as the front ends' tables fits the same
	// entries.
	Table sessioncache.Config
	// NoFanOut turns off delivering publications on the auth path to the other subscribed
	// front ends (on by default).
	NoFanOut bool
	// Lower is the tier below: the sibling. Nil means none (misses end at the relay) until
	// SetLower. NewSibling's *Sibling, a *Client to a sibling elsewhere, or a ChildSibling
	// are typical.
	Lower Backend
	// LowerLater says the tier below will be given by SetLower once NewRelay has returned
	// (a sibling that attaches to the relay's table can only start then): until it is, the
	// evictions and deletions that are for it wait in the outbox.
	LowerLater bool
	// TombstoneTTL is how long a deletion is kept at least, by the relay and the tiers
	// below, when the entry it removes would have expired sooner (or is not known): no
	// older version of the key is accepted or served while the tombstone lasts. Zero means
	// one hour.
	TombstoneTTL time.Duration
	// LowerWorkers is how many goroutines hand new entries to a lower tier that is not a
	// StreamBackend (the sibling and ChildSibling are: they take them from the request);
	// evictions and deletions are handed down in batches by at most outboxWorkers of them.
	// Zero means 64.
	LowerWorkers int
	// OutboxDir is where the relay keeps the evictions and deletions it must hand to the
	// tier below until the tier below confirms them, so a relay that is killed sends them
	// on when it restarts. Empty means the table's path with ".outbox" appended (on the
	// same shared-memory file system, so it lives as long as the table does).
	OutboxDir string
	// StreamBacklog is how many of its latest changes on the auth path the relay keeps for
	// front ends that reconnect (see sessioncache.StreamRemote): one that missed more
	// learns it has a gap and drops its local entries. Zero means 16384.
	StreamBacklog int
	// OutboxLimit bounds the bytes of unconfirmed evictions and deletions. When it is
	// reached, deletions fail (the front end's Delete returns an error) and evictions are
	// counted and logged as lost. Zero means 64 MiB.
	OutboxLimit int64
}

// RecordOverhead is what the relay (and a relief memory store) adds to each record of its
// table for the entry's revision: 9 bytes.
const RecordOverhead = entrytable.Overhead

// Relay is the midway relay: a server for front ends with its own table, in front of the
// sibling that reaches the pressure-relief servers.
type Relay struct {
	cfg     RelayConfig
	srv     *endpoint.Server
	table   *sessioncache.Table
	entries *entrytable.Table
	outbox  *outbox
	// noOwnerUntil is the unix nanoseconds until which evictions are dropped, not handed
	// down: the tier below said it keeps none (ErrNoOwner).
	noOwnerUntil atomic.Int64
	unplaced     atomic.Int64 // evictions dropped so (OutboxStats.Unplaced)
	stream       *endpoint.ChangeStream
	clock        revision.Clock
	lower        atomic.Pointer[Backend]
	log          *slog.Logger
	jobs         []chan lowerJob // one queue per worker; a key always goes to the same one
	ctx          context.Context
	cancel       context.CancelFunc
	wg           sync.WaitGroup
	// inflight counts the goroutines that serve a request after its reader moved on
	// (those that ask the tier below): Shutdown waits for them before closing the table.
	inflight sync.WaitGroup
	tombs    *tombstone.Set
	once     sync.Once
	// horizon is the highest revision of a version the table pushed out since the relay
	// started (the start itself at first): a write of a lower revision for a key the
	// table does not hold is checked against the tier below (see mayBeSuperseded).
	horizon    atomic.Uint64
	superseded atomic.Int64 // writes dropped because the tier below held a newer version
	authPath   []byte       // cfg.AuthPath, for frames built on the hot path
	// lowerGetFailures counts lookups the tier below failed (its error, not a miss).
	lowerGetFailures atomic.Int64
	lowerGetWarn     throttle.Throttle
	expiryWarn       throttle.Throttle // expired versions' deletions left out
}

// lowerJob is a new entry to hand to the lower tier's expansion servers.
type lowerJob struct {
	key []byte
	e   sessioncache.Entry
	seq uint64 // the deletion sequence when it was queued: a later deletion cancels it
}

// NewRelay opens the relay's table and outbox, binds cfg.Addr and starts serving. Stop it
// with Shutdown or Close.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	cfg.ServerOptions = endpoint.ServerDefaults(cfg.ServerOptions)
	if cfg.AuthPath == "" {
		cfg.AuthPath = DefaultAuthPath
	}
	if cfg.TombstoneTTL == 0 {
		cfg.TombstoneTTL = time.Hour
	}
	if cfg.LowerWorkers == 0 {
		cfg.LowerWorkers = 64
	}
	if cfg.OutboxLimit == 0 {
		cfg.OutboxLimit = 64 << 20
	}
	if cfg.StreamBacklog == 0 {
		cfg.StreamBacklog = 16384
	}
	r := &Relay{cfg: cfg, log: cfg.Logger, jobs: make([]chan lowerJob, cfg.LowerWorkers),
		tombs: tombstone.New(time.Minute), authPath: []byte(cfg.AuthPath)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.horizon.Store(uint64(time.Now().UnixNano()))
	r.SetLower(cfg.Lower)
	tcfg := TableWithRevisions(cfg.Table)
	tcfg.Create = true
	if tcfg.Logger == nil {
		tcfg.Logger = cfg.Logger
	}
	tcfg.BeforeEvict = r.evicted
	tcfg.BeforeReclaim = r.reclaimed
	t, err := sessioncache.Open(tcfg)
	if err != nil {
		return nil, fmt.Errorf("relay: table: %w", err)
	}
	r.table, r.entries = t, entrytable.New(t)
	dir := cfg.OutboxDir
	if dir == "" {
		dir = t.Path() + ".outbox"
	}
	r.outbox, err = openOutbox(dir, cfg.OutboxLimit, min(cfg.LowerWorkers, outboxWorkers), cfg.Logger, r.handDown)
	if err != nil {
		t.Close()
		return nil, err
	}
	r.srv, err = endpoint.Listen(cfg.Addr, cfg.ServerOptions, relayHandler{r})
	if err != nil {
		r.outbox.close()
		t.Close()
		return nil, err
	}
	r.stream = endpoint.NewChangeStream(r.srv, cfg.StreamBacklog)
	for i := range r.jobs {
		r.jobs[i] = make(chan lowerJob, 256)
		r.wg.Add(1)
		go r.lowerWorker(r.jobs[i])
	}
	r.srv.Serve()
	r.log.Debug("relay: serving", "addr", r.srv.Addr().String(), "auth_path", cfg.AuthPath, "table", t.Path(), "outbox", dir)
	return r, nil
}

// TableWithRevisions returns cfg with RecordSize raised by RecordOverhead (when it is set),
// as the relay opens its table: a process that attaches to the relay's table passes its
// config through this too.
func TableWithRevisions(cfg sessioncache.Config) sessioncache.Config {
	if cfg.RecordSize != 0 {
		cfg.RecordSize += RecordOverhead
	}
	return cfg
}

// RemoveState removes a relay's table at tablePath and the outbox and hints directories
// kept beside it by default (see RelayConfig.OutboxDir and SiblingConfig.HintDir), for
// tools and tests that start relays of their own. The relay must be closed.
func RemoveState(tablePath string) error {
	return errors.Join(os.Remove(tablePath), os.RemoveAll(tablePath+".outbox"), os.RemoveAll(tablePath+".hints"))
}

// errLowerNotYet is the failure of a lookup or check that needs the tier below while a
// relay made with LowerLater has not been given it yet (its sibling is starting).
var errLowerNotYet = errors.New("relay: the tier below is not attached yet")

// handsDown reports whether evictions and deletions go into the outbox: there is a tier
// below, or there will be one (LowerLater).
func (r *Relay) handsDown() bool { return r.cfg.LowerLater || r.lowerTier() != nil }

// SetLower sets the tier below the relay (its sibling), replacing RelayConfig.Lower; nil
// means none. A sibling that attaches to the relay's table can only be made once the relay
// has created it, hence this method.
func (r *Relay) SetLower(b Backend) {
	if b == nil {
		r.lower.Store(nil)
		return
	}
	r.lower.Store(&b)
}

func (r *Relay) lowerTier() Backend {
	if p := r.lower.Load(); p != nil {
		return *p
	}
	return nil
}

// Addr returns the address the relay listens on.
func (r *Relay) Addr() net.Addr { return r.srv.Addr() }

// Table returns the relay's table. Its values carry the relay's 9-byte revision envelope
// and deleted keys hold tombstones: use Lookup to read an entry.
func (r *Relay) Table() *sessioncache.Table { return r.table }

// Lookup returns the entry the relay's table holds for key on the auth path, or
// ErrNotFound (with the tombstone, if the key was deleted or its newest version expired).
// It does not ask the tier below.
func (r *Relay) Lookup(key []byte) (sessioncache.Entry, error) {
	return r.entries.GetAppend(nil, key)
}

// OutboxStats are the counts of a relay's outbox.
type OutboxStats struct {
	Pending int64 // evictions and deletions not yet confirmed by the tier below
	Refused int64 // refused because the outbox was full: lost evictions, failed deletes
	Retries int64 // hand-downs tried again after the tier below failed them
	// Unplaced counts the evictions dropped because the tier below keeps none: it knows no
	// relief server (the sibling counts those it dropped itself, see HintStats).
	Unplaced int64
	// ExpiriesLeftOut counts the versions that expired in the relay's table whose deletion
	// was not handed down because the outbox was over half full: a relief server may then
	// serve an older version of such a key that outlives it.
	ExpiriesLeftOut int64
}

// Server returns the counts of the relay's connections and requests.
func (r *Relay) Server() ServerStats { return r.srv.Stats() }

// Requests returns, for each op the relay answered, its replies by status and their
// latencies.
func (r *Relay) Requests() []RequestStats { return r.srv.RequestStats() }

// Outbox returns the counts of the relay's outbox.
func (r *Relay) Outbox() OutboxStats {
	return OutboxStats{Pending: r.outbox.pending.Load(), Refused: r.outbox.dropped.Load(), Retries: r.outbox.retries.Load(),
		Unplaced: r.unplaced.Load(), ExpiriesLeftOut: r.outbox.shadowsDropped.Load()}
}

// LowerGetFailures returns how many lookups the tier below failed (its error, not a miss).
// The front end that asked got an error, not ErrNotFound: the entry may be there.
func (r *Relay) LowerGetFailures() int64 { return r.lowerGetFailures.Load() }

// warnLowerGet counts a lookup the tier below failed and logs it, at most once every ten
// seconds (with the count) while they go on.
func (r *Relay) warnLowerGet(err error) {
	n := r.lowerGetFailures.Add(1)
	if !r.lowerGetWarn.Allow(10 * time.Second) {
		return
	}
	r.log.Warn("relay: lower tier get failed", "err", err, "failures_total", n)
}

// serveRequest handles a front end's entry request.
func (r *Relay) serveRequest(p *endpoint.Peer, f *wire.Frame) {
	auth := string(f.Path) == r.cfg.AuthPath
	switch f.Op {
	case wire.OpPublish, wire.OpSet, wire.OpEvict:
		if f.Flags&wire.FlagBatch != 0 {
			p.ReplyError(f.ID, "evict: a relay takes no batches: hand its entries over one by one")
			return
		}
		if !auth {
			if f.Op == wire.OpPublish {
				if f.Flags&wire.FlagNoFanout != 0 {
					p.Reply(f.ID, wire.StatusOK, 0, nil, 0) // not stored here, and not delivered
					return
				}
				r.srv.FanOut(&wire.Frame{Op: wire.OpMessage, Path: f.Path, Key: f.Key, Value: f.Value, Expiry: f.Expiry, Rev: f.Rev}, p)
				p.Reply(f.ID, wire.StatusOK, 0, nil, 0)
				return
			}
			p.ReplyError(f.ID, fmt.Sprintf("%s: path %q is not stored here (the auth path is %q)", f.Op, f.Path, r.cfg.AuthPath))
			return
		}
		f.Rev = r.revision(f.Rev)
		if r.mayBeSuperseded(f.Key, f.Rev) {
			r.checkBelowThen(p, endpoint.CopyFrame(f), r.write)
			return
		}
		r.write(p, f)
	case wire.OpGet:
		if !auth {
			p.ReplyError(f.ID, fmt.Sprintf("get: path %q is not stored here", f.Path))
			return
		}
		r.get(p, f)
	case wire.OpDelete:
		if !auth {
			p.ReplyError(f.ID, fmt.Sprintf("delete: path %q is not stored here", f.Path))
			return
		}
		f.Rev = r.revision(f.Rev)
		if r.mayBeSuperseded(f.Key, f.Rev) {
			r.checkBelowThen(p, endpoint.CopyFrame(f), r.del)
			return
		}
		r.del(p, f)
	default:
		p.ReplyError(f.ID, fmt.Sprintf("%s is not a request a relay serves", f.Op))
	}
}

// write stores a publish, set or evict of the auth path whose revision f.Rev is set.
func (r *Relay) write(p *endpoint.Peer, f *wire.Frame) {
	e := sessioncache.Entry{Value: f.Value, Expiry: endpoint.UnixTime(f.Expiry), Rev: f.Rev}
	durable := f.Flags&wire.FlagDurable != 0
	// A durable write is handed down below with a reply (storeDurably), not queued.
	applied, err := r.store(f.Key, e, !durable)
	if err != nil {
		p.ReplyError(f.ID, err.Error())
		return
	}
	if applied && f.Op == wire.OpPublish && f.Flags&wire.FlagNoFanout == 0 {
		r.publishChange(&wire.Frame{Op: wire.OpMessage, Path: f.Path, Key: f.Key, Value: f.Value, Expiry: f.Expiry, Rev: e.Rev}, p)
	}
	if durable && applied {
		r.storeDurably(p, f.ID, clone(f.Key), sessioncache.Entry{Value: clone(f.Value), Expiry: e.Expiry, Rev: e.Rev})
		return
	}
	p.Reply(f.ID, wire.StatusOK, 0, nil, 0)
}

// del deletes a key of the auth path, as a deletion of revision f.Rev (set).
func (r *Relay) del(p *endpoint.Peer, f *wire.Frame) {
	existed, rev, err := r.remove(f.Key, f.Rev, endpoint.UnixTime(f.Expiry))
	if err != nil {
		p.ReplyError(f.ID, err.Error())
		return
	}
	r.publishChange(&wire.Frame{Op: wire.OpMessage, Flags: wire.FlagDeleted, Path: f.Path, Key: f.Key, Rev: rev}, p)
	var flags uint8
	if existed {
		flags = wire.FlagExisted
	}
	p.Reply(f.ID, wire.StatusOK, flags, nil, 0)
}

// mayBeSuperseded reports whether a write of revision rev may be older than a version of
// key the relay's table no longer holds: the table pushed out (to the tiers below) a
// version of a revision at least as high as rev since the relay started, and holds none of
// key now. A write from a host with a sound clock, made now, never is; one delayed in the
// network (a link that came back after a while) may be, and must not override a deletion
// whose tombstone the table has evicted.
func (r *Relay) mayBeSuperseded(key []byte, rev uint64) bool {
	if rev > r.horizon.Load() {
		return false
	}
	buf := getBuf()
	held, err := r.entries.GetAppend(buf[:0], key)
	putBuf(buf)
	return !(err == nil || held.Deleted) // the table holds a version: Put compares with it
}

// checkBelowThen asks the tier below for key's version and applies f with then unless the
// tier below holds a newer one (f is then superseded: it is acknowledged and dropped). It
// runs in a goroutine of its own, with f owning its slices.
func (r *Relay) checkBelowThen(p *endpoint.Peer, f *wire.Frame, then func(*endpoint.Peer, *wire.Frame)) {
	lower := r.lowerTier()
	if lower == nil && !r.cfg.LowerLater {
		then(p, f)
		return
	}
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		if rev := r.outbox.deletedAt(f.Key); rev >= f.Rev {
			p.Reply(f.ID, wire.StatusOK, 0, nil, 0) // a deletion waiting in the outbox is newer
			return
		}
		if lower == nil {
			p.ReplyError(f.ID, "this write may be older than a version the relay handed down, which cannot be checked now: "+errLowerNotYet.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
		defer cancel()
		below, err := lower.Get(ctx, r.cfg.AuthPath, f.Key)
		if err != nil && !errors.Is(err, ErrNotFound) {
			p.ReplyError(f.ID, "this write may be older than a version the relay handed down, which cannot be checked now: "+err.Error())
			return
		}
		mine := sessioncache.Entry{Rev: f.Rev, Deleted: f.Op == wire.OpDelete}
		if (err == nil || below.Deleted) && !mine.Newer(below) {
			r.superseded.Add(1)
			p.Reply(f.ID, wire.StatusOK, 0, nil, 0)
			return
		}
		then(p, f)
	}()
}

// storeDurably hands an entry to the aging relief servers that own its key, through the
// lower tier, and answers the front end once they hold it (the strict write concern).
func (r *Relay) storeDurably(p *endpoint.Peer, id uint64, key []byte, e sessioncache.Entry) {
	db, ok := r.lowerTier().(DurableBackend)
	if !ok {
		p.ReplyError(id, "publish: the strict write concern needs a sibling below the relay")
		return
	}
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
		defer cancel()
		if err := db.SetDurable(ctx, r.cfg.AuthPath, key, e); err != nil {
			p.ReplyError(id, "the entry is not held durably: "+err.Error())
			return
		}
		p.Reply(id, wire.StatusOK, 0, nil, 0)
	}()
}

// publishChange numbers a change of the auth path, keeps it in the stream's backlog and
// delivers it to the subscribed front ends but from.
func (r *Relay) publishChange(msg *wire.Frame, from *endpoint.Peer) {
	if r.cfg.NoFanOut {
		return
	}
	r.stream.Publish(msg, from)
}

// resume answers a subscribe with FlagResume: on the auth path, the stream of its changes
// subscribes p and replies with those it missed since the position it gives (see
// endpoint.ChangeStream.Resume).
func (r *Relay) resume(p *endpoint.Peer, f *wire.Frame) {
	if string(f.Path) != r.cfg.AuthPath || r.cfg.NoFanOut {
		p.ReplyError(f.ID, fmt.Sprintf("subscribe: path %q keeps no stream of changes here", f.Path))
		return
	}
	r.stream.Resume(p, f)
}

// relayHandler is the relay as its server's endpoint.Handler and endpoint.Resumer: it
// serves the front ends' entry requests and stream resumptions.
type relayHandler struct{ r *Relay }

func (h relayHandler) ServeRequest(p *endpoint.Peer, f *wire.Frame) { h.r.serveRequest(p, f) }

func (h relayHandler) Resume(p *endpoint.Peer, f *wire.Frame) { h.r.resume(p, f) }

// revision returns rev, or a revision of the relay's own clock for a writer that gave none.
func (r *Relay) revision(rev uint64) uint64 {
	if rev == 0 {
		return r.clock.Next()
	}
	r.clock.Observe(rev)
	return rev
}

// store keeps an entry in the table unless it holds a newer version, and (with queue)
// queues it for the lower tier's expansion servers.
func (r *Relay) store(key []byte, e sessioncache.Entry, queue bool) (bool, error) {
	applied, err := r.entries.Put(key, e)
	if err != nil || !applied {
		return applied, err
	}
	r.tombs.Clear(key)
	if queue {
		r.enqueue(key, e)
	}
	return true, nil
}

// remove replaces key's entry with a tombstone of revision rev (the relay's own when 0),
// kept at least until until, TombstoneTTL from now and the removed entry's expiry, and
// puts the deletion in the outbox for the tiers below. It reports whether a live entry was
// there and the deletion's revision.
func (r *Relay) remove(key []byte, rev uint64, until time.Time) (bool, uint64, error) {
	rev = r.revision(rev)
	if floor := time.Now().Add(r.cfg.TombstoneTTL); until.Before(floor) {
		until = floor
	}
	r.tombs.AddRev(key, rev)
	tomb := sessioncache.Entry{Rev: rev, Deleted: true, Expiry: until}
	held, _, err := r.entries.PutHeld(key, tomb)
	if err != nil {
		return false, rev, err
	}
	existed := held.Rev != 0 && !held.Deleted
	if existed && (held.Expiry.IsZero() || held.Expiry.After(tomb.Expiry)) {
		tomb.Expiry = held.Expiry
	}
	if r.handsDown() {
		if err := r.outbox.add(endpoint.EntryFrame(wire.OpDelete, r.cfg.AuthPath, key, tomb)); err != nil {
			r.outbox.warnFull("delete", key)
			return existed, rev, fmt.Errorf("the deletion cannot be handed to the tiers below: %w", err)
		}
	}
	return existed, rev, nil
}

// get answers from the table, or falls through to the lower tier in a goroutine so the
// connection keeps serving meanwhile.
func (r *Relay) get(p *endpoint.Peer, f *wire.Frame) {
	buf := getBuf()
	e, err := r.entries.GetAppend(buf[:0], f.Key)
	if err == nil || e.Deleted {
		p.ReplyEntry(f.ID, e, err)
		putBuf(buf)
		return
	}
	putBuf(buf)
	var shadow uint64 // a newer version than any the tier below may answer with
	if errors.Is(err, sessioncache.ErrNotFound) {
		if pe, isCopy, ok := r.outbox.pendingEviction(f.Key); ok {
			switch {
			case pe.Expiry.IsZero() || pe.Expiry.After(time.Now()):
				p.ReplyEntry(f.ID, pe, nil) // evicted, and not yet with aging relief
				return
			case !isCopy:
				// Expired while it waits to be handed down: still the key's newest version,
				// which ends the older ones the tiers below may hold.
				p.ReplyEntry(f.ID, sessioncache.Entry{Rev: pe.Rev, Deleted: true, Expiry: pe.Expiry}, ErrNotFound)
				return
			}
			// A copy whose expiry (perhaps a relief server's cap) has passed: its version
			// may live on below, but nothing older than it may be served.
			shadow = pe.Rev
		}
	}
	lower := r.lowerTier()
	if !errors.Is(err, sessioncache.ErrNotFound) {
		p.ReplyResult(f.ID, err)
		return
	}
	if lower == nil {
		if r.cfg.LowerLater {
			// The tier below may hold the entry: "not found" would read as a logout.
			err = errLowerNotYet
		}
		p.ReplyResult(f.ID, err)
		return
	}
	id, key := f.ID, clone(f.Key)
	seq := r.tombs.Seq()
	r.inflight.Add(1)
	go func() {
		defer r.inflight.Done()
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
		defer cancel()
		e, err := lower.Get(ctx, r.cfg.AuthPath, key)
		switch {
		case err != nil && !e.Deleted:
			if errors.Is(err, ErrNotFound) {
				p.ReplyResult(id, ErrNotFound)
				return
			}
			// The tier below may hold the entry: "not found" would read as a logout, so
			// the front end gets the failure and can ask again.
			r.warnLowerGet(err)
			p.ReplyResult(id, fmt.Errorf("relay: the tier below could not answer: %w", err))
			return
		case !e.Expiry.IsZero() && !e.Expiry.After(time.Now()):
			p.ReplyResult(id, ErrNotFound)
			return
		}
		r.clock.Observe(e.Rev)
		if !e.Deleted && e.Rev < shadow {
			p.ReplyResult(id, ErrNotFound) // older than a version that was answered before
			return
		}
		if rev := r.outbox.deletedAt(key); rev != 0 && (rev > e.Rev || (rev == e.Rev && !e.Deleted)) {
			// A deletion the tiers below have not confirmed yet overrides their answer.
			p.ReplyEntry(id, sessioncache.Entry{Rev: rev, Deleted: true}, ErrNotFound)
			return
		}
		if !e.Deleted && r.tombs.DeletedAfterRev(key, seq, e.Rev) {
			p.ReplyResult(id, ErrNotFound) // deleted while the answer was on its way
			return
		}
		// A copy: a relief server may answer with an expiry earlier than the version's own
		// (its max_life), which must not read as the version's end here.
		applied, err := r.entries.PutCopy(key, e)
		if err != nil {
			r.log.Warn("relay: caching a lower tier's answer", "err", err)
		}
		if !applied && err == nil {
			// The table holds a newer version (it arrived meanwhile, or it is a copy
			// whose expiry has passed), or the answer expired: answer with what the table
			// holds now, and never with the older answer.
			held, herr := r.entries.GetAppend(nil, key)
			if herr == nil || held.Deleted {
				p.ReplyEntry(id, held, herr)
				return
			}
			p.ReplyResult(id, ErrNotFound)
			return
		}
		err = nil
		if e.Deleted {
			err = ErrNotFound
		}
		p.ReplyEntry(id, e, err)
	}()
}

// evicted receives what the table is about to push out (with the shard locked) and puts
// it in the outbox for the lower tier's aging servers.
func (r *Relay) evicted(key, value []byte, expiry time.Time) {
	if !r.handsDown() {
		return
	}
	e, err := entrytable.Decode(value)
	if err != nil {
		r.log.Warn("relay: evicting a record that holds no versioned entry", "err", err)
		return
	}
	e.Expiry = expiry
	r.raiseHorizon(e.Rev)
	if wallclock.Nanos() < r.noOwnerUntil.Load() {
		r.unplaced.Add(1) // the tier below said it keeps no evictions: see handDown
		return
	}
	f := endpoint.EntryFrameValue(wire.OpEvict, r.authPath, key, e) // encoded into the outbox at once
	if entrytable.IsCopy(value) {
		f.Flags |= wire.FlagCopy
	}
	if err := r.outbox.add(&f); err != nil {
		r.outbox.warnFull("eviction", key)
	}
}

// raiseHorizon records that the table no longer holds a version of revision rev (see
// mayBeSuperseded).
func (r *Relay) raiseHorizon(rev uint64) {
	for {
		h := r.horizon.Load()
		if rev <= h || r.horizon.CompareAndSwap(h, rev) {
			return
		}
	}
}

// reclaimed receives a version whose expiry has passed as the table takes its record back
// (with the shard locked), and hands its revision down as a deletion. Until then the
// table's record answered for the key (an expired version reads as a tombstone of its
// revision), but the tiers below may hold an older version that outlives it (the key was
// set again with a shorter lifetime), which they must not serve once the record is gone.
// The deletion's expiry is the version's own, already passed: a relief server keeps it
// only in place of an older entry it holds, as long as that entry would have lived.
func (r *Relay) reclaimed(key, value []byte, expiry time.Time) {
	if !r.handsDown() || wallclock.Nanos() < r.noOwnerUntil.Load() {
		return
	}
	e, err := entrytable.Decode(value)
	if err != nil || e.Deleted || entrytable.IsCopy(value) {
		// A tombstone was kept as long as the entry it replaced would have lived; a copy of
		// a lower tier's answer may have ended before its version.
		return
	}
	r.raiseHorizon(e.Rev)
	f := endpoint.EntryFrameValue(wire.OpDelete, r.authPath, key, sessioncache.Entry{Rev: e.Rev, Deleted: true, Expiry: expiry})
	switch err := r.outbox.addIfRoom(&f); {
	case errors.Is(err, ErrOutboxFull):
		if r.expiryWarn.Allow(time.Minute) {
			r.log.Warn("relay: the outbox is over half full; expired versions are not handed down as deletions, so the tiers below may serve older versions of those keys",
				"left_out_total", r.outbox.shadowsDropped.Load(), "pending", r.outbox.pending.Load())
		}
	case err != nil:
		r.log.Warn("relay: handing down an expired version", "err", err)
	}
}

// outboxWorkers bounds the goroutines that hand the outbox's records down: few, so that
// what waits while they are busy leaves in one batch.
const outboxWorkers = 4

// handDown delivers outbox records to the lower tier: in one batch if it takes batches.
// When the lower tier answers ErrNoOwner (no relief server ever joined it, so evictions
// are dropped there), the records count as delivered, and for a second the relay drops
// evictions itself instead of writing them to the outbox for nothing.
func (r *Relay) handDown(ctx context.Context, frames []*wire.Frame) error {
	err := r.handDownTo(ctx, frames)
	if errors.Is(err, ErrNoOwner) {
		r.noOwnerUntil.Store(time.Now().Add(time.Second).UnixNano())
		return nil
	}
	return err
}

func (r *Relay) handDownTo(ctx context.Context, frames []*wire.Frame) error {
	lower := r.lowerTier()
	if lower == nil {
		return errors.New("no lower tier")
	}
	if sib, ok := lower.(*Sibling); ok && len(frames) > 1 {
		return sib.handDownFrames(ctx, frames) // in process: the outbox's frames as they are
	}
	if bl, ok := lower.(BatchBackend); ok && len(frames) > 1 {
		batch := make([]HandDown, len(frames))
		for i, f := range frames {
			batch[i] = HandDown{Key: f.Key, Entry: endpoint.FrameEntry(f), Delete: f.Op == wire.OpDelete}
		}
		return bl.HandDownBatch(ctx, r.cfg.AuthPath, batch)
	}
	var noOwner error
	for _, f := range frames {
		e := endpoint.FrameEntry(f)
		var err error
		if f.Op == wire.OpDelete {
			err = lower.Delete(ctx, string(f.Path), f.Key, e)
		} else {
			err = lower.Evict(ctx, string(f.Path), f.Key, e)
		}
		if errors.Is(err, ErrNoOwner) {
			noOwner = err // the rest may hold deletions, which still go
		} else if err != nil {
			return err
		}
	}
	return noOwner
}

// enqueue hands a new entry to the lower tier's expansion servers: at once to a
// StreamBackend, else through a worker, copying it; with no lower tier it does nothing (and
// copies nothing). New entries are handed down on a best effort basis: the relay's table
// holds them, and hands them to aging relief through the outbox when it evicts them.
func (r *Relay) enqueue(key []byte, e sessioncache.Entry) {
	lower := r.lowerTier()
	if lower == nil {
		return
	}
	if sb, ok := lower.(StreamBackend); ok {
		// Queued on the connection now, in order with what follows for the key: no copy,
		// no worker, no wake-up.
		if err := sb.SetStream(r.cfg.AuthPath, key, e); err != nil && r.ctx.Err() == nil {
			r.log.Debug("relay: streaming a new entry to the lower tier failed (the relay's table keeps it)", "err", err)
		}
		return
	}
	buf := make([]byte, len(key)+len(e.Value)) // one allocation for both copies
	copy(buf, key)
	copy(buf[len(key):], e.Value)
	j := lowerJob{key: buf[:len(key):len(key)], e: e}
	j.e.Value = buf[len(key):]
	j.seq = r.tombs.Seq()
	// Changes of one key go through one queue, so they reach the lower tier in order.
	q := r.jobs[xxhash.Sum64(j.key)%uint64(len(r.jobs))]
	select {
	case q <- j:
	case <-r.ctx.Done():
	}
}

// lowerWorker hands queued new entries to the lower tier.
func (r *Relay) lowerWorker(jobs <-chan lowerJob) {
	defer r.wg.Done()
	d := deadline{span: r.cfg.RequestTimeout}
	defer d.stop()
	for {
		select {
		case <-r.ctx.Done():
			return
		case j := <-jobs:
			lower := r.lowerTier()
			if lower == nil || r.tombs.DeletedAfterRev(j.key, j.seq, j.e.Rev) {
				continue // a logout overtook it
			}
			err := lower.Set(d.get(r.ctx), r.cfg.AuthPath, j.key, j.e)
			if err != nil && r.ctx.Err() == nil {
				r.log.Debug("relay: handing a new entry to the lower tier failed (the relay's table keeps it)", "err", err)
			}
		}
	}
}

// Shutdown stops accepting, closes every connection, stops handing changes down and closes
// the table, or returns ctx's error if that takes too long. It does not close cfg.Lower.
func (r *Relay) Shutdown(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		err = r.srv.Shutdown(ctx)
		r.cancel()
		r.inflight.Wait() // requests that went to the tier below
		r.wg.Wait()
		r.outbox.close()
		if cerr := r.table.Close(); err == nil {
			err = cerr
		}
	})
	return err
}

// Close is Shutdown without a deadline.
func (r *Relay) Close() error { return r.Shutdown(context.Background()) }

func clone(b []byte) []byte { return append([]byte(nil), b...) }

var bufPool = sync.Pool{New: func() any { b := make([]byte, 0, 1024); return &b }}

func getBuf() []byte { return *(bufPool.Get().(*[]byte)) }

func putBuf(b []byte) {
	if cap(b) <= 1<<16 {
		b = b[:0]
		bufPool.Put(&b)
	}
}

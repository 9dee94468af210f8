package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/internal/rendezvous"
	"github.com/globalsession/globalsession/internal/throttle"
	"github.com/globalsession/globalsession/internal/wallclock"
	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/relay/internal/endpoint"
	"github.com/globalsession/globalsession/sessioncache"
)

// SiblingConfig configures the relay's sibling endpoint (the config files' half_edge mode), the
// server that pressure-relief servers connect to.
type SiblingConfig struct {
	// Addr is where pressure-relief servers connect, host:port.
	Addr string
	// ServerOptions holds TLS, secret, frame limit, heartbeat, timeouts and logger.
	ServerOptions
	// AuthPath is the path relief servers subscribe on. Empty means DefaultAuthPath.
	AuthPath string
	// Table, when set, is the relay's table, attached to (never created: Create is
	// forced off, the config files' am_initializer false). Give the relay's config as it is:
	// the sibling adds RecordOverhead as the relay does.
	Table *sessioncache.Config
	// Replicas is how many relief servers of each kind hold each key. Zero means 1; 2 is
	// recommended so a relief server can die without its keys becoming unreadable.
	Replicas int
	// Members are relief servers that own keys even before they first connect, as
	// "kind/id" (for example "aging/aging-1"). Every relief server that connects is added
	// to the members for good and recorded in HintDir, so the keys a server owns do not
	// move to the others while it is away.
	Members []string
	// HintDir is where the sibling keeps what absent relief servers should receive
	// (hinted handoff) and the list of members. Empty means the relay table's path with
	// ".hints" appended when Table is set, else a new temporary directory, removed on
	// Shutdown (then hints do not survive the sibling's restart).
	HintDir string
	// HintLimit bounds the bytes of hints kept for one relief server. When it is reached
	// the sibling refuses what that server should receive, and the relay keeps it in its
	// outbox and tries again later. Zero means 256 MiB.
	HintLimit int64
}

// Sibling is the endpoint below the relay. Pressure-relief servers are its clients: they
// subscribe on the auth path, and the sibling hands them the entries the relay stores,
// deletes and evicts, and asks them for entries the relay misses. It implements Backend,
// which is how the relay reaches it (in process, or over IPC when it runs as a child).
//
// Keys are spread over the members (every relief server ever connected, and the configured
// ones) by rendezvous hashing of their ids, whether they are connected or not: what an
// absent owner should receive is kept for it on disk and handed over when it is back.
type Sibling struct {
	cfg   SiblingConfig
	srv   *endpoint.Server
	table *sessioncache.Table
	log   *slog.Logger
	hints *hintStore
	// tempHints is the temporary hint directory the sibling made (no HintDir and no
	// table): removed on Shutdown, since nothing could find it again.
	tempHints string
	once      sync.Once
	ctx       context.Context
	stop      context.CancelFunc
	wg        sync.WaitGroup
	kick      chan struct{}

	unplaced     atomic.Int64 // evictions no aging server was ever known to take
	getErrors    atomic.Int64 // lookups a relief server failed
	unplacedWarn throttle.Throttle

	mu         sync.Mutex
	rings      *reliefRings
	members    map[string]bool // relief names
	delivering map[string]bool
}

// reliefRings spreads keys over the relief members of each kind, as of one generation of
// the subscriptions and the members.
type reliefRings struct {
	gen       uint64
	members   int
	expansion *rendezvous.Ring[string]
	aging     *rendezvous.Ring[string]
	connected map[string]*endpoint.Peer // relief name -> its connection
	// since is, for each connected relief server, when these rings (or the first of the
	// rings before them that had it connected) first counted it, in unix nanoseconds: the
	// stream of new entries reaches it from then on (see Get).
	since  map[*endpoint.Peer]int64
	relief []*endpoint.Peer // connected relief servers
	other  []*endpoint.Peer // subscribers that are not relief servers: they get everything
	all    []*endpoint.Peer
}

var _ DurableBackend = (*Sibling)(nil)

// NewSibling binds cfg.Addr and starts serving relief servers. Stop it with Shutdown.
func NewSibling(cfg SiblingConfig) (*Sibling, error) {
	cfg.ServerOptions = endpoint.ServerDefaults(cfg.ServerOptions)
	if cfg.AuthPath == "" {
		cfg.AuthPath = DefaultAuthPath
	}
	if cfg.Replicas <= 0 {
		cfg.Replicas = 1
	}
	if cfg.HintLimit == 0 {
		cfg.HintLimit = 256 << 20
	}
	s := &Sibling{cfg: cfg, log: cfg.Logger, members: map[string]bool{}, delivering: map[string]bool{},
		kick: make(chan struct{}, 1)}
	s.ctx, s.stop = context.WithCancel(context.Background())
	for _, m := range cfg.Members {
		kind, id, _ := strings.Cut(m, "/")
		name := ReliefName(kind, id)
		if _, _, ok := ParseReliefName(name); !ok {
			return nil, fmt.Errorf("sibling: member %q is not kind/id with kind %q or %q", m, ReliefExpansion, ReliefAging)
		}
		s.members[name] = true
	}
	if cfg.Table != nil {
		tcfg := TableWithRevisions(*cfg.Table)
		tcfg.Create = false
		t, err := sessioncache.Open(tcfg)
		if err != nil {
			return nil, fmt.Errorf("sibling: attach the relay's table: %w", err)
		}
		s.table = t
	}
	dir := cfg.HintDir
	if dir == "" && s.table != nil {
		dir = s.table.Path() + ".hints"
	}
	if dir == "" {
		tmp, err := os.MkdirTemp("", "global-sessions-hints-")
		if err != nil {
			s.closeTable()
			return nil, err
		}
		dir, s.tempHints = tmp, tmp
		s.log.Warn("sibling: no hint directory configured; hints for absent relief servers will not survive a restart", "dir", dir)
	}
	hints, err := openHints(dir, cfg.HintLimit, s.log)
	if err != nil {
		s.closeTable()
		return nil, err
	}
	s.hints = hints
	recorded := hints.members()
	for _, name := range recorded {
		s.members[name] = true
	}
	if len(s.members) != len(recorded) {
		s.recordMembers()
	}
	s.srv, err = endpoint.Listen(cfg.Addr, cfg.ServerOptions, siblingHandler{s})
	if err != nil {
		s.closeTable()
		return nil, err
	}
	s.log.Debug("sibling: serving relief servers", "addr", s.srv.Addr().String(), "auth_path", cfg.AuthPath,
		"members", len(s.members), "hints", dir)
	s.srv.Serve()
	s.wg.Add(1)
	go s.handOff()
	return s, nil
}

// closeTable undoes what NewSibling did before it failed: the table, a temporary hint
// directory.
func (s *Sibling) closeTable() {
	if s.table != nil {
		s.table.Close()
	}
	if s.tempHints != "" {
		os.RemoveAll(s.tempHints)
	}
}

// Addr returns the address relief servers connect to.
func (s *Sibling) Addr() net.Addr { return s.srv.Addr() }

// Table returns the attached relay table, or nil.
func (s *Sibling) Table() *sessioncache.Table { return s.table }

// Relief returns how many relief servers (and other subscribers) are subscribed on the
// auth path.
func (s *Sibling) Relief() int { return len(s.currentRings().all) }

// ReliefOf returns how many relief servers of a kind (ReliefExpansion or ReliefAging) are
// subscribed on the auth path.
func (s *Sibling) ReliefOf(kind string) int {
	n := 0
	for _, p := range s.currentRings().relief {
		if k, _, _ := ParseReliefName(p.ID()); k == kind {
			n++
		}
	}
	return n
}

// Server returns the counts of the sibling's connections and requests.
func (s *Sibling) Server() ServerStats { return s.srv.Stats() }

// Requests returns, for each op the sibling answered, its replies by status and their
// latencies.
func (s *Sibling) Requests() []RequestStats { return s.srv.RequestStats() }

// GetErrors returns how many lookups a relief server failed (its error, not a miss). A
// lookup that no server answered with the entry and that one failed returns an error, not
// ErrNotFound.
func (s *Sibling) GetErrors() int64 { return s.getErrors.Load() }

// Members returns the relief servers that own keys, as relief names (see ReliefName),
// connected or not.
func (s *Sibling) Members() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.members))
	for m := range s.members {
		out = append(out, m)
	}
	sort.Strings(out)
	return out
}

// Forget removes a relief server (a relief name, see ReliefName) from the members for good,
// when it is decommissioned: its keys move to the other servers of its kind, and what was
// kept for it is dropped. Without it, a server that never comes back keeps its hints
// until they reach HintLimit, after which what it should receive is refused. A server that
// connects again under a forgotten name joins as a new member, with whatever its store
// holds: remove its store (or give it a new id) before bringing it back.
func (s *Sibling) Forget(name string) error {
	if _, _, ok := ParseReliefName(name); !ok {
		return fmt.Errorf("sibling: %q is not a relief name", name)
	}
	s.mu.Lock()
	delete(s.members, name)
	s.recordMembers()
	s.rings = nil
	s.mu.Unlock()
	return s.hints.drop(name)
}

// HintStats are the counts of the sibling's hinted handoff.
type HintStats struct {
	Added     int64 // changes kept for absent relief servers
	Delivered int64 // changes handed over when they came back
	Refused   int64 // changes refused because a server's hints were at their limit
	Unplaced  int64 // evictions lost because no aging relief server was ever known
}

// Hints returns the counts of the sibling's hinted handoff.
func (s *Sibling) Hints() HintStats {
	return HintStats{Added: s.hints.added.Load(), Delivered: s.hints.delivered.Load(), Refused: s.hints.refused.Load(),
		Unplaced: s.unplaced.Load()}
}

// warnUnplaced logs evictions that no aging server takes, at most once a minute.
func (s *Sibling) warnUnplaced() {
	if !s.unplacedWarn.Allow(time.Minute) {
		return
	}
	s.log.Error("sibling: the relay's table evicts entries and no aging relief server is known to keep them; they are lost",
		"lost_total", s.unplaced.Load())
}

// currentRings returns the rings for the current subscriptions and members, rebuilding
// them when either changed. A relief server seen for the first time becomes a member.
func (s *Sibling) currentRings() *reliefRings {
	gen := s.srv.Generation()
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.rings != nil && s.rings.gen == gen && s.rings.members == len(s.members) {
		return s.rings
	}
	peers, gen := s.srv.Subscribers(s.cfg.AuthPath)
	r := &reliefRings{gen: gen, all: peers, connected: map[string]*endpoint.Peer{}, since: map[*endpoint.Peer]int64{}}
	added := false
	now := wallclock.Nanos()
	for _, p := range peers {
		if _, _, ok := ParseReliefName(p.ID()); !ok {
			r.other = append(r.other, p)
			continue
		}
		r.relief = append(r.relief, p)
		r.connected[p.ID()] = p
		r.since[p] = now
		if s.rings != nil {
			if t, ok := s.rings.since[p]; ok {
				r.since[p] = t
			}
		}
		if !s.members[p.ID()] {
			s.members[p.ID()], added = true, true
			s.log.Info("sibling: a new relief server joins the members", "member", p.ID())
		}
	}
	if added {
		s.recordMembers()
	}
	var exp, aging []string
	for m := range s.members {
		switch kind, _, _ := ParseReliefName(m); kind {
		case ReliefExpansion:
			exp = append(exp, m)
		case ReliefAging:
			aging = append(aging, m)
		}
	}
	r.members = len(s.members)
	name := func(m string) string { return m }
	r.expansion, r.aging = rendezvous.New(exp, name), rendezvous.New(aging, name)
	s.rings = r
	return r
}

// recordMembers writes the members beside the hints; s.mu is held (or s is not shared yet).
func (s *Sibling) recordMembers() {
	names := make([]string, 0, len(s.members))
	for m := range s.members {
		names = append(names, m)
	}
	sort.Strings(names)
	if err := s.hints.remember(names); err != nil {
		s.log.Error("sibling: recording the members", "err", err)
	}
}

// ServeRelayConn serves the relay over an already connected link (the inherited socket of
// child mode). The relay speaks first, as a client. The returned channel is closed when
// the link ends, which tells a child sibling its relay is gone.
func (s *Sibling) ServeRelayConn(nc net.Conn) <-chan struct{} {
	done := make(chan struct{})
	p := s.srv.ServeInherited(nc, "relay (ipc)")
	if p == nil {
		close(done)
		return done
	}
	go func() {
		<-p.Done()
		close(done)
	}()
	return done
}

// serveRequest handles a peer's entry request. Entry requests come from above (the
// relay): they are answered by asking the relief servers.
func (s *Sibling) serveRequest(p *endpoint.Peer, f *wire.Frame) {
	switch f.Op {
	case wire.OpGet, wire.OpSet, wire.OpDelete, wire.OpEvict:
		p.ServeBackend(s, f)
	case wire.OpPublish:
		if f.Flags&wire.FlagNoFanout != 0 {
			p.Reply(f.ID, wire.StatusOK, 0, nil, 0) // the sibling stores nothing: nothing to do
			return
		}
		s.srv.FanOut(&wire.Frame{Op: wire.OpMessage, Path: f.Path, Key: f.Key, Value: f.Value, Expiry: f.Expiry, Rev: f.Rev}, p)
		p.Reply(f.ID, wire.StatusOK, 0, nil, 0)
	default:
		p.ReplyError(f.ID, fmt.Sprintf("%s is not a request the sibling serves", f.Op))
	}
}

// siblingHandler is the sibling as its server's endpoint.Handler: it serves the relay's
// entry requests.
type siblingHandler struct{ s *Sibling }

func (h siblingHandler) ServeRequest(p *endpoint.Peer, f *wire.Frame) { h.s.serveRequest(p, f) }

// ErrOwnersBehind is the error of a lookup that found nothing while no aging relief server
// that owns the key could vouch for the miss: each was away, or has not yet received all
// that was kept for it while it was. The entry may exist; ask again later.
var ErrOwnersBehind = errors.New("sibling: no aging relief server that owns the key is connected and up to date")

// Get asks the connected relief servers that may hold key, of both kinds, all at once, and
// answers with the newest version among their answers: an entry, or not found with the
// newest tombstone. The answer is final when one of the key's aging servers that holds all
// it was given (it is connected and nothing is kept for it as hints) answered, since the
// relay's table hands every entry it pushes out to those servers and every deletion to
// every relief server. Without such an answer:
//   - a miss is ErrOwnersBehind, since the entry may have been pushed out to an aging
//     server that is away;
//   - a tombstone is ErrOwnersBehind too, since a newer version may have been pushed out
//     to such a server (an expansion server's tombstone says nothing of the versions set
//     after it, which the relay hands expansion servers only while they are connected);
//   - an entry is the answer only if a server that holds all it was given (of either
//     kind) answered with that very version: one that is behind may lack a deletion kept
//     for it as hints, and serving its entry would undo a logout (and a miss of an
//     up-to-date expansion server says nothing either, since it keeps tombstones only for
//     its short MaxLife); and an expansion server's version only if it was written (by
//     its revision, less streamClockMargin) after the stream of new entries began to reach
//     that server on its connection, since of a version from before it may have missed
//     the next.
//
// When none has the entry and one of them failed, it returns that failure, not
// ErrNotFound.
func (s *Sibling) Get(ctx context.Context, path string, key []byte) (sessioncache.Entry, error) {
	r := s.currentRings()
	type owner struct {
		p       *endpoint.Peer
		current bool // a relief server that holds all it was given
		aging   bool // one of the key's aging servers
		// since is, for an expansion server, when the stream of new entries began to reach
		// it on this connection: of versions before then it may hold one and have missed
		// the next.
		since int64
	}
	var ownerBuf [8]owner
	owners := ownerBuf[:0]
	for _, p := range r.other {
		owners = append(owners, owner{p: p})
	}
	for _, m := range r.expansion.Owners(nil, key, s.cfg.Replicas) {
		if p := r.connected[m]; p != nil {
			owners = append(owners, owner{p: p, current: !s.hints.has(m), since: r.since[p]})
		}
	}
	aging := r.aging.Owners(nil, key, s.cfg.Replicas)
	vouch := len(aging) == 0 // no aging server known: nothing pushed out was kept anywhere
	for _, m := range aging {
		if p := r.connected[m]; p != nil {
			current := !s.hints.has(m)
			owners = append(owners, owner{p: p, current: current, aging: true})
			vouch = vouch || current
		}
	}
	if len(owners) == 0 {
		if !vouch {
			return sessioncache.Entry{}, ErrOwnersBehind
		}
		return sessioncache.Entry{}, ErrNotFound
	}
	type answer struct {
		o   owner
		e   sessioncache.Entry
		err error
	}
	answers := make(chan answer, len(owners))
	ask := func(o owner) {
		a := answer{o: o}
		a.e, a.err = o.p.Get(ctx, path, key)
		answers <- a
	}
	// All at once; the last on this goroutine, so that one owner (the common case) costs
	// no hand-off.
	for _, o := range owners[:len(owners)-1] {
		go ask(o)
	}
	ask(owners[len(owners)-1])
	var best sessioncache.Entry
	found := false
	now := time.Now()
	final := len(aging) == 0                // an up-to-date aging server answered (or none is known)
	vouched, anyVouched := uint64(0), false // the newest version a server that holds all it was given holds
	var firstErr error
	for range owners {
		a := <-answers
		if a.o.current && a.o.aging && (a.err == nil || a.e.Deleted || errors.Is(a.err, ErrNotFound)) {
			final = true
		}
		switch {
		case a.err == nil || a.e.Deleted:
			if !found || outranks(a.e, best, now) {
				best, found = a.e, true
			}
			if a.o.current && (a.o.aging || a.e.Rev >= uint64(a.o.since+int64(streamClockMargin))) {
				vouched, anyVouched = max(vouched, a.e.Rev), true
			}
		case !errors.Is(a.err, ErrNotFound) && firstErr == nil:
			firstErr = a.err
		}
	}
	if firstErr != nil {
		s.getErrors.Add(1)
		s.log.Debug("sibling: a relief server failed a get", "err", firstErr)
	}
	switch {
	case !found && firstErr != nil:
		// Not found where it was asked, but a server that may hold it did not answer:
		// "not found" would read as "logged out".
		return sessioncache.Entry{}, fmt.Errorf("sibling: a relief server that may hold the key failed: %w", firstErr)
	case !final && (!found || best.Deleted || !anyVouched || vouched < best.Rev):
		return sessioncache.Entry{}, ErrOwnersBehind
	case !found:
		return sessioncache.Entry{}, ErrNotFound
	case best.Deleted:
		return best, ErrNotFound
	}
	return best, nil
}

// outranks reports whether a relief server's answer e replaces best, another's, in Get:
// e is newer (Entry.Newer), except that a live entry and a tombstone of the same revision
// are one version, which reads as the deletion of its revision where it expired. A server
// may keep a version for less long than its expiry (MaxLife caps an expansion server's),
// so the live copy wins while its own expiry is still to come; and of two live copies of
// a revision, the one with the later expiry.
func outranks(e, best sessioncache.Entry, now time.Time) bool {
	if e.Rev != 0 && e.Rev == best.Rev && !e.Deleted && !best.Deleted {
		// Two copies of one version: the one kept the longer (not capped) says more.
		return !best.Expiry.IsZero() && (e.Expiry.IsZero() || e.Expiry.After(best.Expiry))
	}
	if e.Rev != 0 && e.Rev == best.Rev && e.Deleted != best.Deleted {
		live := e
		if e.Deleted {
			live = best
		}
		stillLive := live.Expiry.IsZero() || live.Expiry.After(now)
		return e.Deleted != stillLive
	}
	return e.Newer(best)
}

// streamClockMargin is how far a host's clock (which gives a version its revision) may be
// ahead of the sibling's for Get to trust an expansion server's version: one written this
// long after the stream began to reach the server was streamed to it, and so was every
// newer one.
const streamClockMargin = time.Second

// Set hands a new entry the relay stored to the key's connected expansion servers, as a
// stream without replies: the relay's table holds the entry, so an expansion server that
// misses it loses nothing.
func (s *Sibling) Set(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	r := s.currentRings()
	f := endpoint.EntryFrameValue(wire.OpSet, []byte(path), key, e) // encoded at once by each write
	f.Flags |= wire.FlagNoReply
	var errs []error
	send := func(p *endpoint.Peer) {
		if err := p.WriteDeferred(&f); err != nil {
			errs = append(errs, err)
		}
	}
	for _, p := range r.other {
		send(p)
	}
	var buf [4]string
	for _, m := range r.expansion.Owners(buf[:0], key, s.cfg.Replicas) {
		if p := r.connected[m]; p != nil {
			send(p)
		}
	}
	return errors.Join(errs...)
}

// SetStream is Set: it never waits (see StreamBackend).
func (s *Sibling) SetStream(path string, key []byte, e sessioncache.Entry) error {
	return s.Set(context.Background(), path, key, e)
}

var _ StreamBackend = (*Sibling)(nil)

// SetDurable hands a new entry to the key's aging servers with replies, and to its
// expansion servers as Set does; it returns nil only once every aging owner has confirmed
// it, and fails at once when an owner is not connected or none is known.
func (s *Sibling) SetDurable(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	r := s.currentRings()
	owners := r.aging.Owners(nil, key, s.cfg.Replicas)
	if len(owners) == 0 {
		return errors.New("no aging relief server is known to hold the entry")
	}
	var peers []*endpoint.Peer
	for _, m := range owners {
		p := r.connected[m]
		if p == nil {
			return fmt.Errorf("aging relief server %s, an owner of the key, is not connected", m)
		}
		peers = append(peers, p)
	}
	f := endpoint.EntryFrame(wire.OpEvict, path, key, e)
	errs := make(chan error, len(peers))
	for _, p := range peers {
		go func() {
			g := *f
			if err := p.Send(ctx, &g); err != nil {
				errs <- fmt.Errorf("aging relief server %s: %w", p.ID(), err)
				return
			}
			errs <- nil
		}()
	}
	var all []error
	for range peers {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if err := errors.Join(all...); err != nil {
		return err
	}
	return s.Set(ctx, path, key, e)
}

// Delete hands a tombstone to every relief server: the connected ones are asked to keep it,
// and it is kept for every absent member (and for any that could not be asked) until they
// are back. It returns nil once every relief server has it or it is kept for them.
func (s *Sibling) Delete(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	r := s.currentRings()
	e.Deleted = true
	f := endpoint.HandDownFrame(path, HandDown{Key: key, Entry: e, Delete: true})
	targets := map[string]bool{}
	s.mu.Lock()
	for m := range s.members {
		targets[m] = true
	}
	s.mu.Unlock()
	return s.toMembers(ctx, r, f, targets)
}

// Evict hands an entry (or tombstone) the relay's table pushed out to the key's aging
// servers, connected or not (see Delete). With no aging server known and no other
// subscriber, it drops the entry, counts it as unplaced and returns ErrNoOwner.
func (s *Sibling) Evict(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	r := s.currentRings()
	f := endpoint.EntryFrame(wire.OpEvict, path, key, e)
	var buf [4]string
	owners := r.aging.Owners(buf[:0], key, s.cfg.Replicas)
	if len(owners) == 0 && len(r.other) == 0 {
		if !e.Deleted {
			s.unplaced.Add(1)
			s.warnUnplaced()
		}
		return ErrNoOwner
	}
	if len(r.other) == 0 && len(owners) == 1 {
		// One owner (the common case): ask it on this goroutine.
		return s.toMember(ctx, r.connected[owners[0]], owners[0], f)
	}
	targets := make(map[string]bool, len(owners))
	for _, m := range owners {
		targets[m] = true
	}
	return s.toMembers(ctx, r, f, targets)
}

var _ BatchBackend = (*Sibling)(nil)

// HandDownBatch hands each change to the servers Evict or Delete would, with one batch
// (and one reply) per server: evictions to the key's aging servers, deletions to every
// relief server, both to the subscribers that are not relief servers. What an absent
// member, or one that does not confirm, should get is kept for it as hints. It fails only
// if a hint cannot be kept; with no aging server known and no other subscriber, the
// evictions are dropped and counted as unplaced, and it returns ErrNoOwner.
func (s *Sibling) HandDownBatch(ctx context.Context, path string, batch []HandDown) error {
	frames := make([]*wire.Frame, len(batch))
	for i, h := range batch {
		frames[i] = endpoint.HandDownFrame(path, h)
	}
	return s.handDownFrames(ctx, frames)
}

// handDownFrames is HandDownBatch of the frames that carry the changes (evicts and
// deletes, as HandDownFrame makes them): what the relay's outbox holds, handed over as
// they are.
func (s *Sibling) handDownFrames(ctx context.Context, all []*wire.Frame) error {
	r := s.currentRings()
	var members []string
	perMember := map[string][]*wire.Frame{}
	var buf [4]string
	dropped := false // evictions were dropped: no aging server is known
	for _, f := range all {
		var targets []string
		if f.Op == wire.OpDelete {
			if members == nil {
				members = s.Members()
			}
			targets = members
		} else if targets = r.aging.Owners(buf[:0], f.Key, s.cfg.Replicas); len(targets) == 0 && len(r.other) == 0 {
			dropped = true
			if f.Flags&wire.FlagDeleted == 0 {
				s.unplaced.Add(1)
				s.warnUnplaced()
			}
		}
		for _, m := range targets {
			frames := perMember[m]
			if frames == nil {
				frames = make([]*wire.Frame, 0, len(all))
			}
			perMember[m] = append(frames, f)
		}
	}
	type result struct {
		member string // empty for a subscriber that is not a relief server
		frames []*wire.Frame
		err    error
	}
	type job struct {
		p      *endpoint.Peer
		member string
		frames []*wire.Frame
	}
	var jobBuf [4]job
	jobs := jobBuf[:0]
	for _, p := range r.other {
		jobs = append(jobs, job{p, "", all})
	}
	var errs []error
	keep := func(m string, frames []*wire.Frame) {
		for _, f := range frames {
			if err := s.hints.add(m, f); err != nil {
				errs = append(errs, err)
				return
			}
		}
	}
	for m, frames := range perMember {
		if p := r.connected[m]; p != nil {
			jobs = append(jobs, job{p, m, frames})
		} else {
			keep(m, frames)
		}
	}
	run := func(j job) result {
		packed, err := endpoint.PackBatches(j.frames)
		for _, f := range packed {
			if err != nil {
				break
			}
			g := *f
			err = j.p.SendDeferred(ctx, &g)
		}
		endpoint.ReleaseBatches(j.frames, packed)
		return result{member: j.member, frames: j.frames, err: err}
	}
	results := make(chan result, len(jobs))
	if len(jobs) == 1 {
		results <- run(jobs[0]) // one server to send to (the common case): no goroutine
	} else {
		for _, j := range jobs {
			go func() { results <- run(j) }()
		}
	}
	for range jobs {
		res := <-results
		if res.err == nil {
			continue
		}
		if res.member == "" {
			s.log.Debug("sibling: a subscriber did not confirm a batch", "err", res.err)
			continue
		}
		s.log.Debug("sibling: a relief server did not confirm a batch; keeping it as hints", "member", res.member, "err", res.err)
		keep(res.member, res.frames)
		s.kickHandOff()
	}
	if err := errors.Join(errs...); err != nil || !dropped {
		return err
	}
	return ErrNoOwner
}

// toMembers sends f, with replies, to the connected subscribers that are not relief servers
// and to the members named in targets, keeping it as a hint for each member that is absent
// or does not confirm it. It fails only if a hint cannot be kept.
func (s *Sibling) toMembers(ctx context.Context, r *reliefRings, f *wire.Frame, targets map[string]bool) error {
	type result struct {
		member string // empty for a subscriber that is not a relief server
		err    error
	}
	results := make(chan result, len(targets)+len(r.other))
	sent := 0
	for _, p := range r.other {
		sent++
		go func() {
			g := *f
			results <- result{err: p.Send(ctx, &g)}
		}()
	}
	var errs []error
	for m := range targets {
		p := r.connected[m]
		if p == nil {
			if err := s.hints.add(m, f); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		sent++
		go func() {
			g := *f
			results <- result{member: m, err: p.SendDeferred(ctx, &g)}
		}()
	}
	for range sent {
		res := <-results
		if res.err == nil {
			continue
		}
		if res.member == "" {
			s.log.Debug("sibling: a subscriber did not confirm a change", "err", res.err)
			continue
		}
		s.log.Debug("sibling: a relief server did not confirm a change; keeping it as a hint", "member", res.member, "err", res.err)
		if err := s.hints.add(res.member, f); err != nil {
			errs = append(errs, err)
		} else {
			s.kickHandOff()
		}
	}
	return errors.Join(errs...)
}

// toMember sends f to member m over p (nil when m is absent), keeping it as a hint when m
// is absent or does not confirm it.
func (s *Sibling) toMember(ctx context.Context, p *endpoint.Peer, m string, f *wire.Frame) error {
	if p != nil {
		g := *f
		err := p.SendDeferred(ctx, &g)
		if err == nil {
			return nil
		}
		s.log.Debug("sibling: a relief server did not confirm a change; keeping it as a hint", "member", m, "err", err)
		defer s.kickHandOff()
	}
	return s.hints.add(m, f)
}

func (s *Sibling) kickHandOff() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// handOff delivers the hints of connected relief servers: when one subscribes, when a
// hint is added for one that is connected, and every second.
func (s *Sibling) handOff() {
	defer s.wg.Done()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	var gen uint64
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-tick.C:
		case <-s.kick:
		case <-s.srv.Changed(gen):
		}
		gen = s.srv.Generation()
		r := s.currentRings()
		for name, p := range r.connected {
			s.mu.Lock()
			busy := s.delivering[name]
			if !busy && s.hints.has(name) {
				s.delivering[name] = true
				s.wg.Add(1)
				go s.deliverHints(name, p)
			}
			s.mu.Unlock()
		}
	}
}

// deliverHints hands name's hints to p until none are left or a delivery fails.
func (s *Sibling) deliverHints(name string, p *endpoint.Peer) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		delete(s.delivering, name)
		s.mu.Unlock()
	}()
	for s.ctx.Err() == nil {
		frames, path, err := s.hints.take(name)
		if err != nil {
			s.log.Error("sibling: reading hints", "member", name, "err", err)
			return
		}
		if path == "" {
			return
		}
		if err := s.sendAll(p, frames); err != nil {
			s.log.Info("sibling: handing hints over stopped; they stay for the next try", "member", name, "err", err)
			return
		}
		s.hints.done(name, path, len(frames))
		s.log.Info("sibling: handed hints over to a returning relief server", "member", name, "changes", len(frames))
	}
}

// sendAll sends frames to p with replies, in batches, and fails if any is not confirmed.
func (s *Sibling) sendAll(p *endpoint.Peer, frames []*wire.Frame) error {
	packed, err := endpoint.PackBatches(frames)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithCancel(s.ctx)
	defer cancel()
	sem := make(chan struct{}, 8)
	errc := make(chan error, len(packed))
	for _, f := range packed {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		go func() {
			defer func() { <-sem }()
			rctx, rcancel := context.WithTimeout(ctx, s.cfg.RequestTimeout)
			defer rcancel()
			err := p.Send(rctx, f)
			if err != nil {
				cancel()
			}
			errc <- err
		}()
	}
	var first error
	for range packed {
		if err := <-errc; err != nil && first == nil {
			first = err
		}
	}
	return first
}

// Shutdown stops serving, closes every connection and detaches from the table.
func (s *Sibling) Shutdown(ctx context.Context) error {
	var err error
	s.once.Do(func() {
		err = s.srv.Shutdown(ctx)
		s.stop()
		s.wg.Wait()
		s.hints.close()
		if s.tempHints != "" {
			os.RemoveAll(s.tempHints)
		}
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

package relay

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/globalsession/globalsession/internal/tombstone"
	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/sessioncache"
)

// DefaultAuthPath is the path sessions are published on when a config names none (the
// seed's auth_path).
const DefaultAuthPath = "auths"

// RelayConfig configures the midway relay (the seed's edge_supported_relay mode).
type RelayConfig struct {
	// Addr is where front ends connect, host:port. ":0" picks a free port (see Addr()).
	Addr string
	// ServerOptions holds TLS, secret, frame limit, heartbeat, timeouts and logger.
	ServerOptions
	// AuthPath is the path type whose publications the relay intercepts: stores in its
	// table, hands to its sibling and fans out. Empty means DefaultAuthPath.
	AuthPath string
	// Table is the relay's own shared-memory table. The relay creates it (Create is forced
	// on, the seed's am_initializer) and hands its evictions to the sibling.
	Table sessioncache.Config
	// NoFanOut turns off delivering publications on the auth path to the other subscribed
	// front ends (on by default).
	NoFanOut bool
	// Lower is the tier below: the sibling. Nil means none (misses end at the relay) until
	// SetLower. NewSibling's *Sibling, a *Client to a sibling elsewhere, or a ChildSibling
	// are typical.
	Lower Backend
	// TombstoneTTL is how long a deleted key is refused from lower tiers, so a fetch that
	// raced with the delete cannot bring it back. Zero means one minute.
	TombstoneTTL time.Duration
	// LowerWorkers is how many goroutines hand publications, deletions and evictions to
	// the lower tier. Zero means 64.
	LowerWorkers int
}

// Relay is the midway relay: a server for front ends with its own table, in front of the
// sibling that reaches the pressure-relief servers.
type Relay struct {
	cfg    RelayConfig
	srv    *server
	table  *sessioncache.Table
	lower  atomic.Pointer[Backend]
	log    *slog.Logger
	jobs   []chan lowerJob // one queue per worker; a key always goes to the same one
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	tombs  *tombstone.Set
	once   sync.Once
}

// lowerJob is a change to hand to the lower tier.
type lowerJob struct {
	op         wire.Op
	key, value []byte
	expiry     int64
	seq        uint64 // the deletion sequence when it was queued: a later deletion cancels it
}

// NewRelay opens the relay's table, binds cfg.Addr and starts serving. Stop it with
// Shutdown or Close.
func NewRelay(cfg RelayConfig) (*Relay, error) {
	cfg.ServerOptions.setDefaults()
	if cfg.AuthPath == "" {
		cfg.AuthPath = DefaultAuthPath
	}
	if cfg.TombstoneTTL == 0 {
		cfg.TombstoneTTL = time.Minute
	}
	if cfg.LowerWorkers == 0 {
		cfg.LowerWorkers = 64
	}
	r := &Relay{cfg: cfg, log: cfg.Logger, jobs: make([]chan lowerJob, cfg.LowerWorkers),
		tombs: tombstone.New(cfg.TombstoneTTL)}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	r.SetLower(cfg.Lower)
	tcfg := cfg.Table
	tcfg.Create = true
	if tcfg.Logger == nil {
		tcfg.Logger = cfg.Logger
	}
	tcfg.OnEvict = r.evicted
	t, err := sessioncache.Open(tcfg)
	if err != nil {
		return nil, fmt.Errorf("relay: table: %w", err)
	}
	r.table = t
	ln, err := listen(cfg.Addr, &cfg.ServerOptions)
	if err != nil {
		t.Close()
		return nil, err
	}
	r.srv = newServer(ln, cfg.ServerOptions, r)
	for i := range r.jobs {
		r.jobs[i] = make(chan lowerJob, 256)
		r.wg.Add(1)
		go r.lowerWorker(r.jobs[i])
	}
	r.srv.serve()
	r.log.Info("relay: serving", "addr", ln.Addr().String(), "auth_path", cfg.AuthPath, "table", t.Path())
	return r, nil
}

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
func (r *Relay) Addr() net.Addr { return r.srv.ln.Addr() }

// Table returns the relay's table.
func (r *Relay) Table() *sessioncache.Table { return r.table }

// serveRequest handles a front end's entry request.
func (r *Relay) serveRequest(p *peer, f *wire.Frame) {
	c := p.c
	auth := string(f.Path) == r.cfg.AuthPath
	switch f.Op {
	case wire.OpPublish, wire.OpSet, wire.OpEvict:
		if !auth {
			if f.Op == wire.OpPublish {
				r.srv.fanOut(&wire.Frame{Op: wire.OpMessage, Path: f.Path, Key: f.Key, Value: f.Value, Expiry: f.Expiry}, p)
				c.reply(f.ID, wire.StatusOK, 0, nil, 0)
				return
			}
			c.replyError(f.ID, fmt.Sprintf("%s: path %q is not stored here (the auth path is %q)", f.Op, f.Path, r.cfg.AuthPath))
			return
		}
		if err := r.store(f.Key, f.Value, f.Expiry); err != nil {
			c.replyError(f.ID, err.Error())
			return
		}
		if f.Op == wire.OpPublish && !r.cfg.NoFanOut && f.Flags&wire.FlagNoFanout == 0 {
			r.srv.fanOut(&wire.Frame{Op: wire.OpMessage, Path: f.Path, Key: f.Key, Value: f.Value, Expiry: f.Expiry}, p)
		}
		c.reply(f.ID, wire.StatusOK, 0, nil, 0)
	case wire.OpGet:
		if !auth {
			c.replyError(f.ID, fmt.Sprintf("get: path %q is not stored here", f.Path))
			return
		}
		r.get(c, f)
	case wire.OpDelete:
		if !auth {
			c.replyError(f.ID, fmt.Sprintf("delete: path %q is not stored here", f.Path))
			return
		}
		existed, err := r.remove(f.Key)
		if err != nil {
			c.replyError(f.ID, err.Error())
			return
		}
		r.srv.fanOut(&wire.Frame{Op: wire.OpMessage, Flags: wire.FlagDeleted, Path: f.Path, Key: f.Key}, p)
		var flags uint8
		if existed {
			flags = wire.FlagExisted
		}
		lower := r.lowerTier()
		if lower == nil {
			c.reply(f.ID, wire.StatusOK, flags, nil, 0)
			return
		}
		// A logout is acknowledged once the tiers below have forgotten the key too, so
		// none of them can bring it back.
		id, key := f.ID, clone(f.Key)
		go func() {
			ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
			defer cancel()
			if err := lower.Delete(ctx, r.cfg.AuthPath, key); err != nil {
				c.replyError(id, "delete below the relay: "+err.Error())
				return
			}
			c.reply(id, wire.StatusOK, flags, nil, 0)
		}()
	default:
		c.replyError(f.ID, fmt.Sprintf("%s is not a request a relay serves", f.Op))
	}
}

// store puts an entry in the table and queues it for the lower tier.
func (r *Relay) store(key, value []byte, expiry int64) error {
	r.tombs.Clear(key)
	if err := r.table.Set(key, value, unixTime(expiry)); err != nil {
		return err
	}
	// (An entry already expired reaches relief too; relief drops it.)
	r.enqueue(wire.OpSet, key, value, expiry)
	return nil
}

// remove deletes key from the table and remembers the deletion.
func (r *Relay) remove(key []byte) (bool, error) {
	r.tombs.Add(key)
	return r.table.Delete(key)
}

// get answers from the table, or falls through to the lower tier in a goroutine so the
// connection keeps serving meanwhile.
func (r *Relay) get(c *conn, f *wire.Frame) {
	buf := getBuf()
	v, exp, err := r.table.GetAppend(buf[:0], f.Key)
	if err == nil {
		c.reply(f.ID, wire.StatusValue, 0, v, unixNano(exp))
		putBuf(v)
		return
	}
	putBuf(buf)
	lower := r.lowerTier()
	if !errors.Is(err, sessioncache.ErrNotFound) || lower == nil {
		replyResult(c, f.ID, err)
		return
	}
	id, key := f.ID, clone(f.Key)
	seq := r.tombs.Seq()
	go func() {
		ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
		defer cancel()
		v, exp, err := lower.Get(ctx, r.cfg.AuthPath, key)
		switch {
		case err != nil:
			if !errors.Is(err, ErrNotFound) {
				r.log.Warn("relay: lower tier get failed", "err", err)
				err = ErrNotFound // a missing tier is a miss, not a failure of the front end's request
			}
			replyResult(c, id, err)
		case r.tombs.DeletedAfter(key, seq) || (!exp.IsZero() && !exp.After(time.Now())):
			replyResult(c, id, ErrNotFound)
		default:
			if err := r.table.Set(key, v, exp); err != nil {
				r.log.Warn("relay: caching a lower tier's answer", "err", err)
			}
			c.reply(id, wire.StatusValue, 0, v, unixNano(exp))
		}
	}()
}

// evicted receives what the table pushes out and queues it for the lower tier (aging).
func (r *Relay) evicted(key, value []byte, expiry time.Time) {
	r.enqueue(wire.OpEvict, key, value, unixNano(expiry))
}

// enqueue queues a change for the lower tier, copying key and value; with no lower tier it
// does nothing (and copies nothing).
func (r *Relay) enqueue(op wire.Op, key, value []byte, expiry int64) {
	if r.lowerTier() == nil {
		return
	}
	buf := make([]byte, len(key)+len(value)) // one allocation for both copies
	copy(buf, key)
	copy(buf[len(key):], value)
	j := lowerJob{op: op, key: buf[:len(key):len(key)], value: buf[len(key):], expiry: expiry}
	j.seq = r.tombs.Seq()
	// Changes of one key go through one queue, so they reach the lower tier in order.
	q := r.jobs[xxhash.Sum64(j.key)%uint64(len(r.jobs))]
	select {
	case q <- j:
	case <-r.ctx.Done():
	}
}

// lowerWorker hands queued changes to the lower tier.
func (r *Relay) lowerWorker(jobs <-chan lowerJob) {
	defer r.wg.Done()
	for {
		select {
		case <-r.ctx.Done():
			return
		case j := <-jobs:
			lower := r.lowerTier()
			if lower == nil || r.tombs.DeletedAfter(j.key, j.seq) {
				continue // a logout overtook it: handing it down would bring the key back
			}
			ctx, cancel := context.WithTimeout(r.ctx, r.cfg.RequestTimeout)
			var err error
			switch j.op {
			case wire.OpSet:
				err = lower.Set(ctx, r.cfg.AuthPath, j.key, j.value, unixTime(j.expiry))
			case wire.OpEvict:
				err = lower.Evict(ctx, r.cfg.AuthPath, j.key, j.value, unixTime(j.expiry))
			}
			cancel()
			if err != nil && r.ctx.Err() == nil {
				r.log.Warn("relay: handing to the lower tier failed", "op", j.op.String(), "err", err)
			}
		}
	}
}

// Shutdown stops accepting, closes every connection, stops handing changes down and closes
// the table, or returns ctx's error if that takes too long. It does not close cfg.Lower.
func (r *Relay) Shutdown(ctx context.Context) error {
	var err error
	r.once.Do(func() {
		err = r.srv.shutdown(ctx)
		r.cancel()
		r.wg.Wait()
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

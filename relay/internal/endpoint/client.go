package endpoint

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"os"
	"sync"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/sessioncache"
)

// ClientConfig configures a Client. The zero value of every field but Addr is a documented
// default.
type ClientConfig struct {
	// Addr is the server's host:port.
	Addr string
	// TLS, when set, makes the client speak TLS; it must verify the server (see
	// relay/tlsconfig for building one from the config files' tls block).
	TLS *tls.Config
	// Secret is sent in the hello; a server configured with a secret refuses others.
	Secret string
	// Name identifies this client in the server's logs. Empty means the local host name.
	Name string
	// DialTimeout bounds each connection attempt. Zero means 5s.
	DialTimeout time.Duration
	// RequestTimeout is the deadline of requests whose context has none, enforced within
	// an eighth of it (at most 100ms later) by the connection, without a timer per request.
	// Zero means 5s.
	RequestTimeout time.Duration
	// Heartbeat is how often an idle connection is pinged; a peer silent for two intervals
	// is dead and the client reconnects. Zero means 5s; negative disables heartbeats.
	Heartbeat time.Duration
	// BackoffMin and BackoffMax bound the exponential backoff, with jitter, between
	// connection attempts. Zero means 50ms and 5s.
	BackoffMin, BackoffMax time.Duration
	// WaitForServer is how long requests wait for a server that cannot be reached: once
	// attempts to connect have failed for this long, a request has one attempt made at
	// once (not after the backoff; at most one per BackoffMin) and fails with
	// ErrUnavailable and that attempt's error if it fails. Zero means 2s (a quick restart
	// costs latency, a server that stays down costs a caller one attempt); negative means
	// requests never wait for a failed server.
	WaitForServer time.Duration
	// MaxFrame is the largest frame accepted from the server. Zero means 1 MiB.
	MaxFrame int
	// PollReply is how long a caller alone on the connection, which reads its own reply
	// (a call whose context cannot be cancelled, when no other caller is reading), polls
	// the socket for it before sleeping. A reply that comes while the caller polls wakes
	// no sleeping thread: where idle processors halt, as on many virtual machines, that
	// saves tens of microseconds a round trip, for the processor time spent polling. It
	// polls only while the connection's previous such reply came within PollReply, and
	// never while the Go runtime has one logical processor (GOMAXPROCS 1), where polling
	// would hold the processor the reply needs, nor while other calls on the connection
	// overlapped within the last 10ms. It works under TLS too. Zero means 50µs; negative
	// disables polling.
	PollReply time.Duration
	// Backend answers requests the server sends to this client (a pressure-relief server
	// answers its sibling this way). Nil refuses them.
	Backend Backend
	// Dial, when set, replaces the TCP dialer (for example to use an inherited socket).
	Dial func(ctx context.Context, addr string) (net.Conn, error)
	// Logger receives connection events. Nil means no logging.
	Logger *slog.Logger
}

func (c *ClientConfig) setDefaults() {
	if c.DialTimeout == 0 {
		c.DialTimeout = 5 * time.Second
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 5 * time.Second
	}
	if c.Heartbeat == 0 {
		c.Heartbeat = 5 * time.Second
	}
	if c.BackoffMin == 0 {
		c.BackoffMin = 50 * time.Millisecond
	}
	if c.BackoffMax == 0 {
		c.BackoffMax = 5 * time.Second
	}
	if c.WaitForServer == 0 {
		c.WaitForServer = 2 * time.Second
	}
	if c.PollReply == 0 {
		c.PollReply = 50 * time.Microsecond
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
}

// Client is a connection to one relay server (or sibling endpoint) that many goroutines
// share: requests are pipelined on one connection and matched to replies by id. It
// reconnects with backoff when the connection is lost and re-establishes its subscriptions.
// Every method is safe for concurrent use.
type Client struct {
	cfg    ClientConfig
	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	conn    *conn         // nil while disconnected
	ready   chan struct{} // closed when conn becomes non-nil or the client closes
	failed  chan struct{} // closed (and made anew) when an attempt to connect fails
	nudge   chan struct{} // asks the supervisor to try to connect now, not after its backoff
	lastErr error
	// downSince is when the first of the attempts to connect that have failed since the
	// last connection failed; zero while connected or before any attempt failed.
	downSince time.Time
	// lastFailure is when the last attempt to connect failed.
	lastFailure time.Time
	subs        map[string]func(sessioncache.Change)
	streams     map[string]*streamSub
	queues      map[string]queueMembership
	connects    int
	// pushes: the server may send unasked (a subscription, queue or stream was made, or
	// the client serves a backend), so its connections' reader goroutines read always.
	pushes bool
}

var _ sessioncache.Remote = (*Client)(nil)

// NewClient returns a client that connects to cfg.Addr in the background and keeps
// reconnecting until Close. A request made while it is disconnected waits for the
// connection, up to its deadline; once attempts to connect have failed for
// cfg.WaitForServer (the server is down, or refuses the hello), a request has one attempt
// made at once and fails with ErrUnavailable and its error if it fails too.
func NewClient(cfg ClientConfig) (*Client, error) {
	if cfg.Addr == "" && cfg.Dial == nil {
		return nil, errors.New("relay: client config: addr is empty")
	}
	cfg.setDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	c := &Client{cfg: cfg, ctx: ctx, cancel: cancel, ready: make(chan struct{}), failed: make(chan struct{}),
		nudge: make(chan struct{}, 1),
		subs:  map[string]func(sessioncache.Change){}, streams: map[string]*streamSub{}, queues: map[string]queueMembership{}}
	c.wg.Add(1)
	go c.supervise()
	return c, nil
}

// Dial is NewClient followed by waiting, up to ctx's deadline, for the first connection.
func Dial(ctx context.Context, cfg ClientConfig) (*Client, error) {
	c, err := NewClient(cfg)
	if err != nil {
		return nil, err
	}
	if _, err := c.current(ctx); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

// supervise connects, waits for the connection to end, and reconnects with backoff.
func (c *Client) supervise() {
	defer c.wg.Done()
	backoff := c.cfg.BackoffMin
	for c.ctx.Err() == nil {
		cn, err := c.connect()
		if err != nil {
			c.setErr(err)
			c.cfg.Logger.Debug("relay: connect failed", "addr", c.cfg.Addr, "err", err, "retry_in", backoff)
			// Full jitter: wait a random time up to the current backoff.
			wait := backoff/2 + time.Duration(rand.Int64N(int64(backoff/2)+1))
			backoff = min(2*backoff, c.cfg.BackoffMax)
			select {
			case <-time.After(wait):
			case <-c.nudge: // a request asks whether the server is back
			case <-c.ctx.Done():
			}
			continue
		}
		backoff = c.cfg.BackoffMin
		c.cfg.Logger.Info("relay: connected", "addr", c.cfg.Addr)
		hb := make(chan struct{})
		go func() { defer close(hb); cn.heartbeat(c.cfg.Heartbeat) }()
		select {
		case <-cn.done:
		case <-c.ctx.Done():
			cn.close(ErrClosed)
		}
		<-hb
		c.mu.Lock()
		if c.conn == cn {
			c.conn = nil
			c.ready = make(chan struct{})
		}
		c.lastErr, c.downSince = cn.closedErr(), time.Time{}
		c.mu.Unlock()
		c.streamLost()
		if c.ctx.Err() == nil {
			c.cfg.Logger.Warn("relay: connection lost, reconnecting", "addr", c.cfg.Addr, "err", cn.closedErr())
		}
	}
	c.mu.Lock()
	close(c.ready) // wake waiters; they see the client is closed
	c.mu.Unlock()
}

func (c *Client) setErr(err error) {
	c.mu.Lock()
	c.lastErr, c.lastFailure = err, time.Now()
	if c.downSince.IsZero() {
		c.downSince = c.lastFailure
	}
	close(c.failed)
	c.failed = make(chan struct{})
	c.mu.Unlock()
}

// connect dials, says hello and resubscribes; on success the connection becomes current.
func (c *Client) connect() (*conn, error) {
	ctx, cancel := context.WithTimeout(c.ctx, c.cfg.DialTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if c.cfg.Dial != nil {
		nc, err = c.cfg.Dial(ctx, c.cfg.Addr)
	} else {
		var d net.Dialer
		nc, err = d.DialContext(ctx, "tcp", c.cfg.Addr)
	}
	if err != nil {
		return nil, fmt.Errorf("%w: dial %s: %w", ErrUnavailable, c.cfg.Addr, err)
	}
	if c.cfg.TLS != nil {
		tc := tls.Client(withRawIO(nc), c.cfg.TLS)
		if err := tc.HandshakeContext(ctx); err != nil {
			nc.Close()
			return nil, fmt.Errorf("%w: TLS handshake with %s: %w", ErrUnavailable, c.cfg.Addr, err)
		}
		nc = tc
	}
	var prefetch func([][]byte)
	if pb, ok := c.cfg.Backend.(PrefetchBackend); ok {
		prefetch = pb.Prefetch
	}
	cn := newConn(nc, connConfig{
		name:           c.cfg.Addr,
		logger:         c.cfg.Logger,
		prefetch:       prefetch,
		dispatch:       clientDispatcher{c},
		onMsg:          c.deliver,
		requestTimeout: c.cfg.RequestTimeout,
		writeTimeout:   c.cfg.RequestTimeout,
		maxFrame:       c.cfg.MaxFrame,
		dialed:         true,
		sharedRead:     true,
		pollReply:      c.cfg.PollReply,
	})
	c.mu.Lock()
	if c.pushes || c.cfg.Backend != nil {
		cn.alwaysRead.Store(true)
	}
	c.mu.Unlock()
	cn.start()
	if err := hello(ctx, cn, c.cfg.Name, c.cfg.Secret); err != nil {
		cn.close(err)
		return nil, err
	}
	c.mu.Lock()
	streams := make([]*streamSub, 0, len(c.streams))
	for _, s := range c.streams {
		streams = append(streams, s)
	}
	again := make([]*wire.Frame, 0, len(c.subs)+len(c.queues))
	for p := range c.subs {
		again = append(again, &wire.Frame{Op: wire.OpSubscribe, Path: []byte(p)})
	}
	for p, q := range c.queues {
		again = append(again, &wire.Frame{Op: wire.OpSubscribe, Flags: wire.FlagQueue, Path: []byte(p), Key: []byte(q.label)})
	}
	c.mu.Unlock()
	for _, f := range again {
		if err := simple(ctx, cn, f); err != nil {
			cn.close(err)
			return nil, fmt.Errorf("resubscribe %q: %w", f.Path, err)
		}
	}
	for _, s := range streams {
		if err := c.resumeStream(ctx, cn, s); err != nil {
			cn.close(err)
			return nil, fmt.Errorf("resume the stream of %q: %w", s.path, err)
		}
	}
	c.mu.Lock()
	c.conn = cn
	if c.pushes {
		cn.readAlways() // a subscription may have come since the connection started
	}
	close(c.ready)
	c.lastErr, c.downSince = nil, time.Time{}
	c.connects++
	c.mu.Unlock()
	return cn, nil
}

// isTLS reports whether nc is a TLS connection.
func isTLS(nc net.Conn) bool {
	_, ok := nc.(*tls.Conn)
	return ok
}

// hello performs the opening exchange on a dialed connection.
func hello(ctx context.Context, cn *conn, name, secret string) error {
	v := append([]byte{wire.Version}, secret...)
	cl, err := cn.roundTrip(ctx, &wire.Frame{Op: wire.OpHello, Key: []byte(name), Value: v})
	if errors.Is(err, ErrConnLost) && !isTLS(cn.nc) {
		// A TLS server closes a connection whose first bytes are not a TLS handshake.
		return fmt.Errorf("%w: hello to %s: the server closed the connection without answering; "+
			"if it speaks TLS, give this client a TLS configuration (ClientConfig.TLS, a tls block): %w", ErrUnavailable, cn.name, err)
	}
	if err != nil {
		return fmt.Errorf("%w: hello to %s: %w", ErrUnavailable, cn.name, err)
	}
	defer putCall(cl)
	if cl.status != wire.StatusOK {
		return fmt.Errorf("%w: %s: %s", ErrRefused, cn.name, cl.value)
	}
	return nil
}

// simple sends a request whose only useful answer is ok.
func simple(ctx context.Context, cn *conn, f *wire.Frame) error {
	cl, err := cn.roundTrip(ctx, f)
	if err != nil {
		return err
	}
	defer putCall(cl)
	return replyErr(f.Op, cl)
}

// simpleDeferred is simple for bulk traffic (hand-downs to relief servers): the request
// shares a write with the others sent meanwhile.
func simpleDeferred(ctx context.Context, cn *conn, f *wire.Frame) error {
	cl, err := cn.roundTripDeferred(ctx, f)
	if err != nil {
		return err
	}
	defer putCall(cl)
	return replyErr(f.Op, cl)
}

func replyErr(op wire.Op, cl *call) error {
	switch cl.status {
	case wire.StatusOK, wire.StatusValue:
		if op == wire.OpEvict && cl.flags&wire.FlagNoOwner != 0 {
			return ErrNoOwner
		}
		return nil
	case wire.StatusNotFound:
		return ErrNotFound
	default:
		return &RemoteError{Op: op.String(), Message: string(cl.value)}
	}
}

// current returns the live connection. Without one, it waits for a connection up to ctx's
// deadline, but only while attempts to connect have been failing for less than
// WaitForServer. After that it asks for one attempt at once (unless one failed within
// BackoffMin) and fails with that attempt's error: a server that stays down costs a caller
// one attempt, not its deadline, and one that is back is found without waiting out the
// backoff.
func (c *Client) current(ctx context.Context) (*conn, error) {
	nudged := false
	for {
		c.mu.Lock()
		cn, ready, failed, last, down, lastFailure := c.conn, c.ready, c.failed, c.lastErr, c.downSince, c.lastFailure
		c.mu.Unlock()
		if c.ctx.Err() != nil {
			return nil, ErrClosed
		}
		if cn != nil {
			return cn, nil
		}
		var giveUp *time.Timer // when waiting stops, if attempts are failing
		if !down.IsZero() {
			if left := c.cfg.WaitForServer - time.Since(down); left > 0 {
				giveUp = time.NewTimer(left)
			} else if nudged || time.Since(lastFailure) < c.cfg.BackoffMin {
				return nil, c.unavailable(last, nil)
			} else {
				nudged = true
				select {
				case c.nudge <- struct{}{}:
				default: // asked already
				}
			}
		}
		select {
		case <-ready:
			stopTimer(giveUp)
		case <-failed: // look again
			stopTimer(giveUp)
		case <-timerC(giveUp): // look again: connected since, or down for too long
		case <-ctx.Done():
			stopTimer(giveUp)
			c.mu.Lock()
			if c.lastErr != nil {
				last = c.lastErr
			}
			c.mu.Unlock()
			return nil, c.unavailable(last, ctx.Err())
		}
	}
}

// currentUntil is current with the deadline until (monoNow) for a ctx without one: the
// live connection at once, and a context with that deadline only when it has to wait.
func (c *Client) currentUntil(ctx context.Context, until int64) (*conn, error) {
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn != nil && c.ctx.Err() == nil {
		return cn, nil
	}
	if until != 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, epoch.Add(time.Duration(until)))
		defer cancel()
	}
	return c.current(ctx)
}

// timerC is t's channel; nil (never ready) for no timer.
func timerC(t *time.Timer) <-chan time.Time {
	if t == nil {
		return nil
	}
	return t.C
}

func stopTimer(t *time.Timer) {
	if t != nil {
		t.Stop()
	}
}

// unavailable is ErrUnavailable with why: the last error of the connection (which may
// name the server already), else cause.
func (c *Client) unavailable(last, cause error) error {
	switch {
	case errors.Is(last, ErrUnavailable):
		return last
	case last != nil:
		return fmt.Errorf("%w: %s: %w", ErrUnavailable, c.cfg.Addr, last)
	}
	return fmt.Errorf("%w: %s: %w", ErrUnavailable, c.cfg.Addr, cause)
}

// do sends a request on the current connection, once more on the next connection if the
// first one is lost with the request in flight (every operation is idempotent).
//
// A context without a deadline gets RequestTimeout, enforced by the connection's sweeper
// rather than a timer of its own (see conn.roundTripUntil): the common call, with a live
// connection, starts no timer.
func (c *Client) do(ctx context.Context, f *wire.Frame) (*call, error) {
	var until int64 // the deadline of a ctx without one (monoNow), else 0
	if _, ok := ctx.Deadline(); !ok {
		until = monoNow() + int64(c.cfg.RequestTimeout)
	}
	var err error
	for attempt := 0; attempt < 2; attempt++ {
		var cn *conn
		if cn, err = c.currentUntil(ctx, until); err != nil {
			return nil, err
		}
		var cl *call
		if cl, err = cn.roundTripUntil(ctx, f, false, until); err == nil {
			return cl, nil
		}
		if !errors.Is(err, ErrConnLost) || ctx.Err() != nil || (until != 0 && monoNow() >= until) {
			break
		}
	}
	if errors.Is(err, ErrConnLost) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	return nil, err
}

// Get returns the entry stored under key on path, or ErrNotFound (with the key's
// tombstone, Deleted and Rev set, when the server knows the key was deleted).
func (c *Client) Get(ctx context.Context, path string, key []byte) (sessioncache.Entry, error) {
	cl, err := c.do(ctx, &wire.Frame{Op: wire.OpGet, Path: []byte(path), Key: key})
	if err != nil {
		return sessioncache.Entry{}, err
	}
	defer putCall(cl)
	return entryOf(wire.OpGet, cl)
}

// entryOf reads the answer to a get: an entry, or not found with the tombstone it may
// carry. The value is copied out of the call.
func entryOf(op wire.Op, cl *call) (sessioncache.Entry, error) {
	if err := replyErr(op, cl); err != nil {
		var e sessioncache.Entry
		if errors.Is(err, ErrNotFound) && cl.rev != 0 {
			e = sessioncache.Entry{Rev: cl.rev, Deleted: true, Expiry: UnixTime(cl.expiry)}
		}
		return e, err
	}
	return sessioncache.Entry{Value: append([]byte(nil), cl.value...), Expiry: UnixTime(cl.expiry), Rev: cl.rev}, nil
}

// entryFrame is a request of op carrying e.
func entryFrame(op wire.Op, path string, key []byte, e sessioncache.Entry) *wire.Frame {
	return &wire.Frame{Op: op, Path: []byte(path), Key: key, Value: e.Value, Expiry: UnixNano(e.Expiry), Rev: e.Rev}
}

// Set stores the entry under key on path, on the server only.
func (c *Client) Set(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	return c.send(ctx, entryFrame(wire.OpSet, path, key, e))
}

// SetStream sends Set's request without a reply, in a write shared with the others sent
// meanwhile, on the current connection, and returns at once: nothing confirms it. It fails
// with ErrUnavailable when the client is not connected (see StreamBackend).
func (c *Client) SetStream(path string, key []byte, e sessioncache.Entry) error {
	c.mu.Lock()
	cn := c.conn
	c.mu.Unlock()
	if cn == nil || c.ctx.Err() != nil {
		return fmt.Errorf("%w: %s: not connected", ErrUnavailable, c.cfg.Addr)
	}
	f := entryFrame(wire.OpSet, path, key, e)
	f.Flags |= wire.FlagNoReply
	return cn.writeDeferred(f)
}

// Publish stores the entry under key on path where the server intercepts the path, and
// delivers it to the path's other subscribers. It returns once the server acknowledged.
func (c *Client) Publish(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	return c.send(ctx, entryFrame(wire.OpPublish, path, key, e))
}

// SetDurable stores the entry on a server that hands it to the key's aging relief servers
// (a sibling), and returns once they all hold it (see DurableBackend).
func (c *Client) SetDurable(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	f := entryFrame(wire.OpSet, path, key, e)
	f.Flags |= wire.FlagDurable
	return c.send(ctx, f)
}

// PublishDurable is Publish with the strict write concern: the relay answers once the
// key's aging relief servers hold the entry (see sessioncache.WriteDurable).
func (c *Client) PublishDurable(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	f := entryFrame(wire.OpPublish, path, key, e)
	f.Flags |= wire.FlagDurable
	return c.send(ctx, f)
}

// Evict hands an entry pushed out of an upper tier's table (or, with e.Deleted, a
// tombstone) to the server.
func (c *Client) Evict(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	return c.send(ctx, EntryFrame(wire.OpEvict, path, key, e))
}

// HandDownBatch hands the changes of batch to the server in as few frames as their size
// allows (see BatchBackend); it returns nil once the server confirmed all of them. A relay
// takes no batches: this is for a sibling or a server that serves a sibling.
func (c *Client) HandDownBatch(ctx context.Context, path string, batch []HandDown) error {
	frames := make([]*wire.Frame, len(batch))
	for i, h := range batch {
		frames[i] = HandDownFrame(path, h)
	}
	packed, err := PackBatches(frames)
	if err != nil {
		return err
	}
	var noOwner error
	for _, f := range packed {
		if err := c.send(ctx, f); errors.Is(err, ErrNoOwner) {
			noOwner = err // the rest may hold deletions, which still go
		} else if err != nil {
			return err
		}
	}
	return noOwner
}

// Delete removes key from path on the server, below it, and at its subscribers, as a
// deletion of revision e.Rev kept until e.Expiry (zero: the server's default).
func (c *Client) Delete(ctx context.Context, path string, key []byte, e sessioncache.Entry) error {
	return c.send(ctx, &wire.Frame{Op: wire.OpDelete, Path: []byte(path), Key: key, Expiry: UnixNano(e.Expiry), Rev: e.Rev})
}

// Ping measures one round trip to the server.
func (c *Client) Ping(ctx context.Context) (time.Duration, error) {
	start := time.Now()
	err := c.send(ctx, &wire.Frame{Op: wire.OpPing})
	return time.Since(start), err
}

func (c *Client) send(ctx context.Context, f *wire.Frame) error {
	cl, err := c.do(ctx, f)
	if err != nil {
		return err
	}
	defer putCall(cl)
	return replyErr(f.Op, cl)
}

// Subscribe delivers what other publishers publish or delete on path to fn, from now until
// Unsubscribe or Close, across reconnections. fn runs on the connection's reader goroutine:
// it must not block, and the slices it gets are valid only during the call.
func (c *Client) Subscribe(ctx context.Context, path string, fn func(sessioncache.Change)) error {
	c.mu.Lock()
	c.subs[path] = fn
	c.expectPushesLocked()
	c.mu.Unlock()
	return c.send(ctx, &wire.Frame{Op: wire.OpSubscribe, Path: []byte(path)})
}

// Unsubscribe stops the deliveries of path.
func (c *Client) Unsubscribe(ctx context.Context, path string) error {
	c.mu.Lock()
	delete(c.subs, path)
	c.mu.Unlock()
	return c.send(ctx, &wire.Frame{Op: wire.OpUnsubscribe, Path: []byte(path)})
}

// expectPushesLocked notes that the server may now send unasked, so that the
// connection's reader goroutine reads always (see sharedread.go); c.mu is held.
func (c *Client) expectPushesLocked() {
	c.pushes = true
	if c.conn != nil {
		c.conn.readAlways()
	}
}

func (c *Client) deliver(f *wire.Frame) {
	c.mu.Lock()
	fn := c.subs[string(f.Path)]
	stream := c.streams[string(f.Path)]
	c.mu.Unlock()
	if stream != nil {
		c.deliverStream(stream, f)
		return
	}
	if fn == nil {
		return
	}
	fn(sessioncache.Change{Key: f.Key, Value: f.Value, Expiry: UnixTime(f.Expiry), Deleted: f.Flags&wire.FlagDeleted != 0,
		Rev: f.Rev, Seq: f.ID})
}

// Connected reports whether the client has a live connection now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Connects returns how many connections the client has established so far, counting
// reconnections.
func (c *Client) Connects() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.connects
}

// Addr returns the server address the client connects to.
func (c *Client) Addr() string { return c.cfg.Addr }

// Close closes the connection, fails requests in flight with ErrClosed and stops
// reconnecting. It is idempotent.
func (c *Client) Close() error {
	c.cancel()
	c.wg.Wait()
	return nil
}

// UnixNano is a time as a frame's expiry field carries it, unix nanoseconds: 0 for the
// zero time.
func UnixNano(t time.Time) int64 {
	if t.IsZero() {
		return 0
	}
	return t.UnixNano()
}

// UnixTime is the time a frame's expiry field stands for: the zero time for 0.
func UnixTime(ns int64) time.Time {
	if ns == 0 {
		return time.Time{}
	}
	return time.Unix(0, ns)
}

package endpoint

import (
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/sessioncache"
)

// conn is one connection of the protocol, from either end: it writes requests and matches
// their replies by id, answers the peer's requests through a dispatcher, and hands pushed
// messages to a callback. One goroutine reads; writers share a buffered writer and the last
// writer in line flushes, so concurrent requests are batched into few system calls.
type conn struct {
	nc       net.Conn
	name     string // for logs: the peer's address or role
	logger   *slog.Logger
	dispatch dispatcher          // answers the peer's requests; nil refuses them
	onMsg    func(f *wire.Frame) // receives messages; nil drops them
	onClose  func(c *conn, err error)
	timeout  time.Duration // default request deadline
	wtimeout time.Duration // write deadline

	nextID   atomic.Uint64
	framesR  atomic.Uint64          // frames read, for the heartbeat
	lastPath atomic.Pointer[string] // the path of the last request served (see pathOf)
	prefetch func(keys [][]byte)    // see connConfig.prefetch
	keyBuf   [][]byte               // the reader's buffer for the keys it hands to prefetch
	frame    wire.Frame             // the reader's frame, decoded where it lies in c.in

	mu      sync.Mutex
	pending map[uint64]*call
	err     error // set once the connection is closed

	// The sweeper fails calls whose deadline (call.until) passes: requests whose context
	// has no deadline of its own cost no timer each. It is armed while such calls are
	// pending.
	sweepOnce  sync.Once
	sweepTimer *time.Timer
	sweepArmed atomic.Bool // under mu when set false

	wmu     sync.Mutex
	waiting atomic.Int32  // writers queued for wmu
	woken   atomic.Int32  // dialing side: callers the reader's last batch answered that have not written since
	flushes atomic.Uint64 // writes to the socket (flushOut calls)
	out     []byte        // encoded frames not yet written; under wmu
	softMu  sync.Mutex    // never held across I/O
	soft    []byte        // frames of writers that must not wait for wmu; under softMu
	raw     *rawSocket    // for writes that must not block; nil over TLS
	dialed  bool          // this side dialed the connection
	wbuf    []byte

	// Shared reading (sharedread.go): a caller may read its own reply.
	shared     bool                 // connConfig.sharedRead, over a raw socket or TLS
	reading    atomic.Bool          // the token: someone runs the read loop
	alwaysRead atomic.Bool          // the reader goroutine reads even with no call pending
	readerWake chan struct{}        // asks the reader goroutine to read
	driver     atomic.Pointer[call] // the call whose caller reads now
	kicked     atomic.Bool          // the sweeper set a read deadline in the past
	completed  atomic.Uint64        // replies handed to calls whose callers may read themselves
	ownReads   atomic.Uint64        // calls whose callers read until their replies came
	pollFor    time.Duration        // connConfig.pollReply, with pollSock
	pollSock   *rawSocket           // the raw socket under the connection, TLS or not
	pollOff    atomic.Bool          // the last reply a caller read came later than pollFor
	companyAt  atomic.Int64         // when a call last joined others pending (monoNow), with pollFor
	polls      atomic.Uint64        // calls whose callers polled for their replies
	idleTimer  *time.Timer          // see conn.release
	idleArmed  atomic.Bool

	done chan struct{}
	// ctx ends when the connection closes: work done for the peer derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	in     *wire.Buffer // what the reader read and has not handled yet

	flushReq    chan struct{}
	flusherOnce sync.Once
	refusing    atomic.Bool // closeAfterFlush was called: later frames are dropped

	// clock times the peer's requests until their replies (a server's connections only).
	clock *requestClock

	// Messages pushed to this connection (fan-out) go through a bounded queue so that a
	// slow subscriber never blocks a publisher.
	queue    chan []byte // made by the first push
	queueLen int
	qstart   sync.Once
}

// dispatcher answers requests that arrive on a connection. It runs on the reader goroutine
// with a frame that is valid only during the call; it must reply (c.reply) exactly once,
// either before returning or later from another goroutine with copied data.
type dispatcher interface {
	serve(c *conn, f *wire.Frame)
}

// call is one request waiting for its reply.
type call struct {
	done  chan struct{}
	op    wire.Op
	until int64 // when the sweeper fails the call (monoNow), 0 for never
	// own: the caller may read its reply itself (its context cannot be cancelled; see
	// sharedread.go).
	own    bool
	status wire.Status
	flags  uint8
	expiry int64
	rev    uint64
	value  []byte // copied out of the reader's buffer
	err    error
}

var callPool = sync.Pool{New: func() any { return &call{done: make(chan struct{}, 1)} }}

// connConfig holds what newConn needs.
type connConfig struct {
	name           string
	logger         *slog.Logger
	dispatch       dispatcher
	onMsg          func(*wire.Frame)
	onClose        func(*conn, error)
	requestTimeout time.Duration
	writeTimeout   time.Duration
	maxFrame       int
	budget         *wire.Budget // nil: large frames take no share of a budget
	queueLen       int
	dialed         bool // this side dialed (a client)
	// sharedRead lets a caller read its own reply (sharedread.go); it takes effect over a
	// raw socket or TLS.
	sharedRead bool
	// pollReply is how long a caller reading its own reply polls the socket before it
	// sleeps (sharedread.go); it takes effect with sharedRead over a raw socket, under TLS
	// or not.
	pollReply time.Duration
	// prefetch, if set, is told the keys of requests received but not yet served (see
	// PrefetchBackend).
	prefetch func(keys [][]byte)
}

func newConn(nc net.Conn, cfg connConfig) *conn {
	c := &conn{
		nc:       nc,
		name:     cfg.name,
		logger:   cfg.logger,
		dispatch: cfg.dispatch,
		onMsg:    cfg.onMsg,
		onClose:  cfg.onClose,
		timeout:  cfg.requestTimeout,
		wtimeout: cfg.writeTimeout,
		pending:  make(map[uint64]*call),
		done:     make(chan struct{}),
		queueLen: max(cfg.queueLen, 1),
		flushReq: make(chan struct{}, 1),
		prefetch: cfg.prefetch,
	}
	c.raw, c.dialed = newRawSocket(nc), cfg.dialed
	_, overTLS := nc.(*tls.Conn)
	if c.shared = cfg.sharedRead && (c.raw != nil || overTLS); c.shared {
		if c.pollSock = pollSocket(nc, c.raw); c.pollSock != nil {
			c.pollFor = max(cfg.pollReply, 0)
			c.companyAt.Store(math.MinInt64 / 2) // no company yet, however soon after the epoch
		}
		c.readerWake = make(chan struct{}, 1)
		c.idleTimer = time.AfterFunc(time.Hour, c.idleFire)
		c.idleTimer.Stop()
	}
	c.in = wire.NewBuffer(readBufferSize, cfg.maxFrame)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	if cfg.budget != nil {
		c.in.SetBudget(c.ctx, cfg.budget)
	}
	return c
}

// readBufferSize is a connection's read buffer: enough for a burst of pipelined requests.
// The write buffer starts empty and grows to what is written; what a connection costs
// before it does anything is about this much.
const readBufferSize = 16 << 10

// start begins reading; call it once the connection is reachable from its owner.
func (c *conn) start() {
	if c.shared {
		go c.sharedReader()
		return
	}
	go c.readLoop()
}

// readLoop reads the connection until it fails, handling the frames after each read
// (consume). Over a raw socket it reads only when the socket has bytes (see
// rawSocket.pump): after a read that leaves the socket empty it waits for the next bytes
// instead of making a read that finds none, as an event loop does.
func (c *conn) readLoop() {
	var err error
	if c.raw != nil {
		err = c.raw.pump(c.in, c.consume)
	} else {
		err = c.readStream(c.consume)
	}
	c.in.Release()
	c.readFailed(err)
}

// readStream reads a connection without a raw socket (TLS) into c.in, handling the whole
// frames after each read with consume, until a read or consume fails.
func (c *conn) readStream(consume func() error) error {
	for {
		n, err := c.in.Fill(c.nc)
		if n > 0 {
			if err := consume(); err != nil {
				return err
			}
		}
		if errors.Is(err, io.EOF) {
			return c.in.EOF()
		} else if err != nil {
			return err
		}
	}
}

// consume handles the whole frames that c.in holds. While more whole frames are buffered
// it holds back flushing (it counts itself as a queued writer), so the replies to a batch
// of pipelined requests leave in one write instead of one each. It never holds past its
// return: the peer may be waiting for a reply before it sends the rest. On the dialing
// side, when replies have woken callers while other calls still wait, it yields once,
// holding, before it returns: the callers' next requests then leave in one write, and the
// server reads them in one read (see docs/performance.md).
func (c *conn) consume() error {
	f := &c.frame
	if c.dialed {
		c.woken.Store(0) // counted again for this batch's replies (see write)
	}
	held := false
	woke := false // replies were handed to callers
	ahead := 0    // bytes at the front of c.in's buffer whose keys were prefetched
	for {
		ok, err := c.in.Next(f)
		if err != nil || !ok {
			if err != nil {
				if held {
					c.unhold()
				}
				return err
			}
			break
		}
		if !held && c.in.Whole() {
			c.waiting.Add(1)
			held = true
		}
		if c.prefetch != nil {
			ahead = c.prefetchBuffered(max(ahead-4-f.Len(), 0))
		}
		woke = woke || f.Op == wire.OpReply
		c.handleFrame(f)
	}
	if woke && c.dialed && c.callsPending() {
		// The callers just answered will send again while others still wait: let them
		// queue their requests behind a hold first, so that they leave in one write and
		// the server reads them at once.
		if !held {
			c.waiting.Add(1)
			held = true
		}
		runtime.Gosched()
	}
	if held {
		c.unhold()
	}
	return nil
}

// callsPending reports whether calls on c wait for replies.
func (c *conn) callsPending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) > 0
}

// alonePending reports whether at most one call is pending: the caller's own, if it is.
func (c *conn) alonePending() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.pending) <= 1
}

// prefetchKeys is the most keys a connection or a batch hands to Prefetch at a time.
const prefetchKeys = 64

// prefetchBuffered tells c.prefetch the keys of the requests whole in c.in's buffer after
// its first ahead bytes (whose keys it was told before), and returns how many bytes at the
// front of the buffer it has now been told about. It reads nothing from the socket.
func (c *conn) prefetchBuffered(ahead int) int {
	b := c.in.Buffered()
	n := len(b)
	if n-ahead < 4+wire.HeaderSize {
		return ahead
	}
	if c.keyBuf == nil {
		c.keyBuf = make([][]byte, 0, prefetchKeys)
	}
	keys := c.keyBuf[:0]
	for len(keys) < cap(keys) && n-ahead >= 4 {
		size := 4 + uint64(binary.BigEndian.Uint32(b[ahead:]))
		if size > uint64(n-ahead) {
			break
		}
		if key, ok := wire.RequestKey(b[ahead+4 : ahead+int(size)]); ok {
			keys = append(keys, key)
		}
		ahead += int(size)
	}
	if len(keys) > 0 {
		c.prefetch(keys)
		clear(keys) // let the buffer's bytes go
	}
	return ahead
}

// readFailed closes the connection after a failed read, saying why.
func (c *conn) readFailed(err error) {
	switch {
	case c.framesR.Load() == 0 && c.in.LooksLikeHTTP():
		c.logger.Warn("relay: an HTTP request reached a port that speaks the relay protocol, not HTTP (see docs/protocol.md); closing it",
			"peer", c.name)
		err = fmt.Errorf("%s sent an HTTP request to a relay protocol port", c.name)
	case errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrMalformed):
		c.logger.Warn("relay: closing connection after a bad frame", "peer", c.name, "err", err)
		err = fmt.Errorf("bad frame from %s: %w", c.name, err)
	case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrUnexpectedEOF):
		err = ErrConnLost
	}
	c.close(err)
}

// handleFrame acts on one frame read from the peer: a reply completes its call, a message
// goes to onMsg, a request to the dispatcher.
func (c *conn) handleFrame(f *wire.Frame) {
	c.framesR.Add(1)
	if c.refusing.Load() {
		return
	}
	switch {
	case f.Op == wire.OpReply:
		c.complete(f)
	case f.Op == wire.OpMessage:
		if c.onMsg != nil {
			c.onMsg(f)
		}
	case c.dispatch != nil:
		c.dispatch.serve(c, f)
	default:
		c.replyError(f.ID, fmt.Sprintf("%s not accepted on this connection", f.Op))
	}
}

// complete hands a reply to the call waiting for it.
func (c *conn) complete(f *wire.Frame) {
	c.mu.Lock()
	cl := c.pending[f.ID]
	delete(c.pending, f.ID)
	c.mu.Unlock()
	if cl == nil {
		return // its caller gave up (deadline); drop the late reply
	}
	cl.status, cl.flags, cl.expiry, cl.rev = f.Status, f.Flags, f.Expiry, f.Rev
	cl.value = append(cl.value[:0], f.Value...)
	if c.dialed {
		c.woken.Add(1)
	}
	if cl.own {
		c.completed.Add(1)
	}
	cl.done <- struct{}{}
}

// roundTrip sends a request and waits for its reply, the context's deadline, or the
// connection's end. With no deadline in ctx the connection's default timeout applies.
// The returned call must be released with putCall.
func (c *conn) roundTrip(ctx context.Context, f *wire.Frame) (*call, error) {
	return c.roundTripMode(ctx, f, false)
}

// roundTripDeferred is roundTrip for bulk traffic (hand-downs to relief servers): the
// request is flushed by the connection's flusher a moment later, together with whatever
// other requests arrive meanwhile, rather than in a write system call of its own.
func (c *conn) roundTripDeferred(ctx context.Context, f *wire.Frame) (*call, error) {
	return c.roundTripMode(ctx, f, true)
}

func (c *conn) roundTripMode(ctx context.Context, f *wire.Frame, deferred bool) (*call, error) {
	var until int64
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		until = monoNow() + int64(c.timeout)
	}
	return c.roundTripUntil(ctx, f, deferred, until)
}

// roundTripUntil is roundTripMode with the request's deadline given: until (monoNow), when
// not 0, is enforced by the sweeper, for a context that has no deadline of its own.
func (c *conn) roundTripUntil(ctx context.Context, f *wire.Frame, deferred bool, until int64) (*call, error) {
	cl := callPool.Get().(*call)
	cl.err, cl.op, cl.until, cl.own = nil, f.Op, until, ctx.Done() == nil
	f.ID = c.nextID.Add(1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		callPool.Put(cl)
		return nil, err
	}
	c.pending[f.ID] = cl
	company := c.pollFor > 0 && len(c.pending) > 1
	c.mu.Unlock()
	if company {
		c.companyAt.Store(monoNow())
	}
	if until != 0 && !c.sweepArmed.Load() {
		c.armSweeper()
	}
	write := c.write
	if deferred {
		write = c.writeDeferred
	}
	if err := write(f); err != nil {
		c.forget(f.ID, cl)
		return nil, err
	}
	var err error
	if c.shared {
		c.awaitShared(cl, ctx.Done() != nil)
	}
	if ctx.Done() == nil {
		<-cl.done
		err = cl.err
	} else {
		select {
		case <-cl.done:
			err = cl.err
		case <-ctx.Done():
			c.forget(f.ID, cl)
			if errors.Is(ctx.Err(), context.DeadlineExceeded) {
				return nil, fmt.Errorf("%w: %s to %s", ErrTimeout, f.Op, c.name)
			}
			return nil, ctx.Err()
		}
	}
	if err != nil {
		callPool.Put(cl)
		return nil, err
	}
	return cl, nil
}

// epoch is the origin of monoNow.
var epoch = time.Now()

// monoNow is the monotonic clock in nanoseconds since epoch.
func monoNow() int64 { return int64(time.Since(epoch)) }

// sweepEvery is how often the sweeper looks for calls past their deadline: a deadline is
// enforced within this much (an eighth of the default request timeout, 1ms to 100ms).
func (c *conn) sweepEvery() time.Duration {
	return min(max(c.timeout/8, time.Millisecond), 100*time.Millisecond)
}

// armSweeper makes sure the sweeper will run while calls with a deadline are pending.
func (c *conn) armSweeper() {
	c.sweepOnce.Do(func() {
		c.sweepTimer = time.AfterFunc(time.Hour, c.sweep)
		c.sweepTimer.Stop()
	})
	if c.sweepArmed.CompareAndSwap(false, true) {
		c.sweepTimer.Reset(c.sweepEvery())
	}
}

// sweep fails the pending calls whose deadline has passed with ErrTimeout, and rearms
// itself while any call is pending.
func (c *conn) sweep() {
	now := monoNow()
	var expired []*call
	c.mu.Lock()
	for id, cl := range c.pending {
		if cl.until != 0 && now >= cl.until {
			delete(c.pending, id)
			expired = append(expired, cl)
		}
	}
	rearm := len(c.pending) > 0 && c.err == nil
	if !rearm {
		c.sweepArmed.Store(false) // under mu: a call added after this arms it again
	}
	c.mu.Unlock()
	for _, cl := range expired {
		cl.err = fmt.Errorf("%w: %s to %s", ErrTimeout, cl.op, c.name)
		cl.done <- struct{}{}
		if c.shared {
			c.kick(cl) // its caller may be reading, waiting for the socket
		}
	}
	if rearm {
		c.sweepTimer.Reset(c.sweepEvery())
	}
}

// forget abandons a call. If its reply is being delivered concurrently the call is not
// reused, since the deliverer may still write to it.
func (c *conn) forget(id uint64, cl *call) {
	c.mu.Lock()
	_, ok := c.pending[id]
	delete(c.pending, id)
	c.mu.Unlock()
	if ok {
		callPool.Put(cl)
	}
}

func putCall(cl *call) {
	select {
	case <-cl.done: // drain a stale signal, never expected
	default:
	}
	callPool.Put(cl)
}

// The write path. Frames are appended to c.out under c.wmu and a flush writes c.out to the
// socket. Writers queue on c.wmu and the last one in line flushes, so frames written at
// the same time share a write system call.
//
// The reader goroutine answers requests inline, so if it could wait for the socket, or
// for c.wmu held by a writer waiting for the socket, two peers whose send buffers are full
// could both stop reading, each waiting for the other. So replies, deferred writes and the
// reader's own flushes never wait: their frames go to c.soft (a lock never held across
// I/O), and whoever holds c.wmu next moves them to c.out. If c.wmu is free they flush at
// once, writing only what the socket takes without waiting (flushSoftLocked), and the
// flusher goroutine writes the rest.

const (
	// flushAt is how much may be buffered before a writer flushes whoever is queued.
	flushAt = 64 << 10
	// maxUnsent bounds what may wait unsent; a peer that lets more pile up by not reading
	// is disconnected.
	maxUnsent = 64 << 20
)

// unhold ends the reader's hold on flushing (it counted as a queued writer) and flushes, as
// far as the socket takes it at once, if no other writer is queued.
func (c *conn) unhold() {
	if c.waiting.Add(-1) == 0 {
		c.flushSoft()
	}
}

// write encodes f and flushes it unless another writer is queued behind, which will, or,
// on the dialing side, callers the reader has just answered are yet to write: they send
// again at once (a pipelining client's goroutines do), so f is left for the last of them
// to flush (leaveLocked), and the requests that follow a batch of replies leave in one
// write, as the replies came, instead of one write each.
func (c *conn) write(f *wire.Frame) error {
	c.waiting.Add(1)
	c.wmu.Lock()
	defer c.wmu.Unlock()
	var err error
	if c.wbuf, err = wire.Append(c.wbuf[:0], f); err != nil {
		// Nothing to write, but a writer ahead may have left its frame for this one to
		// flush.
		_ = c.writeLocked(nil)
		return err
	}
	if c.dialed && c.woken.Load() > 0 && c.woken.Add(-1) > 0 {
		return c.leaveLocked(c.wbuf)
	}
	return c.writeLocked(c.wbuf)
}

// writeLocked appends an encoded frame (or nothing, for b nil) and flushes if this was the
// last writer in line or much is buffered; c.wmu is held and c.waiting counts this writer.
//
// The writer that brings the count to zero takes c.soft once more after that, so a frame
// added to c.soft by a writer that saw others queued (see writeSoft) is never left behind.
func (c *conn) writeLocked(b []byte) error { return c.appendLocked(b, false) }

// leaveLocked is writeLocked for a frame left for a later writer to flush even when this
// writer is the last in line; the flusher flushes it should no writer come.
func (c *conn) leaveLocked(b []byte) error { return c.appendLocked(b, true) }

func (c *conn) appendLocked(b []byte, leave bool) error {
	c.takeSoftLocked()
	c.out = append(c.out, b...)
	last := c.waiting.Add(-1) == 0
	if last {
		c.takeSoftLocked()
	}
	if (last && !leave || len(c.out) >= flushAt) && len(c.out) > 0 {
		if err := c.flushOut(c.writeSocket); err != nil {
			err = fmt.Errorf("%w: write to %s: %w", ErrConnLost, c.name, err)
			go c.close(err)
			return err
		}
	}
	if leave && len(c.out) > 0 {
		c.requestFlush()
	}
	return nil
}

// takeSoftLocked moves the frames of writers that did not wait onto c.out; c.wmu is held.
func (c *conn) takeSoftLocked() {
	c.softMu.Lock()
	if len(c.soft) > 0 {
		c.out = append(c.out, c.soft...)
		if cap(c.soft) > 4*flushAt {
			c.soft = nil
		} else {
			c.soft = c.soft[:0]
		}
	}
	c.softMu.Unlock()
}

// pathOf returns b, a request's path, as a string: the one made for the connection's last
// request when b is the same (a peer's requests mostly name one path), so that serving a
// request costs no allocation for it.
func (c *conn) pathOf(b []byte) string {
	if p := c.lastPath.Load(); p != nil && *p == string(b) {
		return *p
	}
	s := string(b)
	c.lastPath.Store(&s)
	return s
}

// writeSocket writes all of b, waiting for the socket within the write timeout; c.wmu is
// held. Through the raw socket where there is one: what the socket takes at once goes
// without a deadline, and only a write that has to wait for the socket sets one, and
// clears it after, so the common write costs no timer (renewing a deadline moves the
// socket's timer, which wakes the runtime's poller thread now and then). Else through the
// net.Conn, after renewing its deadline.
func (c *conn) writeSocket(b []byte) (int, error) {
	if c.raw == nil {
		c.deadline()
		return c.nc.Write(b)
	}
	n, err := c.raw.writeNow(b)
	if !errors.Is(err, errWouldBlock) {
		return n, err
	}
	c.deadline()
	m, err := c.raw.writeAll(b[n:])
	if c.wtimeout > 0 {
		c.nc.SetWriteDeadline(time.Time{})
	}
	return n + m, err
}

// flushOut writes c.out with write and keeps what it did not take; c.wmu is held.
func (c *conn) flushOut(write func([]byte) (int, error)) error {
	c.flushes.Add(1)
	n, err := write(c.out)
	rest := copy(c.out, c.out[n:])
	c.out = c.out[:rest]
	if cap(c.out) > 4*flushAt && rest < flushAt {
		c.out = append(make([]byte, 0, flushAt), c.out...) // let a burst's buffer go
	}
	return err
}

// flushSoft flushes as flushSoftLocked does if c.wmu is free, and otherwise leaves the
// flush to the flusher goroutine (the holder may be waiting for the socket).
func (c *conn) flushSoft() {
	if !c.wmu.TryLock() {
		c.requestFlush()
		return
	}
	c.takeSoftLocked()
	c.flushSoftLocked()
	c.wmu.Unlock()
}

// flushSoftLocked writes what the socket takes now, without waiting, and leaves the rest
// to the flusher goroutine; c.wmu is held. Over TLS, whose writes cannot be tried without
// waiting, the side that dialed leaves the whole flush to the flusher and the side that
// accepted writes and waits: one end of every connection keeps reading, which is enough.
func (c *conn) flushSoftLocked() {
	if len(c.out) == 0 {
		return
	}
	if c.raw == nil && !c.dialed {
		if err := c.flushOut(c.writeSocket); err != nil {
			go c.close(fmt.Errorf("%w: write to %s: %w", ErrConnLost, c.name, err))
		}
		return
	}
	if c.raw != nil {
		// The raw write does not wait; no write deadline is left set on a raw socket (see
		// writeSocket), so none can have passed.
		err := c.flushOut(c.raw.writeNow)
		if err != nil && !errors.Is(err, errWouldBlock) {
			go c.close(fmt.Errorf("%w: write to %s: %w", ErrConnLost, c.name, err))
			return
		}
		if len(c.out) == 0 {
			return
		}
	}
	c.requestFlush()
}

// writeSoft adds f without waiting for c.wmu or the socket and flushes it (see flushSoft);
// with writers queued (or the reader holding its flush), the one that brings the count of
// queued writers to zero takes c.soft after doing so and flushes it (writeLocked, unhold),
// so a reply to a batch of requests costs no goroutine hand-off.
func (c *conn) writeSoft(f *wire.Frame) error {
	if err := c.appendSoft(f); err != nil {
		return err
	}
	if c.waiting.Load() == 0 {
		c.flushSoft()
	}
	return nil
}

// appendSoft encodes f onto c.soft, disconnecting a peer that does not read.
func (c *conn) appendSoft(f *wire.Frame) error {
	c.softMu.Lock()
	defer c.softMu.Unlock()
	if len(c.soft) > maxUnsent {
		err := fmt.Errorf("%w: %s does not read what is sent to it (%d bytes unsent)", ErrConnLost, c.name, len(c.soft))
		go c.close(err)
		return err
	}
	var err error
	c.soft, err = wire.Append(c.soft, f)
	return err
}

// writeDeferred adds f like writeSoft and leaves the flush to the flusher goroutine, which
// yields once first so that other writers ready to run can add their frames: for bulk
// traffic (hand-downs to relief servers). It never waits.
func (c *conn) writeDeferred(f *wire.Frame) error {
	if err := c.appendSoft(f); err != nil {
		return err
	}
	c.requestFlush()
	return nil
}

// requestFlush asks the flusher goroutine to flush.
func (c *conn) requestFlush() {
	c.flusherOnce.Do(func() { go c.flusher() })
	select {
	case c.flushReq <- struct{}{}:
	default: // a flush is already due
	}
}

// flusher flushes until the connection closes, when asked.
func (c *conn) flusher() {
	for {
		select {
		case <-c.done:
			return
		case <-c.flushReq:
		}
		runtime.Gosched()
		c.waiting.Add(1)
		c.wmu.Lock()
		err := c.writeLocked(nil)
		c.wmu.Unlock()
		if err != nil {
			return
		}
	}
}

// deadline bounds the next socket write, so a peer that stops reading cannot block a
// writer forever; c.wmu is held.
func (c *conn) deadline() {
	if c.wtimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.wtimeout))
	}
}

// reply answers request id. It never blocks on the socket (see writeSoft): the reader
// goroutine answers requests inline.
// reply answers request id. A request of id 0 (a set or evict with FlagNoReply) is never
// answered.
func (c *conn) reply(id uint64, status wire.Status, flags uint8, value []byte, expiry int64) {
	if id == 0 {
		return
	}
	c.clock.done(id, status)
	_ = c.writeSoft(&wire.Frame{Op: wire.OpReply, ID: id, Status: status, Flags: flags, Value: value, Expiry: expiry})
}

// replyEntry answers a get with an entry (status value) or, for ErrNotFound, with not
// found and the revision of the key's tombstone, if one is known.
func (c *conn) replyEntry(id uint64, e sessioncache.Entry, err error) {
	switch {
	case id == 0:
	case err == nil:
		c.clock.done(id, wire.StatusValue)
		_ = c.writeSoft(&wire.Frame{Op: wire.OpReply, ID: id, Status: wire.StatusValue, Value: e.Value, Expiry: UnixNano(e.Expiry), Rev: e.Rev})
	case errors.Is(err, ErrNotFound):
		c.clock.done(id, wire.StatusNotFound)
		f := wire.Frame{Op: wire.OpReply, ID: id, Status: wire.StatusNotFound}
		if e.Deleted {
			f.Rev, f.Expiry = e.Rev, UnixNano(e.Expiry)
		}
		_ = c.writeSoft(&f)
	default:
		c.replyError(id, err.Error())
	}
}

func (c *conn) replyError(id uint64, msg string) {
	c.reply(id, wire.StatusError, 0, []byte(msg), 0)
}

// push queues a message for this connection without waiting. A subscriber whose queue is
// full is too slow: it is disconnected rather than allowed to hold up the publisher.
func (c *conn) push(f *wire.Frame) {
	b, err := wire.Append(make([]byte, 0, f.Len()+4), f)
	if err != nil {
		return
	}
	c.qstart.Do(func() {
		c.queue = make(chan []byte, c.queueLen) // only a subscriber needs one
		go c.drain()
	})
	select {
	case c.queue <- b:
	case <-c.done:
	default:
		c.logger.Warn("relay: subscriber too slow, disconnecting", "peer", c.name, "queued", cap(c.queue))
		c.close(fmt.Errorf("%w: subscriber %s did not keep up", ErrConnLost, c.name))
	}
}

func (c *conn) drain() {
	for {
		select {
		case b := <-c.queue:
			c.waiting.Add(1)
			c.wmu.Lock()
			err := c.writeLocked(b)
			c.wmu.Unlock()
			if err != nil {
				return
			}
		case <-c.done:
			return
		}
	}
}

// closeAfterFlush sends what is buffered (an error reply, say) and then closes the
// connection with err. The flush runs in a goroutine of its own, bounded by the write
// deadline, so the reader does not block on it; the reader drops the peer's later frames.
func (c *conn) closeAfterFlush(err error) {
	c.refusing.Store(true)
	go func() {
		c.wmu.Lock()
		c.takeSoftLocked()
		if len(c.out) > 0 {
			_ = c.flushOut(c.writeSocket)
		}
		c.wmu.Unlock()
		c.close(err)
	}()
}

// close ends the connection and fails every call in flight. It is idempotent.
func (c *conn) close(err error) {
	c.mu.Lock()
	if c.err != nil {
		c.mu.Unlock()
		return
	}
	if err == nil {
		err = ErrClosed
	}
	c.err = err
	pending := c.pending
	c.pending = map[uint64]*call{}
	c.mu.Unlock()
	close(c.done)
	c.cancel()
	if c.raw != nil {
		// The caller may be the reader, handling a frame within its wait on the socket
		// (rawSocket.pump), and closing a socket waits for that wait to end: shut the
		// socket down now (the peer sees the end at once) and close it apart.
		c.raw.shutdown()
		go c.nc.Close()
	} else {
		c.nc.Close()
	}
	for _, cl := range pending {
		cl.err = err
		cl.done <- struct{}{}
	}
	if c.onClose != nil {
		c.onClose(c, err)
	}
}

// closed returns the error that closed the connection, or nil while it is open.
func (c *conn) closedErr() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.err
}

// heartbeat pings the peer whenever a whole interval passes without a frame from it, and
// closes the connection when a ping gets no frame back within the next interval. It
// returns when the connection closes.
func (c *conn) heartbeat(interval time.Duration) {
	if interval <= 0 {
		return
	}
	t := time.NewTicker(interval)
	defer t.Stop()
	last := c.framesR.Load()
	pinged := false
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
		}
		cur := c.framesR.Load()
		switch {
		case cur != last:
			pinged = false
		case pinged:
			c.close(fmt.Errorf("%w: %s sent nothing for %v, not even a pong", ErrConnLost, c.name, 2*interval))
			return
		default:
			pinged = true
			go func() {
				ctx, cancel := context.WithTimeout(context.Background(), 2*interval)
				defer cancel()
				if cl, err := c.roundTrip(ctx, &wire.Frame{Op: wire.OpPing}); err == nil {
					putCall(cl)
				}
			}()
		}
		last = cur
	}
}

package relay

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
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

	nextID  atomic.Uint64
	framesR atomic.Uint64 // frames read, for the heartbeat

	mu      sync.Mutex
	pending map[uint64]*call
	err     error // set once the connection is closed

	wmu     sync.Mutex
	waiting atomic.Int32 // writers queued for wmu
	bw      *bufio.Writer
	wbuf    []byte

	done chan struct{}
	// ctx ends when the connection closes: work done for the peer derives from it.
	ctx    context.Context
	cancel context.CancelFunc
	br     *bufio.Reader
	rd     *wire.Reader

	flushReq    chan struct{}
	flusherOnce sync.Once

	// Messages pushed to this connection (fan-out) go through a bounded queue so that a
	// slow subscriber never blocks a publisher.
	qmu    sync.Mutex
	queue  chan []byte
	qstart sync.Once
}

// dispatcher answers requests that arrive on a connection. It runs on the reader goroutine
// with a frame that is valid only during the call; it must reply (c.reply) exactly once,
// either before returning or later from another goroutine with copied data.
type dispatcher interface {
	serve(c *conn, f *wire.Frame)
}

// call is one request waiting for its reply.
type call struct {
	done   chan struct{}
	status wire.Status
	flags  uint8
	expiry int64
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
	queueLen       int
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
		bw:       bufio.NewWriterSize(nc, 64<<10),
		done:     make(chan struct{}),
		queue:    make(chan []byte, max(cfg.queueLen, 1)),
		br:       bufio.NewReaderSize(nc, 64<<10),
		flushReq: make(chan struct{}, 1),
	}
	c.rd = wire.NewReader(c.br, cfg.maxFrame)
	c.ctx, c.cancel = context.WithCancel(context.Background())
	return c
}

// start begins reading; call it once the connection is reachable from its owner.
func (c *conn) start() { go c.readLoop() }

// readLoop reads frames until the connection fails. While more frames are already
// buffered it holds back flushing (it counts itself as a queued writer), so the replies to
// a batch of pipelined requests leave in one write instead of one each.
func (c *conn) readLoop() {
	var f wire.Frame
	held := false
	for {
		if held && c.br.Buffered() == 0 {
			c.unhold()
			held = false
		}
		if err := c.rd.Read(&f); err != nil {
			if held {
				c.unhold()
			}
			switch {
			case errors.Is(err, wire.ErrFrameTooLarge) || errors.Is(err, wire.ErrMalformed):
				c.logger.Warn("relay: closing connection after a bad frame", "peer", c.name, "err", err)
				err = fmt.Errorf("bad frame from %s: %w", c.name, err)
			case errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed):
				err = ErrConnLost
			}
			c.close(err)
			return
		}
		c.framesR.Add(1)
		if !held && c.br.Buffered() > 0 {
			c.waiting.Add(1)
			held = true
		}
		switch {
		case f.Op == wire.OpReply:
			c.complete(&f)
		case f.Op == wire.OpMessage:
			if c.onMsg != nil {
				c.onMsg(&f)
			}
		case c.dispatch != nil:
			c.dispatch.serve(c, &f)
		default:
			c.replyError(f.ID, fmt.Sprintf("%s not accepted on this connection", f.Op))
		}
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
	cl.status, cl.flags, cl.expiry = f.Status, f.Flags, f.Expiry
	cl.value = append(cl.value[:0], f.Value...)
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
	var cancel context.CancelFunc
	if _, ok := ctx.Deadline(); !ok && c.timeout > 0 {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
		defer cancel()
	}
	cl := callPool.Get().(*call)
	cl.err = nil
	f.ID = c.nextID.Add(1)
	c.mu.Lock()
	if c.err != nil {
		err := c.err
		c.mu.Unlock()
		callPool.Put(cl)
		return nil, err
	}
	c.pending[f.ID] = cl
	c.mu.Unlock()
	write := c.write
	if deferred {
		write = c.writeDeferred
	}
	if err := write(f); err != nil {
		c.forget(f.ID, cl)
		return nil, err
	}
	select {
	case <-cl.done:
		if cl.err != nil {
			err := cl.err
			callPool.Put(cl)
			return nil, err
		}
		return cl, nil
	case <-ctx.Done():
		c.forget(f.ID, cl)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			return nil, fmt.Errorf("%w: %s to %s", ErrTimeout, f.Op, c.name)
		}
		return nil, ctx.Err()
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

// unhold ends the reader's hold on flushing (it counted as a queued writer) and flushes
// if no other writer is queued.
func (c *conn) unhold() {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.writeLocked(nil)
}

// write encodes f and flushes it unless another writer is queued behind, which will.
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
	return c.writeLocked(c.wbuf)
}

// writeLocked writes an encoded frame (or nothing, for b nil) and flushes if this was the
// last writer in line; c.wmu is held and c.waiting counts this writer.
func (c *conn) writeLocked(b []byte) error {
	_, err := c.buffer(b)
	if c.waiting.Add(-1) == 0 && err == nil && c.bw.Buffered() > 0 {
		c.deadline()
		err = c.bw.Flush()
	}
	if err != nil {
		err = fmt.Errorf("%w: write to %s: %w", ErrConnLost, c.name, err)
		go c.close(err)
	}
	return err
}

// writeDeferred encodes f into the buffer and leaves the flush to the flusher goroutine,
// which yields once first so that other writers ready to run can add their frames.
func (c *conn) writeDeferred(f *wire.Frame) error {
	c.wmu.Lock()
	var err error
	c.wbuf, err = wire.Append(c.wbuf[:0], f)
	if err == nil {
		_, err = c.buffer(c.wbuf)
	}
	c.wmu.Unlock()
	if err != nil {
		return err
	}
	c.flusherOnce.Do(func() { go c.flusher() })
	select {
	case c.flushReq <- struct{}{}:
	default: // a flush is already due
	}
	return nil
}

// flusher flushes deferred writes until the connection closes.
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

// buffer adds b to the write buffer; c.wmu is held. When b does not fit, the buffer
// writes to the socket, so the write deadline is set first.
func (c *conn) buffer(b []byte) (int, error) {
	if len(b) > c.bw.Available() {
		c.deadline()
	}
	return c.bw.Write(b)
}

// deadline bounds the next socket write, so a peer that stops reading cannot block a
// writer forever; c.wmu is held.
func (c *conn) deadline() {
	if c.wtimeout > 0 {
		c.nc.SetWriteDeadline(time.Now().Add(c.wtimeout))
	}
}

// reply answers request id.
func (c *conn) reply(id uint64, status wire.Status, flags uint8, value []byte, expiry int64) {
	_ = c.write(&wire.Frame{Op: wire.OpReply, ID: id, Status: status, Flags: flags, Value: value, Expiry: expiry})
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
	c.qstart.Do(func() { go c.drain() })
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
	c.nc.Close()
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

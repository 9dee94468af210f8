package wsproxy

import (
	"context"
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway/internal/wsconn"
	"github.com/globalsession/globalsession/gateway/wsproxy/internal/wsframe"
)

// ended says how one direction of a proxied pair stopped.
type ended struct {
	from *websocket.Conn // the side whose read ended
	err  error           // a *websocket.CloseError when that side sent a close frame
	out  bool            // the write to the other side failed, not the read
}

// pipe relays frames between the browser's connection and the backend's until both are
// done, then closes them. It takes two goroutines: this one copies the backend's frames to
// the browser, another the browser's to the backend. The direction that ends first tells
// the other side at once (forwardEnd) and gives it WriteTimeout to answer: the other
// direction's read ends with that answer, or at that deadline. While ending is set (the
// gateway ends the pair itself, having sent both sides their close) nothing is forwarded.
func (p *Proxy) pipe(front, back *websocket.Conn, ending *atomic.Bool) {
	defer p.untrack(front, back)
	defer wsconn.LingerClose(front)
	defer wsconn.LingerClose(back)
	wait := 2 * p.cfg.PingInterval
	other := func(c *websocket.Conn) *websocket.Conn {
		if c == front {
			return back
		}
		return front
	}
	dl := &readDeadlines{wait: wait}
	for _, c := range []*websocket.Conn{front, back} {
		c.SetReadLimit(p.cfg.MaxMessageSize)
		c.SetReadDeadline(time.Now().Add(wait))
		// Pings and pongs go through to the other side (which answers for itself); they
		// also show this side is alive.
		c.SetPingHandler(func(data string) error {
			dl.extend(c, time.Now())
			return ignoreClosed(other(c).WriteControl(websocket.PingMessage, []byte(data), time.Now().Add(p.cfg.WriteTimeout)))
		})
		c.SetPongHandler(func(data string) error {
			dl.extend(c, time.Now())
			if data == wsframe.KeepalivePayload {
				return nil // the answer to our own keepalive
			}
			return ignoreClosed(other(c).WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(p.cfg.WriteTimeout)))
		})
		// A close frame is not answered here: it goes to the other side first, whose own
		// close answers it (see below).
		c.SetCloseHandler(func(int, string) error { return nil })
	}

	results := make(chan ended, 2)
	var first sync.Once
	var firstFrom *websocket.Conn // the side whose direction ended first; set in first
	finish := func(e ended) {
		first.Do(func() {
			firstFrom = e.from
			if !ending.Load() {
				p.forwardEnd(e, other(e.from), front)
			}
			dl.end(other(e.from), time.Now().Add(p.cfg.WriteTimeout))
		})
		results <- e
	}
	stopPings := p.keepalive(front, back)
	defer stopPings()
	go func() { finish(p.copyFrames(front, back, dl)) }()
	finish(p.copyFrames(back, front, dl))

	// The two results may arrive in either order; the second is the other direction's.
	second := <-results
	if r := <-results; second.from == firstFrom {
		second = r
	}
	// The second direction ended with the other side's answer to the close it was sent
	// (or at its deadline): the answer completes the handshake with the side that began.
	if ce := (*websocket.CloseError)(nil); errors.As(second.err, &ce) && !second.out && !ending.Load() {
		wsconn.CloseWith(other(second.from), ce.Code, ce.Text, p.cfg.WriteTimeout)
	}
}

// readDeadlines moves the read deadlines of a pair's two connections: forward (to wait
// from now) while the pair is relaying, and to a last deadline once one direction has
// ended, after which they are moved no more.
type readDeadlines struct {
	wait  time.Duration
	mu    sync.Mutex
	ended bool
}

// extend moves c's read deadline to wait from now, unless the pair is ending.
func (d *readDeadlines) extend(c *websocket.Conn, now time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.ended {
		c.SetReadDeadline(now.Add(d.wait))
	}
}

// end gives c's reads a last deadline.
func (d *readDeadlines) end(c *websocket.Conn, at time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.ended = true
	c.SetReadDeadline(at)
}

// forwardEnd tells the other side how its peer's direction ended, with a close code every
// client accepts: the peer's own code, an empty close for "no status", and for a peer that
// vanished without a close, 1011 when it was the backend (1014, "bad gateway", is rejected
// by some client libraries), 1001 (going away) when it was the browser; 1011 too when a
// message was too large or a write failed.
func (p *Proxy) forwardEnd(e ended, to, front *websocket.Conn) {
	var ce *websocket.CloseError
	switch {
	case e.out:
		wsconn.CloseWith(e.from, websocket.CloseInternalServerErr, "the other side failed", p.cfg.WriteTimeout)
		wsconn.CloseWith(to, websocket.CloseInternalServerErr, "write failed", p.cfg.WriteTimeout)
	case errors.Is(e.err, websocket.ErrReadLimit):
		// The reader already told the sender 1009.
		wsconn.CloseWith(to, websocket.CloseInternalServerErr, "the peer sent a message that was too large", p.cfg.WriteTimeout)
	case errors.As(e.err, &ce) && ce.Code != websocket.CloseAbnormalClosure && ce.Code != websocket.CloseTLSHandshake:
		wsconn.CloseWith(to, ce.Code, ce.Text, p.cfg.WriteTimeout)
	case e.from == front:
		wsconn.CloseWith(to, websocket.CloseGoingAway, "the client went away", p.cfg.WriteTimeout)
	default:
		wsconn.CloseWith(to, websocket.CloseInternalServerErr, "the backend went away", p.cfg.WriteTimeout)
	}
}

// copyFrames streams messages from src to dst until either fails, and says how it ended.
// Deadlines are moved only when a quarter of their span has passed, not on every message:
// moving one costs a timer update, and a busy connection would pay it twice per message. A
// read deadline is thus between 3/4 and all of wait away, a write at most 5/4 of
// WriteTimeout long.
func (p *Proxy) copyFrames(src, dst *websocket.Conn, dl *readDeadlines) ended {
	var readSet, writeSet time.Time
	var msg readErrs
	for {
		mt, r, err := src.NextReader()
		if err != nil {
			return ended{from: src, err: err}
		}
		now := time.Now()
		if now.Sub(readSet) > dl.wait/4 {
			dl.extend(src, now)
			readSet = now
		}
		if now.Sub(writeSet) > p.cfg.WriteTimeout/4 {
			dst.SetWriteDeadline(now.Add(p.cfg.WriteTimeout))
			writeSet = now
		}
		msg.r, msg.err = r, nil
		w, err := dst.NextWriter(mt)
		if err == nil {
			if _, err = io.Copy(w, &msg); err == nil {
				err = w.Close()
			}
		}
		if err != nil {
			// A read that fails inside a message (a close frame or a frame that breaks
			// the protocol between fragments, a message over the limit, the connection
			// lost) ends src as it would between messages; only a failed write is dst's.
			return ended{from: src, err: err, out: msg.err == nil}
		}
	}
}

// readErrs is a reader that keeps the error its reader returned, other than io.EOF: when
// an io.Copy fails, it tells whether the read or the write did.
type readErrs struct {
	r   io.Reader
	err error
}

func (m *readErrs) Read(b []byte) (int, error) {
	n, err := m.r.Read(b)
	if err != nil && err != io.EOF {
		m.err = err
	}
	return n, err
}

// keepalive pings both sides every PingInterval until the returned function is called. A
// timer does it, not a goroutine: an idle connection should cost as little as possible.
func (p *Proxy) keepalive(conns ...*websocket.Conn) (stop func()) {
	var mu sync.Mutex
	stopped := false
	var t *time.Timer
	mu.Lock()
	defer mu.Unlock()
	t = time.AfterFunc(p.cfg.PingInterval, func() {
		for _, c := range conns {
			_ = c.WriteControl(websocket.PingMessage, []byte(wsframe.KeepalivePayload), time.Now().Add(p.cfg.WriteTimeout))
		}
		mu.Lock()
		if !stopped {
			t.Reset(p.cfg.PingInterval)
		}
		mu.Unlock()
	})
	return func() {
		mu.Lock()
		stopped = true
		t.Stop()
		mu.Unlock()
	}
}

func ignoreClosed(err error) error {
	if errors.Is(err, websocket.ErrCloseSent) {
		return nil
	}
	return err
}

// Shutdown closes every proxied connection with 1001 (going away) on both sides and waits
// for them to finish, or returns ctx's error. New upgrades are refused from then on.
func (p *Proxy) Shutdown(ctx context.Context) error {
	p.live.stop()
	p.mu.Lock()
	p.closed = true
	conns := make([]*websocket.Conn, 0, len(p.conns))
	for c := range p.conns {
		conns = append(conns, c)
	}
	p.mu.Unlock()
	if p.loops != nil {
		p.loops.Shutdown()
	}
	// Every side hears 1001 first; only then are the connections closed, so no side is
	// told instead that its peer failed.
	for _, c := range conns {
		wsconn.CloseWith(c, websocket.CloseGoingAway, "server shutting down", p.cfg.WriteTimeout)
	}
	for _, c := range conns {
		c.Close()
	}
	waited := make(chan struct{})
	go func() { p.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		if p.loops != nil {
			p.loops.Release()
		}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

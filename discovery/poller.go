package discovery

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// A lean HTTP/1.1 poller for plain-HTTP instances: one kept-alive connection per instance,
// used by the polling goroutine itself (an instance's health and metrics requests go in
// one write, HTTP/1.1 pipelining, and their answers are read in place), with net/http's
// response reader. net/http's client hands every request between three goroutines; side by
// side (bench/discoverypoll), polling 1,000 instances a second with it costs 2x-2.5x the
// CPU of this poller. Redirects are not followed: a health or metrics endpoint must answer
// itself. With Config.Client set, or https, net/http's client is used instead.

// instConn holds the kept-alive connection to one instance between polls. A poll takes
// the connection out (no lock is held while it talks to the instance) and puts it back
// when done; a second poll of the same instance meanwhile dials one of its own.
type instConn struct {
	mu      sync.Mutex // guards the fields, never held across I/O
	idle    *lineConn  // the kept-alive connection, nil while in use or not yet dialed
	dropped bool       // the instance left: a connection put back is closed instead
}

// lineConn is one HTTP/1.1 connection with its reader.
type lineConn struct {
	nc net.Conn
	br *bufio.Reader
}

// take returns the idle connection, or nil.
func (ic *instConn) take() *lineConn {
	ic.mu.Lock()
	defer ic.mu.Unlock()
	lc := ic.idle
	ic.idle = nil
	return lc
}

// put keeps lc for the next poll, unless the instance left or another connection is
// kept already; then it closes lc.
func (ic *instConn) put(lc *lineConn) {
	ic.mu.Lock()
	keep := !ic.dropped && ic.idle == nil
	if keep {
		ic.idle = lc
	}
	ic.mu.Unlock()
	if !keep {
		lc.nc.Close()
	}
}

// drop closes the idle connection and makes put close the one in use.
func (ic *instConn) drop() {
	ic.mu.Lock()
	lc := ic.idle
	ic.idle, ic.dropped = nil, true
	ic.mu.Unlock()
	if lc != nil {
		lc.nc.Close()
	}
}

// conns holds the poller's connections, by instance address.
type conns struct {
	mu sync.Mutex
	m  map[string]*instConn
}

func (c *conns) get(addr string) *instConn {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]*instConn{}
	}
	ic := c.m[addr]
	if ic == nil {
		ic = &instConn{}
		c.m[addr] = ic
	}
	return ic
}

// keep closes the connections of addresses not in live.
func (c *conns) keep(live map[string]bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for addr, ic := range c.m {
		if !live[addr] {
			delete(c.m, addr)
			ic.drop()
		}
	}
}

var errRedirect = errors.New("redirects are not followed")

// exchange is one request of a batch sent on an instance's connection: its path, what
// reads its 2xx answer's body, and its outcome.
type exchange struct {
	path string
	read func(io.Reader) error
	err  error
	done bool
}

// leanGet requests path from addr and hands the 2xx answer's body to read. It returns the
// status for non-2xx answers as an error.
func (s *Service) leanGet(ctx context.Context, addr, path string, read func(io.Reader) error) error {
	ex := &exchange{path: path, read: read}
	s.leanDo(ctx, addr, ex)
	return ex.err
}

// leanDo sends the requests to addr in one write (HTTP/1.1 pipelining: health and metrics
// cost one write and usually one read instead of two each) and reads the answers in order.
// A kept-alive connection that turns out closed gets one fresh try; so do the requests
// left unanswered when an instance closes the connection after an answer.
func (s *Service) leanDo(ctx context.Context, addr string, exs ...*exchange) {
	ic := s.conns.get(addr)
	lc := ic.take()
	defer func() {
		if lc != nil {
			ic.put(lc)
		}
	}()
	deadline := time.Now().Add(s.cfg.Timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	for attempt := 0; ; attempt++ {
		var pending []*exchange
		for _, ex := range exs {
			if !ex.done {
				pending = append(pending, ex)
			}
		}
		if len(pending) == 0 {
			return
		}
		reused := lc != nil
		var answered int
		var err error
		lc, answered, err = lc.exchange(ctx, addr, deadline, s.cfg.Timeout, pending)
		retry := attempt == 0 && ((reused && answered == 0 && isStale(err)) || (answered > 0 && errors.Is(err, errClosedAfter)))
		if !retry {
			for _, ex := range pending[answered:] {
				ex.err, ex.done = err, true
			}
			return
		}
	}
}

// isStale reports whether err looks like a kept-alive connection closed by the peer.
func isStale(err error) bool {
	return errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, net.ErrClosed) ||
		errors.Is(err, errConnReset)
}

var (
	errConnReset = errors.New("connection reset")
	// errClosedAfter means the instance closed the connection after an answer, leaving
	// later requests of the batch unanswered.
	errClosedAfter = errors.New("connection closed by the instance")
)

// exchange writes the requests on lc (dialing a connection when lc is nil) and reads
// their answers in order. It returns the connection to keep (nil once it is closed), how
// many requests were answered (their outcome is in them) and the error that stopped the
// rest.
func (lc *lineConn) exchange(ctx context.Context, addr string, deadline time.Time, timeout time.Duration, exs []*exchange) (*lineConn, int, error) {
	if lc == nil {
		d := net.Dialer{Deadline: deadline}
		nc, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, 0, err
		}
		lc = &lineConn{nc: nc, br: bufio.NewReaderSize(nc, 16<<10)}
	}
	lc.nc.SetDeadline(deadline)
	req := make([]byte, 0, 128*len(exs))
	for _, ex := range exs {
		req = fmt.Appendf(req, "GET %s HTTP/1.1\r\nHost: %s\r\nUser-Agent: globalsession-discovery\r\nAccept: text/plain\r\n\r\n", ex.path, addr)
	}
	if _, err := lc.nc.Write(req); err != nil {
		lc.nc.Close()
		return nil, 0, timeoutOr(err, addr, exs[0].path, timeout, errConnReset)
	}
	for i, ex := range exs {
		resp, err := http.ReadResponse(lc.br, nil)
		if err != nil {
			lc.nc.Close()
			return nil, i, timeoutOr(err, addr, ex.path, timeout, err)
		}
		var keep bool
		keep, ex.err = lc.answer(resp, addr, ex, timeout)
		ex.done = true
		if !keep {
			lc.nc.Close()
			if i+1 < len(exs) {
				return nil, i + 1, errClosedAfter
			}
			return nil, i + 1, nil
		}
	}
	return lc, len(exs), nil
}

// answer checks one response and hands its body to ex.read. It reports whether the
// connection may be kept: only when the body was read to its end.
func (lc *lineConn) answer(resp *http.Response, addr string, ex *exchange, timeout time.Duration) (keep bool, err error) {
	keep = true
	defer func() {
		// Drain what is left (bounded) so the connection can be kept; else drop it.
		if _, derr := io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)); derr != nil || resp.Close {
			keep = false
		}
		resp.Body.Close()
	}()
	switch {
	case resp.StatusCode >= 300 && resp.StatusCode < 400:
		return true, fmt.Errorf("%s%s: status %d to %q: %w", addr, ex.path, resp.StatusCode, resp.Header.Get("Location"), errRedirect)
	case resp.StatusCode < 200 || resp.StatusCode > 299:
		return true, fmt.Errorf("%s%s: status %d", addr, ex.path, resp.StatusCode)
	}
	if err := ex.read(resp.Body); err != nil {
		return false, timeoutOr(err, addr, ex.path, timeout, err)
	}
	return true, nil
}

// timeoutOr turns a deadline error into the poller's "no answer" error, else returns other.
func timeoutOr(err error, addr, path string, timeout time.Duration, other error) error {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return fmt.Errorf("%s%s: no answer within %v", addr, path, timeout)
	}
	return other
}

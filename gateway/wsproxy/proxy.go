package wsproxy

import (
	"bytes"
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/web"
	"github.com/globalsession/globalsession/gateway/internal/wsconn"
	"github.com/globalsession/globalsession/gateway/wsproxy/internal/eventloop"
	"github.com/globalsession/globalsession/gateway/wsproxy/internal/tlsrecord"
)

// Backend is where a WebSocket is proxied to.
type Backend struct {
	// URL is the backend's WebSocket URL (ws:// or wss://).
	URL string
	// Header is sent with the backend's upgrade request (the JWT as Authorization, the
	// session header, ...).
	Header http.Header
	// Session is the gateway session the connection belongs to (SessionRoute sets it):
	// with ProxyConfig.Sessions, the connection is closed when that session ends. Empty
	// means none.
	Session string
	// Reroute, when set, chooses another backend for the same request when this one
	// refuses the connection (an instance that died before discovery noticed); the proxy
	// calls it at most once per request. SessionRoute sets it when its Router is a
	// Rerouter.
	Reroute func(ctx context.Context) (Backend, error)
}

// dial opens the backend's WebSocket for r, with be's headers and the forwarding ones.
func (p *Proxy) dial(r *http.Request, be Backend) (*websocket.Conn, *http.Response, error) {
	h := be.Header.Clone()
	if h == nil {
		h = http.Header{}
	}
	if host, _, err := net.SplitHostPort(r.RemoteAddr); err == nil {
		h.Set("X-Forwarded-For", host)
	}
	proto := "http"
	if r.TLS != nil {
		proto = "https"
	}
	h.Set("X-Forwarded-Proto", proto)
	h.Set("X-Forwarded-Host", r.Host)
	if sp := r.Header.Values("Sec-WebSocket-Protocol"); len(sp) > 0 {
		h["Sec-WebSocket-Protocol"] = sp
	}
	ctx, cancel := context.WithTimeout(r.Context(), p.cfg.HandshakeTimeout)
	defer cancel()
	return p.dialer.DialContext(ctx, be.URL, h)
}

// refused reports whether a dial failed because nothing listens at the backend's address
// (connection refused or reset before the handshake): a backend that is gone, as opposed
// to one that answered.
func refused(err error) bool {
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.ECONNRESET)
}

// HTTPError is an error with the HTTP status to answer it with before the upgrade.
type HTTPError struct {
	Status int
	// Msg is what the browser is told; keep internal detail for Err.
	Msg string
	// Err, when set, is the failure behind a 5xx: logged with the request's id, never
	// sent to the browser.
	Err error
}

// Error implements error.
func (e *HTTPError) Error() string { return fmt.Sprintf("%d %s", e.Status, e.Msg) }

// ProxyConfig configures a Proxy. Zero values are documented defaults.
type ProxyConfig struct {
	// Route says where a request goes, before the client's upgrade is completed: the
	// backend's URL and the headers to send it. An *HTTPError return is answered with its
	// status; any other error with 502.
	Route func(r *http.Request) (Backend, error)
	// AllowedOrigins lists the Origin values accepted (e.g. "https://app.example.com").
	// Empty means only the request's own host. A request without Origin (not a browser) is
	// accepted.
	AllowedOrigins []string
	// MaxMessageSize bounds a message in either direction, in bytes. Zero means 1 MiB.
	MaxMessageSize int64
	// PingInterval is how often both sides are pinged; a side that sends nothing (not even
	// a pong) for two intervals is gone. Zero means 30s.
	PingInterval time.Duration
	// WriteTimeout bounds each write. Zero means 10s.
	WriteTimeout time.Duration
	// HandshakeTimeout bounds dialing the backend. Zero means 10s.
	HandshakeTimeout time.Duration
	// Logger receives refusals and failures. Nil means no logging.
	Logger *slog.Logger
	// Sessions, when set, ends every proxied connection whose session (Backend.Session)
	// ends: at once, with CloseSessionEnded to the browser and 1001 to the backend, when it
	// is logged out or its user removed on any gateway instance (the session tier's change
	// stream), and within SessionCheck when it expires. An open connection counts as a use
	// of its session: it keeps the session from its idle expiry, never past its absolute
	// one.
	Sessions *gateway.Sessions
	// SessionCheck is how often the sessions of open connections are checked. Zero means 1s.
	SessionCheck time.Duration
	// GoroutinePipe makes every connection use the goroutine pipe: two goroutines that
	// decode each frame and encode it again. By default, on Linux, a connection that is
	// plain TCP on both sides is instead relayed by a few event loops (epoll) that move its
	// bytes as they come and read only frame headers: no goroutine per connection and one
	// wake-up of an already waiting thread per message. Both enforce the same limits,
	// pings and close codes.
	GoroutinePipe bool
}

// writeBuffers lends the proxied connections their write buffers only while they write,
// so an idle connection holds none.
var writeBuffers = &sync.Pool{}

// pipeReadBuffer is the read buffer of each side of a pair relayed by the goroutine pipe: a
// frame's header and small messages are read through it, and a read as large as it goes
// straight into the caller's buffer, so large messages do not need a large one. Each idle
// pair holds two (gorilla's default is 4 KiB each).
const pipeReadBuffer = 1024

// Proxy is an http.Handler that completes a browser's WebSocket upgrade only once it has
// connected to the backend Route chose, and then relays frames both ways: text and binary
// messages (fragmented ones streamed, not buffered whole), pings and pongs, and the close
// handshake with the peers' own codes. Shutdown closes the connections it holds, which
// http.Server.Shutdown does not (they are hijacked).
//
// A refusal is a plain HTTP error, before the upgrade: 403 for a foreign Origin, the status
// of Route's *HTTPError (with SessionRoute: 401 without a session, 503 with no healthy
// backend), 502 when the backend cannot be reached (its own 4xx status when it refuses
// the session). Once connected, each side hears the other's close code, never the
// reserved 1005, 1006 or 1015: a backend that vanishes is reported with 1011, a browser
// that does with 1001. A side that breaks the protocol (a code that may not be sent, such
// as those or 1014, included) hears 1002, and the other side hears that it vanished; a
// message over MaxMessageSize gets its sender 1009 and the other side 1011.
//
// On Linux, a connection that is plain TCP on both sides is relayed by a few event loops
// (a goroutine each, waiting in epoll) that move its bytes as they arrive and read only the
// frame headers (to enforce the read limit and close codes, and to put pings and close
// frames between frames): an idle connection costs about 2 KiB and no goroutine, and a
// message one wake-up of a waiting thread. A loop reads all the sockets that are ready, and
// writes what it relays, in batches of one io_uring system call each where the kernel has
// io_uring (one call per socket otherwise). Connections over TLS, and all of them elsewhere
// or with ProxyConfig.GoroutinePipe, use two goroutines that decode and re-encode every
// frame.
type Proxy struct {
	cfg    ProxyConfig
	dialer websocket.Dialer
	loops  *eventloop.Loops // nil for the goroutine pipe only
	mu     sync.Mutex
	conns  map[*websocket.Conn]struct{}
	closed bool
	wg     sync.WaitGroup
	live   liveSessions // open connections by session, when cfg.Sessions is set
	open   atomic.Int64 // connections being relayed now
}

// NewProxy returns a proxy.
func NewProxy(cfg ProxyConfig) (*Proxy, error) {
	if cfg.Route == nil {
		return nil, errors.New("gateway: proxy needs a Route")
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = 1 << 20
	}
	if cfg.PingInterval == 0 {
		cfg.PingInterval = 30 * time.Second
	}
	if cfg.WriteTimeout == 0 {
		cfg.WriteTimeout = 10 * time.Second
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 10 * time.Second
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.SessionCheck == 0 {
		cfg.SessionCheck = time.Second
	}
	p := &Proxy{cfg: cfg, conns: map[*websocket.Conn]struct{}{},
		dialer: websocket.Dialer{HandshakeTimeout: cfg.HandshakeTimeout, Proxy: http.ProxyFromEnvironment,
			ReadBufferSize: pipeReadBuffer, WriteBufferPool: writeBuffers}}
	if !cfg.GoroutinePipe {
		p.loops = eventloop.New(eventloop.Config{MaxMessageSize: cfg.MaxMessageSize, PingInterval: cfg.PingInterval,
			WriteTimeout: cfg.WriteTimeout, Logger: cfg.Logger})
	}
	if cfg.Sessions != nil {
		p.live.start(cfg.Sessions, cfg.SessionCheck)
	}
	if p.loops != nil {
		var d net.Dialer
		p.dialer.NetDialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			c, err := d.DialContext(ctx, network, addr)
			if err != nil {
				return nil, err
			}
			return &handshakeConn{Conn: c, on: true}, nil
		}
	}
	return p, nil
}

// ServeHTTP implements http.Handler.
func (p *Proxy) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if !web.IsWebSocketUpgrade(r) {
		w.Header().Set("Connection", "close")
		http.Error(w, "this endpoint only accepts WebSocket upgrades (Upgrade: websocket)", http.StatusBadRequest)
		return
	}
	if !web.OriginAllowed(r, p.cfg.AllowedOrigins) {
		p.cfg.Logger.Warn("gateway: refused a cross-site WebSocket", "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	be, err := p.cfg.Route(r)
	if err != nil {
		var he *HTTPError
		switch {
		case errors.As(err, &he) && he.Status < 500:
			http.Error(w, he.Msg, he.Status)
		case errors.As(err, &he):
			web.Fail(w, r, p.cfg.Logger, he.Status, he.Msg, cmp.Or(he.Err, error(he)), false)
		default:
			web.Fail(w, r, p.cfg.Logger, http.StatusBadGateway, "no route to a backend", err, false)
		}
		return
	}
	back, resp, err := p.dial(r, be)
	if err != nil && be.Reroute != nil && refused(err) {
		p.cfg.Logger.Info("gateway: backend refused the connection; routing again", "backend", be.URL, "err", err)
		if next, rerr := be.Reroute(r.Context()); rerr == nil {
			be = next
			back, resp, err = p.dial(r, be)
		} else {
			p.cfg.Logger.Warn("gateway: no other backend", "err", rerr)
		}
	}
	if err != nil {
		status := http.StatusBadGateway
		if resp != nil && resp.StatusCode >= 400 && resp.StatusCode < 500 {
			status = resp.StatusCode // the backend refused this session: say so
		}
		p.cfg.Logger.Warn("gateway: backend unreachable", "backend", be.URL, "err", err)
		http.Error(w, "backend unreachable", status)
		return
	}
	rh := http.Header{}
	if sp := back.Subprotocol(); sp != "" {
		rh.Set("Sec-WebSocket-Protocol", sp)
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }, ReadBufferSize: pipeReadBuffer,
		WriteBufferPool: writeBuffers}
	front, err := up.Upgrade(w, r, rh)
	if err != nil {
		back.Close()
		return
	}
	if backTCP, early, ok := p.tunnelable(front, back); ok {
		if !p.admit() {
			p.refuse(front, back)
			return
		}
		frontConn, frontTLS, err := p.handOver(front)
		if errors.Is(err, tlsrecord.ErrDataHeld) {
			// The browser sent data before our 101, as the upgrade forbids and crypto/tls
			// alone now holds: the connection can go on neither way.
			p.cfg.Logger.Info("gateway: a browser sent data before its upgrade was answered", "err", err)
			p.closePair(front, websocket.CloseProtocolError, "data before the upgrade was answered",
				back, websocket.CloseGoingAway, "the client went away")
			p.wg.Done()
			return
		}
		if err == nil {
			lp := p.live.add(be.Session)
			p.open.Add(1)
			var pair *eventloop.Pair
			pair, err = p.loops.Take(frontConn, backTCP, frontTLS, early, func() { p.live.remove(lp); p.open.Add(-1); p.wg.Done() })
			if err == nil {
				p.live.ready(lp, pair.End)
				return
			}
			p.live.remove(lp)
			p.open.Add(-1)
			if frontTLS != nil {
				// crypto/tls has given the connection up: the goroutine pipe cannot have it.
				p.cfg.Logger.Warn("gateway: an event loop did not take a wss connection", "err", err)
				frontConn.Close()
				back.Close()
				p.wg.Done()
				return
			}
		}
		p.wg.Done() // the goroutine pipe takes the pair after all
	}
	if !p.track(front, back) {
		p.refuse(front, back)
		return
	}
	lp := p.live.add(be.Session)
	p.open.Add(1)
	var ending atomic.Bool // the gateway ends the pair: the pipe forwards no close
	p.live.ready(lp, func(code int, text string) {
		ending.Store(true)
		wsconn.CloseWith(front, code, text, p.cfg.WriteTimeout)
		wsconn.CloseWith(back, websocket.CloseGoingAway, "the client's session ended", p.cfg.WriteTimeout)
		front.Close()
		back.Close()
	})
	// The pipe runs on a goroutine of its own and this one, whose stack grew through the
	// TLS handshake and the HTTP request, ends: an idle pair keeps small stacks only.
	go func() {
		defer p.live.remove(lp)
		defer p.open.Add(-1)
		p.pipe(front, back, &ending)
	}()
}

// Open returns how many connections the proxy is relaying now.
func (p *Proxy) Open() int { return int(p.open.Load()) }

// refuse closes a pair that arrived during Shutdown.
func (p *Proxy) refuse(front, back *websocket.Conn) {
	p.closePair(front, websocket.CloseGoingAway, "shutting down", back, websocket.CloseGoingAway, "shutting down")
}

// closePair sends each side of a pair its close frame and closes both.
func (p *Proxy) closePair(front *websocket.Conn, frontCode int, frontText string, back *websocket.Conn, backCode int, backText string) {
	wsconn.CloseWith(front, frontCode, frontText, p.cfg.WriteTimeout)
	wsconn.CloseWith(back, backCode, backText, p.cfg.WriteTimeout)
	front.Close()
	back.Close()
}

// tunnelable reports whether a pair can go to an event loop (the browser's side plain TCP
// or TLS from a Listener of NewTLSListener, the backend's plain TCP with its handshake
// recorded); if so it returns the backend's TCP connection and what the backend sent after
// its 101. It ends the recording of the backend's handshake in any case.
func (p *Proxy) tunnelable(front, back *websocket.Conn) (net.Conn, []byte, bool) {
	nc, overTLS := back.UnderlyingConn(), false
	if tc, ok := nc.(*tls.Conn); ok {
		nc, overTLS = tc.NetConn(), true
	}
	hc, ok := nc.(*handshakeConn)
	if !ok {
		return nil, nil, false // no event loops
	}
	rec := hc.stop()
	frontTCP := false
	switch fc := front.UnderlyingConn().(type) {
	case *net.TCPConn:
		frontTCP = true
	case *tls.Conn:
		if tc, ok := fc.NetConn().(*tlsrecord.Conn); ok {
			_, frontTCP = tc.Conn.(*net.TCPConn)
		}
	}
	_, backTCP := hc.Conn.(*net.TCPConn)
	if overTLS || !frontTCP || !backTCP {
		return nil, nil, false
	}
	// What the library read beyond the 101's header (after a proxy's CONNECT answer, if
	// any) came from the backend's stream.
	i := bytes.Index(rec, []byte("HTTP/1.1 101"))
	if i < 0 {
		return nil, nil, false
	}
	end := bytes.Index(rec[i:], []byte("\r\n\r\n"))
	if end < 0 {
		return nil, nil, false
	}
	return hc.Conn, rec[i+end+4:], true
}

// handOver returns the TCP connection of a browser's side that tunnelable accepted and,
// for wss://, its TLS record layer, which crypto/tls gives up (tlsrecord.Handoff). It
// fails, leaving the connection as it was, when the TLS layer cannot be handed over.
func (p *Proxy) handOver(front *websocket.Conn) (net.Conn, *tlsrecord.Stream, error) {
	tc, ok := front.UnderlyingConn().(*tls.Conn)
	if !ok {
		return front.UnderlyingConn(), nil, nil
	}
	stream, nc, err := tlsrecord.Handoff(tc)
	if err != nil {
		p.cfg.Logger.Debug("gateway: a wss connection stays on the goroutine pipe", "err", err)
		return nil, nil, err
	}
	return nc, stream, nil
}

// admit counts a pair in for Shutdown; false if shutting down.
func (p *Proxy) admit() bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.wg.Add(1)
	return true
}

// track registers both connections for Shutdown; false if shutting down.
func (p *Proxy) track(a, b *websocket.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return false
	}
	p.conns[a], p.conns[b] = struct{}{}, struct{}{}
	p.wg.Add(1)
	return true
}

// handshakeConn records what is read from a backend connection until stop, so that bytes
// the backend sent right after its 101, which the WebSocket library may have read ahead,
// are not lost when the connection goes to an event loop.
type handshakeConn struct {
	net.Conn
	mu  sync.Mutex
	on  bool
	rec []byte
}

func (c *handshakeConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	c.mu.Lock()
	if c.on {
		c.rec = append(c.rec, b[:max(n, 0)]...)
	}
	c.mu.Unlock()
	return n, err
}

// stop ends the recording and returns what was read.
func (c *handshakeConn) stop() []byte {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
	rec := c.rec
	c.rec = nil
	return rec
}

func (p *Proxy) untrack(a, b *websocket.Conn) {
	p.mu.Lock()
	delete(p.conns, a)
	delete(p.conns, b)
	p.mu.Unlock()
	p.wg.Done()
}

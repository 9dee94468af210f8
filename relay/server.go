package relay

import (
	"context"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
)

// ServerOptions are the connection settings shared by the relay and the sibling endpoint.
type ServerOptions struct {
	// TLS, when set, makes the server speak TLS. Set ClientAuth in it to require client
	// certificates (see relay/tlsconfig).
	TLS *tls.Config
	// Secret, when set, must be presented by every client in its hello.
	Secret string
	// MaxFrame is the largest frame accepted. Zero means 1 MiB.
	MaxFrame int
	// Heartbeat is how often an idle connection is pinged; a peer silent for two intervals
	// is disconnected. Zero means 5s; negative disables heartbeats.
	Heartbeat time.Duration
	// RequestTimeout bounds requests the server makes (to its sibling, or to relief
	// servers) and writes to a peer. Zero means 5s.
	RequestTimeout time.Duration
	// QueueLen is how many pushed messages may wait for a slow subscriber before it is
	// disconnected. Zero means 4096.
	QueueLen int
	// QueueAttempts is how many queue members a request is offered to, one after another,
	// when members' connections are lost while they hold it. Zero means
	// DefaultQueueAttempts.
	QueueAttempts int
	// HelloTimeout is how long a new connection may take to say hello; then it is closed.
	// Zero means 10s.
	HelloTimeout time.Duration
	// MaxConns bounds the connections served at once: one more is closed as soon as it is
	// accepted (counted, and logged at most once every ten seconds). Zero means 10,000;
	// negative means no limit.
	MaxConns int
	// Logger receives connection events and refusals. Nil means no logging.
	Logger *slog.Logger
}

func (o *ServerOptions) setDefaults() {
	if o.Heartbeat == 0 {
		o.Heartbeat = 5 * time.Second
	}
	if o.RequestTimeout == 0 {
		o.RequestTimeout = 5 * time.Second
	}
	if o.QueueLen == 0 {
		o.QueueLen = 4096
	}
	if o.HelloTimeout == 0 {
		o.HelloTimeout = 10 * time.Second
	}
	if o.MaxConns == 0 {
		o.MaxConns = 10000
	}
	if o.QueueAttempts == 0 {
		o.QueueAttempts = DefaultQueueAttempts
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// roleHandler is what a server does with a peer's entry requests after the hello.
type roleHandler interface {
	serveRequest(p *peer, f *wire.Frame)
}

// server accepts connections, runs the hello, tracks subscriptions and fans messages out.
type server struct {
	opts           ServerOptions
	ln             net.Listener
	role           roleHandler
	wg             sync.WaitGroup
	mu             sync.Mutex
	peers          map[*peer]struct{}
	subs           map[string]map[*peer]struct{}
	queues         map[string]*queue
	gen            uint64        // counts changes of subs, so roles can cache what they derive from it
	genCh          chan struct{} // closed and replaced when gen changes
	genNow         atomic.Uint64 // gen, for readers that take no lock
	closing        bool
	done           chan struct{}
	refused        atomic.Int64 // connections closed at once: MaxConns were open
	accepted       atomic.Int64
	requests       [256]atomic.Uint64 // by op
	queueCh        chan struct{}      // closed and replaced when a queue member joins
	queueWaits     atomic.Int64       // requests that waited for a queue's first member
	lastRefusedLog atomic.Int64       // unix nanoseconds
}

// peer is one connected client of a server.
type peer struct {
	srv       *server
	c         *conn
	name      string
	ready     bool   // hello done; only the reader goroutine touches it
	id        string // the name the peer gave in its hello; set before it can subscribe
	inherited bool   // the link from the parent process: no secret is asked
	// greeted is ready for the hello timer, which runs on a goroutine of its own.
	greeted    atomic.Bool
	helloTimer *time.Timer
}

func newServer(ln net.Listener, opts ServerOptions, role roleHandler) *server {
	opts.setDefaults()
	return &server{opts: opts, ln: ln, role: role, peers: map[*peer]struct{}{},
		subs: map[string]map[*peer]struct{}{}, queues: map[string]*queue{}, done: make(chan struct{}),
		genCh: make(chan struct{}), queueCh: make(chan struct{})}
}

// listen binds addr for a server with opts.
func listen(addr string, opts *ServerOptions) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: listen %s: %w", addr, err)
	}
	if opts.TLS != nil {
		ln = tls.NewListener(ln, opts.TLS)
	}
	return ln, nil
}

// serve accepts connections until the listener closes.
func (s *server) serve() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		backoff := 5 * time.Millisecond
		for {
			nc, err := s.ln.Accept()
			if err != nil {
				if errors.Is(err, net.ErrClosed) {
					return
				}
				s.opts.Logger.Warn("relay: accept", "err", err)
				select {
				case <-time.After(backoff):
				case <-s.done:
					return
				}
				backoff = min(2*backoff, time.Second)
				continue
			}
			backoff = 5 * time.Millisecond
			s.serveConn(nc, nc.RemoteAddr().String())
		}
	}()
}

// serveConn runs the protocol on an accepted connection.
func (s *server) serveConn(nc net.Conn, name string) *peer { return s.servePeer(nc, name, false) }

// serveInherited runs the protocol on a connection inherited from the parent process (the
// relay's socket pair with its child sibling): only the parent holds its other end, so
// its hello needs no secret.
func (s *server) serveInherited(nc net.Conn, name string) *peer { return s.servePeer(nc, name, true) }

func (s *server) servePeer(nc net.Conn, name string, inherited bool) *peer {
	p := &peer{srv: s, name: name, inherited: inherited}
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		nc.Close()
		return nil
	}
	if s.opts.MaxConns > 0 && len(s.peers) >= s.opts.MaxConns {
		s.mu.Unlock()
		nc.Close()
		s.refuse(name)
		return nil
	}
	s.peers[p] = struct{}{}
	s.mu.Unlock()
	s.accepted.Add(1)
	p.c = newConn(nc, connConfig{
		name:           name,
		logger:         s.opts.Logger,
		dispatch:       p,
		onClose:        func(_ *conn, err error) { s.drop(p, err) },
		requestTimeout: s.opts.RequestTimeout,
		writeTimeout:   s.opts.RequestTimeout,
		maxFrame:       s.opts.MaxFrame,
		queueLen:       s.opts.QueueLen,
	})
	p.helloTimer = time.AfterFunc(s.opts.HelloTimeout, func() {
		if !p.greeted.Load() {
			p.c.close(fmt.Errorf("%w: %s did not say hello within %v", ErrConnLost, name, s.opts.HelloTimeout))
		}
	})
	// The reader is one of the server's goroutines: shutdown waits for it, so no request is
	// being served once it returns.
	s.wg.Add(1)
	go func() { defer s.wg.Done(); p.c.readLoop() }()
	s.wg.Add(1)
	go func() { defer s.wg.Done(); p.c.heartbeat(s.opts.Heartbeat) }()
	return p
}

// serve handles one frame from the peer: the hello first, then subscriptions and pings
// here, and entry requests in the role.
func (p *peer) serve(c *conn, f *wire.Frame) {
	p.srv.requests[f.Op].Add(1)
	if !p.ready {
		if f.Op != wire.OpHello {
			c.replyError(f.ID, "hello expected first")
			c.closeAfterFlush(fmt.Errorf("%s sent %s before hello", p.name, f.Op))
			return
		}
		if len(f.Value) < 1 || f.Value[0] < wire.Version {
			c.replyError(f.ID, fmt.Sprintf("protocol version %d is required", wire.Version))
			c.closeAfterFlush(fmt.Errorf("%s speaks an older protocol", p.name))
			return
		}
		secret := f.Value[1:]
		if !p.inherited && subtle.ConstantTimeCompare(secret, []byte(p.srv.opts.Secret)) != 1 {
			p.srv.opts.Logger.Warn("relay: refused a client with a wrong secret", "peer", p.name)
			c.replyError(f.ID, "wrong secret")
			c.closeAfterFlush(fmt.Errorf("%w: wrong secret from %s", ErrRefused, p.name))
			return
		}
		if len(f.Key) > 0 {
			p.id = string(f.Key)
			p.name = fmt.Sprintf("%s (%s)", f.Key, p.name)
		}
		p.ready = true
		p.greeted.Store(true)
		p.helloTimer.Stop()
		c.reply(f.ID, wire.StatusOK, 0, []byte{wire.Version}, 0)
		return
	}
	if (f.Op == wire.OpSet || f.Op == wire.OpEvict) && f.Flags&wire.FlagNoReply != 0 {
		f.ID = 0 // nothing waits for the answer: none is sent
	}
	switch f.Op {
	case wire.OpPing:
		c.reply(f.ID, wire.StatusOK, 0, nil, 0)
	case wire.OpHello:
		c.replyError(f.ID, "hello already done")
	case wire.OpSubscribe:
		if f.Flags&wire.FlagResume != 0 {
			if r, ok := p.srv.role.(resumer); ok {
				r.resume(p, f)
			} else {
				c.replyError(f.ID, fmt.Sprintf("subscribe: path %q keeps no stream of changes here", f.Path))
			}
			return
		}
		if f.Flags&wire.FlagQueue != 0 {
			if err := validLabel(string(f.Key)); err != nil {
				c.replyError(f.ID, err.Error())
				return
			}
			p.srv.join(p, string(f.Path), string(f.Key))
		} else {
			p.srv.subscribe(p, string(f.Path))
		}
		c.reply(f.ID, wire.StatusOK, 0, nil, 0)
	case wire.OpUnsubscribe:
		if f.Flags&wire.FlagQueue != 0 {
			p.srv.leave(p, string(f.Path))
		} else {
			p.srv.unsubscribe(p, string(f.Path))
		}
		c.reply(f.ID, wire.StatusOK, 0, nil, 0)
	case wire.OpRequest:
		go p.srv.request(p, copyFrame(f))
	case wire.OpMembers:
		c.reply(f.ID, wire.StatusValue, 0, []byte(strings.Join(p.srv.members(string(f.Path)), "\n")), 0)
	default:
		p.srv.role.serveRequest(p, f)
	}
}

func (s *server) subscribe(p *peer, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.subs[path]
	if m == nil {
		m = map[*peer]struct{}{}
		s.subs[path] = m
	}
	m[p] = struct{}{}
	s.bumpLocked()
}

func (s *server) unsubscribe(p *peer, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs[path], p)
	s.bumpLocked()
}

// bumpLocked starts a new generation of the subscriptions; s.mu is held.
func (s *server) bumpLocked() {
	s.gen++
	s.genNow.Store(s.gen)
	close(s.genCh)
	s.genCh = make(chan struct{})
}

// changed returns a channel that is closed once the generation of the subscriptions is
// no longer gen.
func (s *server) changed(gen uint64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.genCh
}

// generation returns the current generation of the subscriptions.
func (s *server) generation() uint64 { return s.genNow.Load() }

// subscribers returns the peers subscribed to path, and the generation of the
// subscriptions they were read at.
func (s *server) subscribers(path string) ([]*peer, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.subs[path]
	out := make([]*peer, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	return out, s.gen
}

// fanOut pushes a message to every subscriber of f's path but except.
func (s *server) fanOut(f *wire.Frame, except *peer) {
	s.mu.Lock()
	m := s.subs[string(f.Path)]
	targets := make([]*peer, 0, len(m))
	for p := range m {
		if p != except {
			targets = append(targets, p)
		}
	}
	s.mu.Unlock()
	for _, p := range targets {
		p.c.push(f)
	}
}

// drop forgets a closed peer.
func (s *server) drop(p *peer, err error) {
	if p.helloTimer != nil {
		p.helloTimer.Stop()
	}
	s.mu.Lock()
	delete(s.peers, p)
	for _, m := range s.subs {
		delete(m, p)
	}
	for path := range s.queues {
		s.leaveLocked(p, path)
	}
	s.bumpLocked()
	closing := s.closing
	s.mu.Unlock()
	if !closing && !errors.Is(err, ErrConnLost) {
		s.opts.Logger.Info("relay: peer disconnected", "peer", p.name, "err", err)
	}
}

// ServerStats are the counts of a relay protocol server's connections and requests.
type ServerStats struct {
	Open     int               // connections open now
	Accepted int64             // connections served since the start
	Refused  int64             // connections closed at once because MaxConns were open
	Requests map[string]uint64 // frames received, by op name ("get", "publish", ...)
}

func (s *server) stats() ServerStats {
	s.mu.Lock()
	st := ServerStats{Open: len(s.peers), Accepted: s.accepted.Load(), Refused: s.refused.Load(), Requests: map[string]uint64{}}
	s.mu.Unlock()
	for op := range s.requests {
		if n := s.requests[op].Load(); n > 0 {
			st.Requests[wire.Op(op).String()] = n
		}
	}
	return st
}

// refuse counts a connection closed because MaxConns were open, and logs the refusals at
// most once every ten seconds.
func (s *server) refuse(name string) {
	n := s.refused.Add(1)
	now := time.Now().UnixNano()
	last := s.lastRefusedLog.Load()
	if now-last < int64(10*time.Second) || !s.lastRefusedLog.CompareAndSwap(last, now) {
		return
	}
	s.opts.Logger.Warn("relay: refusing connections: the connection limit is reached", "peer", name,
		"max_conns", s.opts.MaxConns, "refused_total", n)
}

// shutdown stops accepting, closes every connection and waits for the server's goroutines,
// or returns ctx's error when it ends first.
func (s *server) shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	peers := make([]*peer, 0, len(s.peers))
	for p := range s.peers {
		peers = append(peers, p)
	}
	s.mu.Unlock()
	s.ln.Close()
	for _, p := range peers {
		p.c.close(ErrClosed)
	}
	waited := make(chan struct{})
	go func() { s.wg.Wait(); close(waited) }()
	select {
	case <-waited:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

package endpoint

import (
	"cmp"
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

	"github.com/globalsession/globalsession/internal/throttle"
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
	// FrameBudget bounds the bytes of large frames (bodies over 64 KiB) that all
	// connections together hold while receiving and serving them: a connection whose next
	// frame does not fit waits until one does, so peers that announce large frames and send
	// them slowly cost this much at most. Smaller frames take no share. Zero means 64 MiB;
	// it is raised to MaxFrame when smaller.
	FrameBudget int64
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
	if o.FrameBudget == 0 {
		o.FrameBudget = 64 << 20
	}
	o.FrameBudget = max(o.FrameBudget, int64(cmp.Or(o.MaxFrame, wire.DefaultMaxFrame)))
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
}

// ServerDefaults returns o with its zero fields set to their documented defaults, as a
// Server applies them: a role that reads o (its RequestTimeout, its Logger) reads these.
func ServerDefaults(o ServerOptions) ServerOptions {
	o.setDefaults()
	return o
}

// Handler is what a server does with the requests the protocol leaves to its role: the
// entry requests (get, set, publish, delete, evict) a peer sends once its hello is done.
type Handler interface {
	// ServeRequest answers f, from p, on the peer's reader goroutine: f is valid only
	// during the call, and it must reply exactly once (p.Reply and the like), before it
	// returns or later from another goroutine with copied data (see CopyFrame).
	ServeRequest(p *Peer, f *wire.Frame)
}

// Resumer is a Handler that keeps a stream of changes (see ChangeStream): it answers a
// subscribe with FlagResume. A server whose handler is not one refuses such subscribes.
type Resumer interface {
	// Resume answers f, a subscribe with FlagResume from p, as ServeRequest answers
	// requests.
	Resume(p *Peer, f *wire.Frame)
}

// Server is the accepting end of the relay protocol: it accepts connections, runs the
// hello (secret, version, hello deadline, connection limit), answers pings, keeps
// subscriptions and queue memberships, brokers queue requests, fans messages out to
// subscribers, pings idle peers, and hands the entry requests to its Handler.
type Server struct {
	opts       ServerOptions
	budget     *wire.Budget  // shared by the readers of every connection
	replies    [256]opCounts // answered requests by op: statuses and latencies
	ln         net.Listener
	role       Handler
	wg         sync.WaitGroup
	mu         sync.Mutex
	peers      map[*Peer]struct{}
	subs       map[string]map[*Peer]struct{}
	queues     map[string]*queue
	gen        uint64        // counts changes of subs, so roles can cache what they derive from it
	genCh      chan struct{} // closed and replaced when gen changes
	genNow     atomic.Uint64 // gen, for readers that take no lock
	closing    bool
	done       chan struct{}
	refused    atomic.Int64 // connections closed at once: MaxConns were open
	accepted   atomic.Int64
	requests   [256]atomic.Uint64 // by op
	queueCh    chan struct{}      // closed and replaced when a queue member joins
	queueWaits atomic.Int64       // requests that waited for a queue's first member
	refusedLog throttle.Throttle
}

// Peer is one connected client of a Server, as its Handler sees it: the handler answers
// the peer's requests with its Reply methods, and may send it requests of its own (a
// sibling asks its relief servers this way).
type Peer struct {
	srv       *Server
	c         *conn
	name      string
	ready     bool   // hello done; only the reader goroutine touches it
	id        string // the name the peer gave in its hello; set before it can subscribe
	inherited bool   // the link from the parent process: no secret is asked
	// greeted is ready for the hello timer, which runs on a goroutine of its own.
	greeted    atomic.Bool
	helloTimer *time.Timer
}

// Listen binds addr (host:port; ":0" picks a free port) for a server with opts that hands
// entry requests to h. The server accepts nothing until Serve.
func Listen(addr string, opts ServerOptions, h Handler) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("relay: listen %s: %w", addr, err)
	}
	if opts.TLS != nil {
		ln = tlsListener{ln, opts.TLS}
	}
	opts.setDefaults()
	return &Server{opts: opts, ln: ln, role: h, peers: map[*Peer]struct{}{}, budget: wire.NewBudget(opts.FrameBudget),
		subs: map[string]map[*Peer]struct{}{}, queues: map[string]*queue{}, done: make(chan struct{}),
		genCh: make(chan struct{}), queueCh: make(chan struct{})}, nil
}

// tlsListener is tls.NewListener over sockets with raw reads and writes (withRawIO).
type tlsListener struct {
	net.Listener
	cfg *tls.Config
}

func (l tlsListener) Accept() (net.Conn, error) {
	nc, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return tls.Server(withRawIO(nc), l.cfg), nil
}

// Addr returns the address the server listens on.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Serve accepts connections, in a goroutine of its own, until Shutdown.
func (s *Server) Serve() {
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
			s.ServeConn(nc, nc.RemoteAddr().String())
		}
	}()
}

// ServeConn runs the protocol on an accepted connection, named name in the logs, as the
// accept loop does. It returns the connection's peer, or nil when the server is shutting
// down or MaxConns connections are open (nc is then closed).
func (s *Server) ServeConn(nc net.Conn, name string) *Peer { return s.servePeer(nc, name, false) }

// ServeInherited is ServeConn for a connection inherited from the parent process (the
// relay's socket pair with its child sibling): only the parent holds its other end, so
// its hello needs no secret.
func (s *Server) ServeInherited(nc net.Conn, name string) *Peer { return s.servePeer(nc, name, true) }

func (s *Server) servePeer(nc net.Conn, name string, inherited bool) *Peer {
	p := &Peer{srv: s, name: name, inherited: inherited}
	// The connection is whole before the peer is registered: Shutdown closes every
	// registered peer's connection.
	p.c = newConn(nc, connConfig{
		name:           name,
		logger:         s.opts.Logger,
		dispatch:       p,
		onClose:        func(_ *conn, err error) { s.drop(p, err) },
		requestTimeout: s.opts.RequestTimeout,
		writeTimeout:   s.opts.RequestTimeout,
		maxFrame:       s.opts.MaxFrame,
		budget:         s.budget,
		queueLen:       s.opts.QueueLen,
	})
	p.c.clock = newRequestClock(&s.replies)
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		p.c.cancel()
		nc.Close()
		return nil
	}
	if s.opts.MaxConns > 0 && len(s.peers) >= s.opts.MaxConns {
		s.mu.Unlock()
		s.refuse(name) // counted before the peer can see the close
		p.c.cancel()
		nc.Close()
		return nil
	}
	s.peers[p] = struct{}{}
	// Added while not closing, under the lock Shutdown takes before it waits.
	s.wg.Add(2)
	// Set under the lock drop reads it with.
	p.helloTimer = time.AfterFunc(s.opts.HelloTimeout, func() {
		if !p.greeted.Load() {
			p.c.close(fmt.Errorf("%w: %s did not say hello within %v", ErrConnLost, name, s.opts.HelloTimeout))
		}
	})
	s.mu.Unlock()
	s.accepted.Add(1)
	// The reader is one of the server's goroutines: shutdown waits for it, so no request is
	// being served once it returns.
	go func() { defer s.wg.Done(); p.c.readLoop() }()
	go func() { defer s.wg.Done(); p.c.heartbeat(s.opts.Heartbeat) }()
	return p
}

// serve handles one frame from the peer: the hello first, then subscriptions, queues and
// pings here, and entry requests in the handler.
func (p *Peer) serve(c *conn, f *wire.Frame) {
	p.srv.requests[f.Op].Add(1)
	c.clock.start(f)
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
			if r, ok := p.srv.role.(Resumer); ok {
				r.Resume(p, f)
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
		go p.srv.request(p, CopyFrame(f))
	case wire.OpMembers:
		c.reply(f.ID, wire.StatusValue, 0, []byte(strings.Join(p.srv.members(string(f.Path)), "\n")), 0)
	default:
		p.srv.role.ServeRequest(p, f)
	}
}

func (s *Server) subscribe(p *Peer, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.subs[path]
	if m == nil {
		m = map[*Peer]struct{}{}
		s.subs[path] = m
	}
	m[p] = struct{}{}
	s.bumpLocked()
}

func (s *Server) unsubscribe(p *Peer, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.subs[path], p)
	s.bumpLocked()
}

// bumpLocked starts a new generation of the subscriptions; s.mu is held.
func (s *Server) bumpLocked() {
	s.gen++
	s.genNow.Store(s.gen)
	close(s.genCh)
	s.genCh = make(chan struct{})
}

// Changed returns a channel that is closed once the generation of the subscriptions (see
// Generation) is no longer gen.
func (s *Server) Changed(gen uint64) <-chan struct{} {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.gen != gen {
		c := make(chan struct{})
		close(c)
		return c
	}
	return s.genCh
}

// Generation returns the current generation of the subscriptions: it changes whenever a
// peer subscribes, unsubscribes or disconnects, so a role can cache what it derives from
// the subscribers until it does.
func (s *Server) Generation() uint64 { return s.genNow.Load() }

// Subscribers returns the peers subscribed to path, and the generation of the
// subscriptions they were read at.
func (s *Server) Subscribers(path string) ([]*Peer, uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := s.subs[path]
	out := make([]*Peer, 0, len(m))
	for p := range m {
		out = append(out, p)
	}
	return out, s.gen
}

// FanOut pushes f, a message, to every subscriber of f's path but except (nil: to every
// one), without waiting: a subscriber that does not keep up is disconnected.
func (s *Server) FanOut(f *wire.Frame, except *Peer) {
	s.mu.Lock()
	m := s.subs[string(f.Path)]
	targets := make([]*Peer, 0, len(m))
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
func (s *Server) drop(p *Peer, err error) {
	s.mu.Lock()
	if p.helloTimer != nil {
		p.helloTimer.Stop()
	}
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
	// LargeFrameBytes is how much of FrameBudget large frames hold now, and
	// LargeFrameWaits how many connections wait for a share of it.
	LargeFrameBytes int64
	LargeFrameWaits int64
}

// Stats returns the counts of the server's connections and requests.
func (s *Server) Stats() ServerStats {
	s.mu.Lock()
	st := ServerStats{Open: len(s.peers), Accepted: s.accepted.Load(), Refused: s.refused.Load(), Requests: map[string]uint64{},
		LargeFrameBytes: s.budget.Held(), LargeFrameWaits: s.budget.Waiting()}
	s.mu.Unlock()
	for op := range s.requests {
		if n := s.requests[op].Load(); n > 0 {
			st.Requests[wire.Op(op).String()] = n
		}
	}
	return st
}

// RequestStats returns, for each op with answered requests, the replies by status and
// their latencies (from a request's arrival to its reply being queued).
func (s *Server) RequestStats() []RequestStats { return requestStats(&s.replies) }

// refuse counts a connection closed because MaxConns were open, and logs the refusals at
// most once every ten seconds.
func (s *Server) refuse(name string) {
	n := s.refused.Add(1)
	if !s.refusedLog.Allow(10 * time.Second) {
		return
	}
	s.opts.Logger.Warn("relay: refusing connections: the connection limit is reached", "peer", name,
		"max_conns", s.opts.MaxConns, "refused_total", n)
}

// Shutdown stops accepting, closes every connection and waits for the server's goroutines
// (its handler's calls on the readers included), or returns ctx's error when it ends first.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	peers := make([]*Peer, 0, len(s.peers))
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

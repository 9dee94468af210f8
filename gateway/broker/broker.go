package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/web"
	"github.com/globalsession/globalsession/gateway/internal/wsconn"
	"github.com/globalsession/globalsession/relay"
)

// BrokerConfig configures a Broker. The zero value of every field but Relay and Sessions
// is a documented default.
type BrokerConfig struct {
	// Relay is the connection to the relay that brokers messages between gateway
	// instances and workers. Required; the broker does not close it.
	Relay *relay.Client
	// Sessions looks the login cookie up. Required.
	Sessions *gateway.Sessions
	// Queue is the worker queue messages go to. Empty means DefaultQueue.
	Queue string
	// Instance names this gateway instance; client ids are "<Instance>/<n>". Empty means a
	// random name. It must not contain "/".
	Instance string
	// Advertise is the base URL clients reach this instance at ("http://10.0.0.5:8080").
	// When set, the instance joins GatewaysPath on the relay with it, so that discovery
	// (MemberProvider) finds the instance while its relay connection lives.
	Advertise string
	// AllowedOrigins as for wsproxy.ProxyConfig: empty means the request's own host.
	AllowedOrigins []string
	// Group extracts the group (workbook, document) from the upgrade request. Nil means
	// the path after its last "/ws/".
	Group func(r *http.Request) string
	// Authorize says whether a session may join a group (and so receive its messages); an
	// error refuses the WebSocket with 403 and its text. Nil means the default: a named
	// user may join any group, an anonymous session only with AllowAnonymous.
	Authorize func(ctx context.Context, s *gateway.Session, group string) error
	// AllowAnonymous lets anonymous sessions join groups under the default Authorize.
	AllowAnonymous bool
	// BackendToken makes the token workers get in Message.Token. Nil means
	// Sessions.Token (the gateway's own JWT); (*gateway.OIDC).BackendToken gives the
	// provider's access token when the OIDC config says so.
	BackendToken gateway.TokenFunc
	// MaxMessageSize bounds a client's message. Zero means 64 KiB.
	MaxMessageSize int64
	// RequestTimeout bounds the handling of one message by a worker. Zero means 30s.
	RequestTimeout time.Duration
	// MaxFileSize bounds the body of a file a worker serves (GET
	// <...>/ws/<group>/files/<name>); a larger one is answered 502. Zero means
	// DefaultMaxFileSize.
	MaxFileSize int
	// FileTimeout bounds one file request. Zero means 10s.
	FileTimeout time.Duration
	// MaxFileRequests bounds the file requests of one session under way at once on this
	// instance; more are answered 429. Zero means 4.
	MaxFileRequests int
	// MaxInFlight bounds the messages of one client being handled at once; the client's
	// next message is read when one finishes. Zero means 16.
	MaxInFlight int
	// SendQueue is how many messages may wait for a slow client before it is
	// disconnected (close code 1013). Zero means 256.
	SendQueue int
	// PingInterval is how often an idle client is pinged; one silent for two intervals is
	// disconnected. Zero means 30s.
	PingInterval time.Duration
	// WriteTimeout bounds each write to a client. Zero means 10s.
	WriteTimeout time.Duration
	// SessionCheck is how often, at most, a client's session is checked again while it
	// sends messages; a session that ended closes the connection with 1008. Zero means 5s.
	SessionCheck time.Duration
	// Logger receives connection events. Nil means no logging.
	Logger *slog.Logger
}

func (c *BrokerConfig) setDefaults() error {
	if c.Relay == nil || c.Sessions == nil {
		return errors.New("gateway: broker config needs a relay and sessions")
	}
	if c.Queue == "" {
		c.Queue = DefaultQueue
	}
	if c.Instance == "" {
		id, err := web.RandomID(6)
		if err != nil {
			return err
		}
		c.Instance = "gw-" + id
	}
	if strings.Contains(c.Instance, "/") {
		return fmt.Errorf("gateway: broker instance name %q contains a slash", c.Instance)
	}
	if c.Group == nil {
		c.Group = func(r *http.Request) string {
			p := r.URL.Path
			if i := strings.LastIndex(p, "/ws/"); i >= 0 {
				return p[i+len("/ws/"):]
			}
			return ""
		}
	}
	if c.MaxMessageSize == 0 {
		c.MaxMessageSize = 64 << 10
	}
	if c.RequestTimeout == 0 {
		c.RequestTimeout = 30 * time.Second
	}
	if c.MaxInFlight == 0 {
		c.MaxInFlight = 16
	}
	if c.MaxFileSize == 0 {
		c.MaxFileSize = DefaultMaxFileSize
	}
	if c.FileTimeout == 0 {
		c.FileTimeout = 10 * time.Second
	}
	if c.MaxFileRequests == 0 {
		c.MaxFileRequests = 4
	}
	if c.SendQueue == 0 {
		c.SendQueue = 256
	}
	if c.PingInterval == 0 {
		c.PingInterval = 30 * time.Second
	}
	if c.WriteTimeout == 0 {
		c.WriteTimeout = 10 * time.Second
	}
	if c.SessionCheck == 0 {
		c.SessionCheck = 5 * time.Second
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return nil
}

// Broker is the gateway's broker mode: an http.Handler for WebSocket upgrades on
// /ws/<group> from logged-in clients. Each client message goes on the relay to the worker
// queue, where one live worker at a time handles it (at least once: another worker gets
// it if the first one's connection is lost while it holds it); the worker's replies go to
// the sender, to another client, or to every client of a group on any gateway instance.
//
// What a client receives is each reply's data as the worker made it (text or binary), and
// the broker's own notices as JSON text messages:
//
//	{"gateway":{"event":"joined","group":"wb1","instance":"gw-1","client":"gw-1/7"}}
//	{"gateway":{"event":"error","seq":3,"error":"no worker answered: ..."}}
//
// seq counts the client's messages on its connection from 1, so a client can tell which
// message failed. A message always gets its worker's replies or an error notice.
type Broker struct {
	cfg      BrokerConfig
	upgrader websocket.Upgrader

	mu      sync.Mutex
	clients map[string]*brokerClient
	groups  map[string]*group
	// fileReqs counts each session's file requests under way; under mu.
	fileReqs map[string]int
	closed   bool
	wg       sync.WaitGroup // connections being served
	unwatch  func()         // stops the session-end notifications

	next                                  atomic.Uint64
	messages, failures, delivered, pushes atomic.Uint64
}

// errShuttingDown refuses a client that arrives while the broker shuts down.
var errShuttingDown = errors.New("gateway: broker shutting down")

// NewBroker subscribes the instance's inbox on the relay and, with Advertise, joins
// GatewaysPath. Stop it with Shutdown.
func NewBroker(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, clients: map[string]*brokerClient{}, groups: map[string]*group{}, fileReqs: map[string]int{}}
	b.unwatch = cfg.Sessions.WatchEnds(b.sessionEnded)
	b.upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	if err := cfg.Relay.Subscribe(ctx, InboxPath(cfg.Instance), b.inbox()); err != nil {
		return nil, fmt.Errorf("gateway: broker %s: subscribe its inbox: %w", cfg.Instance, err)
	}
	if cfg.Advertise != "" {
		label, _ := json.Marshal(memberLabel{ID: cfg.Instance, URL: cfg.Advertise})
		err := cfg.Relay.Join(ctx, GatewaysPath, string(label), func(context.Context, []byte, []byte) ([]byte, error) {
			return nil, errors.New("a gateway instance takes no queue requests")
		})
		if err != nil {
			return nil, fmt.Errorf("gateway: broker %s: register: %w", cfg.Instance, err)
		}
	}
	return b, nil
}

// sessionEnded closes at once, with 1008, the clients of a session that ended anywhere;
// with id empty (the store may have missed ends) each client's next message checks its
// session.
func (b *Broker) sessionEnded(id string) {
	b.mu.Lock()
	var ended []*brokerClient
	for _, c := range b.clients {
		if id == "" || c.session.ID == id {
			ended = append(ended, c)
		}
	}
	b.mu.Unlock()
	for _, c := range ended {
		if id == "" {
			c.recheck.Store(true)
			continue
		}
		go func() {
			wsconn.CloseWith(c.conn, websocket.ClosePolicyViolation, "the session ended", b.cfg.WriteTimeout)
			c.conn.Close()
		}()
	}
}

// authorize applies Authorize, or the default policy.
func (b *Broker) authorize(ctx context.Context, s *gateway.Session, group string) error {
	if b.cfg.Authorize != nil {
		return b.cfg.Authorize(ctx, s, group)
	}
	if s.Anonymous && !b.cfg.AllowAnonymous {
		return fmt.Errorf("an anonymous session may not join group %q: log in", group)
	}
	return nil
}

// Instance returns the instance's name.
func (b *Broker) Instance() string { return b.cfg.Instance }

// Clients returns how many clients are connected.
func (b *Broker) Clients() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.clients)
}

// ServeHTTP upgrades a logged-in client's request and serves its connection.
func (b *Broker) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, err := b.cfg.Sessions.Lookup(r.Context(), r)
	if errors.Is(err, gateway.ErrNoSession) {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	if err != nil {
		web.Fail(w, r, b.cfg.Logger, http.StatusBadGateway, "the session store did not answer", err, false)
		return
	}
	if !web.IsWebSocketUpgrade(r) {
		if group, name, ok := fileRequest(r); ok {
			b.serveFile(w, r, s, group, name)
			return
		}
		http.Error(w, "a WebSocket upgrade is required", http.StatusBadRequest)
		return
	}
	if !web.OriginAllowed(r, b.cfg.AllowedOrigins) {
		b.cfg.Logger.Warn("gateway: refused a cross-site WebSocket", "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	group := b.cfg.Group(r)
	if err := validGroup(group); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if err := b.authorize(r.Context(), s, group); err != nil {
		http.Error(w, err.Error(), http.StatusForbidden)
		return
	}
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		http.Error(w, "shutting down", http.StatusServiceUnavailable)
		return
	}
	b.wg.Add(1)
	b.mu.Unlock()
	defer b.wg.Done()
	conn, err := b.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // the upgrader answered
	}
	c := &brokerClient{
		id:      fmt.Sprintf("%s/%d", b.cfg.Instance, b.next.Add(1)),
		group:   group,
		session: s,
		conn:    conn,
		out:     make(chan outMsg, b.cfg.SendQueue),
		sem:     make(chan struct{}, b.cfg.MaxInFlight),
		checked: time.Now(),
	}
	c.ctx, c.cancel = context.WithCancel(context.Background())
	defer c.cancel()
	// The message limit is enforced by readLimited, which says why it closes.
	jctx, jcancel := context.WithTimeout(r.Context(), b.cfg.WriteTimeout)
	err = b.join(jctx, c)
	jcancel()
	if err != nil {
		code, text := websocket.CloseTryAgainLater, "cannot join the group now"
		if errors.Is(err, errShuttingDown) {
			code, text = websocket.CloseGoingAway, "server shutting down"
		} else {
			b.cfg.Logger.Warn("gateway: a client could not join its group", "group", group, "err", err)
		}
		wsconn.CloseWith(conn, code, text, b.cfg.WriteTimeout)
		wsconn.LingerClose(conn)
		return
	}
	defer b.leave(c)
	writerDone := make(chan struct{})
	go func() { defer close(writerDone); b.writeLoop(c) }()
	c.notice(noticeBody{Event: "joined", Group: group, Instance: b.cfg.Instance, Client: c.id})
	code, reason := b.readLoop(c)
	c.cancel()
	c.pending.Wait()
	<-writerDone
	if code != 0 {
		wsconn.CloseWith(conn, code, reason, b.cfg.WriteTimeout)
	}
	wsconn.LingerClose(conn)
}

// validGroup checks a group name from a URL.
func validGroup(g string) error {
	switch {
	case g == "":
		return errors.New("no group in the path (/ws/<group>)")
	case len(g) > 256:
		return fmt.Errorf("group name of %d bytes (the limit is 256)", len(g))
	case strings.ContainsFunc(g, unicode.IsControl) || strings.Contains(g, "/"):
		return fmt.Errorf("group name %q has a slash or a control character", g)
	}
	return nil
}

// Shutdown leaves GatewaysPath, closes every client with 1001 (going away) and waits for
// their connections to end, or returns ctx's error. New upgrades are refused from then on.
func (b *Broker) Shutdown(ctx context.Context) error {
	b.unwatch()
	b.mu.Lock()
	already := b.closed
	b.closed = true
	clients := make([]*brokerClient, 0, len(b.clients))
	for _, c := range b.clients {
		clients = append(clients, c)
	}
	b.mu.Unlock()
	if !already {
		lctx, cancel := context.WithTimeout(ctx, b.cfg.WriteTimeout)
		if b.cfg.Advertise != "" {
			_ = b.cfg.Relay.Leave(lctx, GatewaysPath)
		}
		_ = b.cfg.Relay.Unsubscribe(lctx, InboxPath(b.cfg.Instance))
		cancel()
	}
	for _, c := range clients {
		wsconn.CloseWith(c.conn, websocket.CloseGoingAway, "server shutting down", b.cfg.WriteTimeout)
		c.conn.Close()
	}
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

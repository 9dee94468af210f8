package gateway

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

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// BrokerConfig configures a Broker. The zero value of every field but Relay and Sessions
// is a documented default.
type BrokerConfig struct {
	// Relay is the connection to the relay that brokers messages between gateway
	// instances and workers. Required; the broker does not close it.
	Relay *relay.Client
	// Sessions looks the login cookie up. Required.
	Sessions *Sessions
	// Queue is the worker queue messages go to. Empty means DefaultQueue.
	Queue string
	// Instance names this gateway instance; client ids are "<Instance>/<n>". Empty means a
	// random name. It must not contain "/".
	Instance string
	// Advertise is the base URL clients reach this instance at ("http://10.0.0.5:8080").
	// When set, the instance joins GatewaysPath on the relay with it, so that discovery
	// (MemberProvider) finds the instance while its relay connection lives.
	Advertise string
	// AllowedOrigins as for ProxyConfig: empty means the request's own host.
	AllowedOrigins []string
	// Group extracts the group (workbook, document) from the upgrade request. Nil means
	// the path after its last "/ws/".
	Group func(r *http.Request) string
	// MaxMessageSize bounds a client's message. Zero means 64 KiB.
	MaxMessageSize int64
	// RequestTimeout bounds the handling of one message by a worker. Zero means 30s.
	RequestTimeout time.Duration
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
		id, err := randomID(6)
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

// Broker is the gateway's broker mode (seed 002's wssvc): an http.Handler for WebSocket
// upgrades on /ws/<group> from logged-in clients. Each client message goes on the relay to
// the worker queue, where exactly one live worker handles it; the worker's replies go to
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
	closed  bool
	wg      sync.WaitGroup // connections being served

	next                                  atomic.Uint64
	messages, failures, delivered, pushes atomic.Uint64
}

// group is a group with clients on this instance (or joining, or being left).
type group struct {
	mu         sync.Mutex                 // serializes the group's subscribe and unsubscribe
	subscribed bool                       // on the relay; under mu
	refs       int                        // clients joined or joining; under Broker.mu
	members    map[*brokerClient]struct{} // joined clients; under Broker.mu
}

// errShuttingDown refuses a client that arrives while the broker shuts down.
var errShuttingDown = errors.New("gateway: broker shutting down")

// brokerClient is one client connection of a Broker.
type brokerClient struct {
	id, group string
	session   *Session
	conn      *websocket.Conn
	out       chan outMsg
	sem       chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	slow      sync.Once
	checked   time.Time      // last session check; only the reader touches it
	pending   sync.WaitGroup // messages being handled; Add only on the reader
}

type outMsg struct {
	binary bool
	data   []byte
}

// notice is a message of the broker's own.
type notice struct {
	Gateway noticeBody `json:"gateway"`
}

type noticeBody struct {
	Event    string `json:"event"`
	Group    string `json:"group,omitempty"`
	Instance string `json:"instance,omitempty"`
	Client   string `json:"client,omitempty"`
	Seq      uint64 `json:"seq,omitempty"`
	Error    string `json:"error,omitempty"`
}

// NewBroker subscribes the instance's inbox on the relay and, with Advertise, joins
// GatewaysPath. Stop it with Shutdown.
func NewBroker(ctx context.Context, cfg BrokerConfig) (*Broker, error) {
	if err := cfg.setDefaults(); err != nil {
		return nil, err
	}
	b := &Broker{cfg: cfg, clients: map[string]*brokerClient{}, groups: map[string]*group{}}
	b.upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	if err := cfg.Relay.Subscribe(ctx, InboxPath(cfg.Instance), b.fromInbox); err != nil {
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
	if errors.Is(err, ErrNoSession) {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	if err != nil {
		http.Error(w, "session store: "+err.Error(), http.StatusBadGateway)
		return
	}
	if !isWebSocketUpgrade(r) {
		http.Error(w, "a WebSocket upgrade is required", http.StatusBadRequest)
		return
	}
	if !originAllowed(r, b.cfg.AllowedOrigins) {
		b.cfg.Logger.Warn("gateway: refused a cross-site WebSocket", "origin", r.Header.Get("Origin"), "host", r.Host)
		http.Error(w, "origin not allowed", http.StatusForbidden)
		return
	}
	group := b.cfg.Group(r)
	if err := validGroup(group); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
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
	conn.SetReadLimit(b.cfg.MaxMessageSize)
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
		closeWith(conn, code, text, b.cfg.WriteTimeout)
		lingerClose(conn)
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
		closeWith(conn, code, reason, b.cfg.WriteTimeout)
	}
	lingerClose(conn)
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

// readLoop reads the client's messages until it goes; it returns the close code to send
// (0: none, the connection is gone).
func (b *Broker) readLoop(c *brokerClient) (int, string) {
	wait := 2 * b.cfg.PingInterval
	c.conn.SetReadDeadline(time.Now().Add(wait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(wait)) })
	var seq uint64
	for {
		mt, data, err := c.conn.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				return websocket.CloseNormalClosure, ""
			case errors.Is(err, websocket.ErrReadLimit):
				return websocket.CloseMessageTooBig, fmt.Sprintf("message larger than %d bytes", b.cfg.MaxMessageSize)
			}
			return 0, ""
		}
		c.conn.SetReadDeadline(time.Now().Add(wait))
		if time.Since(c.checked) > b.cfg.SessionCheck {
			c.checked = time.Now()
			if _, err := b.cfg.Sessions.LookupID(c.ctx, c.session.ID); errors.Is(err, ErrNoSession) {
				return websocket.ClosePolicyViolation, "the session ended"
			}
		}
		seq++
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
			return 0, ""
		}
		c.pending.Add(1)
		go func(seq uint64) {
			defer func() { <-c.sem; c.pending.Done() }()
			b.handle(c, seq, mt == websocket.BinaryMessage, data)
		}(seq)
	}
}

// handle sends one message to the worker queue and routes the replies.
func (b *Broker) handle(c *brokerClient, seq uint64, binaryMsg bool, data []byte) {
	b.messages.Add(1)
	req, err := encodeRequest(&Message{User: c.session.User, Group: c.group, Token: c.session.Token, Data: data, Binary: binaryMsg})
	if err != nil {
		b.fail(c, seq, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, b.cfg.RequestTimeout)
	defer cancel()
	out, err := b.cfg.Relay.Request(ctx, QueuePath(b.cfg.Queue), []byte(c.id), req)
	if err != nil {
		if c.ctx.Err() != nil {
			return // the client is gone
		}
		b.fail(c, seq, describeBrokerError(err))
		return
	}
	replies, err := decodeReplies(out)
	if err != nil {
		b.fail(c, seq, "the worker's answer was malformed: "+err.Error())
		return
	}
	for _, rp := range replies {
		if err := b.route(ctx, c, rp); err != nil {
			b.fail(c, seq, fmt.Sprintf("a reply to %s %s was not delivered: %v", rp.Kind, rp.Target, err))
		}
	}
}

func describeBrokerError(err error) string {
	var re *relay.RemoteError
	switch {
	case errors.As(err, &re):
		return re.Message
	case errors.Is(err, relay.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return "no worker answered in time"
	case errors.Is(err, relay.ErrUnavailable):
		return "the broker is unreachable: " + err.Error()
	}
	return err.Error()
}

// fail sends an error notice for message seq.
func (b *Broker) fail(c *brokerClient, seq uint64, msg string) {
	b.failures.Add(1)
	c.notice(noticeBody{Event: "error", Seq: seq, Error: msg})
}

// route delivers one reply.
func (b *Broker) route(ctx context.Context, c *brokerClient, rp Reply) error {
	m := outMsg{binary: rp.Binary, data: rp.Data}
	switch rp.Kind {
	case ReplyToSender:
		b.deliver(c, m)
		return nil
	case ReplyToClient:
		b.mu.Lock()
		to := b.clients[rp.Target]
		b.mu.Unlock()
		if to != nil {
			b.deliver(to, m)
			return nil
		}
	case ReplyToGroup:
		// This instance's members get it here; the relay fans it out to the other
		// instances with members (never back to this one, which published it).
		b.deliverGroup(rp.Target, m)
	}
	b.pushes.Add(1)
	return publishReply(ctx, b.cfg.Relay, rp)
}

func (b *Broker) deliver(c *brokerClient, m outMsg) {
	if c.send(m, b) {
		b.delivered.Add(1)
	}
}

func (b *Broker) deliverGroup(group string, m outMsg) {
	b.mu.Lock()
	var members []*brokerClient
	if g := b.groups[group]; g != nil {
		members = make([]*brokerClient, 0, len(g.members))
		for c := range g.members {
			members = append(members, c)
		}
	}
	b.mu.Unlock()
	for _, c := range members {
		b.deliver(c, m)
	}
}

// fromInbox delivers a reply another instance or a worker addressed to one of this
// instance's clients.
func (b *Broker) fromInbox(ch sessioncache.Change) {
	bin, data, err := decodePush(ch.Value)
	if err != nil || ch.Deleted {
		b.cfg.Logger.Warn("gateway: dropped a malformed push", "err", err)
		return
	}
	b.mu.Lock()
	c := b.clients[string(ch.Key)]
	b.mu.Unlock()
	if c != nil {
		b.deliver(c, outMsg{binary: bin, data: append([]byte(nil), data...)})
	}
}

// fromGroup returns the subscription callback of a group's relay path.
func (b *Broker) fromGroup(group string) func(sessioncache.Change) {
	return func(ch sessioncache.Change) {
		bin, data, err := decodePush(ch.Value)
		if err != nil || ch.Deleted {
			b.cfg.Logger.Warn("gateway: dropped a malformed group push", "group", group, "err", err)
			return
		}
		b.deliverGroup(group, outMsg{binary: bin, data: append([]byte(nil), data...)})
	}
}

// join registers c and adds it to its group, subscribing the group on the relay when it
// is the instance's first member. Each group has its own lock for this, so a slow relay
// holds up only the clients of the groups it is subscribing.
func (b *Broker) join(ctx context.Context, c *brokerClient) error {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return errShuttingDown
	}
	g := b.groups[c.group]
	if g == nil {
		g = &group{members: map[*brokerClient]struct{}{}}
		b.groups[c.group] = g
	}
	g.refs++
	b.mu.Unlock()

	g.mu.Lock()
	var err error
	if !g.subscribed {
		if err = b.cfg.Relay.Subscribe(ctx, GroupPath(c.group), b.fromGroup(c.group)); err == nil {
			g.subscribed = true
		}
	}
	g.mu.Unlock()

	b.mu.Lock()
	if err == nil && b.closed {
		err = errShuttingDown
	}
	if err != nil {
		last := g.release()
		b.mu.Unlock()
		if last {
			b.unsubscribe(c.group, g)
		}
		return err
	}
	b.clients[c.id] = c
	g.members[c] = struct{}{}
	b.mu.Unlock()
	return nil
}

// leave forgets c, unsubscribing its group when it was the instance's last member.
func (b *Broker) leave(c *brokerClient) {
	b.mu.Lock()
	delete(b.clients, c.id)
	g := b.groups[c.group]
	delete(g.members, c)
	last := g.release()
	b.mu.Unlock()
	if last {
		b.unsubscribe(c.group, g)
	}
}

// release drops a reference to the group; Broker.mu is held. It reports whether it was the
// last.
func (g *group) release() bool {
	g.refs--
	return g.refs == 0
}

// unsubscribe ends the relay subscription of a group nobody here is in, unless a client
// joined meanwhile. The group stays in b.groups until then, so a client that joins during
// the unsubscribe waits on the same lock and subscribes again after it.
func (b *Broker) unsubscribe(name string, g *group) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b.mu.Lock()
	idle := g.refs == 0
	b.mu.Unlock()
	if idle && g.subscribed {
		// With the relay unreachable the subscription is gone there already; the client
		// forgets it at once, so a short wait is enough.
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		if err := b.cfg.Relay.Unsubscribe(ctx, GroupPath(name)); err != nil {
			b.cfg.Logger.Debug("gateway: unsubscribe a group", "group", name, "err", err)
		}
		cancel()
		g.subscribed = false
	}
	b.mu.Lock()
	if g.refs == 0 && b.groups[name] == g {
		delete(b.groups, name)
	}
	b.mu.Unlock()
}

// writeLoop writes c's queued messages and pings until c's reader ends.
func (b *Broker) writeLoop(c *brokerClient) {
	ping := time.NewTicker(b.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case m := <-c.out:
			mt := websocket.TextMessage
			if m.binary {
				mt = websocket.BinaryMessage
			}
			c.conn.SetWriteDeadline(time.Now().Add(b.cfg.WriteTimeout))
			if err := c.conn.WriteMessage(mt, m.data); err != nil {
				c.conn.Close() // the reader fails and ends the connection
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(b.cfg.WriteTimeout)); err != nil {
				c.conn.Close()
				return
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// send queues m for c without waiting; a client whose queue is full is too slow and is
// disconnected. It reports whether m was queued.
func (c *brokerClient) send(m outMsg, b *Broker) bool {
	select {
	case c.out <- m:
		return true
	case <-c.ctx.Done():
		return false
	default:
	}
	c.slow.Do(func() {
		b.cfg.Logger.Warn("gateway: client too slow, disconnecting", "client", c.id, "queued", cap(c.out))
		go func() {
			closeWith(c.conn, websocket.CloseTryAgainLater, "too slow to keep up", b.cfg.WriteTimeout)
			c.conn.Close()
		}()
	})
	return false
}

func (c *brokerClient) notice(n noticeBody) {
	data, _ := json.Marshal(notice{Gateway: n})
	select {
	case c.out <- outMsg{data: data}:
	case <-c.ctx.Done():
	default:
	}
}

// Health answers 200 while the instance is connected to its relay, else 503: discovery
// polls it.
func (b *Broker) Health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed || !b.cfg.Relay.Connected() {
			http.Error(w, "no relay connection", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

// Metrics serves the instance's counters in the Prometheus text format; the session
// service can pick the least loaded instance by gateway_broker_clients.
func (b *Broker) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b.mu.Lock()
		clients, groups := len(b.clients), len(b.groups)
		b.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP gateway_broker_clients Connected WebSocket clients.\n# TYPE gateway_broker_clients gauge\ngateway_broker_clients %d\n", clients)
		fmt.Fprintf(w, "# HELP gateway_broker_groups Groups with a client here.\n# TYPE gateway_broker_groups gauge\ngateway_broker_groups %d\n", groups)
		for _, m := range []struct {
			name, help string
			v          uint64
		}{
			{"gateway_broker_messages_total", "Client messages sent to workers.", b.messages.Load()},
			{"gateway_broker_failures_total", "Client messages answered with an error notice.", b.failures.Load()},
			{"gateway_broker_delivered_total", "Replies delivered to clients of this instance.", b.delivered.Load()},
			{"gateway_broker_pushes_total", "Replies handed to the relay for other instances.", b.pushes.Load()},
		} {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v)
		}
	})
}

// Shutdown leaves GatewaysPath, closes every client with 1001 (going away) and waits for
// their connections to end, or returns ctx's error. New upgrades are refused from then on.
func (b *Broker) Shutdown(ctx context.Context) error {
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
		closeWith(c.conn, websocket.CloseGoingAway, "server shutting down", b.cfg.WriteTimeout)
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

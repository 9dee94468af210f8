package hub

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/sessionaccess"
	"github.com/globalsession/globalsession/gateway/internal/web"
)

// Command is one instruction clients may send to the hub: {"type": Name, "params": {...}}.
type Command struct {
	// Name is the message type that selects the command.
	Name string
	// Required and Optional list the parameters; a missing required one, or one not
	// listed, is refused before Handle runs.
	Required, Optional []string
	// Handle runs the command's setup for a user (preparing data, adding loop functions)
	// and returns what to acknowledge with. Keep the recurring work in loop functions.
	Handle func(ctx context.Context, u *User, params map[string]any) (any, error)
}

// LoopFunc is work repeated for a user on every cycle of a loop.
type LoopFunc func(ctx context.Context, u *User) error

// HubConfig configures a Hub.
type HubConfig struct {
	// Sessions authenticates channels by the login cookie and is checked every cycle.
	Sessions *gateway.Sessions
	// AcceptBearer also admits channels that a front gateway proxies here (a
	// wsproxy.Proxy with wsproxy.SessionRoute, which sends no cookie): the session is the
	// one named by the JWT in the Authorization header, which must verify with Sessions'
	// signer and whose session must still be live. With several hub instances behind the
	// front, wsproxy.RouteConfig.ByUser and a sticky session service keep each user on one
	// instance.
	AcceptBearer bool
	// ShortInterval and LongInterval are the two loops' periods. Zero means 5s and 3m.
	ShortInterval, LongInterval time.Duration
	// Validate, when set, checks more than the session's existence each cycle (that its
	// token is still valid, say); an error ends the user's channels of that session.
	Validate func(ctx context.Context, s *gateway.Session) error
	// MaxMessageSize bounds a client's command. Zero means 64 KiB.
	MaxMessageSize int64
	// AllowedOrigins as for wsproxy.ProxyConfig: empty means the request's own host.
	AllowedOrigins []string
	// Events, when set, adds the built-in "subscribe" and "unsubscribe" commands (param
	// "topic"): events of a topic are pushed to every user following it, from one upstream
	// subscription per topic.
	Events EventSource
	// KeepSessionsAlive makes an open channel count as a use of its session: each cycle's
	// check extends the session (up to its absolute limit), as a request would. By default
	// only a channel's commands count, so a tab left open does not keep its session alive
	// by itself, and the session ends after its idle TTL.
	KeepSessionsAlive bool
	// MaxTopicsPerUser and MaxTopics bound the topics one user follows and the topics the
	// hub follows upstream; a subscribe beyond either is refused with an error saying so.
	// Zero means 32 and 1024.
	MaxTopicsPerUser, MaxTopics int
	// SendQueue is how many messages may wait for one channel (tab); a browser that lets
	// more pile up is disconnected with CloseFallingBehind. Zero means 64.
	SendQueue int
	// Logger receives command failures. Nil means no logging.
	Logger *slog.Logger
}

// Hub is the gateway's push endpoint: browsers open a WebSocket with their session cookie
// and send commands; channels are grouped per user, so several tabs share one set of loops
// and every message reaches all of the user's tabs; the loops stop when the last tab
// closes.
type Hub struct {
	cfg      HubConfig
	mu       sync.Mutex
	commands map[string]Command
	users    map[string]*User
	closed   bool
	wg       sync.WaitGroup // the users' loops
	writers  sync.WaitGroup // the channels' writers
	topics   *topics
	unwatch  func() // stops the session-end notifications
}

// User is one user's channels and state on the hub.
type User struct {
	// ID is the user name.
	ID  string
	hub *Hub

	mu       sync.Mutex
	channels map[*channel]struct{}
	short    map[string]LoopFunc
	long     map[string]LoopFunc
	state    map[string]any
	stop     chan struct{}
}

// NewHub returns a hub with no commands; Register adds them.
func NewHub(cfg HubConfig) (*Hub, error) {
	if cfg.Sessions == nil {
		return nil, errors.New("gateway: hub needs Sessions")
	}
	if cfg.ShortInterval == 0 {
		cfg.ShortInterval = 5 * time.Second
	}
	if cfg.LongInterval == 0 {
		cfg.LongInterval = 3 * time.Minute
	}
	if cfg.MaxMessageSize == 0 {
		cfg.MaxMessageSize = 64 << 10
	}
	if cfg.MaxTopicsPerUser == 0 {
		cfg.MaxTopicsPerUser = 32
	}
	if cfg.MaxTopics == 0 {
		cfg.MaxTopics = 1024
	}
	if cfg.SendQueue == 0 {
		cfg.SendQueue = 64
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	h := &Hub{cfg: cfg, commands: map[string]Command{}, users: map[string]*User{}}
	h.unwatch = cfg.Sessions.WatchEnds(h.sessionEnded)
	if cfg.Events != nil {
		h.topics = &topics{src: cfg.Events, subs: map[string]*topic{}, perUser: cfg.MaxTopicsPerUser, max: cfg.MaxTopics}
		h.commands["subscribe"] = Command{Name: "subscribe", Required: []string{"topic"},
			Handle: func(ctx context.Context, u *User, p map[string]any) (any, error) {
				name, ok := p["topic"].(string)
				if !ok || name == "" {
					return nil, errors.New("topic must be a non-empty string")
				}
				return name, h.topics.subscribe(ctx, u, tabOf(ctx), name)
			}}
		h.commands["unsubscribe"] = Command{Name: "unsubscribe", Required: []string{"topic"},
			Handle: func(ctx context.Context, _ *User, p map[string]any) (any, error) {
				name, _ := p["topic"].(string)
				if name == "" {
					return nil, errors.New("topic must be a non-empty string")
				}
				if !h.topics.unsubscribe(tabOf(ctx), name) {
					return nil, fmt.Errorf("this tab does not follow topic %q", name)
				}
				return name, nil
			}}
	}
	return h, nil
}

// Register adds a command. Names are unique.
func (h *Hub) Register(c Command) error {
	if c.Name == "" || c.Handle == nil {
		return errors.New("gateway: a command needs a name and a handler")
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if _, dup := h.commands[c.Name]; dup {
		return fmt.Errorf("gateway: command %q is already registered", c.Name)
	}
	h.commands[c.Name] = c
	return nil
}

// Commands returns the registered command names, sorted.
func (h *Hub) Commands() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	names := make([]string, 0, len(h.commands))
	for n := range h.commands {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

// ServeHTTP upgrades an authenticated request to a hub channel.
func (h *Hub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	s, err := h.session(r)
	if err != nil {
		http.Error(w, "log in first", http.StatusUnauthorized)
		return
	}
	if !web.IsWebSocketUpgrade(r) || !web.OriginAllowed(r, h.cfg.AllowedOrigins) {
		http.Error(w, "a WebSocket upgrade from an allowed origin is required", http.StatusBadRequest)
		return
	}
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	conn, err := up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	conn.SetReadLimit(h.cfg.MaxMessageSize)
	ch := newChannel(conn, s.ID, h.cfg.SendQueue, &h.writers)
	u, ok := h.join(s.User, ch)
	if !ok {
		ch.end(websocket.CloseGoingAway, "shutting down")
		return
	}
	defer h.leave(u, ch)
	ch.send(map[string]any{"type": "ready", "user": s.User, "commands": h.Commands()})
	for {
		var msg struct {
			Type   string         `json:"type"`
			ID     any            `json:"id,omitempty"`
			Params map[string]any `json:"params"`
		}
		_, b, err := conn.ReadMessage()
		if err != nil {
			return
		}
		if err := json.Unmarshal(b, &msg); err != nil {
			ch.send(map[string]any{"type": "error", "error": "not a JSON command: " + err.Error()})
			continue
		}
		// A command is a use of the session: it extends it, and one that ended ends the tab.
		if _, err := h.cfg.Sessions.LookupID(r.Context(), ch.session); errors.Is(err, gateway.ErrNoSession) {
			ch.send(map[string]any{"type": "error", "error": "session ended: log in again"})
			ch.end(CloseSessionEnded, "session ended")
			continue
		}
		h.run(r.Context(), u, ch, msg.Type, msg.ID, msg.Params)
	}
}

// session finds the session of a channel request: by the login cookie, or with
// AcceptBearer by the token a front gateway put in the Authorization header.
func (h *Hub) session(r *http.Request) (*gateway.Session, error) {
	s, err := h.cfg.Sessions.Lookup(r.Context(), r)
	if !errors.Is(err, gateway.ErrNoSession) || !h.cfg.AcceptBearer {
		return s, err
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return nil, gateway.ErrNoSession
	}
	sid, err := sessionaccess.Of(h.cfg.Sessions).TokenSession(token)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", gateway.ErrNoSession, err)
	}
	if sid == "" {
		return nil, fmt.Errorf("%w: the token names no session", gateway.ErrNoSession)
	}
	return h.cfg.Sessions.LookupID(r.Context(), sid)
}

// tabKey is the context key of the channel (tab) a command came from.
type tabKey struct{}

// tabOf returns the channel a command's ctx came from.
func tabOf(ctx context.Context) *channel {
	ch, _ := ctx.Value(tabKey{}).(*channel)
	return ch
}

// run executes one command and answers on ch.
func (h *Hub) run(ctx context.Context, u *User, ch *channel, name string, id any, params map[string]any) {
	h.mu.Lock()
	c, ok := h.commands[name]
	h.mu.Unlock()
	fail := func(msg string) {
		ch.send(map[string]any{"type": "error", "command": name, "id": id, "error": msg})
	}
	if !ok {
		fail(fmt.Sprintf("unknown command %q", name))
		return
	}
	for _, p := range c.Required {
		if _, ok := params[p]; !ok {
			fail(fmt.Sprintf("missing parameter %q", p))
			return
		}
	}
	allowed := map[string]bool{}
	for _, p := range append(append([]string(nil), c.Required...), c.Optional...) {
		allowed[p] = true
	}
	for p := range params {
		if !allowed[p] {
			fail(fmt.Sprintf("unknown parameter %q", p))
			return
		}
	}
	res, err := c.Handle(context.WithValue(ctx, tabKey{}, ch), u, params)
	if err != nil {
		h.cfg.Logger.Warn("gateway: hub command failed", "command", name, "user", u.ID, "err", err)
		fail(err.Error())
		return
	}
	ch.send(map[string]any{"type": "ack", "command": name, "id": id, "result": res})
}

// join adds a channel to its user, starting the user's loops with the first one.
func (h *Hub) join(user string, ch *channel) (*User, bool) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, false
	}
	u := h.users[user]
	if u == nil {
		u = &User{ID: user, hub: h, channels: map[*channel]struct{}{}, short: map[string]LoopFunc{},
			long: map[string]LoopFunc{}, state: map[string]any{}, stop: make(chan struct{})}
		h.users[user] = u
		h.wg.Add(1)
		go u.loops()
	}
	u.mu.Lock()
	u.channels[ch] = struct{}{}
	u.mu.Unlock()
	return u, true
}

// leave removes a channel; the user's loops stop with the last one.
func (h *Hub) leave(u *User, ch *channel) {
	ch.left()
	if h.topics != nil {
		h.topics.unsubscribe(ch, "") // upstream subscriptions nobody follows now end
	}
	h.mu.Lock()
	u.mu.Lock()
	delete(u.channels, ch)
	last := len(u.channels) == 0
	u.mu.Unlock()
	gone := last && h.users[u.ID] == u
	if gone {
		delete(h.users, u.ID)
		close(u.stop)
	}
	h.mu.Unlock()
}

// Users returns how many users have channels open.
func (h *Hub) Users() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.users)
}

// Send delivers a message to every channel (tab) of the user, without waiting for any
// browser: each channel has a bounded queue, and one that falls behind is disconnected.
func (u *User) Send(v any) {
	u.mu.Lock()
	chans := make([]*channel, 0, len(u.channels))
	for ch := range u.channels {
		chans = append(chans, ch)
	}
	u.mu.Unlock()
	for _, ch := range chans {
		ch.send(v)
	}
}

// AddShortLoop runs f on every cycle of the short loop (replacing one of the same name).
func (u *User) AddShortLoop(name string, f LoopFunc) { u.setLoop(u.short, name, f) }

// AddLongLoop runs f on every cycle of the long loop (replacing one of the same name).
func (u *User) AddLongLoop(name string, f LoopFunc) { u.setLoop(u.long, name, f) }

// RemoveLoop stops the loop functions of a name.
func (u *User) RemoveLoop(name string) {
	u.mu.Lock()
	defer u.mu.Unlock()
	delete(u.short, name)
	delete(u.long, name)
}

func (u *User) setLoop(m map[string]LoopFunc, name string, f LoopFunc) {
	u.mu.Lock()
	defer u.mu.Unlock()
	m[name] = f
}

// Store keeps a value for the user (the data a command's setup prepares for its loop).
func (u *User) Store(key string, v any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.state[key] = v
}

// Load returns a value kept with Store.
func (u *User) Load(key string) (any, bool) {
	u.mu.Lock()
	defer u.mu.Unlock()
	v, ok := u.state[key]
	return v, ok
}

// loops runs the user's short and long loops until the last channel closes.
func (u *User) loops() {
	defer u.hub.wg.Done()
	short := time.NewTicker(u.hub.cfg.ShortInterval)
	long := time.NewTicker(u.hub.cfg.LongInterval)
	defer short.Stop()
	defer long.Stop()
	for {
		var fns map[string]LoopFunc
		select {
		case <-u.stop:
			return
		case <-short.C:
			fns = u.short
		case <-long.C:
			fns = u.long
		}
		ctx, cancel := context.WithTimeout(context.Background(), u.hub.cfg.ShortInterval)
		if u.checkSessions(ctx) {
			u.mu.Lock()
			run := make([]LoopFunc, 0, len(fns))
			for _, f := range fns {
				run = append(run, f)
			}
			u.mu.Unlock()
			for _, f := range run {
				if err := f(ctx, u); err != nil {
					u.Send(map[string]any{"type": "error", "error": err.Error()})
				}
			}
		}
		cancel()
	}
}

// checkSessions ends the channels whose session is gone or no longer valid; it reports
// whether any channel is left.
func (u *User) checkSessions(ctx context.Context) bool {
	u.mu.Lock()
	bySession := map[string][]*channel{}
	for ch := range u.channels {
		bySession[ch.session] = append(bySession[ch.session], ch)
	}
	u.mu.Unlock()
	left := 0
	for id, chans := range bySession {
		check := u.hub.cfg.Sessions.Check
		if u.hub.cfg.KeepSessionsAlive {
			check = u.hub.cfg.Sessions.LookupID
		}
		s, err := check(ctx, id)
		if err == nil && u.hub.cfg.Validate != nil {
			err = u.hub.cfg.Validate(ctx, s)
		}
		if err == nil {
			left += len(chans)
			continue
		}
		reason := "session ended: log in again"
		if !errors.Is(err, gateway.ErrNoSession) {
			reason = err.Error()
		}
		for _, ch := range chans {
			ch.send(map[string]any{"type": "error", "error": reason})
			ch.end(CloseSessionEnded, "session ended") // its reader returns and leaves
		}
	}
	return left > 0
}

// sessionEnded ends at once the channels of a session that ended anywhere; with id empty
// (the store may have missed ends) it checks every user's sessions now.
func (h *Hub) sessionEnded(id string) {
	h.mu.Lock()
	users := make([]*User, 0, len(h.users))
	for _, u := range h.users {
		users = append(users, u)
	}
	h.mu.Unlock()
	if id == "" {
		go func() {
			for _, u := range users {
				ctx, cancel := context.WithTimeout(context.Background(), h.cfg.ShortInterval)
				u.checkSessions(ctx)
				cancel()
			}
		}()
		return
	}
	for _, u := range users {
		u.mu.Lock()
		for ch := range u.channels {
			if ch.session == id {
				ch.send(map[string]any{"type": "error", "error": "session ended: log in again"})
				ch.end(CloseSessionEnded, "session ended")
			}
		}
		u.mu.Unlock()
	}
}

// Shutdown ends every channel with 1001, all at once, and waits for their close frames to
// leave and the users' loops to stop, or for ctx to end.
func (h *Hub) Shutdown(ctx context.Context) error {
	h.unwatch()
	h.mu.Lock()
	h.closed = true
	var chans []*channel
	for _, u := range h.users {
		u.mu.Lock()
		for ch := range u.channels {
			chans = append(chans, ch)
		}
		u.mu.Unlock()
	}
	h.mu.Unlock()
	for _, ch := range chans {
		ch.end(websocket.CloseGoingAway, "shutting down")
	}
	done := make(chan struct{})
	go func() { h.wg.Wait(); h.writers.Wait(); close(done) }()
	select {
	case <-done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

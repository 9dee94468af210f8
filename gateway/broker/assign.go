package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/sessionaccess"
	"github.com/globalsession/globalsession/gateway/internal/web"
)

// Router chooses the gateway instance of a session (or a user) and a group: a
// *discovery.SessionService in process, *discovery.RemoteSessions over HTTP.
type Router interface {
	Route(ctx context.Context, session, group string) (discovery.Route, error)
}

// AssignerConfig configures an Assigner.
type AssignerConfig struct {
	// Sessions looks the login cookie up and records the assignments. Required.
	Sessions *gateway.Sessions
	// Router chooses an instance among the healthy ones: a *discovery.SessionService over
	// a discovery.Service fed by a MemberProvider, with BrokerURL as its URL. Required.
	Router Router
	// Instances tells whether a recorded instance is still healthy (the discovery.Service
	// behind the Router). Nil means recorded instances are not checked here: the Router is
	// asked every time (a sticky SessionService keeps the instance while it is healthy).
	Instances interface{ Snapshot() *discovery.Snapshot }
	// Live, when set, says whether an instance is registered on the relay now
	// (MemberProvider.Live): an instance whose relay connection dropped is not handed out
	// even before discovery's next poll notices. Refresh, when set, brings discovery up to
	// date when the Router chose such an instance; the Router is then asked once more.
	Live    func(ctx context.Context, instance string) bool
	Refresh func(ctx context.Context)
	// Logger receives the failures behind 5xx answers. Nil means no logging.
	Logger *slog.Logger
	// ByUser routes by the user rather than by the session: all of a user's sessions (other
	// browsers, other devices) are sent to the instance chosen first, while it is healthy.
	// The push hub needs this: a user's channels share one set of loops only when they
	// are on one instance.
	ByUser bool
	// Group, when set, is the only group this Assigner answers for, and requests need no
	// group parameter (an Assigner for the push hub, say).
	Group string
}

// Assigner is the main servers' endpoint of the broker mode: GET ?group=G (or
// ?document=G) tells a logged-in client which gateway instance to open its WebSocket to for
// group G, as JSON {"url": "ws://…/ws/G", "instance": "gw-1"}. The choice is recorded in
// the session, so the client keeps its instance (from any main server) while that instance
// is healthy; when it is not, a healthy one is chosen and recorded instead. Without a
// session the answer is 401; with no healthy instance, 503 with a JSON reason.
type Assigner struct {
	cfg AssignerConfig
}

// NewAssigner returns an Assigner.
func NewAssigner(cfg AssignerConfig) (*Assigner, error) {
	if cfg.Sessions == nil || cfg.Router == nil {
		return nil, errors.New("gateway: assigner config needs sessions and a router")
	}
	return &Assigner{cfg: cfg}, nil
}

// ServeHTTP implements the endpoint.
func (a *Assigner) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet {
		web.WriteError(w, http.StatusMethodNotAllowed, "use GET")
		return
	}
	s, err := a.cfg.Sessions.Lookup(r.Context(), r)
	if errors.Is(err, gateway.ErrNoSession) {
		web.WriteError(w, http.StatusUnauthorized, "log in first")
		return
	}
	if err != nil {
		web.Fail(w, r, a.cfg.Logger, http.StatusBadGateway, "the session store did not answer", err, true)
		return
	}
	group := a.cfg.Group
	if group == "" {
		group = r.URL.Query().Get("group")
	}
	if group == "" {
		group = r.URL.Query().Get("document")
	}
	if err := validGroup(group); err != nil {
		web.WriteError(w, http.StatusBadRequest, "group: "+err.Error())
		return
	}
	if rec, ok := s.Assigned[group]; ok && a.alive(rec.Instance) && a.live(r.Context(), rec.Instance) {
		writeAssignment(w, rec)
		return
	}
	rec, err := a.choose(r.Context(), s, group)
	if errors.Is(err, discovery.ErrNoHealthyInstance) {
		web.Fail(w, r, a.cfg.Logger, http.StatusServiceUnavailable, "no gateway instance is available; try again", err, true)
		return
	}
	if err != nil {
		web.Fail(w, r, a.cfg.Logger, http.StatusBadGateway, "could not choose an instance", err, true)
		return
	}
	if s.Assigned == nil {
		s.Assigned = map[string]gateway.Assignment{}
	}
	s.Assigned[group] = rec
	if err := a.cfg.Sessions.Save(r.Context(), s); err != nil {
		web.Fail(w, r, a.cfg.Logger, http.StatusBadGateway, "could not record the assignment", err, true)
		return
	}
	writeAssignment(w, rec)
}

// choose asks the Router for an instance. ByUser, the user's choice is kept in the session
// store (so every main server and every session of the user reads it) and reused while
// its instance is healthy.
func (a *Assigner) choose(ctx context.Context, s *gateway.Session, group string) (gateway.Assignment, error) {
	if !a.cfg.ByUser {
		route, err := a.route(ctx, s.BackendID, group)
		return gateway.Assignment{Instance: route.Instance, URL: route.URL}, err
	}
	private := sessionaccess.Of(a.cfg.Sessions)
	store := private.Store
	key := []byte("gs-assign\x00" + s.User + "\x00" + group)
	if b, err := store.Get(ctx, key); err == nil {
		var rec gateway.Assignment
		if json.Unmarshal(b, &rec) == nil && a.alive(rec.Instance) && a.live(ctx, rec.Instance) {
			return rec, nil
		}
	}
	route, err := a.route(ctx, "user\x00"+s.User, group)
	if err != nil {
		return gateway.Assignment{}, err
	}
	rec := gateway.Assignment{Instance: route.Instance, URL: route.URL}
	b, _ := json.Marshal(rec)
	if err := store.Set(ctx, key, b, private.MaxAge); err != nil {
		return gateway.Assignment{}, fmt.Errorf("gateway: record the user's instance: %w", err)
	}
	return rec, nil
}

// route asks the Router; when it chose an instance no longer registered on the relay, it
// brings discovery up to date and asks once more.
func (a *Assigner) route(ctx context.Context, key, group string) (discovery.Route, error) {
	route, err := a.cfg.Router.Route(ctx, key, group)
	if err != nil || a.live(ctx, route.Instance) || a.cfg.Refresh == nil {
		return route, err
	}
	a.cfg.Refresh(ctx)
	return a.cfg.Router.Route(ctx, key, group)
}

// live reports whether an instance is registered on the relay now (true without Live).
func (a *Assigner) live(ctx context.Context, instance string) bool {
	return a.cfg.Live == nil || a.cfg.Live(ctx, instance)
}

// alive reports whether a recorded instance may be kept: it is healthy, or this server's
// discovery has listed it but not checked it yet (having just started, say), which is no
// reason to move the user.
func (a *Assigner) alive(instance string) bool {
	if a.cfg.Instances == nil {
		return false // let the Router decide; a sticky one keeps the instance while healthy
	}
	snap := a.cfg.Instances.Snapshot()
	if _, ok := snap.HealthyIndex(instance); ok {
		return true
	}
	i, found := slices.BinarySearchFunc(snap.All, instance, func(in discovery.Instance, key string) int {
		return strings.Compare(in.Key(), key)
	})
	return found && snap.All[i].LastCheck.IsZero()
}

func writeAssignment(w http.ResponseWriter, rec gateway.Assignment) {
	web.WriteJSON(w, http.StatusOK, rec)
}

package wsproxy

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
)

// Router chooses a backend for a user's session and document: *discovery.SessionService
// in process, *discovery.RemoteSessions over HTTP.
type Router interface {
	Route(ctx context.Context, session, document string) (discovery.Route, error)
}

// Rerouter is a Router that can choose again when the instance it chose refuses the
// connection: *discovery.SessionService and *discovery.RemoteSessions are.
type Rerouter interface {
	Router
	Reroute(ctx context.Context, session, document, refused string) (discovery.Route, error)
}

// RouteConfig configures SessionRoute.
type RouteConfig struct {
	// Sessions looks the login cookie up.
	Sessions *gateway.Sessions
	// Router chooses the backend.
	Router Router
	// Document extracts the document (or resource) from the request. Nil means the path
	// after its last "/app/" (/app/<document>), else the whole path.
	Document func(r *http.Request) string
	// SessionHeader names the header that tells the backend which session to attach to
	// (the QIX engine's X-Qlik-Session). Empty means "X-Session-Id".
	SessionHeader string
	// ByUser asks the Router for a route by the session's user instead of its id, so a
	// sticky Router sends every session of one user (other browsers and devices as well as
	// tabs) to the same instance: what push hub instances behind a front gateway need, so
	// that a user's channels share one set of loops (see hub.HubConfig.AcceptBearer). The
	// Router's Preparer then gets the user name where it would get the session id.
	ByUser bool
	// BackendToken makes the bearer token the backend gets in Authorization. Nil means
	// Sessions.Token (the gateway's own JWT); (*gateway.OIDC).BackendToken gives the
	// provider's access token when the OIDC config says so.
	BackendToken gateway.TokenFunc
}

// SessionRoute is the gateway's routing as a Route for a Proxy: login cookie to session,
// session to JWT, session service to backend. A request without a live session is
// refused with 401; no healthy backend gives 503.
func SessionRoute(cfg RouteConfig) func(r *http.Request) (Backend, error) {
	if cfg.SessionHeader == "" {
		cfg.SessionHeader = "X-Session-Id"
	}
	if cfg.Document == nil {
		cfg.Document = func(r *http.Request) string {
			p := r.URL.Path
			if i := strings.LastIndex(p, "/app/"); i >= 0 {
				return p[i+len("/app/"):]
			}
			return strings.TrimPrefix(p, "/")
		}
	}
	return func(r *http.Request) (Backend, error) {
		s, err := cfg.Sessions.Lookup(r.Context(), r)
		if errors.Is(err, gateway.ErrNoSession) {
			return Backend{}, &HTTPError{Status: http.StatusUnauthorized, Msg: "log in first"}
		}
		if err != nil {
			return Backend{}, &HTTPError{Status: http.StatusBadGateway, Msg: "the session store did not answer", Err: err}
		}
		doc := cfg.Document(r)
		if doc == "" {
			return Backend{}, &HTTPError{Status: http.StatusBadRequest, Msg: "no document in the path"}
		}
		key := s.BackendID // the session service never sees the cookie
		if cfg.ByUser {
			key = s.User
		}
		route, err := cfg.Router.Route(r.Context(), key, doc)
		if err != nil {
			return Backend{}, routeError(err)
		}
		be, err := backendOf(r.Context(), cfg, s, route)
		if rr, ok := cfg.Router.(Rerouter); ok && err == nil {
			be.Reroute = func(ctx context.Context) (Backend, error) {
				route, err := rr.Reroute(ctx, key, doc, route.Instance)
				if err != nil {
					return Backend{}, routeError(err)
				}
				return backendOf(ctx, cfg, s, route)
			}
		}
		return be, err
	}
}

// routeError is the answer to the browser when the Router fails.
func routeError(err error) error {
	if errors.Is(err, discovery.ErrNoHealthyInstance) {
		return &HTTPError{Status: http.StatusServiceUnavailable, Msg: "no backend is available; try again", Err: err}
	}
	return &HTTPError{Status: http.StatusBadGateway, Msg: "the session service did not answer", Err: err}
}

// backendOf is the Backend for session s on route: its headers, a fresh token, the
// session header.
func backendOf(ctx context.Context, cfg RouteConfig, s *gateway.Session, route discovery.Route) (Backend, error) {
	h := http.Header{}
	for k, v := range route.Headers {
		h.Set(k, v)
	}
	token, err := cfg.Sessions.BackendToken(ctx, s, cfg.BackendToken)
	if err != nil {
		return Backend{}, fmt.Errorf("sign the backend's token: %w", err)
	}
	h.Set("Authorization", "Bearer "+token)
	sid := route.SessionID
	if sid == "" {
		sid = s.BackendID
	}
	h.Set(cfg.SessionHeader, sid)
	return Backend{URL: route.URL, Header: h, Session: s.ID}, nil
}

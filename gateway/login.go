package gateway

import (
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/globalsession/globalsession/gateway/internal/web"
)

// Login serves the login endpoints:
//
//	POST /login            log in with the Authenticator (for UsersFile: form values user
//	                       and password); 200 with the session's public part, 401 if refused
//	POST /login/anonymous  log in as a fresh anonymous user, when Anonymous is set
//	POST /logout           end the session everywhere; 204
//	GET  /session          the current session's public part, or 401
//
// The JWT stays on the server: no answer contains it. A POST from another site (by its
// Sec-Fetch-Site or Origin header) is refused with 403 unless its origin is in
// AllowedOrigins: a form on another site can neither log a browser in as someone else nor
// log it out. Failed logins are throttled (see LoginLimits). No answer carries an internal
// error's text: it is logged, with the request id the answer gives.
type Login struct {
	// Sessions creates and ends sessions.
	Sessions *Sessions
	// Authenticator checks /login requests.
	Authenticator Authenticator
	// Anonymous allows /login/anonymous.
	Anonymous bool
	// AllowedOrigins are other origins ("https://app.example.com") whose pages may post
	// to the login endpoints.
	AllowedOrigins []string
	// Limits throttle failed logins; the zero value means the documented defaults.
	Limits LoginLimits
	// Logger receives internal errors. Nil means no logging.
	Logger *slog.Logger

	once     sync.Once
	csrf     *http.CrossOriginProtection
	throttle *throttle
	initErr  error
}

// init sets up the cross-origin check and the throttle once.
func (l *Login) init() {
	l.csrf = http.NewCrossOriginProtection()
	for _, o := range l.AllowedOrigins {
		if err := l.csrf.AddTrustedOrigin(o); err != nil {
			l.initErr = fmt.Errorf("gateway: login: allowed origin %q: %w", o, err)
		}
	}
	l.throttle = newThrottle(l.Limits)
	if l.Logger == nil {
		l.Logger = slog.New(slog.DiscardHandler)
	}
}

// publicSession is what the browser may see of a session.
type publicSession struct {
	User      string    `json:"user"`
	Roles     []string  `json:"roles,omitempty"`
	Anonymous bool      `json:"anonymous,omitempty"`
	Expires   time.Time `json:"expires"`
}

func public(s *Session) publicSession {
	return publicSession{User: s.User, Roles: s.Roles, Anonymous: s.Anonymous, Expires: s.Expires}
}

// ServeHTTP implements http.Handler.
func (l *Login) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	l.once.Do(l.init)
	if l.initErr != nil {
		l.internalError(w, r, l.initErr)
		return
	}
	if r.Method == http.MethodPost {
		if err := l.csrf.Check(r); err != nil {
			web.WriteError(w, http.StatusForbidden, "a request from another site is refused")
			return
		}
	}
	switch {
	case r.URL.Path == "/login" && r.Method == http.MethodPost:
		l.login(w, r, l.Authenticator)
	case r.URL.Path == "/login/anonymous" && r.Method == http.MethodPost && l.Anonymous:
		l.login(w, r, Anonymous{})
	case r.URL.Path == "/logout" && r.Method == http.MethodPost:
		if err := l.Sessions.Logout(r.Context(), w, r); err != nil {
			l.internalError(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/session" && r.Method == http.MethodGet:
		s, err := l.Sessions.Lookup(r.Context(), r)
		switch {
		case errors.Is(err, ErrNoSession):
			web.WriteError(w, http.StatusUnauthorized, "not logged in")
		case err != nil:
			l.internalError(w, r, err)
		default:
			web.WriteJSON(w, http.StatusOK, public(s))
		}
	default:
		web.WriteError(w, http.StatusNotFound, r.Method+" "+r.URL.Path+" is not a login endpoint")
	}
}

func (l *Login) login(w http.ResponseWriter, r *http.Request, a Authenticator) {
	if a == nil {
		web.WriteError(w, http.StatusNotFound, "no authenticator is configured")
		return
	}
	user := r.PostFormValue("user")
	if wait := l.throttle.wait(user, clientAddr(r)); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
		web.WriteError(w, http.StatusTooManyRequests, "too many failed logins; try again later")
		return
	}
	release, ok := l.throttle.enter(r.Context())
	if !ok {
		web.WriteError(w, http.StatusServiceUnavailable, "the gateway is busy; try again")
		return
	}
	id, err := a.Authenticate(r.Context(), r)
	release()
	if errors.Is(err, ErrBadCredentials) {
		l.throttle.failed(user, clientAddr(r))
		web.WriteError(w, http.StatusUnauthorized, "wrong user name or password")
		return
	}
	if err != nil {
		l.internalError(w, r, err)
		return
	}
	s, err := l.Sessions.Create(r.Context(), w, r, id)
	if err != nil {
		l.internalError(w, r, err)
		return
	}
	web.WriteJSON(w, http.StatusOK, public(s))
}

// internalError answers 502 with a request id and no detail, and logs the detail with it.
func (l *Login) internalError(w http.ResponseWriter, r *http.Request, err error) {
	id, _ := web.RandomID(6)
	l.Logger.Warn("gateway: login endpoint failed", "request_id", id, "method", r.Method, "path", r.URL.Path, "err", err)
	web.WriteError(w, http.StatusBadGateway, "the gateway could not do that (request "+id+")")
}

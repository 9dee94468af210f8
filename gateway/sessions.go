package gateway

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"sync"
	"time"

	"github.com/globalsession/globalsession/gateway/internal/sessionaccess"
	"github.com/globalsession/globalsession/gateway/internal/web"
	"github.com/globalsession/globalsession/sessioncache"
)

// Defaults of SessionsConfig.
const (
	DefaultCookieName = "gs_session"
	DefaultSessionTTL = 30 * time.Minute
	DefaultMaxSession = 12 * time.Hour
	DefaultTokenTTL   = 5 * time.Minute
)

// ErrNoSession means a request carries no session cookie, or one whose session is gone
// (expired, logged out, never existed).
var ErrNoSession = errors.New("gateway: no session")

// SessionsConfig configures Sessions.
type SessionsConfig struct {
	// Store keeps the session records: the host's shared-memory table in front of the
	// relay tier. Required.
	Store *sessioncache.Manager
	// Signer signs each session's JWT. Required.
	Signer *TokenSigner
	// CookieName is the session cookie's name. Empty means DefaultCookieName.
	CookieName string
	// TTL is how long a session lives without use; each use within it extends it (it
	// slides). Zero means DefaultSessionTTL.
	TTL time.Duration
	// MaxAge bounds a session's whole life, however much it is used. Zero means
	// DefaultMaxSession.
	MaxAge time.Duration
	// Accounts, when set, is asked on every lookup whether the session's user still
	// exists: a session of a user who was removed ends (its record is deleted everywhere),
	// and with it, at their next check, its hub channels and broker connections. Anonymous
	// sessions are not asked.
	Accounts AccountChecker
	// TokenTTL bounds a backend token's life: a token lives until TokenTTL after it is
	// signed or the session's absolute end, whichever is sooner. Zero means
	// DefaultTokenTTL.
	TokenTTL time.Duration
}

// Sessions are the gateway's login sessions: a random 256-bit id in a cookie (HttpOnly,
// SameSite=Lax, Secure over TLS) naming a record in the session store that holds the
// user's identity. The cookie never leaves the gateway: backends get a token (Token) that
// names the session by its backend id, a keyed hash of the session id.
type Sessions struct {
	cfg SessionsConfig
	now func() time.Time // replaced by tests

	endMu sync.Mutex
	onEnd []func(ctx context.Context, id string) // what else goes when a session ends here
}

// addEndHook has fn called with the id of each session this Sessions ends (Logout, End, a
// removed user), once its record is deleted: an OIDC login deletes the session's tokens.
func (s *Sessions) addEndHook(fn func(ctx context.Context, id string)) {
	s.endMu.Lock()
	defer s.endMu.Unlock()
	s.onEnd = append(s.onEnd, fn)
}

func (s *Sessions) ended(ctx context.Context, id string) {
	s.endMu.Lock()
	hooks := s.onEnd
	s.endMu.Unlock()
	for _, fn := range hooks {
		fn(ctx, id)
	}
}

// Session is a session record.
type Session struct {
	// ID is the session id (the cookie's value). It never goes to a backend.
	ID string `json:"-"`
	// BackendID is what backends know the session by (see TokenSigner.BackendID).
	BackendID string `json:"-"`
	Identity
	// Created is when the user logged in.
	Created time.Time `json:"created"`
	// Expires is when the session ends unless it is used before.
	Expires time.Time `json:"expires"`
	// MaxExpires is when the session ends however much it is used.
	MaxExpires time.Time `json:"max_expires"`
	// Assigned records, per group (workbook, document), the gateway instance a
	// broker.Assigner chose, so the session keeps it while the instance lives.
	Assigned map[string]Assignment `json:"assigned,omitempty"`
}

// Assignment is the gateway instance a session was assigned for a group.
type Assignment struct {
	Instance string `json:"instance"`
	URL      string `json:"url"`
}

// The gateway's hub and broker packages reach the store and the signer of a Sessions
// through sessionaccess, which keeps them out of the exported API.
func init() {
	sessionaccess.Register(func(s *Sessions) sessionaccess.Private {
		return sessionaccess.Private{Store: s.cfg.Store, MaxAge: s.cfg.MaxAge, TokenSession: func(token string) (string, error) {
			c, err := s.cfg.Signer.Verify(token)
			if err != nil {
				return "", err
			}
			if c.Ref == "" {
				return "", nil
			}
			return s.cfg.Signer.openRef(c.Ref)
		}}
	})
}

// NewSessions returns the gateway's sessions over cfg.Store.
func NewSessions(cfg SessionsConfig) (*Sessions, error) {
	if cfg.Store == nil || cfg.Signer == nil {
		return nil, errors.New("gateway: sessions need a store and a signer")
	}
	if cfg.CookieName == "" {
		cfg.CookieName = DefaultCookieName
	}
	if cfg.TTL == 0 {
		cfg.TTL = DefaultSessionTTL
	}
	if cfg.MaxAge == 0 {
		cfg.MaxAge = DefaultMaxSession
	}
	if cfg.TokenTTL == 0 {
		cfg.TokenTTL = DefaultTokenTTL
	}
	return &Sessions{cfg: cfg, now: time.Now}, nil
}

// Token signs a JWT for sess's backends: it names the session by its backend id, carries
// the gateway's sealed reference to it, and lives TokenTTL at most, never past the
// session's absolute end. Tokens are signed when needed, not stored.
func (s *Sessions) Token(sess *Session) (string, error) {
	ref, err := s.cfg.Signer.sealRef(sess.ID)
	if err != nil {
		return "", err
	}
	expiry := minTime(s.now().Add(s.cfg.TokenTTL), sess.MaxExpires)
	return s.cfg.Signer.sign(sess.Identity, Claims{Session: sess.BackendID, Ref: ref}, expiry)
}

// TokenFunc makes the token a backend gets for a session (RouteConfig.BackendToken,
// BrokerConfig.BackendToken).
type TokenFunc func(ctx context.Context, sess *Session) (string, error)

// BackendToken returns the token sess's backends get: tokenOf's, or, when tokenOf is nil,
// the gateway's own JWT (Token).
func (s *Sessions) BackendToken(ctx context.Context, sess *Session, tokenOf TokenFunc) (string, error) {
	if tokenOf != nil {
		return tokenOf(ctx, sess)
	}
	return s.Token(sess)
}

// Create starts a session for id, stores it, and sets its cookie on w.
func (s *Sessions) Create(ctx context.Context, w http.ResponseWriter, r *http.Request, id Identity) (*Session, error) {
	sid, err := web.RandomID(32)
	if err != nil {
		return nil, err
	}
	now := s.now()
	sess := &Session{ID: sid, BackendID: s.cfg.Signer.BackendID(sid), Identity: id, Created: now, MaxExpires: now.Add(s.cfg.MaxAge)}
	sess.Expires = minTime(now.Add(s.cfg.TTL), sess.MaxExpires)
	if err := s.store(ctx, sess); err != nil {
		return nil, err
	}
	http.SetCookie(w, &http.Cookie{Name: s.cfg.CookieName, Value: sid, Path: "/", HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	return sess, nil
}

// Save stores a changed session record (its Assigned, say) under its id, keeping its
// expiry.
func (s *Sessions) Save(ctx context.Context, sess *Session) error { return s.store(ctx, sess) }

func (s *Sessions) store(ctx context.Context, sess *Session) error {
	b, err := json.Marshal(sess)
	if err != nil {
		return err
	}
	ttl := sess.Expires.Sub(s.now())
	if ttl <= 0 {
		return ErrNoSession
	}
	if err := s.cfg.Store.Set(ctx, []byte(sess.ID), b, ttl); err != nil {
		return fmt.Errorf("gateway: store session: %w", err)
	}
	return nil
}

// Lookup returns the session of r's cookie, extending it when more than half of its TTL has
// passed (never past MaxExpires). It returns ErrNoSession when there is none.
func (s *Sessions) Lookup(ctx context.Context, r *http.Request) (*Session, error) {
	c, err := r.Cookie(s.cfg.CookieName)
	if err != nil || c.Value == "" {
		return nil, ErrNoSession
	}
	return s.lookupID(ctx, c.Value, true)
}

// LookupID is Lookup by session id (for checks made away from a request): a use of the
// session, which extends it as Lookup does.
func (s *Sessions) LookupID(ctx context.Context, id string) (*Session, error) {
	return s.lookupID(ctx, id, true)
}

// Check is LookupID without extending the session: it says whether the session is still
// live (not logged out, expired or removed) without counting as its use. The hub checks
// the sessions of open channels this way, so that a tab left open does not keep its
// session alive by itself.
func (s *Sessions) Check(ctx context.Context, id string) (*Session, error) {
	return s.lookupID(ctx, id, false)
}

func (s *Sessions) lookupID(ctx context.Context, id string, use bool) (*Session, error) {
	if !wellFormedID(id) {
		return nil, ErrNoSession // not one this gateway made: no need to ask the store
	}
	c := &http.Cookie{Value: id}
	b, err := s.cfg.Store.Get(ctx, []byte(c.Value))
	if errors.Is(err, sessioncache.ErrNotFound) {
		return nil, ErrNoSession
	}
	if err != nil {
		return nil, fmt.Errorf("gateway: session store: %w", err)
	}
	sess := &Session{ID: c.Value, BackendID: s.cfg.Signer.BackendID(c.Value)}
	if err := json.Unmarshal(b, sess); err != nil {
		return nil, fmt.Errorf("gateway: session %s…: bad record: %w", c.Value[:min(6, len(c.Value))], err)
	}
	now := s.now()
	if !now.Before(sess.Expires) {
		return nil, ErrNoSession
	}
	if s.cfg.Accounts != nil && !sess.Anonymous {
		ok, err := s.cfg.Accounts.Exists(ctx, sess.User)
		if err != nil {
			return nil, fmt.Errorf("gateway: check the session's user: %w", err)
		}
		if !ok {
			if err := s.cfg.Store.Delete(ctx, []byte(id)); err != nil {
				return nil, fmt.Errorf("gateway: end a removed user's session: %w", err)
			}
			s.ended(ctx, id)
			return nil, ErrNoSession
		}
	}
	if use && sess.Expires.Sub(now) < s.cfg.TTL/2 && sess.Expires.Before(sess.MaxExpires) {
		sess.Expires = minTime(now.Add(s.cfg.TTL), sess.MaxExpires)
		if err := s.store(ctx, sess); err != nil {
			return nil, err
		}
	}
	return sess, nil
}

// WatchEnds calls fn with the id of each session that ends by a logout or a removal,
// here or on any other host, as soon as this host's store learns of it (the session tier's
// change stream), and with "" when the store may have missed some (every session should
// then be checked). fn must not block. The returned function stops the calls. Expiry is
// not reported: connections check their session's expiry themselves.
func (s *Sessions) WatchEnds(fn func(sessionID string)) (stop func()) {
	return s.cfg.Store.Watch(func(ch sessioncache.Change) {
		switch {
		case ch.Event == sessioncache.StreamGap:
			fn("")
		case ch.Deleted && wellFormedID(string(ch.Key)):
			fn(string(ch.Key))
		}
	})
}

// Logout deletes r's session everywhere (the local table, the relay tier, other hosts) and
// clears the cookie.
func (s *Sessions) Logout(ctx context.Context, w http.ResponseWriter, r *http.Request) error {
	http.SetCookie(w, &http.Cookie{Name: s.cfg.CookieName, Value: "", Path: "/", MaxAge: -1, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode})
	c, err := r.Cookie(s.cfg.CookieName)
	if err != nil || !wellFormedID(c.Value) {
		return nil
	}
	if err := s.cfg.Store.Delete(ctx, []byte(c.Value)); err != nil {
		return fmt.Errorf("gateway: logout: %w", err)
	}
	s.ended(ctx, c.Value)
	return nil
}

// End deletes the session with id everywhere (the local table, the relay tier, other
// hosts), as Logout does for a request's session: the hub, the broker and the WebSocket
// proxy learn of it through WatchEnds and close its channels and sockets. Ending a session
// that is already gone is not an error.
func (s *Sessions) End(ctx context.Context, id string) error {
	if !wellFormedID(id) {
		return nil
	}
	if err := s.cfg.Store.Delete(ctx, []byte(id)); err != nil {
		return fmt.Errorf("gateway: end session: %w", err)
	}
	s.ended(ctx, id)
	return nil
}

// wellFormedID reports whether id could be a session id Create made: 43 characters of
// unpadded base64url (32 random bytes).
func wellFormedID(id string) bool {
	if len(id) != 43 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

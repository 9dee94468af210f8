package gateway

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"

	"github.com/globalsession/globalsession/gateway/internal/web"
	"github.com/globalsession/globalsession/sessioncache"
)

// Defaults of OIDCConfig.
const (
	DefaultOIDCUserClaim     = "preferred_username"
	DefaultOIDCStateCookie   = "gs_oidc"
	DefaultOIDCStateTTL      = 10 * time.Minute
	DefaultOIDCRefreshMargin = time.Minute
	DefaultOIDCTimeout       = 10 * time.Second
)

// DefaultOIDCScopes are the scopes asked for when OIDCConfig.Scopes is empty.
var DefaultOIDCScopes = []string{oidc.ScopeOpenID, "profile", "email"}

// Errors of the OIDC login.
var (
	// ErrOIDCConfig means an OIDCConfig lacks a required field or has a bad one.
	ErrOIDCConfig = errors.New("gateway: oidc: bad configuration")
	// ErrProviderUnavailable means the OpenID provider could not be reached or answered
	// with something unusable (discovery, token endpoint, keys).
	ErrProviderUnavailable = errors.New("gateway: oidc: the provider cannot be reached")
	// ErrRefreshRefused means the provider refused to refresh a session's tokens
	// (invalid_grant: the user logged out there, was disabled, the refresh token expired);
	// the gateway session has then been ended.
	ErrRefreshRefused = errors.New("gateway: oidc: the provider refused to refresh the tokens; the session is ended")
	// ErrNoTokens means a session has no provider tokens: it was not made by an OIDC
	// login (or its tokens were lost).
	ErrNoTokens = errors.New("gateway: oidc: the session has no provider tokens")
	// errBadState means a callback whose state is missing, forged, expired or replayed.
	errBadState = errors.New("gateway: oidc: bad state")
	// errBadIDToken means an ID token that does not verify (signature, issuer, audience,
	// expiry, nonce, no user).
	errBadIDToken = errors.New("gateway: oidc: bad ID token")
)

// BackendCredential says what backends receive for an OIDC session.
type BackendCredential int

const (
	// BackendGatewayJWT gives backends the gateway's own signed JWT (Sessions.Token),
	// with the user's identity taken from the ID token: the default.
	BackendGatewayJWT BackendCredential = iota
	// BackendAccessToken gives backends the provider's access token, refreshed as needed.
	BackendAccessToken
)

// OIDCConfig configures an OIDC login. The zero value of every optional field means the
// documented default.
type OIDCConfig struct {
	// Sessions creates and ends the gateway sessions; the provider tokens are kept in
	// its store. Required.
	Sessions *Sessions
	// Issuer is the provider's issuer URL; its discovery document is at
	// Issuer/.well-known/openid-configuration. Required.
	Issuer string
	// ClientID and ClientSecret are the gateway's credentials at the provider.
	// ClientID is required.
	ClientID     string
	ClientSecret string
	// Scopes are asked for at login. Empty means DefaultOIDCScopes; "openid" is added
	// when missing.
	Scopes []string
	// RedirectURL is the absolute URL of the callback (…/login/oidc/callback), as
	// registered at the provider. Required.
	RedirectURL string
	// PostLogoutRedirectURL is where the browser goes after a logout: sent to the
	// provider as post_logout_redirect_uri (it must be registered there), and where
	// the gateway sends the browser itself when the provider advertises no
	// end_session_endpoint. Empty means "/", and no post_logout_redirect_uri is sent.
	PostLogoutRedirectURL string
	// UserClaim is the ID token claim that names the user (Identity.User). Empty means
	// DefaultOIDCUserClaim; when the claim is absent or empty, "sub" names the user.
	UserClaim string
	// RolesClaim is the ID token claim that holds the user's roles: an array of
	// strings or a string of space-separated roles; a dotted path reaches into
	// objects ("realm_access.roles"). Empty means no roles.
	RolesClaim string
	// Backend says what backends receive (see BackendToken). The zero value is
	// BackendGatewayJWT.
	Backend BackendCredential
	// Secret keys the state cookie and the encryption of the tokens in the store (keys
	// are derived from it with HKDF). At least 32 bytes, the same on every gateway
	// process and host. Required.
	Secret []byte
	// StateCookie names the short-lived cookies that carry a login's sealed state, nonce
	// and PKCE verifier: StateCookie_ and the state's first 12 characters, so that logins
	// started in several tabs at once each find their own. Empty means
	// DefaultOIDCStateCookie.
	StateCookie string
	// StateTTL is how long a login may take at the provider. Zero means
	// DefaultOIDCStateTTL.
	StateTTL time.Duration
	// RefreshMargin: Tokens refreshes an access token that expires within it. Zero means
	// DefaultOIDCRefreshMargin.
	RefreshMargin time.Duration
	// HTTPClient makes the calls to the provider. Nil means a client with a
	// DefaultOIDCTimeout timeout.
	HTTPClient *http.Client
	// AllowedOrigins are other origins whose pages may post to /logout/oidc (see
	// Login.AllowedOrigins).
	AllowedOrigins []string
	// Logger receives the detail of each refused login, once. Nil means no logging.
	Logger *slog.Logger
}

// OIDC is single sign-on through an OpenID Connect provider: the authorization code flow
// with PKCE (S256), state and nonce checked, the ID token verified (issuer, audience,
// expiry, signature against the provider's published keys, which are fetched again when
// a token names a key not yet seen, so rotated keys are picked up). A login creates a
// gateway session with Sessions.Create; the provider's tokens stay on the server, sealed
// in the sessions' store beside the session (see Tokens), and never reach the browser.
//
// It serves, as an http.Handler:
//
//	GET  /login/oidc?return=/path  start a login; after it the browser goes to the
//	                               same-origin path (default "/")
//	GET  /login/oidc/callback      the provider's redirect back (the RedirectURL's path)
//	POST /logout/oidc              end the session, then RP-initiated logout at the
//	                               provider when it advertises end_session_endpoint
//	POST /oidc/backchannel-logout  the provider's back-channel logout: ends the gateway
//	                               sessions of the logout token's sid (or else sub)
//
// A refused login (forged or replayed state, wrong nonce, a bad ID token, the provider
// down) answers an error page (400, 401, 502 or 503) with a request id, creates no session
// and logs its detail once with that id.
//
// The provider's discovery document is fetched at the first use and kept; while the
// provider cannot be reached, logins answer 503 and discovery is tried again.
type OIDC struct {
	cfg    OIDCConfig
	now    func() time.Time // replaced by tests
	log    *slog.Logger
	client *http.Client
	csrf   *http.CrossOriginProtection
	cookie cipher.AEAD // seals the state cookie
	store  oidcStore

	discoverMu sync.Mutex // one discovery at a time
	mu         sync.Mutex
	prov       *oidcProvider

	refreshes singleflight.Group // one refresh per session at a time
	indexMu   sync.Mutex         // read-modify-write of the index, in this process
}

// oidcProvider is what discovery found.
type oidcProvider struct {
	p          *oidc.Provider
	verifier   *oidc.IDTokenVerifier
	oauth      *oauth2.Config
	endSession string
}

// NewOIDC checks cfg and returns the OIDC login. It does not reach the provider: discovery
// happens at the first use.
func NewOIDC(cfg OIDCConfig) (*OIDC, error) {
	switch {
	case cfg.Sessions == nil:
		return nil, fmt.Errorf("%w: Sessions is required", ErrOIDCConfig)
	case cfg.Issuer == "" || cfg.ClientID == "" || cfg.RedirectURL == "":
		return nil, fmt.Errorf("%w: Issuer, ClientID and RedirectURL are required", ErrOIDCConfig)
	case len(cfg.Secret) < 32:
		return nil, fmt.Errorf("%w: a Secret of %d bytes; at least 32 are needed", ErrOIDCConfig, len(cfg.Secret))
	}
	if u, err := url.Parse(cfg.RedirectURL); err != nil || !u.IsAbs() {
		return nil, fmt.Errorf("%w: RedirectURL %q is not an absolute URL", ErrOIDCConfig, cfg.RedirectURL)
	}
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = DefaultOIDCScopes
	}
	if !contains(cfg.Scopes, oidc.ScopeOpenID) {
		cfg.Scopes = append([]string{oidc.ScopeOpenID}, cfg.Scopes...)
	}
	if cfg.UserClaim == "" {
		cfg.UserClaim = DefaultOIDCUserClaim
	}
	if cfg.StateCookie == "" {
		cfg.StateCookie = DefaultOIDCStateCookie
	}
	if cfg.StateTTL == 0 {
		cfg.StateTTL = DefaultOIDCStateTTL
	}
	if cfg.RefreshMargin == 0 {
		cfg.RefreshMargin = DefaultOIDCRefreshMargin
	}
	o := &OIDC{cfg: cfg, now: time.Now, log: cfg.Logger, client: cfg.HTTPClient, csrf: http.NewCrossOriginProtection()}
	if o.log == nil {
		o.log = slog.New(slog.DiscardHandler)
	}
	if o.client == nil {
		o.client = &http.Client{Timeout: DefaultOIDCTimeout}
	}
	for _, origin := range cfg.AllowedOrigins {
		if err := o.csrf.AddTrustedOrigin(origin); err != nil {
			return nil, fmt.Errorf("%w: allowed origin %q: %w", ErrOIDCConfig, origin, err)
		}
	}
	var err error
	if o.cookie, err = deriveAEAD(cfg.Secret, "global-sessions oidc state cookie"); err != nil {
		return nil, err
	}
	if o.store.aead, err = deriveAEAD(cfg.Secret, "global-sessions oidc tokens"); err != nil {
		return nil, err
	}
	if o.store.mac, err = hkdf.Key(sha256.New, cfg.Secret, nil, "global-sessions oidc index", 32); err != nil {
		return nil, err
	}
	o.store.m = cfg.Sessions.cfg.Store
	// However a session ends here (this logout, Login's /logout, End, a refused refresh,
	// a back-channel logout), its tokens go with it.
	cfg.Sessions.addEndHook(func(ctx context.Context, id string) {
		if err := o.store.delete(ctx, tokensKey(cfg.Sessions.cfg.Signer.BackendID(id))); err != nil {
			o.log.Warn("gateway: oidc: delete an ended session's tokens", "err", err)
		}
	})
	return o, nil
}

func deriveAEAD(secret []byte, info string) (cipher.AEAD, error) {
	key, err := hkdf.Key(sha256.New, secret, nil, info, 32)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, err
	}
	return cipher.NewGCM(block)
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

// clientContext carries the provider client for go-oidc and oauth2.
func (o *OIDC) clientContext(ctx context.Context) context.Context {
	return context.WithValue(oidc.ClientContext(ctx, o.client), oauth2.HTTPClient, o.client)
}

// provider returns the discovered provider, discovering it when not yet done.
func (o *OIDC) provider(ctx context.Context) (*oidcProvider, error) {
	o.mu.Lock()
	p := o.prov
	o.mu.Unlock()
	if p != nil {
		return p, nil
	}
	o.discoverMu.Lock()
	defer o.discoverMu.Unlock()
	o.mu.Lock()
	p = o.prov
	o.mu.Unlock()
	if p != nil {
		return p, nil
	}
	prov, err := oidc.NewProvider(o.clientContext(ctx), o.cfg.Issuer)
	if err != nil {
		return nil, fmt.Errorf("%w: discovery at %s: %w", ErrProviderUnavailable, o.cfg.Issuer, err)
	}
	var meta struct {
		EndSession string `json:"end_session_endpoint"`
	}
	_ = prov.Claims(&meta)
	p = &oidcProvider{
		p:          prov,
		verifier:   prov.Verifier(&oidc.Config{ClientID: o.cfg.ClientID, Now: func() time.Time { return o.now() }}),
		endSession: meta.EndSession,
		oauth: &oauth2.Config{ClientID: o.cfg.ClientID, ClientSecret: o.cfg.ClientSecret, Endpoint: prov.Endpoint(),
			RedirectURL: o.cfg.RedirectURL, Scopes: o.cfg.Scopes},
	}
	o.mu.Lock()
	o.prov = p
	o.mu.Unlock()
	return p, nil
}

// ServeHTTP implements http.Handler for the paths listed on OIDC.
func (o *OIDC) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	callback, _ := url.Parse(o.cfg.RedirectURL)
	switch {
	case r.URL.Path == "/login/oidc" && r.Method == http.MethodGet:
		o.Start(w, r)
	case (r.URL.Path == callback.Path || r.URL.Path == "/login/oidc/callback") && r.Method == http.MethodGet:
		o.Callback(w, r)
	case r.URL.Path == "/logout/oidc" && r.Method == http.MethodPost:
		o.Logout(w, r)
	case r.URL.Path == "/oidc/backchannel-logout" && r.Method == http.MethodPost:
		o.BackchannelLogout(w, r)
	default:
		web.WriteError(w, http.StatusNotFound, r.Method+" "+r.URL.Path+" is not an OIDC endpoint")
	}
}

// loginState is what the state cookie carries, sealed.
type loginState struct {
	State    string    `json:"s"`
	Nonce    string    `json:"n"`
	Verifier string    `json:"v"`
	Return   string    `json:"r"`
	Expires  time.Time `json:"e"`
}

// Start begins a login: it sets the sealed state cookie and redirects to the provider.
// The query's "return" names the same-origin path to go to afterwards.
func (o *OIDC) Start(w http.ResponseWriter, r *http.Request) {
	p, err := o.provider(r.Context())
	if err != nil {
		o.fail(w, r, http.StatusServiceUnavailable, "the sign-in provider cannot be reached; try again later", err)
		return
	}
	var st loginState
	for _, f := range []*string{&st.State, &st.Nonce} {
		if *f, err = web.RandomID(24); err != nil {
			o.fail(w, r, http.StatusInternalServerError, "the sign-in could not start", err)
			return
		}
	}
	st.Verifier = oauth2.GenerateVerifier()
	st.Return = SafeReturnPath(r.URL.Query().Get("return"))
	st.Expires = o.now().Add(o.cfg.StateTTL)
	sealed, err := o.seal(st)
	if err != nil {
		o.fail(w, r, http.StatusInternalServerError, "the sign-in could not start", err)
		return
	}
	http.SetCookie(w, o.stateCookie(r, st.State, sealed, int(o.cfg.StateTTL.Seconds())))
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, p.oauth.AuthCodeURL(st.State, oidc.Nonce(st.Nonce), oauth2.S256ChallengeOption(st.Verifier)), http.StatusFound)
}

// stateCookieName is the name of the cookie of a login's state, or "" for a state that
// this gateway cannot have made.
func (o *OIDC) stateCookieName(state string) string {
	if len(state) != 32 {
		return ""
	}
	for _, c := range state {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_') {
			return ""
		}
	}
	return o.cfg.StateCookie + "_" + state[:12]
}

func (o *OIDC) stateCookie(r *http.Request, state, value string, maxAge int) *http.Cookie {
	return &http.Cookie{Name: o.stateCookieName(state), Value: value, Path: "/", MaxAge: maxAge, HttpOnly: true,
		Secure: r.TLS != nil, SameSite: http.SameSiteLaxMode}
}

func (o *OIDC) seal(st loginState) (string, error) {
	b, err := json.Marshal(st)
	if err != nil {
		return "", err
	}
	nonce := make([]byte, o.cookie.NonceSize())
	if _, err := rand.Read(nonce); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(o.cookie.Seal(nonce, nonce, b, []byte(o.cfg.StateCookie))), nil
}

func (o *OIDC) open(value string) (loginState, error) {
	var st loginState
	b, err := base64.RawURLEncoding.DecodeString(value)
	ns := o.cookie.NonceSize()
	if err != nil || len(b) < ns {
		return st, fmt.Errorf("%w: a malformed state cookie", errBadState)
	}
	plain, err := o.cookie.Open(nil, b[:ns], b[ns:], []byte(o.cfg.StateCookie))
	if err != nil {
		return st, fmt.Errorf("%w: a state cookie this gateway did not seal", errBadState)
	}
	if err := json.Unmarshal(plain, &st); err != nil {
		return st, fmt.Errorf("%w: %w", errBadState, err)
	}
	return st, nil
}

// SafeReturnPath returns ret when it is a path on the gateway's own origin ("/app?x=1"),
// and "/" otherwise (an absolute URL, a scheme-relative "//host", a backslash, a control
// character): a login's return URL cannot send the browser to another site.
func SafeReturnPath(ret string) string {
	if ret == "" || ret[0] != '/' || strings.HasPrefix(ret, "//") || strings.ContainsAny(ret, "\\") {
		return "/"
	}
	for _, c := range ret {
		if c < 0x20 || c == 0x7f {
			return "/"
		}
	}
	u, err := url.Parse(ret)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil {
		return "/"
	}
	return ret
}

// Callback finishes a login: it checks the state against the sealed cookie (once only),
// redeems the code with the PKCE verifier, verifies the ID token and its nonce, creates
// the session, keeps the tokens, and redirects to the login's return path.
func (o *OIDC) Callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	q := r.URL.Query()
	name := o.stateCookieName(q.Get("state"))
	var c *http.Cookie
	cookieErr := fmt.Errorf("%w: a malformed state", errBadState)
	if name != "" {
		if c, cookieErr = r.Cookie(name); cookieErr != nil {
			cookieErr = fmt.Errorf("%w: no state cookie", errBadState)
		}
		http.SetCookie(w, o.stateCookie(r, q.Get("state"), "", -1)) // a state serves once
	}
	if e := q.Get("error"); e != "" {
		o.fail(w, r, http.StatusUnauthorized, "the sign-in provider refused the sign-in",
			fmt.Errorf("provider error %q: %s", e, q.Get("error_description")))
		return
	}
	if cookieErr != nil {
		o.fail(w, r, http.StatusBadRequest, "this sign-in cannot be verified; start again", cookieErr)
		return
	}
	st, err := o.open(c.Value)
	if err != nil {
		o.fail(w, r, http.StatusBadRequest, "this sign-in cannot be verified; start again", err)
		return
	}
	if subtle.ConstantTimeCompare([]byte(st.State), []byte(q.Get("state"))) != 1 {
		o.fail(w, r, http.StatusBadRequest, "this sign-in cannot be verified; start again", fmt.Errorf("%w: the state does not match the cookie's", errBadState))
		return
	}
	left := st.Expires.Sub(o.now())
	if left <= 0 {
		o.fail(w, r, http.StatusBadRequest, "this sign-in took too long; start again", fmt.Errorf("%w: expired at %v", errBadState, st.Expires))
		return
	}
	used, err := o.store.mark(ctx, o.store.usedKey("state", st.State), left)
	if err != nil {
		o.fail(w, r, http.StatusBadGateway, "the sign-in could not be finished", err)
		return
	}
	if used {
		o.fail(w, r, http.StatusBadRequest, "this sign-in was already used; start again", fmt.Errorf("%w: replayed", errBadState))
		return
	}
	p, err := o.provider(ctx)
	if err != nil {
		o.fail(w, r, http.StatusServiceUnavailable, "the sign-in provider cannot be reached; try again later", err)
		return
	}
	tok, err := p.oauth.Exchange(o.clientContext(ctx), q.Get("code"), oauth2.VerifierOption(st.Verifier))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			o.fail(w, r, http.StatusUnauthorized, "the sign-in provider refused the sign-in", fmt.Errorf("code exchange: %w", err))
			return
		}
		o.fail(w, r, http.StatusBadGateway, "the sign-in provider cannot be reached; try again later", fmt.Errorf("%w: code exchange: %w", ErrProviderUnavailable, err))
		return
	}
	rawID, _ := tok.Extra("id_token").(string)
	id, claims, err := o.verifyIDToken(ctx, p, rawID, st.Nonce)
	if err != nil {
		o.fail(w, r, http.StatusUnauthorized, "the sign-in could not be verified", err)
		return
	}
	ident, err := o.identity(claims)
	if err != nil {
		o.fail(w, r, http.StatusUnauthorized, "the sign-in could not be verified", err)
		return
	}
	sid, _ := claims["sid"].(string)
	// The session's cookie is set only once everything the session needs is stored.
	rec := &cookieRecorder{header: http.Header{}}
	sess, err := o.cfg.Sessions.Create(ctx, rec, r, ident)
	if err != nil {
		o.fail(w, r, http.StatusBadGateway, "the sign-in could not be finished", err)
		return
	}
	t := oidcTokens{Access: tok.AccessToken, Refresh: tok.RefreshToken, ID: rawID, Type: tok.TokenType,
		Expiry: o.accessExpiry(tok), Subject: id.Subject, SID: sid}
	if err := o.saveTokens(ctx, sess, &t); err != nil {
		_ = o.cfg.Sessions.End(ctx, sess.ID)
		o.fail(w, r, http.StatusBadGateway, "the sign-in could not be finished", err)
		return
	}
	if err := o.index(ctx, sess, &t); err != nil {
		_ = o.endSession(ctx, sess)
		o.fail(w, r, http.StatusBadGateway, "the sign-in could not be finished", err)
		return
	}
	for _, v := range rec.header.Values("Set-Cookie") {
		w.Header().Add("Set-Cookie", v)
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, st.Return, http.StatusSeeOther)
}

// cookieRecorder holds the headers Sessions.Create sets until the login is complete.
type cookieRecorder struct{ header http.Header }

func (c *cookieRecorder) Header() http.Header         { return c.header }
func (c *cookieRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (c *cookieRecorder) WriteHeader(int)             {}

// verifyIDToken verifies raw (signature, issuer, audience, expiry) and, when nonce is not
// empty, its nonce, and returns its claims.
func (o *OIDC) verifyIDToken(ctx context.Context, p *oidcProvider, raw, nonce string) (*oidc.IDToken, map[string]any, error) {
	if raw == "" {
		return nil, nil, fmt.Errorf("%w: the token response has no id_token", errBadIDToken)
	}
	id, err := p.verifier.Verify(o.clientContext(ctx), raw)
	if err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadIDToken, err)
	}
	if nonce != "" && subtle.ConstantTimeCompare([]byte(id.Nonce), []byte(nonce)) != 1 {
		return nil, nil, fmt.Errorf("%w: the nonce does not match the login's", errBadIDToken)
	}
	var claims map[string]any
	if err := id.Claims(&claims); err != nil {
		return nil, nil, fmt.Errorf("%w: %w", errBadIDToken, err)
	}
	return id, claims, nil
}

// identity is who the ID token's claims name: UserClaim (else sub), and the roles of
// RolesClaim.
func (o *OIDC) identity(claims map[string]any) (Identity, error) {
	user, _ := claims[o.cfg.UserClaim].(string)
	if user == "" {
		user, _ = claims["sub"].(string)
	}
	if user == "" {
		return Identity{}, fmt.Errorf("%w: neither %q nor sub names the user", errBadIDToken, o.cfg.UserClaim)
	}
	id := Identity{User: user}
	if o.cfg.RolesClaim == "" {
		return id, nil
	}
	var v any = claims
	for _, part := range strings.Split(o.cfg.RolesClaim, ".") {
		m, ok := v.(map[string]any)
		if !ok {
			return id, nil
		}
		v = m[part]
	}
	switch roles := v.(type) {
	case []any:
		for _, r := range roles {
			if s, ok := r.(string); ok && s != "" {
				id.Roles = append(id.Roles, s)
			}
		}
	case string:
		id.Roles = strings.Fields(roles)
	}
	return id, nil
}

// fail answers a refused or failed OIDC request with an error page and a request id, and
// logs the detail once with that id.
func (o *OIDC) fail(w http.ResponseWriter, r *http.Request, status int, msg string, err error) {
	id, _ := web.RandomID(6)
	o.log.Warn("gateway: oidc: "+msg, "request_id", id, "status", status, "method", r.Method, "path", r.URL.Path, "err", err)
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(status)
	fmt.Fprintf(w, `<!doctype html><meta charset="utf-8"><title>Sign-in failed</title>`+
		`<h1>Sign-in failed</h1><p>%s.</p><p><a href="/login/oidc">Sign in again</a></p><p><small>Request %s</small></p>`+"\n",
		html.EscapeString(msg), id)
}

// Logout ends the request's session (and its tokens) and then, when the provider
// advertises an end_session_endpoint, sends the browser there (RP-initiated logout, with
// id_token_hint and post_logout_redirect_uri); else to PostLogoutRedirectURL. A POST from
// another site is refused with 403.
func (o *OIDC) Logout(w http.ResponseWriter, r *http.Request) {
	if err := o.csrf.Check(r); err != nil {
		web.WriteError(w, http.StatusForbidden, "a request from another site is refused")
		return
	}
	ctx := r.Context()
	var idToken string
	if sess, err := o.cfg.Sessions.Lookup(ctx, r); err == nil {
		if t, err := o.loadTokens(ctx, sess); err == nil {
			idToken = t.ID
		}
	}
	if err := o.cfg.Sessions.Logout(ctx, w, r); err != nil { // deletes the tokens too
		o.fail(w, r, http.StatusBadGateway, "the logout could not be finished", err)
		return
	}
	dest := o.cfg.PostLogoutRedirectURL
	if dest == "" {
		dest = "/"
	}
	if p, err := o.provider(ctx); err == nil && p.endSession != "" && idToken != "" {
		if u, err := url.Parse(p.endSession); err == nil {
			q := u.Query()
			q.Set("id_token_hint", idToken)
			q.Set("client_id", o.cfg.ClientID)
			if o.cfg.PostLogoutRedirectURL != "" {
				q.Set("post_logout_redirect_uri", o.cfg.PostLogoutRedirectURL)
			}
			u.RawQuery = q.Encode()
			dest = u.String()
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, dest, http.StatusSeeOther)
}

// BackchannelLogout serves the provider's back-channel logout: a POST whose form value
// logout_token is a JWT verified as an ID token is (signature, issuer, audience, expiry)
// that carries iat, a jti not seen before, the back-channel logout event, sid or sub, and
// no nonce. It ends the gateway sessions of that provider session (sid), or of that
// subject when the token names no sid, and answers 200; a bad token gets 400.
func (o *OIDC) BackchannelLogout(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	w.Header().Set("Cache-Control", "no-store")
	raw := r.PostFormValue("logout_token")
	if raw == "" {
		o.logoutRefused(w, r, errors.New("no logout_token"))
		return
	}
	p, err := o.provider(ctx)
	if err != nil {
		o.log.Warn("gateway: oidc: back-channel logout", "err", err)
		web.WriteError(w, http.StatusServiceUnavailable, "the provider cannot be reached")
		return
	}
	lt, err := p.verifier.VerifyLogout(o.clientContext(ctx), raw)
	if err != nil {
		o.logoutRefused(w, r, err)
		return
	}
	var iat struct {
		IssuedAt *json.Number `json:"iat"`
	}
	if err := lt.Claims(&iat); err != nil || iat.IssuedAt == nil {
		o.logoutRefused(w, r, errors.New("the logout token has no iat"))
		return
	}
	used, err := o.store.mark(ctx, o.store.usedKey("jti", lt.TokenID), lt.Expiry.Sub(o.now()))
	if err != nil {
		o.log.Warn("gateway: oidc: back-channel logout", "err", err)
		web.WriteError(w, http.StatusServiceUnavailable, "the logout could not be done")
		return
	}
	if used {
		o.logoutRefused(w, r, errors.New("a logout token already used (jti)"))
		return
	}
	key := o.store.indexKey("sub", lt.Issuer, lt.Subject)
	if lt.SessionID != "" {
		key = o.store.indexKey("sid", lt.Issuer, lt.SessionID)
	}
	ended, err := o.endIndexed(ctx, key)
	if err != nil {
		o.log.Warn("gateway: oidc: back-channel logout", "err", err)
		web.WriteError(w, http.StatusServiceUnavailable, "the logout could not be done")
		return
	}
	o.log.Info("gateway: oidc: back-channel logout", "sub", lt.Subject, "sid", lt.SessionID, "sessions_ended", ended)
	w.WriteHeader(http.StatusOK)
}

func (o *OIDC) logoutRefused(w http.ResponseWriter, r *http.Request, err error) {
	o.log.Warn("gateway: oidc: back-channel logout refused", "path", r.URL.Path, "err", err)
	web.WriteJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": "the logout token is refused"})
}

// OIDCTokens are a session's provider tokens. They are for the gateway's own use (calls to
// the provider or, with BackendAccessToken, to backends): never send them to a browser.
type OIDCTokens struct {
	// AccessToken is the provider's access token; TokenType its type ("Bearer").
	AccessToken string
	TokenType   string
	// Expiry is when the access token expires (the earlier of the provider's expires_in
	// and, for a JWT access token, its exp claim).
	Expiry time.Time
	// RefreshToken refreshes the access token; empty when the provider gave none.
	RefreshToken string
	// IDToken is the latest ID token, the id_token_hint of a logout.
	IDToken string
}

// oidcTokens are what the store keeps of a session's provider tokens.
type oidcTokens struct {
	Access  string    `json:"a"`
	Type    string    `json:"y,omitempty"`
	Refresh string    `json:"r,omitempty"`
	ID      string    `json:"i,omitempty"`
	Expiry  time.Time `json:"e"`
	Subject string    `json:"s"`
	SID     string    `json:"d,omitempty"`
}

func (t *oidcTokens) public() *OIDCTokens {
	return &OIDCTokens{AccessToken: t.Access, TokenType: t.Type, Expiry: t.Expiry, RefreshToken: t.Refresh, IDToken: t.ID}
}

// accessExpiry is when tok's access token expires: its Expiry (from expires_in) or, when
// the access token is a JWT with an earlier exp claim, that (read unverified, only to
// refresh in time: some providers send expires_in in other units than seconds).
func (o *OIDC) accessExpiry(tok *oauth2.Token) time.Time {
	exp := tok.Expiry
	parts := strings.Split(tok.AccessToken, ".")
	if len(parts) == 3 {
		if b, err := base64.RawURLEncoding.DecodeString(parts[1]); err == nil {
			var c struct {
				Exp *json.Number `json:"exp"`
			}
			if json.Unmarshal(b, &c) == nil && c.Exp != nil {
				if s, err := c.Exp.Int64(); err == nil {
					if t := time.Unix(s, 0); exp.IsZero() || t.Before(exp) {
						exp = t
					}
				}
			}
		}
	}
	if exp.IsZero() {
		exp = o.now().Add(time.Hour) // no expiry known: refresh hourly when possible
	}
	return exp
}

func (o *OIDC) saveTokens(ctx context.Context, sess *Session, t *oidcTokens) error {
	b, err := json.Marshal(t)
	if err != nil {
		return err
	}
	return o.store.put(ctx, tokensKey(sess.BackendID), b, sess.MaxExpires.Sub(o.cfg.Sessions.now()))
}

func (o *OIDC) loadTokens(ctx context.Context, sess *Session) (*oidcTokens, error) {
	b, err := o.store.get(ctx, tokensKey(sess.BackendID))
	if errors.Is(err, sessioncache.ErrNotFound) {
		return nil, ErrNoTokens
	}
	if err != nil {
		return nil, err
	}
	var t oidcTokens
	if err := json.Unmarshal(b, &t); err != nil {
		return nil, fmt.Errorf("%w: %w", errStoreValue, err)
	}
	return &t, nil
}

func (o *OIDC) deleteTokens(ctx context.Context, sess *Session) error {
	return o.store.delete(ctx, tokensKey(sess.BackendID))
}

// endSession ends sess; its tokens go with it (the end hook of NewOIDC).
func (o *OIDC) endSession(ctx context.Context, sess *Session) error {
	return o.cfg.Sessions.End(ctx, sess.ID)
}

// Tokens returns sess's provider tokens, valid for at least RefreshMargin when the
// provider allows: an access token that expires within the margin is refreshed first
// (once per session at a time), and the new tokens are stored. When the provider refuses
// the refresh (invalid_grant), the session is ended everywhere — its sockets and channels
// close — and Tokens returns ErrRefreshRefused. A session that has ended returns
// ErrNoSession; one that no OIDC login made, ErrNoTokens. When the provider cannot be
// reached, the error wraps ErrProviderUnavailable and the session is kept. The hub's loops
// call it on each cycle to check that the user's tokens are still valid.
func (o *OIDC) Tokens(ctx context.Context, sess *Session) (*OIDCTokens, error) {
	if _, err := o.cfg.Sessions.Check(ctx, sess.ID); err != nil {
		if errors.Is(err, ErrNoSession) {
			_ = o.deleteTokens(ctx, sess)
		}
		return nil, err
	}
	t, err := o.loadTokens(ctx, sess)
	if err != nil {
		return nil, err
	}
	if o.now().Add(o.cfg.RefreshMargin).Before(t.Expiry) {
		return t.public(), nil
	}
	v, err, _ := o.refreshes.Do(sess.BackendID, func() (any, error) { return o.refresh(ctx, sess) })
	if err != nil {
		return nil, err
	}
	return v.(*oidcTokens).public(), nil
}

// refresh refreshes sess's tokens unless another refresh just did.
func (o *OIDC) refresh(ctx context.Context, sess *Session) (*oidcTokens, error) {
	t, err := o.loadTokens(ctx, sess)
	if err != nil {
		return nil, err
	}
	if o.now().Add(o.cfg.RefreshMargin).Before(t.Expiry) {
		return t, nil
	}
	if t.Refresh == "" {
		if o.now().Before(t.Expiry) {
			return t, nil // valid a little longer, and nothing to refresh it with
		}
		return nil, o.refused(ctx, sess, errors.New("the access token expired and there is no refresh token"))
	}
	p, err := o.provider(ctx)
	if err != nil {
		return nil, err
	}
	tok, err := p.oauth.TokenSource(o.clientContext(ctx), &oauth2.Token{RefreshToken: t.Refresh}).Token()
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.ErrorCode == "invalid_grant" {
			// Another gateway may have refreshed meanwhile with a provider that rotates
			// refresh tokens: then its tokens are the session's, and the session lives.
			if cur, lerr := o.loadTokens(ctx, sess); lerr == nil && cur.Refresh != t.Refresh {
				return cur, nil
			}
			return nil, o.refused(ctx, sess, err)
		}
		return nil, fmt.Errorf("%w: refresh: %w", ErrProviderUnavailable, err)
	}
	next := *t
	next.Access, next.Type, next.Expiry = tok.AccessToken, tok.TokenType, o.accessExpiry(tok)
	if tok.RefreshToken != "" {
		next.Refresh = tok.RefreshToken
	}
	if rawID, _ := tok.Extra("id_token").(string); rawID != "" {
		if _, _, err := o.verifyIDToken(ctx, p, rawID, ""); err != nil {
			return nil, fmt.Errorf("gateway: oidc: refresh: %w", err)
		}
		next.ID = rawID
	}
	if err := o.saveTokens(ctx, sess, &next); err != nil {
		return nil, err
	}
	return &next, nil
}

// refused ends sess after the provider refused to refresh its tokens.
func (o *OIDC) refused(ctx context.Context, sess *Session, cause error) error {
	o.log.Info("gateway: oidc: the provider refused a refresh; the session ends", "user", sess.User, "err", cause)
	if err := o.endSession(ctx, sess); err != nil {
		return fmt.Errorf("%w (and ending the session failed: %w)", ErrRefreshRefused, err)
	}
	return fmt.Errorf("%w: %w", ErrRefreshRefused, cause)
}

// BackendToken returns what sess's backends receive, as Backend says: the gateway's own
// JWT (Sessions.Token) or the provider's access token (from Tokens, refreshed as needed).
func (o *OIDC) BackendToken(ctx context.Context, sess *Session) (string, error) {
	if o.cfg.Backend == BackendAccessToken {
		t, err := o.Tokens(ctx, sess)
		if err != nil {
			return "", err
		}
		return t.AccessToken, nil
	}
	return o.cfg.Sessions.Token(sess)
}

// indexEntry is a gateway session in the index of a provider session or subject.
type indexEntry struct {
	ID      string    `json:"i"`
	Expires time.Time `json:"e"`
}

// index adds sess to the indexes of its provider session (sid, when the ID token has one)
// and subject, which back-channel logout reads.
func (o *OIDC) index(ctx context.Context, sess *Session, t *oidcTokens) error {
	o.indexMu.Lock()
	defer o.indexMu.Unlock()
	keys := []string{o.store.indexKey("sub", o.cfg.Issuer, t.Subject)}
	if t.SID != "" {
		keys = append(keys, o.store.indexKey("sid", o.cfg.Issuer, t.SID))
	}
	for _, key := range keys {
		if err := o.addToIndex(ctx, key, sess); err != nil {
			return err
		}
	}
	return nil
}

// indexAttempts bounds the read-merge-write rounds of addToIndex.
const indexAttempts = 4

// addToIndex adds sess to the index under key. Another host may rewrite the index at the
// same moment from what it read before (the store has no compare-and-set), so the entry is
// read back after the write, and merged in again when it was lost: a lost entry would be a
// session that a back-channel logout misses.
func (o *OIDC) addToIndex(ctx context.Context, key string, sess *Session) error {
	for range indexAttempts {
		list, err := o.readIndex(ctx, key)
		if err != nil {
			return err
		}
		now := o.cfg.Sessions.now()
		kept := []indexEntry{{ID: sess.ID, Expires: sess.MaxExpires}}
		until := sess.MaxExpires
		for _, e := range list {
			if e.Expires.After(now) && e.ID != sess.ID {
				kept = append(kept, e)
				until = maxTime(until, e.Expires)
			}
		}
		b, err := json.Marshal(kept)
		if err != nil {
			return err
		}
		if err := o.store.put(ctx, key, b, until.Sub(now)); err != nil {
			return err
		}
		after, err := o.readIndex(ctx, key)
		if err != nil {
			return err
		}
		if slices.ContainsFunc(after, func(e indexEntry) bool { return e.ID == sess.ID }) {
			return nil
		}
	}
	return fmt.Errorf("gateway: oidc: the index of the provider's session kept losing this session (%d attempts)", indexAttempts)
}

func (o *OIDC) readIndex(ctx context.Context, key string) ([]indexEntry, error) {
	b, err := o.store.get(ctx, key)
	if errors.Is(err, sessioncache.ErrNotFound) || errors.Is(err, errStoreValue) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var list []indexEntry
	if err := json.Unmarshal(b, &list); err != nil {
		return nil, nil
	}
	return list, nil
}

// endIndexed ends the sessions of the index under key, deletes their tokens and the
// index, and returns how many there were.
func (o *OIDC) endIndexed(ctx context.Context, key string) (int, error) {
	o.indexMu.Lock()
	defer o.indexMu.Unlock()
	list, err := o.readIndex(ctx, key)
	if err != nil {
		return 0, err
	}
	var errs []error
	for _, e := range list {
		sess := &Session{ID: e.ID, BackendID: o.cfg.Sessions.cfg.Signer.BackendID(e.ID)}
		errs = append(errs, o.endSession(ctx, sess))
	}
	if err := errors.Join(errs...); err != nil {
		return 0, err
	}
	return len(list), o.store.delete(ctx, key)
}

func maxTime(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

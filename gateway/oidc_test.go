package gateway_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
	"github.com/globalsession/globalsession/gateway/internal/sessionaccess"
	"github.com/globalsession/globalsession/sessioncache"
)

// How the test provider alters the ID token its token endpoint returns: each alteration
// but "unsigned" is signed again with the provider's own key, so that the token is valid
// in every respect but the one the test is about.
const (
	tamperNone int32 = iota
	tamperAudience
	tamperExpired
	tamperUnsigned
	tamperAddSID // adds the claim sid "provider-session-1" (mockoidc sends none)
)

// provider is a real OpenID provider (mockoidc) on loopback, with a middleware that
// advertises an end_session_endpoint in its discovery document (mockoidc serves none:
// the tests check the redirect to it, not what it does), counts refresh grants, and
// alters ID tokens on demand.
type provider struct {
	m         *mockoidc.MockOIDC
	tamper    atomic.Int32
	refreshes atomic.Int32
	signWith  atomic.Pointer[mockoidc.Keypair] // re-sign ID tokens with this key
	publish   atomic.Bool                      // publish signWith's key beside the first
}

func startProvider(t *testing.T) *provider {
	t.Helper()
	m, err := mockoidc.NewServer(nil)
	require.NoError(t, err)
	_, err = m.Keypair.KeyID() // computed (and kept) now, before the server's goroutines read it
	require.NoError(t, err)
	p := &provider{m: m}
	require.NoError(t, m.AddMiddleware(p.middleware))
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, m.Start(ln, nil))
	t.Cleanup(func() { _ = m.Shutdown() })
	return p
}

func (p *provider) middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case mockoidc.DiscoveryEndpoint:
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var doc map[string]any
			if err := json.Unmarshal(rec.Body.Bytes(), &doc); err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			doc["end_session_endpoint"] = p.m.Issuer() + "/logout"
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(doc)
		case mockoidc.JWKSEndpoint:
			k := p.signWith.Load()
			if k == nil || !p.publish.Load() {
				next.ServeHTTP(w, r)
				return
			}
			var set, more struct {
				Keys []json.RawMessage `json:"keys"`
			}
			first, err := p.m.Keypair.JWKS()
			if err == nil {
				err = json.Unmarshal(first, &set)
			}
			second, err2 := k.JWKS()
			if err == nil && err2 == nil {
				err = json.Unmarshal(second, &more)
			}
			if err != nil || err2 != nil {
				http.Error(w, "jwks", http.StatusInternalServerError)
				return
			}
			set.Keys = append(set.Keys, more.Keys...)
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(set)
		case mockoidc.TokenEndpoint:
			if err := r.ParseForm(); err == nil && r.Form.Get("grant_type") == "refresh_token" {
				p.refreshes.Add(1)
			}
			mode := p.tamper.Load()
			if mode == tamperNone && p.signWith.Load() == nil {
				next.ServeHTTP(w, r)
				return
			}
			rec := httptest.NewRecorder()
			next.ServeHTTP(rec, r)
			var body map[string]any
			if rec.Code != http.StatusOK || json.Unmarshal(rec.Body.Bytes(), &body) != nil {
				w.WriteHeader(rec.Code)
				_, _ = w.Write(rec.Body.Bytes())
				return
			}
			raw, _ := body["id_token"].(string)
			altered, err := p.alter(raw, mode)
			if err != nil {
				http.Error(w, err.Error(), http.StatusInternalServerError)
				return
			}
			body["id_token"] = altered
			w.Header().Set("Content-Type", "application/json")
			_ = json.NewEncoder(w).Encode(body)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

func (p *provider) alter(raw string, mode int32) (string, error) {
	claims := jwt.MapClaims{}
	if _, _, err := jwt.NewParser().ParseUnverified(raw, claims); err != nil {
		return "", err
	}
	now := time.Now()
	switch mode {
	case tamperAudience:
		claims["aud"] = "another-client"
	case tamperExpired:
		claims["iat"], claims["nbf"], claims["exp"] = now.Add(-20*time.Minute).Unix(), now.Add(-20*time.Minute).Unix(), now.Add(-10*time.Minute).Unix()
	case tamperAddSID:
		claims["sid"] = "provider-session-1"
	case tamperUnsigned:
		payload, err := json.Marshal(claims)
		if err != nil {
			return "", err
		}
		enc := base64.RawURLEncoding.EncodeToString
		return enc([]byte(`{"alg":"none","typ":"JWT"}`)) + "." + enc(payload) + ".", nil
	}
	if k := p.signWith.Load(); k != nil {
		return k.SignJWT(claims)
	}
	return p.m.Keypair.SignJWT(claims)
}

// logoutToken is a back-channel logout token the provider signs with its key.
func (p *provider) logoutToken(t *testing.T, change func(jwt.MapClaims)) string {
	t.Helper()
	jti := rand.Text()
	now := time.Now()
	claims := jwt.MapClaims{"iss": p.m.Issuer(), "aud": p.m.ClientID, "iat": now.Unix(), "exp": now.Add(2 * time.Minute).Unix(),
		"jti": jti, "sub": mockoidc.DefaultUser().Subject,
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}}
	if change != nil {
		change(claims)
	}
	tok, err := p.m.Keypair.SignJWT(claims)
	require.NoError(t, err)
	return tok
}

// gw is a gateway with the OIDC login (over a session table of the default 384-byte
// records) and Login's /session and /logout.
type gw struct {
	srv      *httptest.Server
	oidc     *gateway.OIDC
	sessions *gateway.Sessions
	offset   atomic.Int64 // the OIDC clock's lead over the real one
	logs     *logBuffer
}

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

// take returns what was logged since the last take.
func (l *logBuffer) take() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	s := l.b.String()
	l.b.Reset()
	return s
}

func startGateway(t *testing.T, p *provider, change func(*gateway.OIDCConfig)) *gw {
	t.Helper()
	store, err := sessioncache.New(sessioncache.Config{Path: filepath.Join(t.TempDir(), "gw.table"), Create: true, ElementCount: 1000})
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	require.Equal(t, sessioncache.DefaultRecordSize, store.Table().RecordSize())
	sessions, err := gateway.NewSessions(gateway.SessionsConfig{Store: store, Signer: gatewaytest.Signer(t)})
	require.NoError(t, err)
	g := &gw{sessions: sessions, logs: &logBuffer{}}
	mux := http.NewServeMux()
	g.srv = httptest.NewServer(mux)
	t.Cleanup(g.srv.Close)
	cfg := gateway.OIDCConfig{
		Sessions: sessions, Issuer: p.m.Issuer(), ClientID: p.m.ClientID, ClientSecret: p.m.ClientSecret,
		RedirectURL: g.srv.URL + "/login/oidc/callback", PostLogoutRedirectURL: g.srv.URL + "/bye",
		Secret: []byte(strings.Repeat("s", 32)), Logger: slog.New(slog.NewTextHandler(g.logs, nil)),
	}
	if change != nil {
		change(&cfg)
	}
	g.oidc, err = gateway.NewOIDC(cfg)
	require.NoError(t, err)
	gateway.SetOIDCNow(g.oidc, func() time.Time { return time.Now().Add(time.Duration(g.offset.Load())) })
	for _, path := range []string{"/login/oidc", "/login/oidc/", "/logout/oidc", "/oidc/"} {
		mux.Handle(path, g.oidc)
	}
	mux.Handle("/", &gateway.Login{Sessions: sessions})
	return g
}

// browser is an HTTP client with a cookie jar that does not follow redirects, so that
// the tests can see, alter and replay each step.
type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}}
}

type answer struct {
	*http.Response
	body string
}

func (b *browser) do(method, u string, form url.Values) answer {
	b.t.Helper()
	var body io.Reader
	if form != nil {
		body = strings.NewReader(form.Encode())
	}
	req, err := http.NewRequest(method, u, body)
	require.NoError(b.t, err)
	if form != nil {
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	}
	resp, err := b.c.Do(req)
	require.NoError(b.t, err)
	defer resp.Body.Close()
	all, err := io.ReadAll(resp.Body)
	require.NoError(b.t, err)
	return answer{resp, string(all)}
}

func (b *browser) get(u string) answer { return b.do(http.MethodGet, u, nil) }

func (b *browser) cookie(u, name string) *http.Cookie {
	pu, err := url.Parse(u)
	require.NoError(b.t, err)
	for _, c := range b.c.Jar.Cookies(pu) {
		if c.Name == name || strings.HasSuffix(name, "_") && strings.HasPrefix(c.Name, name) {
			return c
		}
	}
	return nil
}

// stateOf returns the state of a callback URL.
func stateOf(t *testing.T, callback string) string {
	u, err := url.Parse(callback)
	require.NoError(t, err)
	return u.Query().Get("state")
}

// login runs the redirect dance up to the provider's redirect back, with alterAuth
// changing the authorization request, and returns the callback URL.
func (b *browser) toCallback(g *gw, ret string, alterAuth func(url.Values)) string {
	b.t.Helper()
	start := b.get(g.srv.URL + "/login/oidc?return=" + url.QueryEscape(ret))
	require.Equal(b.t, http.StatusFound, start.StatusCode, start.body)
	auth, err := url.Parse(start.Header.Get("Location"))
	require.NoError(b.t, err)
	if alterAuth != nil {
		q := auth.Query()
		alterAuth(q)
		auth.RawQuery = q.Encode()
	}
	back := b.get(auth.String())
	require.Equal(b.t, http.StatusFound, back.StatusCode, back.body)
	return back.Header.Get("Location")
}

// login runs the whole dance and expects a session.
func (b *browser) login(g *gw, ret string) answer {
	b.t.Helper()
	done := b.get(b.toCallback(g, ret, nil))
	require.Equal(b.t, http.StatusSeeOther, done.StatusCode, done.body)
	return done
}

func (b *browser) session(g *gw) (int, map[string]any) {
	b.t.Helper()
	a := b.get(g.srv.URL + "/session")
	var body map[string]any
	_ = json.Unmarshal([]byte(a.body), &body)
	return a.StatusCode, body
}

func (g *gw) lookup(t *testing.T, b *browser) *gateway.Session {
	t.Helper()
	c := b.cookie(g.srv.URL, gateway.DefaultCookieName)
	require.NotNil(t, c, "a session cookie")
	sess, err := g.sessions.LookupID(t.Context(), c.Value)
	require.NoError(t, err)
	return sess
}

// TestOIDCLogin: the whole redirect dance against a real provider creates a session that
// /session answers for, with the user and roles of the ID token; the state cookie is
// HttpOnly and SameSite=Lax; no token reaches the browser; the tokens, larger than a
// record, are kept sealed in the session store; logout ends the session and its tokens
// and sends the browser to the provider's end_session_endpoint with id_token_hint.
func TestOIDCLogin(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, func(c *gateway.OIDCConfig) {
		c.Scopes = []string{"openid", "profile", "email", "groups"}
		c.RolesClaim = "groups"
	})
	b := newBrowser(t)

	start := b.get(g.srv.URL + "/login/oidc?return=" + url.QueryEscape("/app?tab=2"))
	require.Equal(t, http.StatusFound, start.StatusCode)
	var state *http.Cookie
	for _, c := range start.Cookies() {
		if strings.HasPrefix(c.Name, gateway.DefaultOIDCStateCookie+"_") {
			state = c
		}
	}
	require.NotNil(t, state)
	assert.True(t, state.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, state.SameSite)
	auth, err := url.Parse(start.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, "S256", auth.Query().Get("code_challenge_method"))
	assert.NotEmpty(t, auth.Query().Get("nonce"))
	assert.NotContains(t, state.Value, auth.Query().Get("state"), "the cookie is sealed")
	back := b.get(auth.String())
	require.Equal(t, http.StatusFound, back.StatusCode, back.body)
	done := b.get(back.Header.Get("Location"))
	require.Equal(t, http.StatusSeeOther, done.StatusCode, done.body)
	assert.Equal(t, "/app?tab=2", done.Header.Get("Location"))

	code, body := b.session(g)
	require.Equal(t, http.StatusOK, code)
	assert.Equal(t, "jane.doe", body["user"])
	assert.Equal(t, []any{"engineering", "design"}, body["roles"])

	sess := g.lookup(t, b)
	tokens, err := g.oidc.Tokens(t.Context(), sess)
	require.NoError(t, err)
	require.NotEmpty(t, tokens.AccessToken)
	require.NotEmpty(t, tokens.RefreshToken)
	require.NotEmpty(t, tokens.IDToken)
	assert.Greater(t, len(tokens.AccessToken)+len(tokens.RefreshToken)+len(tokens.IDToken), 3*sessioncache.DefaultRecordSize,
		"the tokens need several records")
	for _, a := range []answer{start, back, done} {
		for _, tok := range []string{tokens.AccessToken, tokens.RefreshToken, tokens.IDToken} {
			assert.NotContains(t, a.body, tok)
			for _, v := range a.Header {
				assert.NotContains(t, strings.Join(v, " "), tok, "no token in a header to the browser")
			}
		}
	}
	assert.WithinDuration(t, time.Now().Add(p.m.AccessTTL), tokens.Expiry, 5*time.Second,
		"the expiry is the access token's (mockoidc's expires_in is in nanoseconds)")
	jwtToken, err := g.oidc.BackendToken(t.Context(), sess)
	require.NoError(t, err)
	claims, err := gatewaytest.Signer(t).Verify(jwtToken)
	require.NoError(t, err)
	assert.Equal(t, "jane.doe", claims.Subject)

	// RP-initiated logout.
	out := b.do(http.MethodPost, g.srv.URL+"/logout/oidc", url.Values{})
	require.Equal(t, http.StatusSeeOther, out.StatusCode, out.body)
	to, err := url.Parse(out.Header.Get("Location"))
	require.NoError(t, err)
	assert.Equal(t, p.m.Issuer()+"/logout", to.Scheme+"://"+to.Host+to.Path)
	assert.Equal(t, tokens.IDToken, to.Query().Get("id_token_hint"))
	assert.Equal(t, g.srv.URL+"/bye", to.Query().Get("post_logout_redirect_uri"))
	code, _ = b.session(g)
	assert.Equal(t, http.StatusUnauthorized, code)
	_, err = g.oidc.Tokens(t.Context(), sess)
	require.ErrorIs(t, err, gateway.ErrNoSession)
	store := sessionaccess.Of(g.sessions).Store
	_, err = store.Get(t.Context(), []byte("oidc/t/"+sess.BackendID))
	require.ErrorIs(t, err, sessioncache.ErrNotFound, "the tokens are deleted at logout")

	// Login's own /logout deletes an OIDC session's tokens too.
	b.login(g, "/")
	sess = g.lookup(t, b)
	_, err = store.Get(t.Context(), []byte("oidc/t/"+sess.BackendID))
	require.NoError(t, err)
	out = b.do(http.MethodPost, g.srv.URL+"/logout", url.Values{})
	require.Equal(t, http.StatusNoContent, out.StatusCode, out.body)
	_, err = store.Get(t.Context(), []byte("oidc/t/"+sess.BackendID))
	require.ErrorIs(t, err, sessioncache.ErrNotFound, "the tokens are deleted at logout")

	// A logout without a session goes to the post-logout page.
	out = b.do(http.MethodPost, g.srv.URL+"/logout/oidc", url.Values{})
	assert.Equal(t, g.srv.URL+"/bye", out.Header.Get("Location"))
	req, _ := http.NewRequest(http.MethodPost, g.srv.URL+"/logout/oidc", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	req.Header.Set("Origin", "https://evil.example")
	resp, err := b.c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "another site cannot log the user out")
}

// TestOIDCLoginsInTwoTabs: two logins started at once in one browser each finish with
// their own state cookie, in either order.
func TestOIDCLoginsInTwoTabs(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, nil)
	b := newBrowser(t)
	first := b.toCallback(g, "/one", nil)
	second := b.toCallback(g, "/two", nil)
	a := b.get(second)
	require.Equal(t, http.StatusSeeOther, a.StatusCode, a.body)
	assert.Equal(t, "/two", a.Header.Get("Location"))
	a = b.get(first)
	require.Equal(t, http.StatusSeeOther, a.StatusCode, a.body)
	assert.Equal(t, "/one", a.Header.Get("Location"))
	assert.Nil(t, b.cookie(g.srv.URL, gateway.DefaultOIDCStateCookie+"_"), "each state cookie is cleared once used")
	code, _ := b.session(g)
	assert.Equal(t, http.StatusOK, code)
}

// TestOIDCReturnIsSameOrigin: a return URL on another origin is replaced with "/".
func TestOIDCReturnIsSameOrigin(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, nil)
	done := newBrowser(t).login(g, "https://evil.example/phish")
	assert.Equal(t, "/", done.Header.Get("Location"))
	for in, want := range map[string]string{
		"/app": "/app", "/a/b?c=d#e": "/a/b?c=d#e", "": "/", "//evil.example/x": "/", "/\\evil.example": "/",
		"https://evil.example": "/", "javascript:alert(1)": "/", "app": "/", "/a\nb": "/", "/%0d%0aSet-Cookie:x": "/%0d%0aSet-Cookie:x",
	} {
		assert.Equal(t, want, gateway.SafeReturnPath(in), "return %q", in)
	}
}

// TestOIDCRefusals: each bad callback answers an error page with its status, creates no
// session, and logs its detail once.
func TestOIDCRefusals(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, nil)
	for _, tt := range []struct {
		name string
		want int
		run  func(b *browser) answer
	}{
		{"forged state", http.StatusBadRequest, func(b *browser) answer {
			cb, err := url.Parse(b.toCallback(g, "/", nil))
			require.NoError(t, err)
			q := cb.Query()
			q.Set("state", q.Get("state")[:12]+strings.Repeat("x", 20)) // the same cookie, another state
			cb.RawQuery = q.Encode()
			return b.get(cb.String())
		}},
		{"unknown state", http.StatusBadRequest, func(b *browser) answer {
			cb, err := url.Parse(b.toCallback(g, "/", nil))
			require.NoError(t, err)
			q := cb.Query()
			q.Set("state", strings.Repeat("y", 32))
			cb.RawQuery = q.Encode()
			return b.get(cb.String())
		}},
		{"malformed state", http.StatusBadRequest, func(b *browser) answer {
			cb, err := url.Parse(b.toCallback(g, "/", nil))
			require.NoError(t, err)
			q := cb.Query()
			q.Set("state", "<script>")
			cb.RawQuery = q.Encode()
			return b.get(cb.String())
		}},
		{"forged state cookie", http.StatusBadRequest, func(b *browser) answer {
			cb := b.toCallback(g, "/", nil)
			u, _ := url.Parse(g.srv.URL)
			b.c.Jar.SetCookies(u, []*http.Cookie{{Name: gateway.DefaultOIDCStateCookie + "_" + stateOf(t, cb)[:12], Value: base64.RawURLEncoding.EncodeToString(make([]byte, 80)), Path: "/"}})
			return b.get(cb)
		}},
		{"no state cookie", http.StatusBadRequest, func(b *browser) answer {
			cb := b.toCallback(g, "/", nil)
			return newBrowser(t).get(cb)
		}},
		{"replayed callback", http.StatusBadRequest, func(b *browser) answer {
			cb := b.toCallback(g, "/", nil)
			state := b.cookie(g.srv.URL, gateway.DefaultOIDCStateCookie+"_")
			require.NotNil(t, state)
			first := newBrowser(t) // the user's browser finishes the login...
			u, _ := url.Parse(g.srv.URL)
			first.c.Jar.SetCookies(u, []*http.Cookie{{Name: state.Name, Value: state.Value, Path: "/"}})
			require.Equal(t, http.StatusSeeOther, first.get(cb).StatusCode)
			g.logs.take()
			return b.get(cb) // ...and the same callback with the same cookie comes again
		}},
		{"expired state", http.StatusBadRequest, func(b *browser) answer {
			cb := b.toCallback(g, "/", nil)
			g.offset.Store(int64(gateway.DefaultOIDCStateTTL + time.Second))
			defer g.offset.Store(0)
			return b.get(cb)
		}},
		{"wrong nonce", http.StatusUnauthorized, func(b *browser) answer {
			return b.get(b.toCallback(g, "/", func(q url.Values) { q.Set("nonce", "the attacker's nonce") }))
		}},
		{"ID token for another audience", http.StatusUnauthorized, func(b *browser) answer {
			p.tamper.Store(tamperAudience)
			defer p.tamper.Store(tamperNone)
			return b.get(b.toCallback(g, "/", nil))
		}},
		{"expired ID token", http.StatusUnauthorized, func(b *browser) answer {
			p.tamper.Store(tamperExpired)
			defer p.tamper.Store(tamperNone)
			return b.get(b.toCallback(g, "/", nil))
		}},
		{"unsigned ID token", http.StatusUnauthorized, func(b *browser) answer {
			p.tamper.Store(tamperUnsigned)
			defer p.tamper.Store(tamperNone)
			return b.get(b.toCallback(g, "/", nil))
		}},
		{"the provider refuses", http.StatusUnauthorized, func(b *browser) answer {
			cb, err := url.Parse(b.toCallback(g, "/", nil))
			require.NoError(t, err)
			q := cb.Query()
			q.Del("code")
			q.Set("error", "access_denied")
			cb.RawQuery = q.Encode()
			return b.get(cb.String())
		}},
		{"a code the provider does not know", http.StatusUnauthorized, func(b *browser) answer {
			cb, err := url.Parse(b.toCallback(g, "/", nil))
			require.NoError(t, err)
			q := cb.Query()
			q.Set("code", "made-up")
			cb.RawQuery = q.Encode()
			return b.get(cb.String())
		}},
	} {
		why := map[string]string{
			"forged state": "the state does not match", "unknown state": "no state cookie", "malformed state": "malformed state", "expired state": "expired at", "forged state cookie": "did not seal", "no state cookie": "no state cookie",
			"replayed callback": "replayed", "wrong nonce": "nonce does not match", "ID token for another audience": "expected audience",
			"expired ID token": "token is expired", "unsigned ID token": `algorithm \"none\"`, "the provider refuses": "access_denied",
			"a code the provider does not know": "invalid_grant",
		}[tt.name]
		t.Run(tt.name, func(t *testing.T) {
			g.logs.take()
			b := newBrowser(t)
			a := tt.run(b)
			assert.Equal(t, tt.want, a.StatusCode, a.body)
			assert.Contains(t, a.Header.Get("Content-Type"), "text/html")
			assert.Contains(t, a.body, "Sign-in failed")
			assert.Contains(t, a.body, "Request ")
			assert.Nil(t, b.cookie(g.srv.URL, gateway.DefaultCookieName), "no session cookie")
			code, _ := b.session(g)
			assert.Equal(t, http.StatusUnauthorized, code, "no session")
			logs := g.logs.take()
			assert.Equal(t, 1, strings.Count(logs, "level=WARN"), "the detail is logged once: %s", logs)
			assert.Contains(t, logs, why, "refused for the right reason")
		})
	}
}

// TestOIDCProviderDown: with the provider down before discovery a login answers 503; when
// it goes down between the redirect and the callback, the callback answers 502; neither
// creates a session.
func TestOIDCProviderDown(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, nil)
	b := newBrowser(t)
	cb := b.toCallback(g, "/", nil)
	require.NoError(t, p.m.Shutdown())
	a := b.get(cb)
	assert.Equal(t, http.StatusBadGateway, a.StatusCode, a.body)
	assert.Contains(t, a.body, "cannot be reached")
	code, _ := b.session(g)
	assert.Equal(t, http.StatusUnauthorized, code)
	assert.Equal(t, 1, strings.Count(g.logs.take(), "level=WARN"))

	down := startGateway(t, p, nil) // discovery not yet done
	a = newBrowser(t).get(down.srv.URL + "/login/oidc")
	assert.Equal(t, http.StatusServiceUnavailable, a.StatusCode, a.body)
	assert.Equal(t, 1, strings.Count(down.logs.take(), "level=WARN"))
}

// TestOIDCRefresh: Tokens returns the stored tokens while they are fresh, refreshes them
// within the margin of their expiry, and when the provider refuses a refresh
// (invalid_grant) ends the session everywhere: WatchEnds reports it and /session is 401.
func TestOIDCRefresh(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, nil)
	b := newBrowser(t)
	b.login(g, "/")
	sess := g.lookup(t, b)
	ended := make(chan string, 4)
	stop := g.sessions.WatchEnds(func(id string) { ended <- id })
	defer stop()

	first, err := g.oidc.Tokens(t.Context(), sess)
	require.NoError(t, err)
	assert.Zero(t, p.refreshes.Load(), "fresh tokens are not refreshed")

	g.offset.Store(int64(p.m.AccessTTL - gateway.DefaultOIDCRefreshMargin/2))
	second, err := g.oidc.Tokens(t.Context(), sess)
	require.NoError(t, err)
	assert.EqualValues(t, 1, p.refreshes.Load(), "refreshed within the margin")
	assert.Equal(t, first.RefreshToken, second.RefreshToken)
	assert.False(t, second.Expiry.Before(first.Expiry))
	code, _ := b.session(g)
	assert.Equal(t, http.StatusOK, code)

	g.offset.Store(int64(2 * p.m.AccessTTL))
	p.m.QueueError(&mockoidc.ServerError{Code: http.StatusBadRequest, Error: mockoidc.InvalidGrant, Description: "the session is over"})
	_, err = g.oidc.Tokens(t.Context(), sess)
	require.ErrorIs(t, err, gateway.ErrRefreshRefused)
	assert.EqualValues(t, 2, p.refreshes.Load())
	select {
	case id := <-ended:
		assert.Equal(t, sess.ID, id)
	case <-time.After(5 * time.Second):
		t.Fatal("WatchEnds did not report the session's end")
	}
	code, _ = b.session(g)
	assert.Equal(t, http.StatusUnauthorized, code)
	_, err = sessionaccess.Of(g.sessions).Store.Get(t.Context(), []byte("oidc/t/"+sess.BackendID))
	require.ErrorIs(t, err, sessioncache.ErrNotFound, "the tokens went with the session")
	_, err = g.oidc.Tokens(t.Context(), sess)
	require.ErrorIs(t, err, gateway.ErrNoSession)

	// A session no OIDC login made has no tokens.
	anon, err := g.sessions.Create(t.Context(), httptest.NewRecorder(), httptest.NewRequest("POST", "/", nil), gateway.Identity{User: "x"})
	require.NoError(t, err)
	_, err = g.oidc.Tokens(t.Context(), anon)
	require.ErrorIs(t, err, gateway.ErrNoTokens)
}

// TestOIDCBackchannelLogout: a logout token signed by the provider ends the gateway
// sessions of its sid, or of its sub when it has no sid; tokens that are not valid
// logout tokens (another audience, a nonce, no event, no iat, unsigned, replayed) are
// refused with 400 and end nothing.
func TestOIDCBackchannelLogout(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, nil)
	post := func(token string) answer {
		return newBrowser(t).do(http.MethodPost, g.srv.URL+"/oidc/backchannel-logout", url.Values{"logout_token": {token}})
	}
	plain := newBrowser(t)
	plain.login(g, "/")
	p.tamper.Store(tamperAddSID)
	withSID := newBrowser(t)
	withSID.login(g, "/")
	p.tamper.Store(tamperNone)
	live := func(b *browser) bool { code, _ := b.session(g); return code == http.StatusOK }
	require.True(t, live(plain))
	require.True(t, live(withSID))

	replayed := p.logoutToken(t, func(c jwt.MapClaims) { c["sid"] = "no-such-session" })
	require.Equal(t, http.StatusOK, post(replayed).StatusCode)
	g.logs.take()
	enc := base64.RawURLEncoding.EncodeToString
	for name, token := range map[string]string{
		"another audience": p.logoutToken(t, func(c jwt.MapClaims) { c["aud"] = "another-client" }),
		"a nonce":          p.logoutToken(t, func(c jwt.MapClaims) { c["nonce"] = "n" }),
		"no event":         p.logoutToken(t, func(c jwt.MapClaims) { delete(c, "events") }),
		"no iat":           p.logoutToken(t, func(c jwt.MapClaims) { delete(c, "iat") }),
		"another issuer":   p.logoutToken(t, func(c jwt.MapClaims) { c["iss"] = "https://evil.example" }),
		"unsigned":         enc([]byte(`{"alg":"none"}`)) + "." + strings.Split(p.logoutToken(t, nil), ".")[1] + ".",
		"replayed":         replayed,
		"empty":            "",
	} {
		a := post(token)
		assert.Equal(t, http.StatusBadRequest, a.StatusCode, "%s: %s", name, a.body)
		why := map[string]string{"another audience": "expected logout token audience", "a nonce": "nonce", "no event": "backchannel-logout event",
			"no iat": "no iat", "another issuer": "different provider", "unsigned": `algorithm \"none\"`, "replayed": "already used", "empty": "no logout_token"}[name]
		assert.Contains(t, g.logs.take(), why, "%s: refused for the right reason", name)
	}
	assert.True(t, live(plain))
	assert.True(t, live(withSID))

	a := post(p.logoutToken(t, func(c jwt.MapClaims) { c["sid"] = "provider-session-1" }))
	require.Equal(t, http.StatusOK, a.StatusCode, a.body)
	assert.False(t, live(withSID), "the provider session's gateway session ended")
	assert.True(t, live(plain), "another provider session lives on")

	a = post(p.logoutToken(t, nil)) // by sub: every session of the user
	require.Equal(t, http.StatusOK, a.StatusCode, a.body)
	assert.False(t, live(plain))
}

// TestOIDCConfig: missing or bad required fields are refused with ErrOIDCConfig.
func TestOIDCConfig(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	good := gateway.OIDCConfig{Sessions: sessions, Issuer: "https://id.example", ClientID: "gw",
		RedirectURL: "https://gw.example/login/oidc/callback", Secret: []byte(strings.Repeat("s", 32))}
	_, err := gateway.NewOIDC(good)
	require.NoError(t, err, "no provider is reached before the first use")
	for name, change := range map[string]func(*gateway.OIDCConfig){
		"no sessions":         func(c *gateway.OIDCConfig) { c.Sessions = nil },
		"no issuer":           func(c *gateway.OIDCConfig) { c.Issuer = "" },
		"no client id":        func(c *gateway.OIDCConfig) { c.ClientID = "" },
		"short secret":        func(c *gateway.OIDCConfig) { c.Secret = []byte("short") },
		"relative redirect":   func(c *gateway.OIDCConfig) { c.RedirectURL = "/login/oidc/callback" },
		"bad allowed origin":  func(c *gateway.OIDCConfig) { c.AllowedOrigins = []string{"not an origin"} },
		"no redirect address": func(c *gateway.OIDCConfig) { c.RedirectURL = "" },
	} {
		cfg := good
		change(&cfg)
		_, err := gateway.NewOIDC(cfg)
		assert.ErrorIs(t, err, gateway.ErrOIDCConfig, name)
	}
}

// TestOIDCKeyRotation: an ID token signed with a key the provider does not publish is
// refused; once the provider publishes its new key beside the old one (a rotation), the
// gateway fetches the keys again and logins signed with the new key succeed, while the
// sessions made before go on.
func TestOIDCKeyRotation(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, nil)
	before := newBrowser(t)
	before.login(g, "/")

	next, err := mockoidc.RandomKeypair(2048)
	require.NoError(t, err)
	_, err = next.KeyID()
	require.NoError(t, err)
	p.signWith.Store(next)
	b := newBrowser(t)
	a := b.get(b.toCallback(g, "/", nil))
	assert.Equal(t, http.StatusUnauthorized, a.StatusCode, "a key the provider does not publish")
	assert.Contains(t, g.logs.take(), "bad ID token")

	p.publish.Store(true)
	after := newBrowser(t)
	after.login(g, "/")
	for _, b := range []*browser{before, after} {
		code, _ := b.session(g)
		assert.Equal(t, http.StatusOK, code)
	}
}

// TestOIDCBackendAccessToken: with BackendAccessToken, backends receive the provider's
// access token rather than the gateway's JWT.
func TestOIDCBackendAccessToken(t *testing.T) {
	p := startProvider(t)
	g := startGateway(t, p, func(c *gateway.OIDCConfig) { c.Backend = gateway.BackendAccessToken })
	b := newBrowser(t)
	b.login(g, "/")
	sess := g.lookup(t, b)
	tok, err := g.oidc.BackendToken(t.Context(), sess)
	require.NoError(t, err)
	tokens, err := g.oidc.Tokens(t.Context(), sess)
	require.NoError(t, err)
	assert.Equal(t, tokens.AccessToken, tok)
	_, err = gatewaytest.Signer(t).Verify(tok)
	assert.Error(t, err, "not the gateway's JWT")
	_, err = jwt.Parse(tok, func(*jwt.Token) (any, error) { return p.m.Keypair.PublicKey, nil }, jwt.WithAudience(p.m.ClientID))
	require.NoError(t, err, "the provider signed it for this client")
}

package gateway_test

import (
	"bytes"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
)

// post sends a form to url with extra headers and returns the status.
func post(t *testing.T, c *http.Client, u string, form url.Values, h http.Header) *http.Response {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader(form.Encode()))
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	for k, v := range h {
		req.Header[k] = v
	}
	resp, err := c.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	return resp
}

// TestLoginRefusesOtherSites: a login or logout posted from another site (by its
// Sec-Fetch-Site or Origin) is refused with 403 and changes nothing; the gateway's own
// pages, allowed origins and clients that are not browsers get through.
func TestLoginRefusesOtherSites(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	srv := httptest.NewServer(&gateway.Login{Sessions: sessions, Anonymous: true, AllowedOrigins: []string{"https://app.example.com"}})
	defer srv.Close()
	c := gatewaytest.Client(t)
	for _, tt := range []struct {
		name   string
		header http.Header
		want   int
	}{
		{"a cross-site form", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"an older browser's cross-site form", http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"an allowed origin", http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://app.example.com"}}, http.StatusOK},
		{"the gateway's own page", http.Header{"Sec-Fetch-Site": {"same-origin"}, "Origin": {srv.URL}}, http.StatusOK},
		{"a client that is not a browser", nil, http.StatusOK},
	} {
		t.Run(tt.name, func(t *testing.T) {
			resp := post(t, c, srv.URL+"/login/anonymous", nil, tt.header)
			assert.Equal(t, tt.want, resp.StatusCode)
			if tt.want == http.StatusForbidden {
				assert.Empty(t, resp.Cookies(), "no session was made")
			}
		})
	}
	u, _ := url.Parse(srv.URL)
	require.NotEmpty(t, c.Jar.Cookies(u))
	resp := post(t, c, srv.URL+"/logout", nil, http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}})
	assert.Equal(t, http.StatusForbidden, resp.StatusCode, "another site cannot log the user out")
	got, err := c.Get(srv.URL + "/session")
	require.NoError(t, err)
	got.Body.Close()
	assert.Equal(t, http.StatusOK, got.StatusCode)
}

// TestFailedLoginsAreThrottled: after a user name's budget of failures, its logins get 429
// with Retry-After before any password check, even with the right password, while another
// user from another address logs in at once; an address's budget works the same way.
func TestFailedLoginsAreThrottled(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	users, err := gateway.NewUsersFile(gatewaytest.UsersFile(t))
	require.NoError(t, err)
	login := &gateway.Login{Sessions: sessions, Authenticator: users,
		Limits: gateway.LoginLimits{UserBurst: 3, UserEvery: time.Hour, AddrBurst: 6, AddrEvery: time.Hour}}
	srv := httptest.NewServer(login)
	defer srv.Close()
	c := gatewaytest.Client(t)
	wrong := url.Values{"user": {"alice"}, "password": {"wrong"}}
	for range 3 {
		assert.Equal(t, http.StatusUnauthorized, post(t, c, srv.URL+"/login", wrong, nil).StatusCode)
	}
	resp := post(t, c, srv.URL+"/login", url.Values{"user": {"alice"}, "password": {"s3cret"}}, nil)
	assert.Equal(t, http.StatusTooManyRequests, resp.StatusCode, "alice's budget is spent")
	retry, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	require.NoError(t, err)
	assert.Greater(t, retry, 0)

	for range 3 { // three more failures from this address, for other names
		assert.Equal(t, http.StatusUnauthorized, post(t, c, srv.URL+"/login", url.Values{"user": {"nobody"}, "password": {"x"}}, nil).StatusCode)
	}
	assert.Equal(t, http.StatusTooManyRequests, post(t, c, srv.URL+"/login", url.Values{"user": {"bob"}, "password": {"x"}}, nil).StatusCode,
		"this address's budget is spent")
}

// TestNoInternalErrorReachesTheBrowser: a failure behind the login endpoints answers with a
// generic message and a request id, and logs the detail once with that id; a malformed or
// oversized cookie is simply not a session (401), not an error.
func TestNoInternalErrorReachesTheBrowser(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(lockedWriter{&mu, &logs}, nil))
	srv := httptest.NewServer(&gateway.Login{Sessions: sessions, Anonymous: true, Logger: log,
		AllowedOrigins: []string{"not an origin"}})
	defer srv.Close()
	c := gatewaytest.Client(t)
	resp := post(t, c, srv.URL+"/login/anonymous", nil, nil)
	assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
	mu.Lock()
	assert.Contains(t, logs.String(), "request_id=")
	assert.Contains(t, logs.String(), "not an origin")
	mu.Unlock()

	ok := httptest.NewServer(&gateway.Login{Sessions: sessions})
	defer ok.Close()
	for _, cookie := range []string{strings.Repeat("x", 300), "short", strings.Repeat("é", 43)} {
		req, _ := http.NewRequest(http.MethodGet, ok.URL+"/session", nil)
		req.AddCookie(&http.Cookie{Name: gateway.DefaultCookieName, Value: url.QueryEscape(cookie)})
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		var body bytes.Buffer
		body.ReadFrom(resp.Body)
		resp.Body.Close()
		assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "cookie %q", cookie)
		assert.NotContains(t, body.String(), "sessioncache", "no internal text")
	}
}

type lockedWriter struct {
	mu *sync.Mutex
	w  *bytes.Buffer
}

func (l lockedWriter) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(p)
}

// TestRemovingAUserEndsTheirSessions: with the users file as Sessions' Accounts, a user
// whose line is removed has no session any more, on the next lookup (and the record is
// gone from the store), while other users keep theirs.
func TestRemovingAUserEndsTheirSessions(t *testing.T) {
	path := gatewaytest.UsersFile(t)
	users, err := gateway.NewUsersFile(path)
	require.NoError(t, err)
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{Accounts: users})
	srv := httptest.NewServer(&gateway.Login{Sessions: sessions, Authenticator: users, Anonymous: true})
	defer srv.Close()
	alice := gatewaytest.LoginWith(t, srv.URL+"/login", url.Values{"user": {"alice"}, "password": {"s3cret"}})
	anon := gatewaytest.AnonymousLogin(t, srv.URL)
	lookup := func(h http.Header) error {
		_, err := sessions.Lookup(t.Context(), &http.Request{Header: h})
		return err
	}
	require.NoError(t, lookup(alice))

	b, err := os.ReadFile(path)
	require.NoError(t, err)
	var kept []string
	for _, line := range strings.Split(string(b), "\n") {
		if !strings.HasPrefix(line, "alice:") {
			kept = append(kept, line)
		}
	}
	require.NoError(t, os.WriteFile(path, []byte(strings.Join(kept, "\n")), 0o600))
	future := time.Now().Add(2 * time.Second) // the file is looked at again at most once a second
	require.NoError(t, os.Chtimes(path, future, future))
	eventually(t, "alice's session to end", func() bool { return errors.Is(lookup(alice), gateway.ErrNoSession) })
	assert.NoError(t, lookup(anon), "an anonymous session is not a user of the file")
}

// eventually polls cond, bounded, for what time brings about (a file looked at again).
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for range 500 {
		if cond() {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("timed out waiting for %s", what)
}

package gateway_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
	"github.com/globalsession/globalsession/gateway/internal/sessionaccess"
	"github.com/globalsession/globalsession/sessioncache"
)

func TestLoginSessionLogout(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	users, err := gateway.NewUsersFile(gatewaytest.UsersFile(t))
	require.NoError(t, err)
	srv := httptest.NewServer(&gateway.Login{Sessions: sessions, Authenticator: users, Anonymous: true})
	defer srv.Close()
	c := gatewaytest.Client(t)

	resp, err := c.Get(srv.URL + "/session")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, err = c.PostForm(srv.URL+"/login", url.Values{"user": {"alice"}, "password": {"wrong"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	resp, err = c.PostForm(srv.URL+"/login", url.Values{"user": {"mallory"}, "password": {"s3cret"}})
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	resp, err = c.PostForm(srv.URL+"/login", url.Values{"user": {"alice"}, "password": {"s3cret"}})
	require.NoError(t, err)
	var body map[string]any
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "alice", body["user"])
	assert.NotContains(t, body, "jwt", "the browser never sees the JWT")
	var cookie *http.Cookie
	for _, ck := range resp.Cookies() {
		if ck.Name == gateway.DefaultCookieName {
			cookie = ck
		}
	}
	require.NotNil(t, cookie)
	assert.True(t, cookie.HttpOnly)
	assert.Equal(t, http.SameSiteLaxMode, cookie.SameSite)
	assert.GreaterOrEqual(t, len(cookie.Value), 43, "a 256-bit id")

	// The record holds no token, and fits a 384-byte record with room to spare; the token
	// a backend gets is signed when needed, names the session by its backend id (never the
	// cookie) and lives minutes, not the session's hours.
	raw, err := sessionaccess.Of(sessions).Store.Get(context.Background(), []byte(cookie.Value))
	require.NoError(t, err)
	assert.NotContains(t, string(raw), `"jwt"`, "no JWT in the record")
	assert.Less(t, len(cookie.Value)+len(raw), 300, "key + record: %s", raw)
	sess, err := sessions.LookupID(context.Background(), cookie.Value)
	require.NoError(t, err)
	token, err := sessions.Token(sess)
	require.NoError(t, err)
	assert.NotContains(t, token, cookie.Value)
	claims, err := gatewaytest.Signer(t).Verify(token)
	require.NoError(t, err)
	assert.Equal(t, "alice", claims.Subject)
	assert.NotEqual(t, cookie.Value, claims.Session, "the backend id is not the cookie")
	assert.Equal(t, sess.BackendID, claims.Session)
	assert.Len(t, claims.Session, 22)
	assert.WithinDuration(t, time.Now().Add(gateway.DefaultTokenTTL), claims.ExpiresAt.Time, 2*time.Second)
	assert.Equal(t, []string{"admin", "editor"}, claims.Roles)
	sid, err := sessionaccess.Of(sessions).TokenSession(token)
	require.NoError(t, err)
	assert.Equal(t, cookie.Value, sid, "the gateway opens its sealed reference")

	resp, err = c.Get(srv.URL + "/session")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)

	resp, err = c.Post(srv.URL+"/logout", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
	_, err = sessionaccess.Of(sessions).Store.Get(context.Background(), []byte(cookie.Value))
	require.ErrorIs(t, err, sessioncache.ErrNotFound, "logout deletes the record")
	resp, err = c.Get(srv.URL + "/session")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	// Anonymous login.
	resp, err = c.Post(srv.URL+"/login/anonymous", "", nil)
	require.NoError(t, err)
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&body))
	resp.Body.Close()
	assert.Equal(t, true, body["anonymous"])
	assert.True(t, strings.HasPrefix(body["user"].(string), "anonymous-"))
}

func TestSessionsSlideWithinMaxAge(t *testing.T) {
	s := gatewaytest.Sessions(t, gateway.SessionsConfig{TTL: 10 * time.Minute, MaxAge: 25 * time.Minute})
	now := time.Now()
	gateway.SetNow(s, func() time.Time { return now })
	rec := httptest.NewRecorder()
	req := httptest.NewRequest("POST", "/login", nil)
	sess, err := s.Create(context.Background(), rec, req, gateway.Identity{User: "bob"})
	require.NoError(t, err)
	get := httptest.NewRequest("GET", "/", nil)
	get.AddCookie(rec.Result().Cookies()[0])

	now = now.Add(4 * time.Minute) // less than half the TTL: no slide
	got, err := s.Lookup(context.Background(), get)
	require.NoError(t, err)
	assert.True(t, sess.Expires.Equal(got.Expires), "no slide before half the TTL")

	for range 4 { // used every 6 minutes: each use slides it
		now = now.Add(6 * time.Minute)
		got, err = s.Lookup(context.Background(), get)
		if err != nil {
			break
		}
		assert.False(t, got.Expires.After(sess.MaxExpires), "never past the absolute maximum")
	}
	now = sess.MaxExpires
	_, err = s.Lookup(context.Background(), get)
	require.ErrorIs(t, err, gateway.ErrNoSession, "ends at MaxAge however much it is used")
}

func TestSigners(t *testing.T) {
	_, err := gateway.NewHS256Signer([]byte("short"), "x")
	require.Error(t, err)

	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	require.NoError(t, err)
	der, err := x509.MarshalECPrivateKey(key)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "es256.pem")
	require.NoError(t, os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: der}), 0o600))
	s, err := gateway.NewES256Signer(p, "gw")
	require.NoError(t, err)
	tok, err := s.Sign(gateway.Identity{User: "carol"}, "sid", time.Now().Add(time.Hour))
	require.NoError(t, err)
	c, err := s.Verify(tok)
	require.NoError(t, err)
	assert.Equal(t, "carol", c.Subject)

	hs, _ := gateway.NewHS256Signer([]byte(strings.Repeat("k", 32)), "gw")
	_, err = hs.Verify(tok)
	require.Error(t, err, "a token of another algorithm is refused")
	expired, err := s.Sign(gateway.Identity{User: "carol"}, "sid", time.Now().Add(-time.Minute))
	require.NoError(t, err)
	_, err = s.Verify(expired)
	require.Error(t, err)
}

func TestUsersFileErrors(t *testing.T) {
	dir := t.TempDir()
	_, err := gateway.NewUsersFile(filepath.Join(dir, "missing"))
	require.Error(t, err)
	bad := filepath.Join(dir, "bad")
	require.NoError(t, os.WriteFile(bad, []byte("alice:plaintext\n"), 0o600))
	_, err = gateway.NewUsersFile(bad)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 1")
	assert.Contains(t, err.Error(), "not a bcrypt hash")
}

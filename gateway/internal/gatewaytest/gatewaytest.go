package gatewaytest

import (
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/crypto/bcrypt"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/sessioncache"
)

// Sessions returns sessions configured by cfg over a fresh table, signed by a Signer.
func Sessions(t testing.TB, cfg gateway.SessionsConfig) *gateway.Sessions {
	t.Helper()
	m, err := sessioncache.New(sessioncache.Config{Path: filepath.Join(t.TempDir(), "gw.table"), Create: true, ElementCount: 1000, RecordSize: 1024})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	cfg.Store, cfg.Signer = m, Signer(t)
	s, err := gateway.NewSessions(cfg)
	require.NoError(t, err)
	return s
}

// Signer returns a signer with the test key: it verifies the JWTs of Sessions' sessions.
func Signer(t testing.TB) *gateway.TokenSigner {
	t.Helper()
	signer, err := gateway.NewHS256Signer([]byte(strings.Repeat("k", 32)), "gateway-test")
	require.NoError(t, err)
	return signer
}

// UsersFile writes a users file with alice (password s3cret, roles admin and editor) and
// returns its path.
func UsersFile(t *testing.T) string {
	t.Helper()
	h, err := bcrypt.GenerateFromPassword([]byte("s3cret"), bcrypt.MinCost)
	require.NoError(t, err)
	p := filepath.Join(t.TempDir(), "users")
	require.NoError(t, os.WriteFile(p, []byte("# users\nalice:"+string(h)+":admin,editor\n"), 0o600))
	return p
}

// Client returns an HTTP client with a cookie jar: a browser.
func Client(t testing.TB) *http.Client {
	jar, err := cookiejar.New(nil)
	require.NoError(t, err)
	return &http.Client{Jar: jar}
}

// CookieHeader returns the Cookie header that c's jar holds for u.
func CookieHeader(c *http.Client, u *url.URL) http.Header {
	h := http.Header{}
	for _, ck := range c.Jar.Cookies(u) {
		h.Add("Cookie", ck.Name+"="+ck.Value)
	}
	return h
}

// AnonymousLogin logs in anonymously at base and returns the new session's Cookie header.
func AnonymousLogin(t testing.TB, base string) http.Header {
	t.Helper()
	return LoginWith(t, base+"/login/anonymous", nil)
}

// LoginWith posts form to a login URL, expects success and returns the new session's
// Cookie header.
func LoginWith(t testing.TB, loginURL string, form url.Values) http.Header {
	t.Helper()
	c := Client(t)
	resp, err := c.PostForm(loginURL, form)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return CookieHeader(c, resp.Request.URL)
}

package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestGatewaySingleSignOn runs the gateway role with an oidc block against a real OpenID
// provider on loopback (mockoidc): the browser's redirects through the provider end in a
// gateway session; the proxied WebSocket's backend gets the provider's access token
// (backend_token "access_token"); the provider's back-channel logout ends the session and
// closes the open WebSocket with 1008.
func TestGatewaySingleSignOn(t *testing.T) {
	base, m, env := startSSOGateway(t)

	// The browser: it follows every redirect, and keeps cookies.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := browser.Get(base + "/login/oidc?return=/session")
	require.NoError(t, err)
	var who struct{ User string }
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&who))
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "back at /session after the provider")
	assert.Equal(t, mockoidc.DefaultUser().PreferredUsername, who.User)

	u, _ := url.Parse(base)
	cookie := http.Header{}
	for _, ck := range jar.Cookies(u) {
		cookie.Add("Cookie", ck.Name+"="+ck.Value)
	}
	ws, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/app/sales.qvf", cookie)
	require.NoError(t, err)
	defer ws.Close()
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("hello")))
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = ws.ReadMessage()
	require.NoError(t, err)
	access := strings.TrimPrefix(env.lastAuthorization(), "Bearer ")
	tok, err := jwt.Parse(access, func(*jwt.Token) (any, error) { return m.Keypair.PublicKey, nil })
	require.NoError(t, err, "the backend got the provider's access token")
	iss, _ := tok.Claims.GetIssuer()
	assert.Equal(t, m.Issuer(), iss)

	// The provider ends the user's session: its back-channel logout reaches the gateway.
	backchannelLogout(t, base, m)
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.ClosePolicyViolation, ce.Code, "the open WebSocket closes when the provider logs the user out")
	resp, err = browser.Get(base + "/session")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
}

// freeTCPPort returns a port that was free on 127.0.0.1 a moment ago.
func freeTCPPort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startSSOGateway runs the gateway role with an oidc block (backend_token access_token)
// against mockoidc on loopback, in front of a relay, a session service and an echoing
// backend, and returns the gateway's base URL, the provider and the backend environment.
func startSSOGateway(t *testing.T) (string, *mockoidc.MockOIDC, *gatewayEnv) {
	t.Helper()
	dir := t.TempDir()
	env := startGatewayEnv(t, dir)
	m, err := mockoidc.NewServer(nil)
	require.NoError(t, err)
	pln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	require.NoError(t, m.Start(pln, nil))
	t.Cleanup(func() { m.Shutdown() })

	port := freeTCPPort(t) // the redirect URL names the gateway's port before it starts
	writeFile(t, filepath.Join(dir, "jwt.key"), strings.Repeat("0123456789abcdef", 4))
	writeFile(t, filepath.Join(dir, "oidc.secret"), rand.Text()+rand.Text())
	writeFile(t, filepath.Join(dir, "client.secret"), m.ClientSecret+"\n")
	_, relayPort, _ := strings.Cut(env.relay.Addr().String(), ":")
	writeFile(t, filepath.Join(dir, "gateway.conf"), fmt.Sprintf(`{
    "gateway" : {
        "address" : "127.0.0.1", "port" : %d,
        "jwt" : { "hs256_key_file" : "jwt.key" },
        "session_header" : "X-Qlik-Session",
        "session_service" : %q,
        "oidc" : {
            "issuer" : %q, "client_id" : %q, "client_secret_file" : "client.secret",
            "redirect_url" : "http://127.0.0.1:%d/login/oidc/callback",
            "secret_file" : "oidc.secret", "backend_token" : "access_token"
        },
        "lru" : { "manage_section" : true, "cache" : { "path" : "gateway.table", "el_count" : 200 } },
        "message_relay" : { "address" : "127.0.0.1", "port" : %s }
    }
}`, port, env.sessionService, m.Issuer(), m.ClientID, port, relayPort))
	base, _ := runRole(t, filepath.Join(dir, "gateway.conf"), `gateway: serving on (http://\S+):`)
	return base, m, env
}

// backchannelLogout posts, as the provider does, a logout token for mockoidc's user.
func backchannelLogout(t *testing.T, base string, m *mockoidc.MockOIDC) {
	t.Helper()
	logout, err := m.Keypair.SignJWT(jwt.MapClaims{"iss": m.Issuer(), "aud": m.ClientID, "iat": time.Now().Unix(),
		"exp": time.Now().Add(2 * time.Minute).Unix(), "jti": rand.Text(), "sub": mockoidc.DefaultUser().Subject,
		"events": map[string]any{"http://schemas.openid.net/event/backchannel-logout": map[string]any{}}})
	require.NoError(t, err)
	resp, err := http.PostForm(base+"/oidc/backchannel-logout", url.Values{"logout_token": {logout}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
}

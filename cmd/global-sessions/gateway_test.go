package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/internal/testpki"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// TestGatewayRole runs `global-sessions gateway.conf` (in process) in front of a relay, a
// session service and a WebSocket backend: an anonymous login, then a WebSocket to a
// document, echoed by the backend; the session lives in the relay tier too.
func TestGatewayRole(t *testing.T) {
	for _, https := range []bool{false, true} {
		t.Run(fmt.Sprintf("https=%v", https), func(t *testing.T) { gatewayRole(t, https) })
	}
}

func gatewayRole(t *testing.T, https bool) {
	dir := t.TempDir()
	env := startGatewayEnv(t, dir)
	r, sessionService := env.relay, env.sessionService

	key := filepath.Join(dir, "jwt.key")
	require.NoError(t, os.WriteFile(key, []byte(strings.Repeat("0123456789abcdef", 4)), 0o600))
	path := filepath.Join(dir, "gateway.conf")
	_, relayPort, _ := strings.Cut(r.Addr().String(), ":")
	tlsBlock := ""
	var pool *x509.CertPool
	if https {
		pki := testpki.New(t)
		tlsBlock = fmt.Sprintf(`"tls" : { "server_cert" : %q, "server_key" : %q },`, pki.ServerCert, pki.ServerKey)
		pem, err := os.ReadFile(pki.CACert)
		require.NoError(t, err)
		pool = x509.NewCertPool()
		pool.AppendCertsFromPEM(pem)
	}
	writeFile(t, path, fmt.Sprintf(`{
    "admin" : { "port" : 0 },
    "gateway" : {
        "address" : "127.0.0.1", "port" : 0, %s
        "anonymous" : true,
        "jwt" : { "hs256_key_file" : "jwt.key" },
        "session_header" : "X-Qlik-Session",
        "session_service" : %q,
        "lru" : { "manage_section" : true, "cache" : { "path" : "gateway.table", "el_count" : 100, "record_size" : 1024 } },
        "message_relay" : { "address" : "127.0.0.1", "port" : %s }
    }
}`, tlsBlock, sessionService, relayPort))
	urls, stop := runRoleMatching(t, path, `gateway: serving on (https?://\S+):`, `admin: .* on (http://\S+)`)
	base, adminURL := urls[0], urls[1]

	jar, _ := cookiejar.New(nil)
	tlsc := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"}
	c := &http.Client{Jar: jar, Transport: &http.Transport{TLSClientConfig: tlsc}}
	resp, err := c.Post(base+"/login/anonymous", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, r.Table().Len(), "the session was published to the relay tier")
	for _, ck := range resp.Cookies() {
		assert.Equal(t, https, ck.Secure, "the cookie is Secure over HTTPS")
	}

	hdr := http.Header{}
	for _, ck := range jar.Cookies(resp.Request.URL) {
		hdr.Add("Cookie", ck.Name+"="+ck.Value)
	}
	dialer := websocket.Dialer{TLSClientConfig: tlsc, HandshakeTimeout: 10 * time.Second}
	ws, _, err := dialer.Dial("ws"+strings.TrimPrefix(base, "http")+"/app/sales.qvf", hdr)
	require.NoError(t, err)
	defer ws.Close()
	require.NoError(t, ws.WriteMessage(websocket.TextMessage, []byte("hello")))
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := ws.ReadMessage()
	require.NoError(t, err)
	assert.True(t, strings.HasSuffix(string(msg), ":hello"), string(msg))

	// The admin listener counts the login and the upgrade by route and code, and the open
	// proxied WebSocket.
	resp, err = http.Get(adminURL + "/metrics")
	require.NoError(t, err)
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, m := range []string{`gateway_http_requests_total{code="200",route="/login/"} 1`,
		`gateway_http_requests_total{code="101",route="/app/"} 1`, `gateway_http_request_seconds_count{route="/login/"} 1`,
		"gateway_proxied_connections 1", "gateway_relay_connects_total 1"} {
		assert.Contains(t, string(metrics), m)
	}

	// Stopping the gateway closes the proxied WebSocket with 1001.
	require.NoError(t, stop())
	_, _, err = ws.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
}

func TestGatewayConfigErrors(t *testing.T) {
	dir := t.TempDir()
	for _, tt := range []struct{ name, text, want string }{
		{"no port", `{"gateway": {"session_service": "http://x"}}`, "gateway.port: required"},
		{"no session service", `{"gateway": {"port": 0}}`, "gateway.session_service"},
		{"no jwt key", `{"gateway": {"port": 0, "session_service": "http://x"}}`, "gateway.jwt"},
		{"short key", `{"gateway": {"port": 0, "session_service": "http://x", "jwt": {"hs256_key_file": "short.key"}}}`, "at least 32"},
		{"broker without relay", `{"gateway": {"port": 0, "broker": {}}}`, "gateway.broker: needs message_relay"},
		{"broker bad advertise", `{"gateway": {"port": 0, "message_relay": {"port": 1}, "broker": {"advertise": "gw-1:80"}}}`, "gateway.broker.advertise"},
		{"broker slash", `{"gateway": {"port": 0, "message_relay": {"port": 1}, "broker": {"instance": "a/b"}}}`, "gateway.broker.instance"},
		{"broker negative", `{"gateway": {"port": 0, "message_relay": {"port": 1}, "broker": {"request_timeout": "-1s"}}}`, "must not be negative"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			require.NoError(t, os.WriteFile(filepath.Join(dir, "short.key"), []byte("short"), 0o600))
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "_")+".conf")
			writeFile(t, path, tt.text)
			err := run(context.Background(), path, io.Discard, slog.New(slog.DiscardHandler))
			require.Error(t, err)
			assert.Contains(t, err.Error(), tt.want)
			assert.Contains(t, err.Error(), path)
		})
	}
}

// TestTheGatewayLogsInAgainstTheDefaultDeployment: the embedded default deployment, with
// its default 384-byte records, and a gateway configured as docs/running.md shows (the
// default record size for its own table too): an anonymous login, the session, a logout.
func TestTheGatewayLogsInAgainstTheDefaultDeployment(t *testing.T) {
	f, err := config.Parse(defaultConf, "embedded default", "")
	require.NoError(t, err)
	zero := 0
	f.Port, f.Sibling.Port = &zero, &zero
	dir := t.TempDir()
	f.PathTypes["auths"].Cache.Path = filepath.Join(dir, "default.table")
	for i, r := range f.ReliefServers {
		r.LRU.Cache.Path = filepath.Join(dir, fmt.Sprintf("relief-%d.table", i))
	}
	ctx, cancel := context.WithCancel(context.Background())
	out := &lockedBuf{}
	done := make(chan error, 1)
	go func() { done <- runFile(ctx, f, out, slog.New(slog.DiscardHandler)) }()
	defer func() { cancel(); require.NoError(t, <-done) }()
	var relayAddr string
	eventuallyTrue(t, "the default deployment to serve", func() bool {
		m := regexp.MustCompile(`relay: serving front ends on (\S+) `).FindStringSubmatch(out.String())
		if m != nil {
			relayAddr = m[1]
		}
		return m != nil && strings.Contains(out.String(), "relief: aging")
	})
	_, relayPort, _ := strings.Cut(relayAddr, ":")

	require.NoError(t, os.WriteFile(filepath.Join(dir, "jwt.key"), []byte(strings.Repeat("0123456789abcdef", 4)), 0o600))
	path := filepath.Join(dir, "gateway.conf")
	writeFile(t, path, fmt.Sprintf(`{
    "gateway" : {
        "address" : "127.0.0.1", "port" : 0,
        "jwt" : { "hs256_key_file" : "jwt.key" },
        "anonymous" : true,
        "session_header" : "X-Qlik-Session",
        "session_service" : "http://127.0.0.1:9100",
        "lru" : { "manage_section" : true, "cache" : { "path" : "gateway.table", "seed" : 9849381, "el_count" : 20000 } },
        "message_relay" : { "auth_path" : "auths", "address" : "127.0.0.1", "port" : %s }
    }
}`, relayPort))
	base, _ := runRole(t, path, `gateway: serving on (http://\S+):`)
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := c.Post(base+"/login/anonymous", "", nil)
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s", body)
	resp, err = c.Get(base + "/session")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	resp, err = c.Post(base+"/logout", "", nil)
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNoContent, resp.StatusCode)
}

// gatewayEnv is what a gateway role needs around it: a relay, a WebSocket backend that
// echoes with the first four characters of its session header (X-Qlik-Session) and keeps
// the last Authorization it got, and a session service routing to it.
type gatewayEnv struct {
	relay          *relay.Relay
	sessionService string // its base URL
	mu             sync.Mutex
	authorization  string
}

func startGatewayEnv(t *testing.T, dir string) *gatewayEnv {
	t.Helper()
	env := &gatewayEnv{}
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 100, RecordSize: 1024}})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	env.relay = r
	up := websocket.Upgrader{}
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if req.URL.Path == "/health" {
			return
		}
		env.mu.Lock()
		env.authorization = req.Header.Get("Authorization")
		env.mu.Unlock()
		c, err := up.Upgrade(w, req, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(mt, append([]byte(req.Header.Get("X-Qlik-Session")[:4]+":"), msg...))
		}
	}))
	t.Cleanup(backend.Close)
	d, err := discovery.New(discovery.Config{Provider: discovery.Static{{ID: "engine-1", Addr: strings.TrimPrefix(backend.URL, "http://")}}, MetricsPath: "-"})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	d.Refresh(context.Background())
	ss, err := discovery.NewSessionService(discovery.SessionConfig{Source: d})
	require.NoError(t, err)
	svc := httptest.NewServer(discovery.Handler(d, ss))
	t.Cleanup(svc.Close)
	env.sessionService = svc.URL
	return env
}

// lastAuthorization is the Authorization header of the backend's last upgrade.
func (e *gatewayEnv) lastAuthorization() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.authorization
}

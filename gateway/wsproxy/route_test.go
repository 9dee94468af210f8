package wsproxy

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
)

// TestSessionRouteEndToEnd: log in, open a WebSocket with the cookie, and reach a backend
// chosen by the session service, which receives the JWT and the session header.
func TestSessionRouteEndToEnd(t *testing.T) {
	b := newEchoBackend(t)
	backendAddr := strings.TrimPrefix(b.srv.URL, "http://")
	d, err := discovery.New(discovery.Config{Provider: discovery.Static{{ID: "engine-1", Addr: backendAddr}}, MetricsPath: "-"})
	require.NoError(t, err)
	defer d.Close()
	d.Refresh(context.Background())
	ss, err := discovery.NewSessionService(discovery.SessionConfig{Source: d,
		URL: func(in discovery.Instance, doc string) string { return "ws://" + in.Addr + "/app/" + doc }})
	require.NoError(t, err)

	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	mux := http.NewServeMux()
	login := &gateway.Login{Sessions: sessions, Anonymous: true}
	mux.Handle("/login/", login)
	proxy, err := NewProxy(ProxyConfig{Route: SessionRoute(RouteConfig{Sessions: sessions, Router: ss, SessionHeader: "X-Qlik-Session"})})
	require.NoError(t, err)
	mux.Handle("/app/", proxy)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer proxy.Shutdown(context.Background())

	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/app/sales.qvf"
	_, resp, err := websocket.DefaultDialer.Dial(wsURL, nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode, "no cookie, no WebSocket")

	hdr := gatewaytest.AnonymousLogin(t, srv.URL)
	conn, _, err := websocket.DefaultDialer.Dial(wsURL, hdr)
	require.NoError(t, err)
	defer conn.Close()
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("hi")))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "hi", string(msg))

	b.mu.Lock()
	auth, sess := b.headers.Get("Authorization"), b.headers.Get("X-Qlik-Session")
	b.mu.Unlock()
	require.True(t, strings.HasPrefix(auth, "Bearer "))
	claims, err := gatewaytest.Signer(t).Verify(strings.TrimPrefix(auth, "Bearer "))
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(claims.Subject, "anonymous-"))
	assert.Equal(t, claims.Session, sess)
	assert.NotContains(t, hdr.Get("Cookie"), sess, "the backend's session id is not the login cookie")
	assert.NotContains(t, auth, strings.TrimPrefix(hdr.Get("Cookie"), gateway.DefaultCookieName+"="), "nor is any part of its token")
}

// TestReconnectAfterBackendCrash: the backend serving a session dies; the browser gets a
// close frame (1011), and its reconnection is routed to a live backend (coarse fault
// tolerance).
func TestReconnectAfterBackendCrash(t *testing.T) {
	a, b := newEchoBackend(t), newEchoBackend(t)
	d, err := discovery.New(discovery.Config{Provider: discovery.Static{
		{ID: "a", Addr: strings.TrimPrefix(a.srv.URL, "http://")},
		{ID: "b", Addr: strings.TrimPrefix(b.srv.URL, "http://")},
	}, MetricsPath: "-"})
	require.NoError(t, err)
	defer d.Close()
	d.Refresh(context.Background())
	ss, err := discovery.NewSessionService(discovery.SessionConfig{Source: d})
	require.NoError(t, err)
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	proxy, err := NewProxy(ProxyConfig{Route: SessionRoute(RouteConfig{Sessions: sessions, Router: ss})})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/app/", proxy)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer proxy.Shutdown(context.Background())

	hdr := gatewaytest.AnonymousLogin(t, srv.URL)
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/app/doc"
	served := func() (*websocket.Conn, *echoBackend) {
		conn, _, err := websocket.DefaultDialer.Dial(wsURL, hdr)
		require.NoError(t, err)
		for _, e := range []*echoBackend{a, b} {
			e.mu.Lock()
			seen := e.headers != nil
			e.headers = nil
			e.mu.Unlock()
			if seen {
				return conn, e
			}
		}
		t.Fatal("no backend saw the connection")
		return nil, nil
	}
	conn, first := served()
	// The backend crashes: its connections drop (vanish) and it stops listening. The
	// open WebSocket is closed with 1011.
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("vanish")))
	first.srv.Listener.Close()
	first.srv.CloseClientConnections() // and the kept-alive ones discovery polls on
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = conn.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseInternalServerErr, ce.Code)
	conn.Close()
	// Discovery notices; the reconnection goes to the live backend.
	d.Poll(context.Background())
	conn, second := served()
	defer conn.Close()
	assert.NotSame(t, first, second)
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("still here")))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "still here", string(msg))
}

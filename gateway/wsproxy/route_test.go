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
	d, login, served := routedPair(t, a, b)
	hdr := login()
	conn, first := served(hdr)
	// The backend crashes: its connections drop (vanish) and it stops listening. The
	// open WebSocket is closed with 1011.
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("vanish")))
	first.srv.Listener.Close()
	first.srv.CloseClientConnections() // and the kept-alive ones discovery polls on
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := conn.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseInternalServerErr, ce.Code)
	conn.Close()
	// Discovery notices; the reconnection goes to the live backend.
	d.Poll(context.Background())
	conn, second := served(hdr)
	defer conn.Close()
	assert.NotSame(t, first, second)
	require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("still here")))
	conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := conn.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "still here", string(msg))
}

// routedPair is a proxy with session routing over discovery of backends a and b. It returns
// the discovery service, login, which logs a new session in, and served, which opens a
// proxied WebSocket with a session and says which backend took it.
func routedPair(t *testing.T, a, b *echoBackend) (*discovery.Service, func() http.Header, func(http.Header) (*websocket.Conn, *echoBackend)) {
	t.Helper()
	d, err := discovery.New(discovery.Config{Provider: discovery.Static{
		{ID: "a", Addr: strings.TrimPrefix(a.srv.URL, "http://")},
		{ID: "b", Addr: strings.TrimPrefix(b.srv.URL, "http://")},
	}, MetricsPath: "-"})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
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
	t.Cleanup(srv.Close)
	t.Cleanup(func() { proxy.Shutdown(context.Background()) })
	login := func() http.Header { return gatewaytest.AnonymousLogin(t, srv.URL) }
	wsURL := "ws" + strings.TrimPrefix(srv.URL, "http") + "/app/doc"
	return d, login, func(hdr http.Header) (*websocket.Conn, *echoBackend) {
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
}

// A backend that stops listening before discovery notices (no poll in between) costs
// browsers nothing: a refused dial is routed again, once, to the other backend, for the
// session whose sticky route led there (that new route is kept) and for new sessions.
func TestRefusingBackendIsRoutedAround(t *testing.T) {
	a, b := newEchoBackend(t), newEchoBackend(t)
	_, login, served := routedPair(t, a, b)
	hdr := login()
	conn, first := served(hdr)
	conn.Close()
	first.srv.Listener.Close() // gone; discovery still lists it healthy
	for i := range 6 {
		if i >= 3 {
			hdr = login() // new sessions, half of which round-robin sends to the dead one
		}
		conn, second := served(hdr)
		assert.NotSame(t, first, second)
		require.NoError(t, conn.WriteMessage(websocket.TextMessage, []byte("hello")))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := conn.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, "hello", string(msg))
		conn.Close()
	}
}

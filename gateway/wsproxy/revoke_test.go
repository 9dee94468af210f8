package wsproxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
)

// TestALogoutClosesOpenProxiedSockets: a browser's proxied WebSocket, relayed by the
// event loops or by the goroutine pipe, is closed at once when its session is logged
// out: the browser hears CloseSessionEnded, the backend 1001. Another session's socket
// stays open.
func TestALogoutClosesOpenProxiedSockets(t *testing.T) {
	for _, pipe := range []bool{false, true} {
		t.Run(fmt.Sprintf("goroutine-pipe=%v", pipe), func(t *testing.T) { logoutClosesSockets(t, pipe) })
	}
}

// sessionProxy serves, on one test server, anonymous logins, logout and a proxy whose
// connections end with their sessions, in front of an echo backend; extra adds handlers.
func sessionProxy(t *testing.T, pipe bool, extra func(*http.ServeMux)) (*httptest.Server, *echoBackend) {
	t.Helper()
	b := newEchoBackend(t)
	d, err := discovery.New(discovery.Config{Provider: discovery.Static{{ID: "e", Addr: strings.TrimPrefix(b.srv.URL, "http://")}}, MetricsPath: "-"})
	require.NoError(t, err)
	t.Cleanup(func() { d.Close() })
	d.Refresh(context.Background())
	ss, err := discovery.NewSessionService(discovery.SessionConfig{Source: d,
		URL: func(in discovery.Instance, doc string) string { return "ws://" + in.Addr + "/app/" + doc }})
	require.NoError(t, err)
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	proxy, err := NewProxy(ProxyConfig{Route: SessionRoute(RouteConfig{Sessions: sessions, Router: ss}), Sessions: sessions,
		GoroutinePipe: pipe})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/logout", &gateway.Login{Sessions: sessions})
	mux.Handle("/app/", proxy)
	if extra != nil {
		extra(mux)
	}
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		srv.Close()
		proxy.Shutdown(context.Background())
	})
	return srv, b
}

func logoutClosesSockets(t *testing.T, pipe bool) {
	srv, b := sessionProxy(t, pipe, nil)

	open := func(cookie http.Header) *websocket.Conn {
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/app/doc", cookie)
		require.NoError(t, err)
		t.Cleanup(func() { c.Close() })
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("hi")))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, msg, err := c.ReadMessage()
		require.NoError(t, err)
		require.Equal(t, "hi", string(msg))
		return c
	}
	alice, bob := gatewaytest.AnonymousLogin(t, srv.URL), gatewaytest.AnonymousLogin(t, srv.URL)
	ws, other := open(alice), open(bob)

	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/logout", nil)
	req.Header = alice.Clone()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)

	t0 := time.Now()
	ws.SetReadDeadline(time.Now().Add(10 * time.Second)) // a guard: the close comes at once
	for err == nil {
		_, _, err = ws.ReadMessage()
	}
	var ce *websocket.CloseError
	require.True(t, errors.As(err, &ce), "a close frame, not %v", err)
	assert.Equal(t, CloseSessionEnded, ce.Code)
	t.Log("browser closed after", time.Since(t0))
	select {
	case bce := <-b.closes:
		assert.Equal(t, websocket.CloseGoingAway, bce.Code, "the backend hears that the client went away")
		t.Log("backend closed after", time.Since(t0))
	case <-time.After(10 * time.Second):
		t.Fatal("the backend was not told")
	}

	require.NoError(t, other.WriteMessage(websocket.TextMessage, []byte("still")))
	_, msg, err := other.ReadMessage()
	require.NoError(t, err, "another session's socket stays open")
	assert.Equal(t, "still", string(msg))
}

// TestAFailureBehindTheProxyIsNotShown: a route that fails inside the gateway answers the
// browser with a generic message and a request id; the detail goes to the log only.
func TestAFailureBehindTheProxyIsNotShown(t *testing.T) {
	var logs strings.Builder
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	for _, route := range []func(*http.Request) (Backend, error){
		func(*http.Request) (Backend, error) {
			return Backend{}, &HTTPError{Status: http.StatusBadGateway, Msg: "the session store did not answer", Err: errors.New("secret detail 1")}
		},
		func(*http.Request) (Backend, error) { return Backend{}, errors.New("secret detail 2") },
	} {
		proxy, err := NewProxy(ProxyConfig{Route: route, Logger: log})
		require.NoError(t, err)
		srv := httptest.NewServer(proxy)
		_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/app/doc", nil)
		require.Error(t, err)
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		srv.Close()
		proxy.Shutdown(context.Background())
		assert.Equal(t, http.StatusBadGateway, resp.StatusCode)
		assert.NotContains(t, string(body), "secret detail")
		assert.Contains(t, string(body), "(request ")
	}
	mu.Lock()
	defer mu.Unlock()
	assert.Contains(t, logs.String(), "secret detail 1")
	assert.Contains(t, logs.String(), "secret detail 2")
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

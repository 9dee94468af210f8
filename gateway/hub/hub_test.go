package hub

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
)

type hubFixture struct {
	hub      *Hub
	srv      *httptest.Server
	sessions *gateway.Sessions
}

func startHub(t *testing.T, cfg HubConfig) *hubFixture {
	t.Helper()
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	cfg.Sessions = sessions
	h, err := NewHub(cfg)
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/logout", &gateway.Login{Sessions: sessions})
	mux.Handle("/hub", h)
	return &hubFixture{hub: h, srv: serveHub(t, h, mux), sessions: sessions}
}

// serveHub serves mux, which routes to h, until the test ends; then it shuts h down and
// stops the server.
func serveHub(t *testing.T, h *Hub, mux *http.ServeMux) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(mux)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		h.Shutdown(ctx)
		srv.Close()
	})
	return srv
}

// login returns the cookie header of a fresh anonymous session.
func (f *hubFixture) login(t *testing.T) http.Header { return gatewaytest.AnonymousLogin(t, f.srv.URL) }

func (f *hubFixture) tab(t *testing.T, cookie http.Header) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.srv.URL, "http")+"/hub", cookie)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ready map[string]any
	require.NoError(t, c.ReadJSON(&ready))
	require.Equal(t, "ready", ready["type"])
	return c
}

func read(t *testing.T, c *websocket.Conn) map[string]any {
	t.Helper()
	var m map[string]any
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	require.NoError(t, c.ReadJSON(&m))
	return m
}

func TestHubCommands(t *testing.T) {
	f := startHub(t, HubConfig{ShortInterval: time.Hour, LongInterval: time.Hour})
	require.NoError(t, f.hub.Register(Command{Name: "echo", Required: []string{"text"}, Optional: []string{"upper"},
		Handle: func(_ context.Context, _ *User, p map[string]any) (any, error) {
			s := p["text"].(string)
			if p["upper"] == true {
				s = strings.ToUpper(s)
			}
			return s, nil
		}}))
	require.Error(t, f.hub.Register(Command{Name: "echo", Handle: func(context.Context, *User, map[string]any) (any, error) { return nil, nil }}))

	_, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(f.srv.URL, "http")+"/hub", nil)
	require.Error(t, err)
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)

	c := f.tab(t, f.login(t))
	for _, tc := range []struct {
		msg  map[string]any
		want map[string]any
	}{
		{map[string]any{"type": "echo", "id": 1, "params": map[string]any{"text": "hi", "upper": true}}, map[string]any{"type": "ack", "result": "HI"}},
		{map[string]any{"type": "echo", "params": map[string]any{}}, map[string]any{"type": "error", "error": `missing parameter "text"`}},
		{map[string]any{"type": "echo", "params": map[string]any{"text": "x", "colour": 1}}, map[string]any{"type": "error", "error": `unknown parameter "colour"`}},
		{map[string]any{"type": "fly"}, map[string]any{"type": "error", "error": `unknown command "fly"`}},
	} {
		require.NoError(t, c.WriteJSON(tc.msg))
		got := read(t, c)
		for k, v := range tc.want {
			assert.Equal(t, v, got[k], "%v", tc.msg)
		}
	}
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("{not json")))
	assert.Equal(t, "error", read(t, c)["type"])
	// The channel stays open after every error.
	require.NoError(t, c.WriteJSON(map[string]any{"type": "echo", "params": map[string]any{"text": "still"}}))
	assert.Equal(t, "still", read(t, c)["result"])
}

// TestHubTabsShareLoops: two tabs of one user share one loop, receive every message, and
// the loop stops with the last tab.
func TestHubTabsShareLoops(t *testing.T) {
	f := startHub(t, HubConfig{ShortInterval: 20 * time.Millisecond, LongInterval: time.Hour})
	var cycles atomic.Int64
	require.NoError(t, f.hub.Register(Command{Name: "watch", Required: []string{"project"},
		Handle: func(_ context.Context, u *User, p map[string]any) (any, error) {
			u.Store("project", p["project"]) // setup prepares; the loop iterates
			u.AddShortLoop("watch", func(_ context.Context, u *User) error {
				n := cycles.Add(1)
				project, _ := u.Load("project")
				u.Send(map[string]any{"type": "status", "project": project, "cycle": n})
				return nil
			})
			return "watching", nil
		}}))
	cookie := f.login(t)
	tab1, tab2 := f.tab(t, cookie), f.tab(t, cookie)
	require.Equal(t, 1, f.hub.Users(), "two tabs, one user")
	require.NoError(t, tab1.WriteJSON(map[string]any{"type": "watch", "params": map[string]any{"project": "p7"}}))
	assert.Equal(t, "ack", read(t, tab1)["type"])
	// Both tabs get the same status messages from one loop.
	seen := func(c *websocket.Conn) float64 {
		for {
			m := read(t, c)
			if m["type"] == "status" {
				assert.Equal(t, "p7", m["project"])
				return m["cycle"].(float64)
			}
		}
	}
	a, b := seen(tab1), seen(tab2)
	assert.InDelta(t, a, b, 1, "one loop feeds both tabs")

	tab1.Close()
	tab2.Close()
	require.Eventually(t, func() bool { return f.hub.Users() == 0 }, 10*time.Second, 5*time.Millisecond)
	stopped := cycles.Load()
	time.Sleep(100 * time.Millisecond) // five short cycles: none may run now
	assert.LessOrEqual(t, cycles.Load(), stopped+1, "the loop stops with the last tab")
}

// TestHubEndsChannelsOfALoggedOutSession: the cycle checks the session; after a logout
// the channel gets an error and is closed.
func TestHubEndsChannelsOfALoggedOutSession(t *testing.T) {
	f := startHub(t, HubConfig{ShortInterval: 20 * time.Millisecond, LongInterval: time.Hour})
	cookie := f.login(t)
	c := f.tab(t, cookie)
	req, _ := http.NewRequest("POST", f.srv.URL+"/logout", nil)
	req.Header = cookie.Clone()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	m := read(t, c)
	assert.Equal(t, "error", m["type"])
	assert.Contains(t, m["error"], "session ended")
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.ClosePolicyViolation, ce.Code)
}

// TestAnOpenTabDoesNotKeepItsSessionAlive: the hub's checks do not extend a session, so a
// tab left open lets its session end after its idle TTL (and is then closed); with
// KeepSessionsAlive the checks count as use.
func TestAnOpenTabDoesNotKeepItsSessionAlive(t *testing.T) {
	for _, keep := range []bool{false, true} {
		t.Run(fmt.Sprintf("keep=%v", keep), func(t *testing.T) {
			sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{TTL: time.Second})
			h, err := NewHub(HubConfig{Sessions: sessions, ShortInterval: 50 * time.Millisecond, LongInterval: time.Hour, KeepSessionsAlive: keep})
			require.NoError(t, err)
			mux := http.NewServeMux()
			mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
			mux.Handle("/hub", h)
			f := &hubFixture{hub: h, srv: serveHub(t, h, mux), sessions: sessions}
			c := f.tab(t, f.login(t))
			c.SetReadDeadline(time.Now().Add(2500 * time.Millisecond)) // more than two TTLs, idle
			var err2 error
			for err2 == nil {
				_, _, err2 = c.ReadMessage()
			}
			var ce *websocket.CloseError
			if keep {
				var ne net.Error
				require.ErrorAs(t, err2, &ne, "the tab stays open while it is checked: %v", err2)
				assert.True(t, ne.Timeout())
				return
			}
			require.ErrorAs(t, err2, &ce, "the idle session ended and its tab was closed")
			assert.Equal(t, CloseSessionEnded, ce.Code)
		})
	}
}

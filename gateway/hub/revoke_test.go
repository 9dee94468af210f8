package hub

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// instance is a gateway instance of its own host: a table behind the shared relay.
func instance(t *testing.T, relayAddr, name string) *gateway.Sessions {
	t.Helper()
	c, err := relay.Dial(t.Context(), relay.ClientConfig{Addr: relayAddr, BackoffMin: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{Remotes: []sessioncache.Remote{c},
		Table: sessioncache.Config{Path: filepath.Join(t.TempDir(), name+".table"), Create: true, ElementCount: 1000}})
	require.NoError(t, err)
	t.Cleanup(func() { m.Close() })
	s, err := gateway.NewSessions(gateway.SessionsConfig{Store: m, Signer: gatewaytest.Signer(t)})
	require.NoError(t, err)
	return s
}

// TestALogoutEndsChannelsOnEveryInstance: a user logs in on instance A and opens a hub
// channel on instance B (another host behind the same relay); logging out on A closes the
// channel on B at once with CloseSessionEnded, long before B's loops would check (they run
// once an hour here).
func TestALogoutEndsChannelsOnEveryInstance(t *testing.T) {
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(t.TempDir(), "relay.table"), ElementCount: 1000}})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	a, b := instance(t, r.Addr().String(), "a"), instance(t, r.Addr().String(), "b")
	login := httptest.NewServer(&gateway.Login{Sessions: a, Anonymous: true})
	defer login.Close()
	h, err := NewHub(HubConfig{Sessions: b, ShortInterval: time.Hour, LongInterval: time.Hour})
	require.NoError(t, err)
	hubSrv := httptest.NewServer(h)
	defer hubSrv.Close()
	defer h.Shutdown(context.Background())

	cookie := gatewaytest.AnonymousLogin(t, login.URL)
	var ws *websocket.Conn
	for i := 0; ; i++ { // bounded: the session reaches B's host through the relay
		ws, _, err = websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(hubSrv.URL, "http"), cookie)
		if err == nil {
			break
		}
		require.Less(t, i, 500, "B never knew the session: %v", err)
		time.Sleep(10 * time.Millisecond)
	}
	defer ws.Close()
	require.Equal(t, "ready", read(t, ws)["type"])

	req, _ := http.NewRequest(http.MethodPost, login.URL+"/logout", nil)
	req.Header = cookie.Clone()
	start := time.Now()
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusNoContent, resp.StatusCode)
	ws.SetReadDeadline(time.Now().Add(10 * time.Second))
	for err == nil {
		_, _, err = ws.ReadMessage()
	}
	var ce *websocket.CloseError
	require.True(t, errors.As(err, &ce), "a close frame, not %v", err)
	assert.Equal(t, CloseSessionEnded, ce.Code)
	t.Logf("the channel on B closed %v after the logout on A", time.Since(start))
}

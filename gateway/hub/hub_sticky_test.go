package hub

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
	"github.com/globalsession/globalsession/gateway/wsproxy"
)

// loginAs logs in at base as user (the test authenticator takes the form's "user") and
// returns the new session's Cookie header: each call is another browser of that user.
func loginAs(t *testing.T, base, user string) http.Header {
	t.Helper()
	return gatewaytest.LoginWith(t, base+"/login", url.Values{"user": {user}})
}

// TestHubInstancesBehindAFrontAreStickyByUser: two hub instances behind a front gateway
// whose proxy asks a sticky session service by user. Every channel of a user, from two
// browsers (two sessions) and two tabs, lands on one instance, so one message to the user
// reaches all of them; another user is routed on by the selector.
func TestHubInstancesBehindAFrontAreStickyByUser(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	hubs := map[string]*Hub{}
	var instances discovery.Static
	for _, name := range []string{"hub-a", "hub-b"} {
		h, err := NewHub(HubConfig{Sessions: sessions, AcceptBearer: true})
		require.NoError(t, err)
		require.NoError(t, h.Register(Command{Name: "instance",
			Handle: func(context.Context, *User, map[string]any) (any, error) { return name, nil }}))
		require.NoError(t, h.Register(Command{Name: "notify", Required: []string{"text"},
			Handle: func(_ context.Context, u *User, p map[string]any) (any, error) {
				u.Send(map[string]any{"type": "note", "text": p["text"], "from": name})
				return "sent", nil
			}}))
		mux := http.NewServeMux()
		mux.Handle("/hub", h)
		mux.HandleFunc("/health", func(http.ResponseWriter, *http.Request) {}) // for discovery
		srv := serveHub(t, h, mux)
		hubs[name] = h
		instances = append(instances, discovery.Target{ID: name, Addr: strings.TrimPrefix(srv.URL, "http://")})
	}
	d, err := discovery.New(discovery.Config{Provider: instances, MetricsPath: "-"})
	require.NoError(t, err)
	defer d.Close()
	d.Refresh(context.Background())
	ss, err := discovery.NewSessionService(discovery.SessionConfig{Source: d,
		URL: func(in discovery.Instance, _ string) string { return "ws://" + in.Addr + "/hub" }})
	require.NoError(t, err)

	proxy, err := wsproxy.NewProxy(wsproxy.ProxyConfig{Route: wsproxy.SessionRoute(wsproxy.RouteConfig{Sessions: sessions, Router: ss, ByUser: true,
		Document: func(*http.Request) string { return "hub" }})})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/login", &gateway.Login{Sessions: sessions, Authenticator: gateway.AuthenticatorFunc(
		func(_ context.Context, r *http.Request) (gateway.Identity, error) {
			return gateway.Identity{User: r.FormValue("user")}, nil
		})})
	mux.Handle("/hub", proxy)
	front := httptest.NewServer(mux)
	defer front.Close()
	defer proxy.Shutdown(context.Background())

	channel := func(cookie http.Header) (*websocket.Conn, string) {
		t.Helper()
		c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(front.URL, "http")+"/hub", cookie)
		if err != nil && resp != nil {
			b, _ := io.ReadAll(resp.Body)
			err = fmt.Errorf("%w: %s %s", err, resp.Status, b)
		}
		require.NoError(t, err)
		resp.Body.Close()
		t.Cleanup(func() { c.Close() })
		assert.Equal(t, "ready", read(t, c)["type"])
		require.NoError(t, c.WriteJSON(map[string]any{"type": "instance"}))
		ack := read(t, c)
		require.Equal(t, "ack", ack["type"], ack)
		return c, ack["result"].(string)
	}
	aliceLaptop, alicePhone := loginAs(t, front.URL, "alice"), loginAs(t, front.URL, "alice")
	tab1, at := channel(aliceLaptop)
	tab2, at2 := channel(aliceLaptop)
	phone, at3 := channel(alicePhone)
	assert.Equal(t, at, at2, "two tabs of one browser")
	assert.Equal(t, at, at3, "another browser of the same user")
	assert.Equal(t, 1, hubs[at].Users())

	bob, bt := channel(loginAs(t, front.URL, "bob"))
	assert.NotEqual(t, at, bt, "round-robin sends the next user to the other instance")

	// One message to alice reaches her three channels, and bob's none.
	require.NoError(t, phone.WriteJSON(map[string]any{"type": "notify", "params": map[string]any{"text": "hi"}}))
	for _, c := range []*websocket.Conn{tab1, tab2, phone} {
		for {
			m := read(t, c)
			if m["type"] == "note" {
				assert.Equal(t, "hi", m["text"])
				assert.Equal(t, at, m["from"])
				break
			}
		}
	}
	require.NoError(t, bob.WriteJSON(map[string]any{"type": "instance"}))
	assert.Equal(t, "ack", read(t, bob)["type"], "bob's channel got nothing before its own answer")
}

// TestHubBearerAdmission: with AcceptBearer a hub admits a channel by the gateway's token
// for a live session, and refuses a token of another key, a token whose session ended, and
// (without AcceptBearer) any token.
func TestHubBearerAdmission(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	login := httptest.NewServer(&gateway.Login{Sessions: sessions, Anonymous: true})
	defer login.Close()
	cookie := gatewaytest.AnonymousLogin(t, login.URL)
	s, err := sessions.Lookup(context.Background(), &http.Request{Header: cookie})
	require.NoError(t, err)
	token, err := sessions.Token(s)
	require.NoError(t, err)

	other, err := gateway.NewHS256Signer([]byte(strings.Repeat("x", 32)), "gateway-test")
	require.NoError(t, err)
	forged, err := other.Sign(s.Identity, s.ID, time.Now().Add(time.Hour))
	require.NoError(t, err)

	dial := func(h *Hub, token string) int {
		t.Helper()
		srv := httptest.NewServer(h)
		defer srv.Close()
		c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), http.Header{"Authorization": {"Bearer " + token}})
		if err == nil {
			c.Close()
		}
		if resp == nil {
			return 0
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	bearer, err := NewHub(HubConfig{Sessions: sessions, AcceptBearer: true})
	require.NoError(t, err)
	defer bearer.Shutdown(context.Background())
	cookieOnly, err := NewHub(HubConfig{Sessions: sessions})
	require.NoError(t, err)
	defer cookieOnly.Shutdown(context.Background())

	assert.Equal(t, http.StatusSwitchingProtocols, dial(bearer, token))
	assert.Equal(t, http.StatusUnauthorized, dial(bearer, forged), "signed with another key")
	assert.Equal(t, http.StatusUnauthorized, dial(cookieOnly, token), "AcceptBearer is off")
	require.NoError(t, sessions.Logout(context.Background(), httptest.NewRecorder(), &http.Request{Header: cookie}))
	assert.Equal(t, http.StatusUnauthorized, dial(bearer, token), "the session ended")
}

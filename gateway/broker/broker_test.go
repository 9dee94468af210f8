package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// brokerFixture is a relay, a session store shared by every gateway instance (as the
// session tier makes it), and whatever instances and workers a test starts.
type brokerFixture struct {
	relay    *relay.Relay
	sessions *gateway.Sessions
	// defaultPolicy leaves BrokerConfig's authorization as the test gives it; otherwise
	// instances let anonymous sessions join, as most tests log in anonymously.
	defaultPolicy bool
}

func newBrokerFixture(t testing.TB) *brokerFixture {
	t.Helper()
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(t.TempDir(), "relay.table"), ElementCount: 1000, RecordSize: 512}})
	require.NoError(t, err)
	t.Cleanup(func() { r.Close() })
	return &brokerFixture{relay: r, sessions: gatewaytest.Sessions(t, gateway.SessionsConfig{})}
}

func (f *brokerFixture) client(t testing.TB, name string) *relay.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := relay.Dial(ctx, relay.ClientConfig{Addr: f.relay.Addr().String(), Name: name})
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

// gatewayInstance is one Broker behind an HTTP server with login, health and metrics.
type gatewayInstance struct {
	broker *Broker
	srv    *httptest.Server
}

func (f *brokerFixture) instance(t testing.TB, name string, cfg BrokerConfig) *gatewayInstance {
	t.Helper()
	mux := http.NewServeMux()
	srv := httptest.NewUnstartedServer(mux)
	srv.Start()
	cfg.Relay, cfg.Sessions, cfg.Instance = f.client(t, name), f.sessions, name
	if cfg.Authorize == nil && !f.defaultPolicy {
		cfg.AllowAnonymous = true
	}
	if cfg.Advertise == "" {
		cfg.Advertise = srv.URL
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	b, err := NewBroker(ctx, cfg)
	require.NoError(t, err)
	mux.Handle("/login/", &gateway.Login{Sessions: f.sessions, Anonymous: true})
	mux.Handle("/ws/", b)
	mux.Handle("/health", b.Health())
	mux.Handle("/metrics", b.Metrics())
	g := &gatewayInstance{broker: b, srv: srv}
	t.Cleanup(g.stop)
	return g
}

func (g *gatewayInstance) stop() {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	g.broker.Shutdown(ctx)
	g.srv.Close()
}

func (f *brokerFixture) worker(t testing.TB, name string, h HandlerFunc) *Worker {
	t.Helper()
	return f.workerWith(t, WorkerConfig{Name: name, Handler: h})
}

// workerWith starts a worker with cfg, on a relay client of its own.
func (f *brokerFixture) workerWith(t testing.TB, cfg WorkerConfig) *Worker {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	cfg.Relay = f.client(t, cfg.Name)
	w, err := NewWorker(ctx, cfg)
	require.NoError(t, err)
	t.Cleanup(func() { w.Close() })
	return w
}

// loginCookie logs in anonymously at g and returns the cookie header.
func loginCookie(t testing.TB, g *gatewayInstance) http.Header {
	return gatewaytest.AnonymousLogin(t, g.srv.URL)
}

// wsClient is a test client of a Broker.
type wsClient struct {
	conn *websocket.Conn
	id   string
}

func openGroup(t testing.TB, g *gatewayInstance, cookie http.Header, group string) *wsClient {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(g.srv.URL, "http")+"/ws/"+group, cookie)
	if resp != nil && resp.Body != nil {
		resp.Body.Close()
	}
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	wc := &wsClient{conn: c}
	n := wc.notice(t)
	require.Equal(t, "joined", n.Event)
	require.Equal(t, group, n.Group)
	require.Equal(t, g.broker.Instance(), n.Instance)
	wc.id = n.Client
	return wc
}

func (c *wsClient) read(t testing.TB) string {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, b, err := c.conn.ReadMessage()
	require.NoError(t, err)
	return string(b)
}

func (c *wsClient) notice(t testing.TB) noticeBody {
	t.Helper()
	var n notice
	require.NoError(t, json.Unmarshal([]byte(c.read(t)), &n), "a notice")
	return n.Gateway
}

func (c *wsClient) send(t testing.TB, msg string) {
	t.Helper()
	require.NoError(t, c.conn.WriteMessage(websocket.TextMessage, []byte(msg)))
}

// workbook is the test workers' logic: "set X" answers the sender "ok X" and tells the
// group "X by <worker>"; "tell CLIENT X" sends X to one client; "fail" fails; "panic" panics.
func workbook(name string) HandlerFunc {
	return func(_ context.Context, m *Message) ([]Reply, error) {
		cmd, arg, _ := strings.Cut(string(m.Data), " ")
		switch cmd {
		case "set":
			return []Reply{ToSender([]byte("ok " + arg)), ToGroup(m.Group, []byte(arg+" by "+name))}, nil
		case "tell":
			to, text, _ := strings.Cut(arg, " ")
			return []Reply{ToClient(to, []byte(text))}, nil
		case "fail":
			return nil, errors.New("cell " + arg + " is not a number")
		case "panic":
			panic("bad cell")
		}
		return []Reply{ToSender([]byte("echo " + string(m.Data)))}, nil
	}
}

func TestBrokerRoutesRepliesToSenderGroupAndClient(t *testing.T) {
	f := newBrokerFixture(t)
	a := f.instance(t, "gw-a", BrokerConfig{})
	b := f.instance(t, "gw-b", BrokerConfig{})
	f.worker(t, "w1", workbook("w1"))
	f.worker(t, "w2", workbook("w2"))
	cookie := loginCookie(t, a)
	onA := openGroup(t, a, cookie, "wb1")
	onB := openGroup(t, b, cookie, "wb1")
	other := openGroup(t, a, cookie, "wb2")

	onA.send(t, "set A1=5")
	require.Equal(t, "ok A1=5", onA.read(t))
	upd := onA.read(t)
	require.Regexp(t, `^A1=5 by w[12]$`, upd)
	require.Equal(t, upd, onB.read(t), "the group member on the other instance")

	// A client reply crosses instances through the relay.
	onB.send(t, "tell "+onA.id+" hello-from-b")
	require.Equal(t, "hello-from-b", onA.read(t))

	// Both workers take part.
	seen := map[string]bool{}
	for i := 0; i < 20 && len(seen) < 2; i++ {
		onB.send(t, fmt.Sprintf("set B%d=1", i))
		require.Equal(t, fmt.Sprintf("ok B%d=1", i), onB.read(t))
		u := onB.read(t)
		require.Equal(t, u, onA.read(t))
		seen[u[strings.LastIndex(u, " ")+1:]] = true
	}
	require.Len(t, seen, 2, "replies came from both workers")

	// The other group heard nothing: its next message is its own answer.
	other.send(t, "ping")
	require.Equal(t, "echo ping", other.read(t))

	// Binary messages stay binary.
	require.NoError(t, other.conn.WriteMessage(websocket.BinaryMessage, []byte{0, 1, 2}))
	other.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	mt, data, err := other.conn.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, websocket.TextMessage, mt, "the worker answered with a text reply")
	require.Equal(t, "echo \x00\x01\x02", string(data))
}

func TestBrokerErrorNotices(t *testing.T) {
	f := newBrokerFixture(t)
	g := f.instance(t, "gw", BrokerConfig{MaxMessageSize: 1024, RequestTimeout: time.Second})
	cookie := loginCookie(t, g)
	c := openGroup(t, g, cookie, "wb")

	// No worker yet: the request waits for one within its timeout, then an error, never
	// silence.
	c.send(t, "set A1=1")
	n := c.notice(t)
	require.Equal(t, "error", n.Event)
	require.Equal(t, uint64(1), n.Seq)
	require.Contains(t, n.Error, "no member in queue")

	f.worker(t, "w", workbook("w"))
	c.send(t, "fail B2")
	n = c.notice(t)
	require.Equal(t, uint64(2), n.Seq)
	require.Equal(t, "cell B2 is not a number", n.Error)

	c.send(t, "panic")
	n = c.notice(t)
	require.Equal(t, uint64(3), n.Seq)
	require.Contains(t, n.Error, "failed on the message")

	// The connection stays usable.
	c.send(t, "set C3=1")
	require.Equal(t, "ok C3=1", c.read(t))
	require.Equal(t, "C3=1 by w", c.read(t))

	// A message over the limit closes the connection with 1009.
	c.send(t, strings.Repeat("x", 2048))
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.conn.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.CloseMessageTooBig), "got %v", err)
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, "message larger than 1024 bytes", ce.Text, "the close says why")
}

func TestBrokerRefusals(t *testing.T) {
	f := newBrokerFixture(t)
	g := f.instance(t, "gw", BrokerConfig{})
	url := "ws" + strings.TrimPrefix(g.srv.URL, "http") + "/ws/"
	cookie := loginCookie(t, g)
	for _, tc := range []struct {
		name   string
		path   string
		header http.Header
		status int
	}{
		{"no session", "wb", http.Header{}, http.StatusUnauthorized},
		{"no group", "", cookie, http.StatusBadRequest},
		{"foreign origin", "wb", func() http.Header {
			h := cookie.Clone()
			h.Set("Origin", "https://evil.example")
			return h
		}(), http.StatusForbidden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, resp, err := websocket.DefaultDialer.Dial(url+tc.path, tc.header)
			require.Error(t, err)
			require.NotNil(t, resp)
			resp.Body.Close()
			require.Equal(t, tc.status, resp.StatusCode)
		})
	}
}

func TestBrokerShutdownClosesClientsWithGoingAway(t *testing.T) {
	f := newBrokerFixture(t)
	g := f.instance(t, "gw", BrokerConfig{})
	c := openGroup(t, g, loginCookie(t, g), "wb")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, g.broker.Shutdown(ctx))
	c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err := c.conn.ReadMessage()
	require.True(t, websocket.IsCloseError(err, websocket.CloseGoingAway), "got %v", err)
	require.Zero(t, g.broker.Clients())
}

func TestAssignerKeepsALiveInstanceAndMovesOffADeadOne(t *testing.T) {
	f := newBrokerFixture(t)
	a := f.instance(t, "gw-a", BrokerConfig{})
	b := f.instance(t, "gw-b", BrokerConfig{})
	disc, err := discovery.New(discovery.Config{Provider: MemberProvider{Relay: f.client(t, "main")},
		RefreshInterval: time.Hour, PollInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { disc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	disc.Refresh(ctx)
	disc.Poll(ctx)
	require.Len(t, disc.Healthy(), 2)
	svc, err := discovery.NewSessionService(discovery.SessionConfig{Source: disc, Metric: "gateway_broker_clients", URL: BrokerURL})
	require.NoError(t, err)
	as, err := NewAssigner(AssignerConfig{Sessions: f.sessions, Router: svc, Instances: disc})
	require.NoError(t, err)
	main := httptest.NewServer(as)
	t.Cleanup(main.Close)

	cookie := loginCookie(t, a)
	assign := func(group string) (gateway.Assignment, int) {
		req, _ := http.NewRequest("GET", main.URL+"?group="+group, nil)
		req.Header = cookie.Clone()
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var rec gateway.Assignment
		json.NewDecoder(resp.Body).Decode(&rec)
		return rec, resp.StatusCode
	}
	first, code := assign("wb1")
	require.Equal(t, http.StatusOK, code)
	byName := map[string]*gatewayInstance{"gw-a": a, "gw-b": b}
	chosen := byName[first.Instance]
	require.NotNil(t, chosen, "assigned %+v", first)
	require.Equal(t, "ws"+strings.TrimPrefix(chosen.srv.URL, "http")+"/ws/wb1", first.URL)
	for range 5 {
		again, _ := assign("wb1")
		require.Equal(t, first, again, "the session keeps its instance")
	}
	// The assignment is in the session record, where any main server reads it.
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header = cookie.Clone()
	s, err := f.sessions.Lookup(ctx, req)
	require.NoError(t, err)
	require.Equal(t, first, s.Assigned["wb1"])

	// The chosen instance dies: it leaves the relay's member list and fails its health.
	chosen.stop()
	disc.Refresh(ctx)
	disc.Poll(ctx)
	moved, code := assign("wb1")
	require.Equal(t, http.StatusOK, code)
	require.NotEqual(t, first.Instance, moved.Instance)
	c := openGroup(t, byName[moved.Instance], cookie, "wb1")
	require.NotEmpty(t, c.id)

	// Without a session: 401; with no instance left: 503.
	resp, err := http.Get(main.URL + "?group=wb1")
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	byName[moved.Instance].stop()
	disc.Refresh(ctx)
	disc.Poll(ctx)
	_, code = assign("wb1")
	require.Equal(t, http.StatusServiceUnavailable, code)
}

func TestEnvelopes(t *testing.T) {
	m := &Message{Client: "gw/1", User: "alice", Group: "wb", Token: "jwt", ID: "gw/1/7", Data: []byte("set A1=1"), Binary: true}
	b, err := encodeRequest(m)
	require.NoError(t, err)
	got, err := decodeRequest("gw/1", b)
	require.NoError(t, err)
	require.Equal(t, m, got)

	replies := []Reply{ToSender([]byte("a")), ToGroup("wb", []byte("b")), ToClient("gw/2", []byte("c")), {Kind: ReplyToSender, Data: []byte{0}, Binary: true}}
	b, err = encodeReplies(replies)
	require.NoError(t, err)
	back, err := decodeReplies(b)
	require.NoError(t, err)
	require.Equal(t, replies, back)

	for _, bad := range [][]byte{nil, {1, 0, 0}, {envelopeVersion, 0, 1}, append(bytes.Clone(b), 9)} {
		_, err := decodeReplies(bad)
		require.ErrorIs(t, err, ErrBadEnvelope, "%x", bad)
	}
	_, err = encodeReplies([]Reply{{Kind: 9}})
	require.ErrorIs(t, err, ErrBadEnvelope)
	_, err = encodeReplies([]Reply{ToClient("nobody", nil)})
	require.ErrorContains(t, err, `"nobody"`)
	_, err = decodeRequest("x", []byte{envelopeVersion, 0, 0, 5, 'a'})
	require.ErrorContains(t, err, "user: 5 bytes announced, 1 left")
	_, err = decodeRequest("x", []byte{1, 0, 0, 0})
	require.ErrorContains(t, err, "version 1 (this side speaks 2)", "a gateway and a worker of different versions say so")
}

func FuzzDecodeReplies(f *testing.F) {
	b, _ := encodeReplies([]Reply{ToSender([]byte("a")), ToGroup("wb", []byte("b"))})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		replies, err := decodeReplies(data)
		if err != nil {
			return
		}
		again, err := encodeReplies(replies)
		if err != nil {
			t.Fatalf("decoded replies do not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("round trip changed the bytes")
		}
	})
}

// BenchmarkBroker measures messages through client → gateway → relay → worker → replies,
// in one process on loopback: "sender" waits for each message's reply; "group" sends an
// edit to a workbook of 10 clients on two instances and waits until its own copy arrives
// (every member gets one). Compare with "echo", a WebSocket echo server without the
// broker: the floor of one client's round trip.
func BenchmarkBroker(b *testing.B) {
	f := newBrokerFixture(b)
	a := f.instance(b, "gw-a", BrokerConfig{})
	g2 := f.instance(b, "gw-b", BrokerConfig{})
	f.worker(b, "w1", workbook("w1"))
	f.worker(b, "w2", workbook("w2"))
	cookie := loginCookie(b, a)

	b.Run("echo", func(b *testing.B) {
		up := websocket.Upgrader{}
		srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			c, err := up.Upgrade(w, r, nil)
			if err != nil {
				return
			}
			defer c.Close()
			for {
				mt, m, err := c.ReadMessage()
				if err != nil || c.WriteMessage(mt, m) != nil {
					return
				}
			}
		}))
		defer srv.Close()
		c, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http"), nil)
		require.NoError(b, err)
		defer c.Close()
		msg := []byte("set A1=5")
		b.ResetTimer()
		for range b.N {
			require.NoError(b, c.WriteMessage(websocket.TextMessage, msg))
			_, _, err := c.ReadMessage()
			require.NoError(b, err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("sender", func(b *testing.B) {
		c := openGroup(b, a, cookie, "bench-sender")
		msg := []byte("ping")
		b.ResetTimer()
		for range b.N {
			require.NoError(b, c.conn.WriteMessage(websocket.TextMessage, msg))
			_, _, err := c.conn.ReadMessage()
			require.NoError(b, err)
		}
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("sender-parallel", func(b *testing.B) {
		// Many clients at once, over both instances: throughput rather than latency.
		var n atomic.Int64
		b.SetParallelism(32)
		b.ResetTimer()
		b.RunParallel(func(pb *testing.PB) {
			g := a
			if n.Add(1)%2 == 0 {
				g = g2
			}
			c := openGroup(b, g, cookie, fmt.Sprintf("bench-parallel-%d", n.Load()))
			defer c.conn.Close()
			msg := []byte("ping")
			for pb.Next() {
				if err := c.conn.WriteMessage(websocket.TextMessage, msg); err != nil {
					b.Error(err)
					return
				}
				if _, _, err := c.conn.ReadMessage(); err != nil {
					b.Error(err)
					return
				}
			}
		})
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	})
	b.Run("group", func(b *testing.B) {
		var members []*wsClient
		for i := range 10 {
			g := a
			if i%2 == 1 {
				g = g2
			}
			members = append(members, openGroup(b, g, cookie, "bench-group"))
		}
		// The other members read everything they get.
		var wg sync.WaitGroup
		for _, m := range members[1:] {
			wg.Go(func() {
				for {
					if _, _, err := m.conn.ReadMessage(); err != nil {
						return
					}
				}
			})
		}
		sender := members[0]
		b.ResetTimer()
		for i := range b.N {
			require.NoError(b, sender.conn.WriteMessage(websocket.TextMessage, fmt.Appendf(nil, "set A%d=1", i)))
			for range 2 { // the ack and the sender's own copy of the edit
				_, _, err := sender.conn.ReadMessage()
				require.NoError(b, err)
			}
		}
		b.StopTimer()
		b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
		b.ReportMetric(float64(b.N*len(members))/b.Elapsed().Seconds(), "deliveries/s")
		for _, m := range members {
			m.conn.Close()
		}
		wg.Wait()
	})
}

// ByUser, every session of a user is sent to the same instance (the hub's channels of a
// user must share one instance), where a round-robin choice per session would alternate.
func TestAssignerByUserKeepsAUsersSessionsTogether(t *testing.T) {
	f := newBrokerFixture(t)
	f.instance(t, "gw-a", BrokerConfig{})
	f.instance(t, "gw-b", BrokerConfig{})
	disc, err := discovery.New(discovery.Config{Provider: MemberProvider{Relay: f.client(t, "main")},
		RefreshInterval: time.Hour, PollInterval: time.Hour})
	require.NoError(t, err)
	t.Cleanup(func() { disc.Close() })
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	disc.Refresh(ctx)
	require.Len(t, disc.Healthy(), 2)
	users, err := gateway.NewUsersFile(gatewaytest.UsersFile(t))
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/login", &gateway.Login{Sessions: f.sessions, Authenticator: users})
	for _, byUser := range []bool{false, true} {
		svc, err := discovery.NewSessionService(discovery.SessionConfig{Source: disc, Selector: &discovery.RoundRobin{},
			URL: func(in discovery.Instance, _ string) string { return BrokerURL(in, "hub") }})
		require.NoError(t, err)
		as, err := NewAssigner(AssignerConfig{Sessions: f.sessions, Router: svc, Instances: disc, ByUser: byUser})
		require.NoError(t, err)
		mux.Handle(fmt.Sprintf("/assign-%v", byUser), as)
	}
	main := httptest.NewServer(mux)
	t.Cleanup(main.Close)
	aliceSession := func() http.Header {
		c := gatewaytest.Client(t)
		resp, err := c.PostForm(main.URL+"/login", url.Values{"user": {"alice"}, "password": {"s3cret"}})
		require.NoError(t, err)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		return gatewaytest.CookieHeader(c, resp.Request.URL)
	}
	assign := func(path string, cookie http.Header) string {
		req, _ := http.NewRequest("GET", main.URL+path+"?group=hub", nil)
		req.Header = cookie
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode)
		var rec gateway.Assignment
		require.NoError(t, json.NewDecoder(resp.Body).Decode(&rec))
		require.True(t, strings.HasSuffix(rec.URL, "/ws/hub"), rec.URL)
		return rec.Instance
	}
	perSession := map[string]bool{}
	for range 4 {
		perSession[assign("/assign-false", aliceSession())] = true
	}
	require.Len(t, perSession, 2, "per session, round-robin alternates")
	first := assign("/assign-true", aliceSession())
	for range 4 {
		require.Equal(t, first, assign("/assign-true", aliceSession()), "every session of alice on one instance")
	}
}

// Clients joining and leaving one group at once, on one instance, leave its relay
// subscription right: afterwards a member there still hears edits from another instance.
func TestBrokerGroupChurn(t *testing.T) {
	f := newBrokerFixture(t)
	a := f.instance(t, "gw-a", BrokerConfig{})
	b := f.instance(t, "gw-b", BrokerConfig{})
	f.worker(t, "w", workbook("w"))
	cookie := loginCookie(t, a)
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 10 {
				c := openGroup(t, a, cookie, "churn")
				c.conn.Close()
			}
		})
	}
	wg.Wait()
	// The last churned clients may still be leaving (unsubscribing) as this one joins.
	stay := openGroup(t, a, cookie, "churn")
	editor := openGroup(t, b, cookie, "churn")
	editor.send(t, "set Z9=1")
	require.Equal(t, "ok Z9=1", editor.read(t))
	require.Equal(t, "Z9=1 by w", editor.read(t))
	require.Equal(t, "Z9=1 by w", stay.read(t), "the instance is subscribed again")
}

func TestMemberProviderSkipsBadLabels(t *testing.T) {
	f := newBrokerFixture(t)
	g := f.instance(t, "gw-a", BrokerConfig{})
	rogue := f.client(t, "rogue")
	require.NoError(t, rogue.Join(context.Background(), GatewaysPath, "not json", func(context.Context, []byte, []byte) ([]byte, error) { return nil, nil }))
	p := MemberProvider{Relay: f.client(t, "main")}
	ts, err := p.Targets(context.Background())
	require.NoError(t, err)
	require.Len(t, ts, 1)
	require.Equal(t, "gw-a", ts[0].ID)
	require.Equal(t, strings.TrimPrefix(g.srv.URL, "http://"), ts[0].Addr)
	g.stop() // leaves the member list
	_, err = p.Targets(context.Background())
	require.ErrorContains(t, err, "not json")
}

type fixedSource struct{ snap *discovery.Snapshot }

func (f fixedSource) Snapshot() *discovery.Snapshot { return f.snap }

type fixedRouter struct{ route discovery.Route }

func (f fixedRouter) Route(context.Context, string, string) (discovery.Route, error) {
	return f.route, nil
}

// A main server whose discovery lists the recorded instance but has not checked it yet
// keeps the user there; one that checked it and found it down moves the user.
func TestAssignerTrustsARecordUntilItsInstanceIsChecked(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	cookie := gatewaytest.AnonymousLogin(t, srv.URL)
	req, _ := http.NewRequest("GET", "/", nil)
	req.Header = cookie
	s, err := sessions.Lookup(context.Background(), req)
	require.NoError(t, err)
	s.Assigned = map[string]gateway.Assignment{"wb": {Instance: "gw-old", URL: "ws://old/ws/wb"}}
	require.NoError(t, sessions.Save(context.Background(), s))

	assignWith := func(old discovery.Instance) gateway.Assignment {
		snap := &discovery.Snapshot{All: []discovery.Instance{old}}
		as, err := NewAssigner(AssignerConfig{Sessions: sessions, Instances: fixedSource{snap},
			Router: fixedRouter{discovery.Route{Instance: "gw-new", URL: "ws://new/ws/wb"}}})
		require.NoError(t, err)
		rec := httptest.NewRecorder()
		r := httptest.NewRequest("GET", "/v1/assign?group=wb", nil)
		r.Header = cookie
		as.ServeHTTP(rec, r)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var a gateway.Assignment
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &a))
		return a
	}
	unchecked := discovery.Instance{Target: discovery.Target{ID: "gw-old", Addr: "old"}}
	require.Equal(t, "gw-old", assignWith(unchecked).Instance)
	checkedDown := unchecked
	checkedDown.LastCheck, checkedDown.LastError = time.Now(), "connection refused"
	require.Equal(t, "gw-new", assignWith(checkedDown).Instance)
}

// TestWorkersSeeAMessageID: each message reaches its worker with an id of its own, made of
// the sender's client id and the message's number, so a handler can make its effect
// idempotent when a message is handed to it twice.
func TestWorkersSeeAMessageID(t *testing.T) {
	f := newBrokerFixture(t)
	g := f.instance(t, "gw", BrokerConfig{})
	ids := make(chan string, 4)
	f.worker(t, "w", func(_ context.Context, m *Message) ([]Reply, error) {
		ids <- m.ID
		return []Reply{ToSender([]byte("ok"))}, nil
	})
	c := openGroup(t, g, loginCookie(t, g), "wb")
	var got []string
	for range 2 {
		c.send(t, "x")
		select {
		case id := <-ids:
			got = append(got, id)
		case <-time.After(10 * time.Second):
			t.Fatal("no message reached the worker")
		}
	}
	require.Len(t, got, 2)
	assert.NotEqual(t, got[0], got[1])
	for _, id := range got {
		assert.True(t, strings.HasPrefix(id, c.id+"/"), "%q names its client %q", id, c.id)
	}
}

// switchRouter routes to one instance until switched, then to another.
type switchRouter struct {
	mu      sync.Mutex
	current string
}

func (r *switchRouter) Route(_ context.Context, _, group string) (discovery.Route, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return discovery.Route{Instance: r.current, URL: "ws://" + r.current + "/ws/" + group}, nil
}

// TestAssignmentSkipsAnInstanceThatLeftTheRelay: an instance whose relay connection dropped
// (not Live) is not handed out, even before discovery notices: the Assigner refreshes
// discovery and routes again; a recorded assignment to it is not reused either.
func TestAssignmentSkipsAnInstanceThatLeftTheRelay(t *testing.T) {
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	router := &switchRouter{current: "gone"}
	var refreshed atomic.Int32
	as, err := NewAssigner(AssignerConfig{Sessions: sessions, Router: router,
		Live: func(_ context.Context, instance string) bool { return instance != "gone" },
		Refresh: func(context.Context) {
			refreshed.Add(1)
			router.mu.Lock()
			router.current = "live"
			router.mu.Unlock()
		}})
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/v1/assign", as)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	cookie := gatewaytest.AnonymousLogin(t, srv.URL)
	req, _ := http.NewRequest(http.MethodGet, srv.URL+"/v1/assign?group=wb", nil)
	req.Header = cookie
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	var got gateway.Assignment
	require.NoError(t, json.NewDecoder(resp.Body).Decode(&got))
	assert.Equal(t, "live", got.Instance)
	assert.Equal(t, int32(1), refreshed.Load())
}

// userCookie logs user in with a password at a login endpoint of its own over f's
// sessions and returns the cookie header.
func (f *brokerFixture) userCookie(t *testing.T, user, password string) http.Header {
	t.Helper()
	users, err := gateway.NewUsersFile(gatewaytest.UsersFile(t))
	require.NoError(t, err)
	mux := http.NewServeMux()
	mux.Handle("/login", &gateway.Login{Sessions: f.sessions, Authenticator: users})
	srv := httptest.NewServer(mux)
	t.Cleanup(srv.Close)
	c := gatewaytest.Client(t)
	resp, err := c.PostForm(srv.URL+"/login", url.Values{"user": {user}, "password": {password}})
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	return gatewaytest.CookieHeader(c, resp.Request.URL)
}

// refusedJoin dials group at g with cookie and returns the HTTP status and body of the
// refusal; it fails the test if the join succeeds.
func refusedJoin(t testing.TB, g *gatewayInstance, cookie http.Header, group string) (int, string) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(g.srv.URL, "http")+"/ws/"+group, cookie)
	if err == nil {
		c.Close()
		t.Fatalf("joining %q succeeded", group)
	}
	require.NotNil(t, resp, "dial error %v", err)
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

// By default an anonymous session may not join a group (403 saying why) and a named
// user may; AllowAnonymous lets anonymous sessions in.
func TestBrokerDefaultAuthorization(t *testing.T) {
	f := newBrokerFixture(t)
	f.defaultPolicy = true
	strict := f.instance(t, "gw-strict", BrokerConfig{})
	open := f.instance(t, "gw-open", BrokerConfig{AllowAnonymous: true})
	anon := loginCookie(t, strict)
	code, body := refusedJoin(t, strict, anon, "wb")
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "anonymous session may not join")
	openGroup(t, open, anon, "wb")
	openGroup(t, strict, f.userCookie(t, "alice", "s3cret"), "wb")
}

// A configured Authorize decides who joins which group; its error is the refusal's text.
func TestBrokerAuthorizeHook(t *testing.T) {
	f := newBrokerFixture(t)
	f.defaultPolicy = true
	g := f.instance(t, "gw", BrokerConfig{Authorize: func(_ context.Context, s *gateway.Session, group string) error {
		if group != "wb-"+s.User {
			return fmt.Errorf("%s may not open %s", s.User, group)
		}
		return nil
	}})
	alice := f.userCookie(t, "alice", "s3cret")
	openGroup(t, g, alice, "wb-alice")
	code, body := refusedJoin(t, g, alice, "wb-bob")
	require.Equal(t, http.StatusForbidden, code)
	require.Contains(t, body, "alice may not open wb-bob")
}

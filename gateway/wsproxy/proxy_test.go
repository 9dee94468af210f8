package wsproxy

import (
	"bufio"
	"context"
	"crypto/sha1"
	"encoding/base64"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// echoBackend is a WebSocket backend that echoes messages and obeys commands:
// "close:CODE" sends a close frame with CODE, "vanish" drops the TCP connection,
// "closeempty" sends a close frame without a code.
type echoBackend struct {
	srv     *httptest.Server
	mu      sync.Mutex
	headers http.Header
	closes  chan *websocket.CloseError
}

func newEchoBackend(t *testing.T) *echoBackend {
	b := &echoBackend{closes: make(chan *websocket.CloseError, 4)}
	up := websocket.Upgrader{Subprotocols: []string{"v2", "v1"}}
	b.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/health" {
			return // 200: for discovery's health checks
		}
		b.mu.Lock()
		b.headers = r.Header.Clone()
		b.mu.Unlock()
		c, err := up.Upgrade(w, r, http.Header{"X-Backend-Internal": {"1"}})
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				if errors.As(err, &ce) {
					select {
					case b.closes <- ce:
					default: // nobody is waiting for it
					}
				}
				return
			}
			switch s := string(msg); {
			case strings.HasPrefix(s, "close:"):
				code, _ := strconv.Atoi(s[6:])
				c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, "backend says bye"), time.Now().Add(time.Second))
			case s == "closeempty":
				c.WriteControl(websocket.CloseMessage, []byte{}, time.Now().Add(time.Second))
			case s == "vanish":
				c.UnderlyingConn().Close()
				return
			default:
				if err := c.WriteMessage(mt, msg); err != nil {
					return
				}
			}
		}
	}))
	t.Cleanup(b.srv.Close)
	return b
}

func (b *echoBackend) wsURL() string { return "ws" + strings.TrimPrefix(b.srv.URL, "http") }

// goroutinePipeOnly makes startProxy's proxies use the goroutine pipe only (see
// TestProxyGoroutinePipe); by default they use the event loops where they can.
var goroutinePipeOnly bool

func startProxy(t testing.TB, cfg ProxyConfig) (*Proxy, *httptest.Server) {
	t.Helper()
	return serveProxy(t, cfg, nil)
}

// serveProxy starts a proxy on a loopback listener, wrapped by wrap if it is not nil, and
// stops it when t ends.
func serveProxy(t testing.TB, cfg ProxyConfig, wrap func(net.Listener) net.Listener) (*Proxy, *httptest.Server) {
	t.Helper()
	cfg.GoroutinePipe = cfg.GoroutinePipe || goroutinePipeOnly
	p, err := NewProxy(cfg)
	require.NoError(t, err)
	srv := httptest.NewUnstartedServer(p)
	if wrap != nil {
		srv.Listener = wrap(srv.Listener)
	}
	srv.Start()
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		p.Shutdown(ctx)
		srv.Close()
	})
	return p, srv
}

func routeTo(url string) func(*http.Request) (Backend, error) {
	return func(*http.Request) (Backend, error) {
		return Backend{URL: url, Header: http.Header{"Authorization": {"Bearer test-jwt"}, "X-Qlik-Session": {"s1"}}}, nil
	}
}

func dialWS(t *testing.T, srv *httptest.Server, h http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, Subprotocols: []string{"v1", "v2"}}
	c, resp, err := d.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/app/doc", h)
	if c != nil {
		t.Cleanup(func() { c.Close() })
	}
	return c, resp, err
}

// TestProxyGoroutinePipe runs the proxy's tests again with the goroutine pipe, which
// serves TLS connections and other systems, in place of the event loops.
func TestProxyGoroutinePipe(t *testing.T) {
	goroutinePipeOnly = true
	defer func() { goroutinePipeOnly = false }()
	for _, tt := range []struct {
		name string
		test func(*testing.T)
	}{
		{"relays", TestProxyRelays}, {"close codes", TestProxyCloseCodes}, {"read limit", TestProxyReadLimit},
		{"shutdown", TestProxyShutdownClosesHijackedConnections}, {"bytes with the upgrade", TestProxyKeepsBytesBufferedWithTheUpgrade},
		{"no goroutine leaks", TestNoGoroutineLeaks},
	} {
		t.Run(tt.name, tt.test)
	}
}

func TestProxyRelays(t *testing.T) {
	b := newEchoBackend(t)
	_, srv := startProxy(t, ProxyConfig{Route: routeTo(b.wsURL())})
	c, resp, err := dialWS(t, srv, nil)
	require.NoError(t, err)
	assert.Equal(t, "v2", c.Subprotocol(), "the backend's choice of subprotocol reaches the browser")
	assert.Empty(t, resp.Header.Get("X-Backend-Internal"), "the backend's response headers stay behind the proxy")

	b.mu.Lock()
	assert.Equal(t, "Bearer test-jwt", b.headers.Get("Authorization"))
	assert.Equal(t, "s1", b.headers.Get("X-Qlik-Session"))
	assert.Equal(t, "127.0.0.1", b.headers.Get("X-Forwarded-For"))
	assert.Equal(t, "http", b.headers.Get("X-Forwarded-Proto"))
	assert.NotEmpty(t, b.headers.Get("X-Forwarded-Host"))
	b.mu.Unlock()

	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	for _, m := range []struct {
		mt   int
		data string
	}{{websocket.TextMessage, "hello"}, {websocket.BinaryMessage, "\x00\x01\x02"}, {websocket.TextMessage, strings.Repeat("big", 100000)}} {
		require.NoError(t, c.WriteMessage(m.mt, []byte(m.data)))
		mt, got, err := c.ReadMessage()
		require.NoError(t, err)
		assert.Equal(t, m.mt, mt)
		assert.Equal(t, m.data, string(got))
	}
	// A ping from the browser reaches the backend, whose pong comes back.
	pong := make(chan string, 1)
	c.SetPongHandler(func(s string) error { pong <- s; return nil })
	require.NoError(t, c.WriteControl(websocket.PingMessage, []byte("are you there"), time.Now().Add(time.Second)))
	go c.ReadMessage()
	select {
	case s := <-pong:
		assert.Equal(t, "are you there", s)
	case <-time.After(10 * time.Second):
		t.Fatal("no pong")
	}
}

func TestProxyCloseCodes(t *testing.T) {
	b := newEchoBackend(t)
	_, srv := startProxy(t, ProxyConfig{Route: routeTo(b.wsURL())})
	readClose := func(c *websocket.Conn) *websocket.CloseError {
		t.Helper()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			_, _, err := c.ReadMessage()
			if err != nil {
				var ce *websocket.CloseError
				require.ErrorAs(t, err, &ce)
				return ce
			}
		}
	}
	t.Run("browser closes", func(t *testing.T) {
		c, _, err := dialWS(t, srv, nil)
		require.NoError(t, err)
		require.NoError(t, c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(4001, "bye"), time.Now().Add(time.Second)))
		select {
		case ce := <-b.closes:
			assert.Equal(t, 4001, ce.Code)
			assert.Equal(t, "bye", ce.Text)
		case <-time.After(10 * time.Second):
			t.Fatal("the backend never saw the close")
		}
		// The close is answered by the backend's close, not by the proxy on its own.
		assert.Equal(t, 4001, readClose(c).Code)
	})
	t.Run("backend closes", func(t *testing.T) {
		c, _, err := dialWS(t, srv, nil)
		require.NoError(t, err)
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("close:4002")))
		ce := readClose(c)
		assert.Equal(t, 4002, ce.Code)
		assert.Equal(t, "backend says bye", ce.Text)
	})
	t.Run("backend closes without a code", func(t *testing.T) {
		c, _, err := dialWS(t, srv, nil)
		require.NoError(t, err)
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("closeempty")))
		assert.Equal(t, websocket.CloseNoStatusReceived, readClose(c).Code, "an empty close frame, not a 1005 on the wire")
	})
	t.Run("backend sends a reserved code", func(t *testing.T) {
		c, _, err := dialWS(t, srv, nil)
		require.NoError(t, err)
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("close:1006")))
		assert.Equal(t, websocket.CloseInternalServerErr, readClose(c).Code, "1011, never the reserved 1006 on the wire")
	})
	t.Run("backend vanishes", func(t *testing.T) {
		c, _, err := dialWS(t, srv, nil)
		require.NoError(t, err)
		require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("vanish")))
		assert.Equal(t, websocket.CloseInternalServerErr, readClose(c).Code, "1011, never the reserved 1006")
	})
}

func TestProxyRefusals(t *testing.T) {
	b := newEchoBackend(t)
	dead := httptest.NewServer(http.NotFoundHandler())
	deadURL := "ws" + strings.TrimPrefix(dead.URL, "http")
	dead.Close()
	tests := []struct {
		name   string
		route  func(*http.Request) (Backend, error)
		header http.Header
		status int
	}{
		{"cross-site origin", routeTo(b.wsURL()), http.Header{"Origin": {"https://evil.example"}}, http.StatusForbidden},
		{"no session", func(*http.Request) (Backend, error) {
			return Backend{}, &HTTPError{Status: http.StatusUnauthorized, Msg: "log in first"}
		}, nil, http.StatusUnauthorized},
		{"backend unreachable", routeTo(deadURL), nil, http.StatusBadGateway},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, srv := startProxy(t, ProxyConfig{Route: tt.route})
			_, resp, err := dialWS(t, srv, tt.header)
			require.Error(t, err)
			require.NotNil(t, resp)
			assert.Equal(t, tt.status, resp.StatusCode)
		})
	}
	t.Run("not a websocket upgrade", func(t *testing.T) {
		_, srv := startProxy(t, ProxyConfig{Route: routeTo(b.wsURL())})
		for _, up := range []string{"", "h2c"} {
			req, _ := http.NewRequest("GET", srv.URL+"/app/doc", nil)
			if up != "" {
				req.Header.Set("Connection", "Upgrade, HTTP2-Settings")
				req.Header.Set("Upgrade", up)
			}
			resp, err := http.DefaultClient.Do(req)
			require.NoError(t, err)
			resp.Body.Close()
			assert.Equal(t, http.StatusBadRequest, resp.StatusCode, "upgrade %q", up)
		}
	})
}

func TestProxyReadLimit(t *testing.T) {
	b := newEchoBackend(t)
	_, srv := startProxy(t, ProxyConfig{Route: routeTo(b.wsURL()), MaxMessageSize: 1000})
	c, _, err := dialWS(t, srv, nil)
	require.NoError(t, err)
	require.NoError(t, c.WriteMessage(websocket.TextMessage, make([]byte, 5000)))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseMessageTooBig, ce.Code)
	select {
	case ce := <-b.closes:
		assert.Equal(t, websocket.CloseInternalServerErr, ce.Code)
	case <-time.After(10 * time.Second):
		t.Fatal("the backend was not told")
	}
}

func TestProxyShutdownClosesHijackedConnections(t *testing.T) {
	b := newEchoBackend(t)
	p, srv := startProxy(t, ProxyConfig{Route: routeTo(b.wsURL())})
	c, _, err := dialWS(t, srv, nil)
	require.NoError(t, err)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	require.NoError(t, p.Shutdown(ctx))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, _, err = c.ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, websocket.CloseGoingAway, ce.Code)
}

// TestProxyKeepsBytesBufferedWithTheUpgrade uses a backend that sends its first message in
// the same write as its 101 answer: the message must reach the browser.
func TestProxyKeepsBytesBufferedWithTheUpgrade(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		defer nc.Close()
		req, err := http.ReadRequest(bufio.NewReader(nc))
		if err != nil {
			return
		}
		sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
		frame := append([]byte{0x81, 5}, "hello"...) // a final text frame, unmasked
		nc.Write(append([]byte("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
			"Sec-WebSocket-Accept: "+base64.StdEncoding.EncodeToString(sum[:])+"\r\n\r\n"), frame...))
		buf := make([]byte, 1024)
		for {
			if _, err := nc.Read(buf); err != nil {
				return
			}
		}
	}()
	_, srv := startProxy(t, ProxyConfig{Route: routeTo("ws://" + ln.Addr().String())})
	c, _, err := dialWS(t, srv, nil)
	require.NoError(t, err)
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := c.ReadMessage()
	require.NoError(t, err)
	assert.Equal(t, "hello", string(msg))
}

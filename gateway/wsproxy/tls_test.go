package wsproxy

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/testpki"
)

// testTLS returns a server's TLS configuration with a fresh certificate for 127.0.0.1,
// and a browser's that trusts it.
func testTLS(tb testing.TB) (server, browser *tls.Config) {
	pki := testpki.New(tb)
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	require.NoError(tb, err)
	ca, err := os.ReadFile(pki.CACert)
	require.NoError(tb, err)
	roots := x509.NewCertPool()
	require.True(tb, roots.AppendCertsFromPEM(ca))
	return &tls.Config{Certificates: []tls.Certificate{cert}},
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1"}
}

// startTLSProxy is startProxy serving wss:// on a listener of NewTLSListener.
func startTLSProxy(tb testing.TB, cfg ProxyConfig, config *tls.Config) (*Proxy, *httptest.Server) {
	tb.Helper()
	return serveProxy(tb, cfg, func(ln net.Listener) net.Listener { return NewTLSListener(ln, config) })
}

// loopsOverTLS starts an echo backend and a proxy in front of it serving wss:// with event
// loops (the test is skipped where there are none), and returns them with a browser's TLS
// configuration.
func loopsOverTLS(t *testing.T, cfg ProxyConfig) (*echoBackend, *Proxy, *httptest.Server, *tls.Config) {
	t.Helper()
	if goroutinePipeOnly {
		t.Skip("the goroutine pipe only")
	}
	b := newEchoBackend(t)
	serverTLS, browserTLS := testTLS(t)
	cfg.Route = routeTo(b.wsURL())
	p, srv := startTLSProxy(t, cfg, serverTLS)
	if p.loops == nil {
		t.Skip("no event loops on this system")
	}
	return b, p, srv, browserTLS
}

// dialWSS opens a wss:// WebSocket through the proxy at srv.
func dialWSS(t *testing.T, srv *httptest.Server, config *tls.Config) *websocket.Conn {
	t.Helper()
	d := websocket.Dialer{HandshakeTimeout: 5 * time.Second, TLSClientConfig: config}
	c, _, err := d.Dial("wss://"+srv.Listener.Addr().String()+"/app/doc", nil)
	require.NoError(t, err)
	t.Cleanup(func() { c.Close() })
	return c
}

func echo(t *testing.T, c *websocket.Conn, msg []byte) {
	t.Helper()
	require.NoError(t, c.WriteMessage(websocket.BinaryMessage, msg))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, got, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, msg, got)
}

// TestWSSTakesTheEventLoops: wss:// connections from a NewTLSListener go to the event loops
// like plain ones, hold no goroutine while idle, relay messages of every size (records cut
// by reads, several records per message), and end with the backend's close code.
func TestWSSTakesTheEventLoops(t *testing.T) {
	_, p, srv, browserTLS := loopsOverTLS(t, ProxyConfig{MaxMessageSize: 1 << 20})
	base := runtime.NumGoroutine()
	const n = 50
	conns := make([]*websocket.Conn, n)
	for i := range conns {
		conns[i] = dialWSS(t, srv, browserTLS)
		echo(t, conns[i], []byte("hi"))
	}
	assert.Equal(t, n, p.loops.Stats().Open, "every wss connection on a loop")
	// Per connection: the backend's handler goroutine; the loops are a few in all.
	assert.LessOrEqual(t, runtime.NumGoroutine()-base, n+p.loops.Stats().Loops+4)

	for _, size := range []int{0, 1, 125, 126, 16383, 16384, 16385, 100_000, 1 << 20} {
		echo(t, conns[0], bytes.Repeat([]byte{byte(size)}, size))
	}
	require.NoError(t, conns[1].WriteMessage(websocket.TextMessage, []byte("close:4001")))
	_, _, err := conns[1].ReadMessage()
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, 4001, ce.Code)
}

// TestWSSOverTLS12StaysOnThePipe: a TLS 1.2 connection cannot be handed over; the
// goroutine pipe relays it.
func TestWSSOverTLS12StaysOnThePipe(t *testing.T) {
	b := newEchoBackend(t)
	serverTLS, browserTLS := testTLS(t)
	p, srv := startTLSProxy(t, ProxyConfig{Route: routeTo(b.wsURL())}, serverTLS)
	browserTLS.MaxVersion = tls.VersionTLS12
	c := dialWSS(t, srv, browserTLS)
	echo(t, c, []byte("over TLS 1.2"))
	if p.loops != nil {
		assert.Zero(t, p.loops.Stats().Open)
	}
	assert.Equal(t, 2, p.active(), "the pipe holds the browser's and the backend's connection")
}

// TestWSSKeyUpdate has OpenSSL's client, relayed by an event loop, update its keys and ask
// for the proxy's update (crypto/tls's client never does either): the loop takes the
// client's new keys, sends its own update, and the conversation goes on. It also ends
// with close_notify from the client, after which the backend hears 1001.
func TestWSSKeyUpdate(t *testing.T) {
	openssl, err := exec.LookPath("openssl")
	if err != nil {
		t.Skip("openssl is not installed (.ci/run installs it)")
	}
	b, p, srv, _ := loopsOverTLS(t, ProxyConfig{})
	msgs := t.TempDir() + "/messages" // s_client lists the protocol messages it sends and receives
	cmd := exec.Command(openssl, "s_client", "-connect", srv.Listener.Addr().String(), "-tls1_3",
		"-quiet", "-no_ign_eof", "-msg", "-msgfile", msgs) // it goes on whether it can verify the certificate or not
	stdin, err := cmd.StdinPipe()
	require.NoError(t, err)
	stdout, err := cmd.StdoutPipe()
	require.NoError(t, err)
	stderr, err := cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	// s_client reports each key update it sends on its standard error.
	updates := make(chan struct{}, 4)
	go func() {
		sc := bufio.NewScanner(stderr)
		for sc.Scan() {
			if strings.Contains(sc.Text(), "KEYUPDATE") {
				updates <- struct{}{}
			}
		}
	}()

	_, err = fmt.Fprintf(stdin, "GET /app/doc HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n")
	require.NoError(t, err)
	out := bufio.NewReader(stdout)
	resp, err := http.ReadResponse(out, nil)
	require.NoError(t, err)
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	require.Eventually(t, func() bool { return p.loops.Stats().Open == 1 }, 10*time.Second, time.Millisecond)

	roundTrip := func(msg string) {
		t.Helper()
		// A masked frame whose key is zero: the payload goes as it is.
		_, err := stdin.Write(append([]byte{0x82, 0x80 | byte(len(msg)), 0, 0, 0, 0}, msg...))
		require.NoError(t, err)
		f, err := readWireFrame(out)
		require.NoError(t, err)
		require.Equal(t, msg, string(f.payload))
	}
	roundTrip("before the updates")
	for _, command := range []string{"k\n", "K\n"} { // an update, then one that asks for ours
		_, err = stdin.Write([]byte(command))
		require.NoError(t, err)
		select {
		case <-updates:
		case <-time.After(10 * time.Second):
			t.Fatalf("openssl never sent the key update of %q", command)
		}
		roundTrip("after " + strings.TrimSpace(command))
	}
	// The proxy answered the update that asked for one, and only that one.
	list, err := os.ReadFile(msgs)
	require.NoError(t, err)
	received := regexp.MustCompile(`(?m)^<<< TLS 1.3, Handshake \[length 0005\], KeyUpdate`)
	assert.Len(t, received.FindAll(list, -1), 1, "the KeyUpdates openssl received:\n%s", list)

	require.NoError(t, stdin.Close()) // openssl sends close_notify
	select {
	case ce := <-b.closes:
		assert.Equal(t, websocket.CloseGoingAway, ce.Code)
	case <-time.After(10 * time.Second):
		t.Fatal("the backend never heard the client go")
	}
	// The proxy ends the connection: openssl's output ends.
	ended := make(chan struct{})
	go func() { io.Copy(io.Discard, out); close(ended) }()
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("the proxy never ended the connection")
	}
}

// TestWSSCutLinks cuts a wss:// browser's connection on an event loop without close_notify,
// between records and in the middle of one: the backend hears 1001 and the loop lets the
// pair go, as for a plain connection cut.
func TestWSSCutLinks(t *testing.T) {
	b, p, srv, browserTLS := loopsOverTLS(t, ProxyConfig{})
	for _, partial := range [][]byte{nil, {23, 3, 3, 0, 40, 1, 2}} {
		c := dialWSS(t, srv, browserTLS)
		echo(t, c, []byte("hi"))
		tcp := c.NetConn().(*tls.Conn).NetConn()
		if partial != nil {
			_, err := tcp.Write(partial) // the start of a record, never finished
			require.NoError(t, err)
		}
		require.NoError(t, tcp.Close())
		select {
		case ce := <-b.closes:
			assert.Equal(t, websocket.CloseGoingAway, ce.Code)
		case <-time.After(10 * time.Second):
			t.Fatal("the backend never heard the browser go")
		}
		require.Eventually(t, func() bool { return p.loops.Stats().Open == 0 }, 10*time.Second, time.Millisecond)
	}
}

//go:build linux

package wsproxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/gateway/wsproxy/internal/eventloop"
)

// echoThrough opens a WebSocket through the proxy at srv and has one message echoed.
func echoThrough(t *testing.T, srv *httptest.Server) *websocket.Conn {
	t.Helper()
	c, _, err := dialWS(t, srv, nil)
	require.NoError(t, err)
	require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("hi")))
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, msg, err := c.ReadMessage()
	require.NoError(t, err)
	require.Equal(t, "hi", string(msg))
	return c
}

// TestEventLoopHoldsIdleConnectionsWithoutGoroutines checks the point of the event loops:
// idle proxied connections cost no goroutine each (the goroutine pipe spends at least two).
func TestEventLoopHoldsIdleConnectionsWithoutGoroutines(t *testing.T) {
	b := newEchoBackend(t)
	p, srv := startProxy(t, ProxyConfig{Route: routeTo(b.wsURL())})
	require.NotNil(t, p.loops, "Linux proxies use event loops by default")
	// The backend holds a goroutine per connection, and so do the test's clients' own
	// connections; count the proxy's alone by its tunnels and the goroutines it adds.
	base := runtime.NumGoroutine()
	const n = 50
	for range n {
		echoThrough(t, srv)
	}
	assert.Equal(t, n, p.loops.Stats().Open)
	// Per connection: the backend's handler goroutine; the loops are a few in all.
	assert.LessOrEqual(t, runtime.NumGoroutine()-base, n+p.loops.Stats().Loops+4)
}

// TestEventLoopBackpressure checks that a browser that stops reading holds back the backend
// instead of the gateway buffering what it sends, and that the connection is closed once
// a write has waited WriteTimeout.
func TestEventLoopBackpressure(t *testing.T) {
	sent := make(chan int, 1)
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		chunk := make([]byte, 64<<10)
		total := 0
		for total < 1<<30 { // bounded: 1 GiB
			c.SetWriteDeadline(time.Now().Add(2 * time.Second))
			if err := c.WriteMessage(websocket.BinaryMessage, chunk); err != nil {
				break
			}
			total += len(chunk)
		}
		sent <- total
	}))
	defer backend.Close()
	p, srv := startProxy(t, ProxyConfig{Route: routeTo("ws" + strings.TrimPrefix(backend.URL, "http")),
		WriteTimeout: 300 * time.Millisecond, MaxMessageSize: 1 << 20})
	c, _, err := dialWS(t, srv, nil)
	require.NoError(t, err)
	defer c.Close()
	// The browser reads nothing. The backend gets stuck once the sockets' buffers and the
	// gateway's one pending write are full, and the gateway closes both after WriteTimeout.
	select {
	case total := <-sent:
		assert.Less(t, total, 64<<20, "the gateway read far more than it could pass on")
	case <-time.After(20 * time.Second):
		t.Fatal("the backend was never held back or released")
	}
	require.Eventually(t, func() bool { return p.active() == 0 }, 10*time.Second, 10*time.Millisecond)
}

// TestEventLoopsUseIORing checks that where the system has io_uring the loops batch their
// socket calls through it (the other tests then cover that path), and that the loops
// release it after Shutdown.
func TestEventLoopsUseIORing(t *testing.T) {
	if err := eventloop.IORingSupported(); err != nil {
		t.Skipf("no io_uring here (%v): TestProxyEventLoopsWithoutIORing covers the loops", err)
	}
	b := newEchoBackend(t)
	p, srv := startProxy(t, ProxyConfig{Route: routeTo(b.wsURL())})
	c := echoThrough(t, srv)
	rings := p.loops.Stats().IORings
	assert.Equal(t, 1, rings, "the loop relaying the connection has an io_uring")
	c.Close()
	require.NoError(t, p.Shutdown(context.Background()))
	// A loop still closing its last tunnel releases its descriptors as it ends.
	require.Eventually(t, func() bool {
		return p.loops.Stats().Holding == 0
	}, 10*time.Second, 5*time.Millisecond, "io_uring and epoll released after Shutdown")
}

// TestLoopsMatchPipeWithoutIORing plays FuzzLoopsMatchPipe's seeds with the loops making
// their socket calls one by one, as on systems without io_uring (the loops read
// ForceNoIORing when they start, and these proxies' loops start in this test).
func TestLoopsMatchPipeWithoutIORing(t *testing.T) {
	eventloop.ForceNoIORing.Store(true)
	defer eventloop.ForceNoIORing.Store(false)
	h := newDiffHarness(t)
	for i, seed := range conversationSeeds {
		t.Run(fmt.Sprint(i), func(t *testing.T) { h.compare(t, seed) })
	}
	for _, p := range h.proxies {
		assert.Zero(t, p.withLoops.loops.Stats().IORings, "no loop has an io_uring")
	}
}

// forBoth runs test with a raw browser and backend connected through the proxy with event
// loops of a read limit, again through the one with the goroutine pipe, and through the
// one with event loops whose browser comes over TLS.
func forBoth(t *testing.T, limit int64, test func(t *testing.T, browser, backend *diffEnd)) {
	h := newDiffHarness(t)
	p := h.proxies[limit]
	for name, in := range map[string]entrance{"loops": p.loops, "pipe": p.pipe, "loops over TLS": p.loopsTLS} {
		t.Run(name, func(t *testing.T) {
			browser, backend := h.rawPair(t, in, "/"+strings.ReplaceAll(name, " ", "-"), nil)
			test(t, browser, backend)
		})
	}
}

// TestCloseWaitsForTheFrameInProgress has the backend break the protocol while the
// browser is in the middle of a frame: the backend's 1002 has to wait for that frame's end
// (a close frame cannot go inside another), and the loops, which stop relaying when a
// connection closes, still relay the rest of that frame so that the 1002 goes at all, as
// the goroutine pipe's does.
func TestCloseWaitsForTheFrameInProgress(t *testing.T) {
	forBoth(t, 70000, func(t *testing.T, browser, backend *diffEnd) {
		go browser.read()
		go backend.read()
		frame := appendFrame(nil, 0x01, payload(60000, 'x'), true) // a text fragment
		browser.send(frame[:20000])
		time.Sleep(50 * time.Millisecond) // relayed by now, very likely
		backend.send(appendFrame(nil, 0x89, payload(126, 'p'), false))
		time.Sleep(50 * time.Millisecond) // the loops begin closing
		browser.send(frame[20000:])
		awaitEnd(t, browser, backend)
		assert.Equal(t, "browser received:\n\tclose 1011", browser.record())
		assert.Equal(t, "backend received:\n\tclose 1002", backend.record())
	})
}

// TestBadFrameCutByARead has the backend send a frame that breaks the protocol (a ping of
// 126 bytes) in two writes, its header cut: the loops must not relay the header's first
// bytes before they know the frame is bad, or the browser's close could not follow them.
func TestBadFrameCutByARead(t *testing.T) {
	forBoth(t, 32, func(t *testing.T, browser, backend *diffEnd) {
		go browser.read()
		go backend.read()
		bad := appendFrame(appendFrame(nil, 0x81, []byte("fine"), false), 0x89, payload(126, 'p'), false)
		backend.send(bad[:6+3])
		time.Sleep(50 * time.Millisecond)
		backend.send(bad[6+3:])
		awaitEnd(t, browser, backend)
		assert.Equal(t, "browser received:\n\ttext \"fine\"\n\tclose 1011", browser.record())
		assert.Equal(t, "backend received:\n\tclose 1002", backend.record())
	})
}

// TestStuckWriteTellsTheOtherSide has a browser that reads nothing while the backend
// sends: once a write to the browser has waited WriteTimeout, the backend hears that the
// other side failed (1011) before its connection is closed, from the loops as from the
// goroutine pipe.
func TestStuckWriteTellsTheOtherSide(t *testing.T) {
	forBoth(t, 65535, func(t *testing.T, _, backend *diffEnd) {
		go backend.read() // and the browser reads nothing
		// The backend sends until the proxy takes no more (the connection has a deadline).
		go func() {
			msg := appendFrame(nil, 0x82, payload(60000, 'b'), false)
			for range 4000 {
				if _, err := backend.conn.Write(msg); err != nil {
					return
				}
			}
		}()
		awaitEnd(t, backend)
		assert.Equal(t, "backend received:\n\tclose 1011", backend.record())
	})
}

// TestProxyEventLoopsWithoutIORing runs the event-loop tests again with the socket calls
// made one by one, as on systems without io_uring.
func TestProxyEventLoopsWithoutIORing(t *testing.T) {
	eventloop.ForceNoIORing.Store(true)
	defer eventloop.ForceNoIORing.Store(false)
	for _, tt := range []struct {
		name string
		test func(*testing.T)
	}{
		{"relays", TestProxyRelays}, {"close codes", TestProxyCloseCodes}, {"read limit", TestProxyReadLimit},
		{"shutdown", TestProxyShutdownClosesHijackedConnections}, {"bytes with the upgrade", TestProxyKeepsBytesBufferedWithTheUpgrade},
		{"no goroutine leaks", TestNoGoroutineLeaks}, {"backpressure", TestEventLoopBackpressure},
	} {
		t.Run(tt.name, tt.test)
	}
}

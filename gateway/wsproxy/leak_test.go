package wsproxy

import (
	"runtime"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/require"
)

// active counts the proxied connections' sides, in the goroutine pipe and in event loops.
func (p *Proxy) active() int {
	p.mu.Lock()
	n := len(p.conns)
	p.mu.Unlock()
	if p.loops != nil {
		n += 2 * p.loops.Stats().Open
	}
	return n
}

// TestNoGoroutineLeaks drops browsers and backends without a close handshake: every
// proxied pair must end and give back its goroutines.
func TestNoGoroutineLeaks(t *testing.T) {
	b := newEchoBackend(t)
	p, srv := startProxy(t, ProxyConfig{Route: routeTo(b.wsURL()), PingInterval: time.Second})
	base := runtime.NumGoroutine()
	var conns []*websocket.Conn
	for range 20 {
		c, _, err := dialWS(t, srv, nil)
		require.NoError(t, err)
		conns = append(conns, c)
	}
	require.Eventually(t, func() bool { return p.active() == 40 }, 10*time.Second, 5*time.Millisecond)
	for i, c := range conns {
		if i%2 == 0 {
			c.UnderlyingConn().Close() // the browser vanishes
		} else {
			require.NoError(t, c.WriteMessage(websocket.TextMessage, []byte("vanish"))) // the backend does
		}
	}
	require.Eventually(t, func() bool { return p.active() == 0 }, 20*time.Second, 10*time.Millisecond,
		"every pair must end")
	require.Eventually(t, func() bool { return runtime.NumGoroutine() <= base+2 }, 20*time.Second, 10*time.Millisecond,
		"goroutines left behind: %d, %d before", runtime.NumGoroutine(), base)
}

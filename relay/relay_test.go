package relay

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/sessioncache"
)

func TestRelaySetGetDelete(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	c := dial(t, ClientConfig{Addr: r.Addr().String()})
	ctx := ctxT(t)

	_, _, err := entryParts(c.Get(ctx, "auths", []byte("s1")))
	require.ErrorIs(t, err, ErrNotFound)

	exp := time.Now().Add(time.Hour).Truncate(0)
	require.NoError(t, c.Publish(ctx, "auths", []byte("s1"), sessioncache.Entry{Value: []byte("alice"), Expiry: exp}))
	v, gotExp, err := entryParts(c.Get(ctx, "auths", []byte("s1")))
	require.NoError(t, err)
	assert.Equal(t, "alice", string(v))
	assert.True(t, exp.Equal(gotExp))

	local, err := r.Lookup([]byte("s1"))
	require.NoError(t, err)
	assert.Equal(t, "alice", string(local.Value), "the relay keeps what it relays in its own table")
	assert.NotZero(t, local.Rev, "an entry published without a revision gets one of the relay's clock")

	require.NoError(t, c.Delete(ctx, "auths", []byte("s1"), sessioncache.Entry{}))
	e, err := c.Get(ctx, "auths", []byte("s1"))
	require.ErrorIs(t, err, ErrNotFound)
	assert.True(t, e.Deleted, "the relay answers with the key's tombstone")
	assert.Greater(t, e.Rev, local.Rev)

	// An older version of a deleted key does not bring it back.
	require.NoError(t, c.Publish(ctx, "auths", []byte("s1"), sessioncache.Entry{Value: []byte("stale"), Expiry: exp, Rev: local.Rev}))
	_, err = c.Get(ctx, "auths", []byte("s1"))
	require.ErrorIs(t, err, ErrNotFound)
	// A newer one is a new entry.
	require.NoError(t, c.Publish(ctx, "auths", []byte("s1"), sessioncache.Entry{Value: []byte("again"), Expiry: exp, Rev: e.Rev + 1}))
	v, _, err = entryParts(c.Get(ctx, "auths", []byte("s1")))
	require.NoError(t, err)
	assert.Equal(t, "again", string(v))

	rtt, err := c.Ping(ctx)
	require.NoError(t, err)
	assert.Positive(t, rtt)

	err = c.Set(ctx, "other", []byte("k"), sessioncache.Entry{Value: []byte("v")})
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	assert.Contains(t, re.Message, "not stored here")
}

func TestRelayFansOutToOtherSubscribers(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	ctx := ctxT(t)
	a := dial(t, ClientConfig{Addr: r.Addr().String(), Name: "host-a"})
	b := dial(t, ClientConfig{Addr: r.Addr().String(), Name: "host-b"})
	gotA, gotB := newChanges(), newChanges()
	require.NoError(t, a.Subscribe(ctx, "auths", gotA.add))
	require.NoError(t, b.Subscribe(ctx, "auths", gotB.add))

	require.NoError(t, a.Publish(ctx, "auths", []byte("s1"), sessioncache.Entry{Value: []byte("from a")}))
	ch := gotB.wait(t, 1)
	assert.Equal(t, "s1", string(ch[0].Key))
	assert.Equal(t, "from a", string(ch[0].Value))

	require.NoError(t, b.Delete(ctx, "auths", []byte("s1"), sessioncache.Entry{}))
	ch = gotA.wait(t, 1)
	assert.True(t, ch[0].Deleted)
	assert.Equal(t, "s1", string(ch[0].Key))

	// Plain pub/sub on a path the relay does not store.
	require.NoError(t, a.Subscribe(ctx, "news", gotA.add))
	require.NoError(t, b.Publish(ctx, "news", []byte("n"), sessioncache.Entry{Value: []byte("hello")}))
	ch = gotA.wait(t, 2)
	assert.Equal(t, "hello", string(ch[1].Value))
	// The publisher does not receive its own publications.
	gotB.mu.Lock()
	assert.Len(t, gotB.got, 1)
	gotB.mu.Unlock()
}

func TestRelayFallsThroughToSiblingAndRelief(t *testing.T) {
	sib := startSibling(t, SiblingConfig{})
	r := startRelay(t, RelayConfig{Lower: sib, Table: tableConfig(t, 4)})
	ctx := ctxT(t)
	relief := newMemBackend()
	rc := dial(t, ClientConfig{Addr: sib.Addr().String(), Name: "relief", Backend: relief})
	require.NoError(t, rc.Subscribe(ctx, "auths", func(sessioncache.Change) {}))
	eventually(t, "the relief server to subscribe", func() bool { return sib.Relief() == 1 })

	c := dial(t, ClientConfig{Addr: r.Addr().String()})
	require.NoError(t, c.Publish(ctx, "auths", []byte("s1"), sessioncache.Entry{Value: []byte("v1")}))
	eventually(t, "the sibling to hand s1 to relief", func() bool { return relief.has("s1") })

	// Push s1 out of the relay's 4-record table; it goes to relief as an eviction.
	for i := range 8 {
		require.NoError(t, c.Publish(ctx, "auths", fmt.Appendf(nil, "fill-%d", i), sessioncache.Entry{Value: []byte("x")}))
	}
	eventually(t, "an eviction to reach relief", func() bool {
		for i := range 8 {
			if relief.wasEvicted(fmt.Sprintf("fill-%d", i)) || relief.wasEvicted("s1") {
				return true
			}
		}
		return false
	})
	// Whatever the relay's table lost, a Get falls through and gets it back.
	// Hand-downs are asynchronous, so a key may need a moment to arrive.
	for _, k := range []string{"s1", "fill-0", "fill-1", "fill-7"} {
		eventually(t, k+" to be readable", func() bool {
			v, _, err := entryParts(c.Get(ctx, "auths", []byte(k)))
			return err == nil && len(v) > 0
		})
	}
	// A delete reaches relief, and the key never comes back.
	require.NoError(t, c.Delete(ctx, "auths", []byte("s1"), sessioncache.Entry{}))
	eventually(t, "the delete to reach relief", func() bool { return !relief.has("s1") })
	_, _, err := entryParts(c.Get(ctx, "auths", []byte("s1")))
	require.ErrorIs(t, err, ErrNotFound)
}

// TestRelayReconnect restarts the relay on the same address: the client reconnects on its
// own and its subscription works again.
func TestRelayReconnect(t *testing.T) {
	tcfg := tableConfig(t, 100)
	r := startRelay(t, RelayConfig{Table: tcfg})
	addr := r.Addr().String()
	ctx := ctxT(t)
	c := dial(t, ClientConfig{Addr: addr, BackoffMin: 5 * time.Millisecond, BackoffMax: 50 * time.Millisecond})
	got := newChanges()
	require.NoError(t, c.Subscribe(ctx, "auths", got.add))
	require.NoError(t, c.Publish(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v")}))

	require.NoError(t, r.Close())
	eventually(t, "the client to notice", func() bool { return !c.Connected() })
	short, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
	_, _, err := entryParts(c.Get(short, "auths", []byte("k")))
	cancel()
	require.ErrorIs(t, err, ErrUnavailable)

	r2 := startRelay(t, RelayConfig{Addr: addr, Table: tcfg})
	// The table outlived the relay process: the creator reused it.
	v, _, err := entryParts(c.Get(ctx, "auths", []byte("k")))
	require.NoError(t, err)
	assert.Equal(t, "v", string(v))
	// The subscription was re-established on the new connection.
	other := dial(t, ClientConfig{Addr: r2.Addr().String()})
	require.NoError(t, other.Publish(ctx, "auths", []byte("k2"), sessioncache.Entry{Value: []byte("v2")}))
	ch := got.wait(t, 1)
	assert.Equal(t, "k2", string(ch[0].Key))
}

func TestClientErrors(t *testing.T) {
	t.Run("nothing listening", func(t *testing.T) {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		require.NoError(t, err)
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
		defer cancel()
		_, err = Dial(ctx, ClientConfig{Addr: addr, BackoffMin: time.Millisecond})
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Contains(t, err.Error(), addr)
	})
	t.Run("wrong secret", func(t *testing.T) {
		r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{Secret: "s3cret"}})
		ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
		defer cancel()
		_, err := Dial(ctx, ClientConfig{Addr: r.Addr().String(), Secret: "guess", BackoffMin: 10 * time.Millisecond})
		require.ErrorIs(t, err, ErrUnavailable)
		assert.Contains(t, err.Error(), "wrong secret")
		c := dial(t, ClientConfig{Addr: r.Addr().String(), Secret: "s3cret"})
		_, err = c.Ping(ctxT(t))
		require.NoError(t, err)
	})
	t.Run("closed client", func(t *testing.T) {
		r := startRelay(t, RelayConfig{})
		c := dial(t, ClientConfig{Addr: r.Addr().String()})
		require.NoError(t, c.Close())
		_, _, err := entryParts(c.Get(ctxT(t), "auths", []byte("k")))
		require.ErrorIs(t, err, ErrClosed)
	})
	t.Run("request deadline", func(t *testing.T) {
		c := dial(t, ClientConfig{Addr: silentServer(t), Heartbeat: -1})
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		_, _, err := entryParts(c.Get(ctx, "auths", []byte("k")))
		require.ErrorIs(t, err, ErrTimeout)
	})
	t.Run("default request timeout", func(t *testing.T) {
		// Contexts without a deadline get RequestTimeout, from the connection's sweeper:
		// a background context, a cancelable one, and many requests at once.
		c := dial(t, ClientConfig{Addr: silentServer(t), Heartbeat: -1, RequestTimeout: 150 * time.Millisecond})
		start := time.Now()
		_, _, err := entryParts(c.Get(context.Background(), "auths", []byte("k")))
		require.ErrorIs(t, err, ErrTimeout)
		require.GreaterOrEqual(t, time.Since(start), 150*time.Millisecond)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		require.ErrorIs(t, c.Set(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v")}), ErrTimeout)
		errs := make(chan error, 20)
		for range cap(errs) {
			go func() {
				errs <- c.Set(context.Background(), "auths", []byte("k"), sessioncache.Entry{Value: []byte("v")})
			}()
		}
		for range cap(errs) {
			require.ErrorIs(t, <-errs, ErrTimeout)
		}
	})
}

// silentServer listens on loopback for one connection, accepts its hello and then reads
// and never answers; it stops with the test.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	accepted := make(chan net.Conn, 1)
	t.Cleanup(func() {
		ln.Close()
		select {
		case nc := <-accepted:
			nc.Close()
		default:
		}
	})
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			return
		}
		accepted <- nc
		answerHelloThenSilent(nc)
	}()
	return ln.Addr().String()
}

// answerHelloThenSilent answers the first frame on nc (a client's hello) and then reads
// everything and answers nothing, until nc fails.
func answerHelloThenSilent(nc net.Conn) {
	var f wire.Frame
	rd := wire.NewReader(nc, 0)
	if rd.Read(&f) != nil {
		return
	}
	b, _ := wire.Append(nil, &wire.Frame{Op: wire.OpReply, ID: f.ID, Value: []byte{1}})
	nc.Write(b)
	for rd.Read(&f) == nil { // swallow requests and pings, never answer
	}
}

// TestAPeerThatEndsMidFrameIsClosedAtOnce: peers that send part of their hello and close
// their side are disconnected at once, not when the hello timer runs out, although their
// end may come with the bytes the server reads (the poller reports the two as one).
func TestAPeerThatEndsMidFrameIsClosedAtOnce(t *testing.T) {
	r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{HelloTimeout: time.Minute}})
	hello, _ := wire.Append(nil, &wire.Frame{Op: wire.OpHello, ID: 1, Value: []byte{wire.Version}})
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			nc, err := net.Dial("tcp", r.Addr().String())
			if !assert.NoError(t, err) {
				return
			}
			defer nc.Close()
			_, err = nc.Write(hello[:10])
			assert.NoError(t, err)
			assert.NoError(t, nc.(*net.TCPConn).CloseWrite())
			nc.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err = bytes.NewBuffer(nil).ReadFrom(nc)
			assert.NoError(t, err, "the server closes the connection at once")
		})
	}
	wg.Wait()
}

// TestServerSurvivesBadPeers sends garbage, oversize frames and requests before hello, and
// keeps a client that never reads: each is disconnected, and a good client is served
// throughout.
func TestServerSurvivesBadPeers(t *testing.T) {
	r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{MaxFrame: 4096, QueueLen: 8}})
	ctx := ctxT(t)
	good := dial(t, ClientConfig{Addr: r.Addr().String()})
	check := func() {
		t.Helper()
		require.NoError(t, good.Publish(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v")}))
		v, _, err := entryParts(good.Get(ctx, "auths", []byte("k")))
		require.NoError(t, err)
		require.Equal(t, "v", string(v))
	}
	hello, _ := wire.Append(nil, &wire.Frame{Op: wire.OpHello, ID: 1, Value: []byte{wire.Version}})
	tests := []struct {
		name string
		send []byte
	}{
		{"garbage", []byte("GET / HTTP/1.1\r\nHost: x\r\n\r\n")},
		{"oversize", append(append([]byte(nil), hello...), 0, 1, 0, 0)},
		{"malformed after hello", append(append(append([]byte(nil), hello...), 0, 0, 0, 30), bytes.Repeat([]byte{7}, 30)...)},
		{"request before hello", mustAppend(&wire.Frame{Op: wire.OpGet, ID: 1, Path: []byte("auths"), Key: []byte("k")})},
		{"truncated", hello[:10]},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			nc, err := net.Dial("tcp", r.Addr().String())
			require.NoError(t, err)
			defer nc.Close()
			_, err = nc.Write(tt.send)
			require.NoError(t, err)
			if tt.name == "truncated" {
				nc.(*net.TCPConn).CloseWrite()
			}
			// The server closes the connection: reading reaches EOF (after any reply).
			nc.SetReadDeadline(time.Now().Add(10 * time.Second))
			_, err = bytes.NewBuffer(nil).ReadFrom(nc)
			require.NoError(t, err, "the server should close the connection")
			check()
		})
	}
	t.Run("subscriber that never reads", func(t *testing.T) {
		nc, err := net.Dial("tcp", r.Addr().String())
		require.NoError(t, err)
		defer nc.Close()
		sub := mustAppend(&wire.Frame{Op: wire.OpSubscribe, ID: 2, Path: []byte("auths")})
		_, err = nc.Write(append(append([]byte(nil), hello...), sub...))
		require.NoError(t, err)
		// Publish far more than the socket buffers and the 8-message queue hold.
		big := bytes.Repeat([]byte("x"), 450)
		var wg sync.WaitGroup
		var failures atomic.Int64
		for g := range 4 {
			wg.Go(func() {
				for i := range 3000 {
					if err := good.Publish(ctx, "auths", fmt.Appendf(nil, "p%d-%d", g, i), sessioncache.Entry{Value: big}); err != nil {
						if failures.Add(1) == 1 {
							t.Log(err)
						}
					}
				}
			})
		}
		wg.Wait()
		assert.Zero(t, failures.Load(), "a stuck subscriber must not hold up publishers")
		check()
		// The stuck subscriber was disconnected: draining its socket ends in EOF.
		nc.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, err = bytes.NewBuffer(nil).ReadFrom(nc)
		require.NoError(t, err)
	})
}

func mustAppend(f *wire.Frame) []byte {
	b, err := wire.Append(nil, f)
	if err != nil {
		panic(err)
	}
	return b
}

// TestChildSibling runs the sibling as a child process over an inherited socket pair,
// kills it, and checks that the relay restarts it and keeps serving.
func TestChildSibling(t *testing.T) {
	exe, err := os.Executable()
	require.NoError(t, err)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	sibAddr := ln.Addr().String()
	ln.Close()
	child, err := NewChildSibling(ChildConfig{
		Command: []string{exe},
		// The child asks its relief servers for a secret; its parent's link needs none.
		Env:    []string{"GS_TEST_ROLE=sibling", "GS_SIBLING_ADDR=" + sibAddr, "GS_HINT_DIR=" + t.TempDir(), "GS_SIBLING_SECRET=s3cret"},
		Client: ClientConfig{BackoffMin: 10 * time.Millisecond, BackoffMax: 100 * time.Millisecond},
	})
	require.NoError(t, err)
	t.Cleanup(func() { child.Close() })
	r := startRelay(t, RelayConfig{Lower: child})
	ctx := ctxT(t)

	relief := newMemBackend()
	rc := dial(t, ClientConfig{Addr: sibAddr, Backend: relief, Secret: "s3cret", BackoffMin: 10 * time.Millisecond})
	require.NoError(t, rc.Subscribe(ctx, "auths", func(sessioncache.Change) {}))
	c := dial(t, ClientConfig{Addr: r.Addr().String()})
	require.NoError(t, c.Publish(ctx, "auths", []byte("k1"), sessioncache.Entry{Value: []byte("v1")}))
	eventually(t, "k1 to reach relief through the child", func() bool { return relief.has("k1") })

	pid := child.Pid()
	require.NotZero(t, pid)
	proc, err := os.FindProcess(pid)
	require.NoError(t, err)
	require.NoError(t, proc.Kill())
	eventually(t, "the child to be restarted and relief to reconnect to it", func() bool {
		return child.Starts() >= 2 && child.Connected() && rc.Connects() >= 2 && rc.Connected()
	})
	assert.NotEqual(t, pid, child.Pid())

	// The relief client reconnects to the new child and gets new entries again.
	require.NoError(t, c.Publish(ctx, "auths", []byte("k2"), sessioncache.Entry{Value: []byte("v2")}))
	eventually(t, "k2 to reach relief through the new child", func() bool { return relief.has("k2") })
	require.NoError(t, child.Close())
	assert.Zero(t, child.Pid(), "Close stops the child")
}

// TestRefusedRequestDoesNotStallOthers sends requests that cannot be encoded (a key too
// long for its length field) alongside valid ones on one connection: the valid ones must
// still be answered promptly.
func TestRefusedRequestDoesNotStallOthers(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	c := dial(t, ClientConfig{Addr: r.Addr().String(), Heartbeat: -1})
	ctx := ctxT(t)
	require.NoError(t, c.Publish(ctx, "auths", []byte("k"), sessioncache.Entry{Value: []byte("v")}))
	huge := make([]byte, 70000)
	var wg sync.WaitGroup
	for range 200 {
		wg.Go(func() {
			short, cancel := context.WithTimeout(ctx, 2*time.Second)
			defer cancel()
			_, _, err := entryParts(c.Get(short, "auths", []byte("k")))
			assert.NoError(t, err)
		})
		wg.Go(func() {
			_, _, err := entryParts(c.Get(ctx, "auths", huge))
			assert.ErrorIs(t, err, wire.ErrFrameTooLarge)
		})
	}
	wg.Wait()
}

// TestHeartbeatDetectsSilentPeer uses a server that completes the hello and then stays
// silent without closing the connection: the client's heartbeat declares it dead and
// reconnects.
func TestHeartbeatDetectsSilentPeer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	accepted := make(chan net.Conn, 4)
	go func() {
		for {
			nc, err := ln.Accept()
			if err != nil {
				return
			}
			accepted <- nc
			go answerHelloThenSilent(nc)
		}
	}()
	c := dial(t, ClientConfig{Addr: ln.Addr().String(), Heartbeat: 20 * time.Millisecond, BackoffMin: time.Millisecond})
	first := <-accepted
	defer first.Close()
	// Two silent intervals later the client gives up on it and dials again.
	select {
	case second := <-accepted:
		second.Close()
	case <-time.After(10 * time.Second):
		t.Fatal("the client never noticed the silent peer")
	}
	assert.GreaterOrEqual(t, c.Connects(), 1)
}

// TestReplyWhileAFrameIsHalfRead checks that a reply is sent while the rest of the peer's
// next frame has not arrived: the peer may send it only once it has the reply.
func TestReplyWhileAFrameIsHalfRead(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	nc, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer nc.Close()
	next := mustAppend(&wire.Frame{Op: wire.OpPing, ID: 3})
	var b []byte
	b = append(b, mustAppend(&wire.Frame{Op: wire.OpHello, ID: 1, Value: []byte{wire.Version}})...)
	b = append(b, mustAppend(&wire.Frame{Op: wire.OpPing, ID: 2})...)
	b = append(b, next[:6]...) // the next frame's length and a little of it
	_, err = nc.Write(b)
	require.NoError(t, err)
	nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	rd := wire.NewReader(nc, 1<<20)
	var f wire.Frame
	for _, id := range []uint64{1, 2} {
		require.NoError(t, rd.Read(&f), "no reply to frame %d while the next is half sent", id)
		require.Equal(t, wire.OpReply, f.Op)
		require.Equal(t, id, f.ID)
	}
	_, err = nc.Write(next[6:])
	require.NoError(t, err)
	require.NoError(t, rd.Read(&f))
	require.Equal(t, uint64(3), f.ID)
}

// TestConnectionLimitAndHelloDeadline: a connection that never says hello is closed after
// HelloTimeout; beyond MaxConns a new connection is closed at once, and counted; once a
// connection ends, a new one is served again.
func TestConnectionLimitAndHelloDeadline(t *testing.T) {
	r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{MaxConns: 2, HelloTimeout: 200 * time.Millisecond}})
	closedByServer := func(nc net.Conn) {
		t.Helper()
		nc.SetReadDeadline(time.Now().Add(10 * time.Second)) // a guard: the server closes first
		_, err := bytes.NewBuffer(nil).ReadFrom(nc)
		require.NoError(t, err, "the server closes the connection")
	}
	silent, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer silent.Close()
	closedByServer(silent) // no hello: closed after HelloTimeout
	eventually(t, "the server to forget the closed connection", func() bool { return r.Server().Open == 0 })

	a := dial(t, ClientConfig{Addr: r.Addr().String()})
	b := dial(t, ClientConfig{Addr: r.Addr().String(), BackoffMin: time.Hour})
	extra, err := net.Dial("tcp", r.Addr().String())
	require.NoError(t, err)
	defer extra.Close()
	closedByServer(extra) // the third of at most two
	assert.Equal(t, int64(1), r.Server().Refused)
	_, err = a.Ping(ctxT(t))
	require.NoError(t, err, "the connections within the limit are served")

	require.NoError(t, b.Close())
	eventually(t, "a place to free up", func() bool {
		c, err := Dial(ctxT(t), ClientConfig{Addr: r.Addr().String()})
		if err != nil {
			return false
		}
		defer c.Close()
		_, err = c.Ping(ctxT(t))
		return err == nil
	})
}

// rawPeer is a connection to a server speaking frames directly, for tests of what the
// server answers.
type rawPeer struct {
	t  *testing.T
	nc net.Conn
	rd *wire.Reader
}

func rawHello(t *testing.T, addr string) *rawPeer {
	t.Helper()
	nc, err := net.Dial("tcp", addr)
	require.NoError(t, err)
	t.Cleanup(func() { nc.Close() })
	p := &rawPeer{t: t, nc: nc, rd: wire.NewReader(bufio.NewReader(nc), 0)}
	p.send(&wire.Frame{Op: wire.OpHello, ID: 1, Value: []byte{wire.Version}})
	require.Equal(t, uint64(1), p.next().ID)
	return p
}

func (p *rawPeer) send(f *wire.Frame) {
	p.t.Helper()
	_, err := p.nc.Write(mustAppend(f))
	require.NoError(p.t, err)
}

// next returns the next frame the server sends (a guard deadline stops a hang).
func (p *rawPeer) next() wire.Frame {
	p.t.Helper()
	p.nc.SetReadDeadline(time.Now().Add(10 * time.Second))
	var f wire.Frame
	require.NoError(p.t, p.rd.Read(&f))
	return f
}

// TestServersHonourTheirFlags: on the relay and on the sibling, a set or evict with flag
// 0x04 (no reply) gets no answer, and a publish with flag 0x02 (no fan-out) on a path the
// server does not store reaches no subscriber.
func TestServersHonourTheirFlags(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	s := startSibling(t, SiblingConfig{})
	for _, srv := range []struct {
		name string
		addr string
	}{{"relay", r.Addr().String()}, {"sibling", s.Addr().String()}} {
		t.Run(srv.name, func(t *testing.T) {
			p := rawHello(t, srv.addr)
			p.send(&wire.Frame{Op: wire.OpSet, Flags: wire.FlagNoReply, Path: []byte("auths"), Key: []byte("k"), Value: []byte("v"), Rev: 1})
			p.send(&wire.Frame{Op: wire.OpEvict, Flags: wire.FlagNoReply, Path: []byte("auths"), Key: []byte("e"), Value: []byte("v"), Rev: 1})
			p.send(&wire.Frame{Op: wire.OpPing, ID: 7})
			got := p.next()
			assert.Equal(t, uint64(7), got.ID, "the first answer is the ping's: the set and evict without reply got none")

			sub := rawHello(t, srv.addr)
			sub.send(&wire.Frame{Op: wire.OpSubscribe, ID: 2, Path: []byte("news")})
			require.Equal(t, uint64(2), sub.next().ID)
			p.send(&wire.Frame{Op: wire.OpPublish, ID: 8, Flags: wire.FlagNoFanout, Path: []byte("news"), Key: []byte("quiet"), Value: []byte("x")})
			assert.Equal(t, uint64(8), p.next().ID)
			p.send(&wire.Frame{Op: wire.OpPublish, ID: 9, Path: []byte("news"), Key: []byte("loud"), Value: []byte("x")})
			assert.Equal(t, uint64(9), p.next().ID)
			msg := sub.next()
			assert.Equal(t, wire.OpMessage, msg.Op)
			assert.Equal(t, "loud", string(msg.Key), "the publish without fan-out reached no subscriber")
		})
	}
}

// TestAnHTTPRequestIsNamed: an HTTP request sent to a relay's port is closed with one log
// line saying the port speaks the relay protocol.
func TestAnHTTPRequestIsNamed(t *testing.T) {
	var logs bytes.Buffer
	var mu sync.Mutex
	log := slog.New(slog.NewTextHandler(writerFunc(func(p []byte) (int, error) {
		mu.Lock()
		defer mu.Unlock()
		return logs.Write(p)
	}), nil))
	r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{Logger: log}})
	resp, err := http.Get("http://" + r.Addr().String() + "/")
	if err == nil {
		resp.Body.Close()
	}
	require.Error(t, err, "the relay does not answer HTTP")
	eventually(t, "the log line", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return strings.Contains(logs.String(), "an HTTP request reached a port that speaks the relay protocol")
	})
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// TestFrameBudget: large frames (over 64 KiB) take shares of the server's FrameBudget while
// they are received. Peers that announce large frames and send half of them hold the whole
// budget; a third large frame then waits (its connection's small frames behind it too),
// while other connections' small requests are served; once a holder goes, it is served.
func TestFrameBudget(t *testing.T) {
	const size = 512 << 10
	r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{FrameBudget: 2*size + 4096, MaxFrame: size + 1024}})
	big := func(id uint64) []byte {
		return mustAppend(&wire.Frame{Op: wire.OpPublish, ID: id, Path: []byte("news"), Value: make([]byte, size)})
	}
	var holders []*rawPeer
	for range 2 {
		p := rawHello(t, r.Addr().String())
		b := big(2)
		_, err := p.nc.Write(b[:len(b)/2]) // and never the rest
		require.NoError(t, err)
		holders = append(holders, p)
	}
	eventually(t, "two half-sent frames to hold the budget", func() bool { return r.Server().LargeFrameBytes >= 2*size })

	waiter := rawHello(t, r.Addr().String())
	_, err := waiter.nc.Write(append(big(3), mustAppend(&wire.Frame{Op: wire.OpPing, ID: 4})...))
	require.NoError(t, err)
	eventually(t, "the third large frame to wait", func() bool { return r.Server().LargeFrameWaits == 1 })

	other := rawHello(t, r.Addr().String())
	other.send(&wire.Frame{Op: wire.OpPing, ID: 9})
	require.Equal(t, uint64(9), other.next().ID, "small frames of other connections are served")

	holders[0].nc.Close()
	for _, id := range []uint64{3, 4} {
		f := waiter.next()
		require.Equal(t, id, f.ID)
		require.Equal(t, wire.StatusOK, f.Status)
	}
	eventually(t, "the served frame's share to come back", func() bool {
		held := r.Server().LargeFrameBytes
		return held > size && held < 2*size // the one holder left
	})
}

// A client whose server stays down stops making callers wait: once its attempts have
// failed for WaitForServer, a request without a deadline (RequestTimeout is an hour here)
// fails at once with ErrUnavailable naming the server, and the error is not repeated
// within itself. Once the server is back, requests are served again.
func TestRequestsDoNotWaitForADeadServer(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	addr := r.Addr().String()
	c := dial(t, ClientConfig{Addr: addr, RequestTimeout: time.Hour, WaitForServer: 50 * time.Millisecond,
		BackoffMin: 5 * time.Millisecond, BackoffMax: 20 * time.Millisecond})
	require.NoError(t, r.Close())
	eventually(t, "the client to notice", func() bool { return !c.Connected() })
	err := c.Set(context.Background(), "auths", []byte("k"), sessioncache.Entry{Value: []byte("v")})
	require.ErrorIs(t, err, ErrUnavailable)
	assert.Contains(t, err.Error(), addr)
	assert.Equal(t, 1, strings.Count(err.Error(), "server unavailable"), err.Error())

	require.ErrorIs(t, c.SetStream("auths", []byte("k"), sessioncache.Entry{Value: []byte("v")}), ErrUnavailable,
		"a stream write fails at once with no connection")

	r2 := startRelay(t, RelayConfig{Addr: addr})
	eventually(t, "requests to be served again", func() bool {
		return c.Set(context.Background(), "auths", []byte("k"), sessioncache.Entry{Value: []byte("v")}) == nil
	})
	require.NoError(t, c.SetStream("auths", []byte("streamed"), sessioncache.Entry{Value: []byte("s")}))
	eventually(t, "the streamed entry to be stored", func() bool {
		e, err := r2.Lookup([]byte("streamed"))
		return err == nil && string(e.Value) == "s"
	})
}

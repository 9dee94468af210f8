package endpoint

import (
	"context"
	"io"
	"log/slog"
	"net"
	"testing"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
)

// TestWriteSocketDeadline: a write that has to wait for a slow reader sets the write
// timeout and clears it once done, so a write long after still goes through; one to a
// peer that never reads fails after the timeout.
func TestWriteSocketDeadline(t *testing.T) {
	nc, peer := loopbackPair(t)
	defer peer.Close()
	// Fixed socket buffers: the kernel's autotuning may otherwise grow them (up to
	// tcp_rmem's maximum, 32 MiB on some machines) until the big write below fits.
	if err := peer.(*net.TCPConn).SetReadBuffer(256 << 10); err != nil {
		t.Fatal(err)
	}
	if err := nc.(*net.TCPConn).SetWriteBuffer(256 << 10); err != nil {
		t.Fatal(err)
	}
	const timeout = time.Second
	c := newConn(nc, connConfig{name: "test", logger: slog.New(slog.DiscardHandler), writeTimeout: timeout})
	defer c.close(nil)
	if c.raw == nil {
		t.Skip("no raw socket on this platform")
	}

	// More than the socket buffers hold: the write waits until the peer reads it all.
	big := make([]byte, 16<<20)
	read := make(chan error, 1)
	go func() {
		_, err := io.ReadFull(peer, make([]byte, len(big)))
		read <- err
	}()
	c.wmu.Lock()
	n, err := c.writeSocket(big)
	c.wmu.Unlock()
	if err != nil || n != len(big) {
		t.Fatalf("big write: %d of %d bytes, %v", n, len(big), err)
	}
	if err := <-read; err != nil {
		t.Fatal(err)
	}

	// Well past the deadline the big write had: a small write must not fail on it.
	time.Sleep(2 * timeout)
	c.wmu.Lock()
	n, err = c.writeSocket([]byte("after"))
	c.wmu.Unlock()
	if err != nil || n != 5 {
		t.Fatalf("write after the timeout passed: %d bytes, %v", n, err)
	}

	// A peer that reads nothing more: the write fails after the timeout.
	start := time.Now()
	c.wmu.Lock()
	_, err = c.writeSocket(big)
	c.wmu.Unlock()
	if err == nil {
		t.Fatal("a write to a peer that does not read succeeded")
	}
	if d := time.Since(start); d < timeout {
		t.Fatalf("the write failed after %v, before the timeout of %v: %v", d, timeout, err)
	}
}

// replyOK answers every request with StatusOK.
type replyOK struct{}

func (replyOK) serve(c *conn, f *wire.Frame) { c.reply(f.ID, wire.StatusOK, 0, nil, 0) }

// loopbackPair returns both ends of a TCP connection on loopback.
func loopbackPair(t *testing.T) (dialed, accepted net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	got := make(chan net.Conn, 1)
	go func() {
		nc, err := ln.Accept()
		if err != nil {
			close(got)
			return
		}
		got <- nc
	}()
	dialed, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	if accepted = <-got; accepted == nil {
		t.Fatal("accept failed")
	}
	return dialed, accepted
}

// connPair returns both ends of a loopback connection as conns, not started: a client, and
// a server that answers every request with StatusOK. Both are closed when the test ends.
func connPair(t *testing.T) (client, server *conn) {
	d, a := loopbackPair(t)
	log := slog.New(slog.DiscardHandler)
	server = newConn(a, connConfig{name: "server", logger: log, dispatch: replyOK{}})
	client = newConn(d, connConfig{name: "client", logger: log, dialed: true})
	t.Cleanup(func() {
		client.close(nil)
		server.close(nil)
	})
	return client, server
}

// TestReadersMakeNoEmptyReads: a request and its reply, one after the other, cost each
// end one read per frame and none that finds the socket empty (after a read that leaves
// the socket empty a reader waits for its readiness instead of reading again), where a
// reader that read until the socket said "would block" would make one such read on each
// end per request. A few may still happen when the poller reports readiness for bytes a
// read already took.
func TestReadersMakeNoEmptyReads(t *testing.T) {
	client, server := connPair(t)
	if server.raw == nil || client.raw == nil {
		t.Skip("no raw sockets on this platform")
	}
	server.start()
	client.start()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const requests = 400
	for range requests {
		cl, err := client.roundTrip(ctx, &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatal(err)
		}
		if cl.status != wire.StatusOK {
			t.Fatalf("status %d", cl.status)
		}
		putCall(cl)
	}
	empty := server.raw.empty.Load() + client.raw.empty.Load()
	t.Logf("%d reads found the socket empty in %d requests", empty, requests)
	if empty > requests/8 {
		t.Fatalf("%d reads found the socket empty in %d requests, want few", empty, requests)
	}
}

// TestPipelinedRequestsShareWrites: callers that pipeline requests on one connection (each
// sends its next request as soon as its reply comes) send them in shared writes: the
// requests that follow a batch of replies leave together, not one write each.
func TestPipelinedRequestsShareWrites(t *testing.T) {
	client, server := connPair(t)
	server.start()
	client.start()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	const callers, each = 16, 500
	pingFrom(t, client, callers, each, func(int, int) context.Context { return ctx })
	writes := client.flushes.Load()
	perWrite := float64(callers*each) / float64(writes)
	t.Logf("%d requests in %d writes: %.1f a write", callers*each, writes, perWrite)
	if perWrite < 4 {
		t.Fatalf("%.1f requests a write from %d pipelining callers, want them to share writes", perWrite, callers)
	}
}

// pingFrom has callers goroutines ping through client each times at once, caller g's i-th
// ping under ctxOf(g, i), and fails the test on the first error.
func pingFrom(t *testing.T, client *conn, callers, each int, ctxOf func(g, i int) context.Context) {
	t.Helper()
	errs := make(chan error, callers)
	for g := range callers {
		go func() {
			for i := range each {
				cl, err := client.roundTrip(ctxOf(g, i), &wire.Frame{Op: wire.OpPing})
				if err != nil {
					errs <- err
					return
				}
				putCall(cl)
			}
			errs <- nil
		}()
	}
	for range callers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

package endpoint

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"log/slog"
	"net"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/globalsession/globalsession/internal/testpki"
	"github.com/globalsession/globalsession/internal/wire"
)

// holdGets answers pings at once and holds gets until release says so (or never).
type holdGets struct {
	mu   sync.Mutex
	held []uint64
}

func (h *holdGets) serve(c *conn, f *wire.Frame) {
	if f.Op == wire.OpGet {
		h.mu.Lock()
		h.held = append(h.held, f.ID)
		h.mu.Unlock()
		return
	}
	c.reply(f.ID, wire.StatusOK, 0, nil, 0)
}

// sharedPair is connPair with a client that reads with shared reading, a request timeout
// of timeout, and a server that answers with d.
func sharedPair(t *testing.T, d dispatcher, timeout time.Duration) (client, server *conn) {
	dc, ac := loopbackPair(t)
	return startShared(t, dc, ac, d, connConfig{requestTimeout: timeout})
}

// startShared makes conns of both ends, the dialed one reading with shared reading (cfg
// adds to its configuration), starts them and closes them when the test ends. It skips
// the test where the client cannot share reading.
func startShared(t *testing.T, dc, ac net.Conn, d dispatcher, cfg connConfig) (client, server *conn) {
	log := slog.New(slog.DiscardHandler)
	server = newConn(ac, connConfig{name: "server", logger: log, dispatch: d})
	cfg.name, cfg.logger, cfg.dialed, cfg.sharedRead = "client", log, true, true
	client = newConn(dc, cfg)
	t.Cleanup(func() {
		client.close(nil)
		server.close(nil)
	})
	if !client.shared {
		t.Skip("no raw sockets on this platform")
	}
	server.start()
	client.start()
	return client, server
}

// TestLoneCallerReadsItsOwnReply: one caller at a time, with a context that cannot be
// cancelled, reads its reply itself rather than through the reader goroutine.
func TestLoneCallerReadsItsOwnReply(t *testing.T) {
	client, _ := sharedPair(t, replyOK{}, 10*time.Second)
	const calls = 300
	for range calls {
		cl, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatal(err)
		}
		putCall(cl)
	}
	own := client.ownReads.Load()
	t.Logf("%d of %d callers read their own replies", own, calls)
	if own < calls*9/10 {
		t.Fatalf("%d of %d callers read their own replies, want nearly all", own, calls)
	}
}

// TestCallersShareReading: many callers at once, some with cancellable contexts (which
// never read themselves), some without, all get their replies, over and over. A caller
// whose reply another reader handled before it took the token must not wait for more
// bytes (none come once the others are done): its call would end in ErrTimeout.
func TestCallersShareReading(t *testing.T) {
	client, _ := sharedPair(t, replyOK{}, 2*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	const callers, each = 16, 1000
	pingFrom(t, client, callers, each, func(g, i int) context.Context {
		if (g+i)%7 == 0 {
			return ctx
		}
		return context.Background()
	})
	t.Logf("%d of %d calls read by their callers", client.ownReads.Load(), callers*each)
}

// TestIdleConnectionNoticesItsEnd: a connection nobody calls on still reads, so it notices
// at once that its peer closed it (its reader goroutine takes the reading back once it
// stays free).
func TestIdleConnectionNoticesItsEnd(t *testing.T) {
	client, server := sharedPair(t, replyOK{}, 10*time.Second)
	for range 20 {
		cl, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatal(err)
		}
		putCall(cl)
	}
	server.close(nil)
	select {
	case <-client.done:
	case <-time.After(5 * time.Second):
		t.Fatal("an idle client did not notice within 5s that its peer closed the connection")
	}
	if _, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpPing}); !errors.Is(err, ErrConnLost) {
		t.Fatalf("a call after the end: %v, want ErrConnLost", err)
	}
}

// TestDeadlineWhileReadingOwnReply: a caller that reads for a reply that never comes is
// woken at its deadline and fails with ErrTimeout; the connection still works after.
func TestDeadlineWhileReadingOwnReply(t *testing.T) {
	h := &holdGets{}
	client, _ := sharedPair(t, h, 200*time.Millisecond)
	start := time.Now()
	_, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpGet, Path: []byte("p"), Key: []byte("k")})
	if !errors.Is(err, ErrTimeout) {
		t.Fatalf("a get nobody answers: %v, want ErrTimeout", err)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the timeout of 200ms took %v", d)
	}
	for range 20 {
		cl, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatalf("a ping after the timeout: %v", err)
		}
		putCall(cl)
	}
	if client.ownReads.Load() == 0 {
		t.Fatal("no caller read its own reply after the timeout")
	}
}

// TestReadAlwaysKeepsTheReader: once the peer may send unasked, the reader goroutine keeps
// reading, callers no longer read, and a message pushed while no call is pending arrives.
func TestReadAlwaysKeepsTheReader(t *testing.T) {
	got := make(chan string, 1)
	dc, ac := loopbackPair(t)
	client, server := startShared(t, dc, ac, replyOK{}, connConfig{requestTimeout: 10 * time.Second,
		onMsg: func(f *wire.Frame) { got <- string(f.Value) }})
	client.readAlways()
	for range 20 {
		cl, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatal(err)
		}
		putCall(cl)
	}
	if n := client.ownReads.Load(); n != 0 {
		t.Fatalf("%d callers read their own replies on a connection that reads always", n)
	}
	server.push(&wire.Frame{Op: wire.OpMessage, Path: []byte("p"), Value: []byte("pushed")})
	select {
	case v := <-got:
		if v != "pushed" {
			t.Fatalf("got %q", v)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a message pushed to a connection with no call pending did not arrive")
	}
}

// TestCallerWhoseReplyCameFirstDoesNotWait: a caller whose reply another reader handled
// before it took the token returns at once instead of waiting on the socket for bytes
// that will not come.
func TestCallerWhoseReplyCameFirstDoesNotWait(t *testing.T) {
	client, _ := sharedPair(t, replyOK{}, 10*time.Second)
	// Until a first reply, the reader goroutine holds the token, waiting on the socket.
	deadline := time.Now().Add(5 * time.Second)
	for !client.reading.Load() {
		if time.Now().After(deadline) {
			t.Fatal("the reader goroutine did not start reading")
		}
		time.Sleep(time.Millisecond)
	}
	f := &wire.Frame{Op: wire.OpPing, ID: client.nextID.Add(1)}
	cl := callPool.Get().(*call)
	cl.err, cl.op, cl.own = nil, f.Op, true // a caller that may read itself
	client.mu.Lock()
	client.pending[f.ID] = cl
	client.mu.Unlock()
	if err := client.write(f); err != nil {
		t.Fatal(err)
	}
	// The reader goroutine delivers the reply and gives the token back (for idleAfter,
	// before it takes it again).
	for len(cl.done) == 0 || client.reading.Load() {
		if time.Now().After(deadline) {
			t.Fatalf("the reader did not deliver the reply and give the token back (delivered %v)", len(cl.done) > 0)
		}
		time.Sleep(time.Millisecond)
	}
	returned := make(chan struct{})
	go func() {
		client.awaitShared(cl, false)
		close(returned)
	}()
	select {
	case <-returned:
	case <-time.After(2 * time.Second):
		t.Fatal("a caller whose reply had come waited on the socket")
	}
	<-cl.done
	if cl.err != nil || cl.status != wire.StatusOK {
		t.Fatalf("the reply: status %v, err %v", cl.status, cl.err)
	}
}

// TestCancellableCallersFindTheReaderReading: callers that cannot read themselves (their
// contexts can be cancelled) leave the reading to the reader goroutine, which keeps it
// between their calls instead of being woken for each.
func TestCancellableCallersFindTheReaderReading(t *testing.T) {
	client, _ := sharedPair(t, replyOK{}, 10*time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 50 {
		cl, err := client.roundTrip(ctx, &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatal(err)
		}
		putCall(cl)
		if i > 0 && !client.reading.Load() {
			t.Fatalf("after call %d the reader goroutine had given the reading up", i)
		}
	}
	if n := client.ownReads.Load(); n != 0 {
		t.Fatalf("%d cancellable callers read their own replies", n)
	}
}

// tlsSharedPair is sharedPair over TLS.
func tlsSharedPair(t *testing.T, d dispatcher, cfg connConfig) (client, server *conn) {
	pki := testpki.New(t)
	cert, err := tls.LoadX509KeyPair(pki.ServerCert, pki.ServerKey)
	if err != nil {
		t.Fatal(err)
	}
	caPEM, err := os.ReadFile(pki.CACert)
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(caPEM)
	dc, ac := loopbackPair(t)
	tc, ts := tls.Client(withRawIO(dc), &tls.Config{RootCAs: roots, ServerName: "localhost"}),
		tls.Server(ac, &tls.Config{Certificates: []tls.Certificate{cert}})
	handshake := make(chan error, 1)
	go func() { handshake <- ts.Handshake() }()
	if err := tc.Handshake(); err != nil {
		t.Fatal(err)
	}
	if err := <-handshake; err != nil {
		t.Fatal(err)
	}
	client, server = startShared(t, tc, ts, d, cfg)
	return client, server
}

// TestSharedReadingOverTLS: over TLS too, a lone caller reads its own reply, and one whose
// reply never comes is woken at its deadline, the connection still working after.
func TestSharedReadingOverTLS(t *testing.T) {
	client, _ := tlsSharedPair(t, &holdGets{}, connConfig{requestTimeout: 200 * time.Millisecond})
	const calls = 200
	for range calls {
		cl, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatal(err)
		}
		putCall(cl)
	}
	if own := client.ownReads.Load(); own < calls*9/10 {
		t.Fatalf("%d of %d callers read their own replies over TLS, want nearly all", own, calls)
	}
	if _, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpGet, Path: []byte("p"), Key: []byte("k")}); !errors.Is(err, ErrTimeout) {
		t.Fatalf("a get nobody answers: %v, want ErrTimeout", err)
	}
	for range 20 {
		cl, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatalf("a ping after the timeout: %v", err)
		}
		putCall(cl)
	}
}

// slowReplies answers after its delay (nanoseconds), on the server's reader.
type slowReplies struct{ delay atomic.Int64 }

func (s *slowReplies) serve(c *conn, f *wire.Frame) {
	time.Sleep(time.Duration(s.delay.Load()))
	c.reply(f.ID, wire.StatusOK, 0, nil, 0)
}

// pings makes n calls in turn, each with a context that cannot be cancelled.
func pings(t *testing.T, client *conn, n int) {
	t.Helper()
	for range n {
		cl, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpPing})
		if err != nil {
			t.Fatal(err)
		}
		putCall(cl)
	}
}

// needProcessors skips a test of polling where the runtime has one logical processor, on
// which nothing polls.
func needProcessors(t *testing.T) {
	if runtime.GOMAXPROCS(0) < 2 {
		t.Skip("callers do not poll with GOMAXPROCS 1")
	}
}

// TestLoneCallerPollsForItsReply: a caller alone on its connection polls for a reply that
// comes within pollReply, over plain TCP and TLS, and gets every reply.
func TestLoneCallerPollsForItsReply(t *testing.T) {
	needProcessors(t)
	cfg := connConfig{requestTimeout: 10 * time.Second, pollReply: time.Second}
	dc, ac := loopbackPair(t)
	plain, _ := startShared(t, dc, ac, replyOK{}, cfg)
	secure, _ := tlsSharedPair(t, replyOK{}, cfg)
	for name, client := range map[string]*conn{"plain": plain, "TLS": secure} {
		const calls = 200
		pings(t, client, calls)
		if polls, own := client.polls.Load(), client.ownReads.Load(); polls < own*9/10 || own < calls*9/10 {
			t.Errorf("%s: %d of %d callers polled, %d read their own replies; want nearly all both", name, polls, calls, own)
		}
		if client.pollOff.Load() {
			t.Errorf("%s: polling off after replies that came within a second", name)
		}
	}
}

// TestSlowRepliesTurnPollingOff: after a reply that came later than pollReply the next
// caller sleeps at once; after one that came within it, callers poll again.
func TestSlowRepliesTurnPollingOff(t *testing.T) {
	needProcessors(t)
	slow := &slowReplies{}
	slow.delay.Store(int64(20 * time.Millisecond))
	dc, ac := loopbackPair(t)
	client, _ := startShared(t, dc, ac, slow, connConfig{requestTimeout: 10 * time.Second, pollReply: 2 * time.Millisecond})
	pings(t, client, 1) // read by the reader goroutine or its caller; either way it is slow
	pings(t, client, 1)
	if !client.pollOff.Load() {
		t.Fatal("polling still on after a reply 20ms late, pollReply 2ms")
	}
	before := client.polls.Load()
	pings(t, client, 3)
	if polled := client.polls.Load() - before; polled != 0 {
		t.Fatalf("%d callers polled for replies known to come late", polled)
	}
	slow.delay.Store(0)
	// The first quick reply a caller reads itself turns polling back on for the next;
	// replies the reader goroutine delivers (it may read for a while after the slow ones)
	// leave it as it is.
	for i := 0; client.polls.Load() == before; i++ {
		if i == 200 {
			t.Fatalf("no caller polled in %d calls with quick replies (polling off: %v)", i, client.pollOff.Load())
		}
		pings(t, client, 1)
	}
}

// TestCallersWithCompanyDoNotPoll: while another call is pending, or was lately, a caller
// sleeps rather than polls, leaving the processors to the others.
func TestCallersWithCompanyDoNotPoll(t *testing.T) {
	needProcessors(t)
	dc, ac := loopbackPair(t)
	client, _ := startShared(t, dc, ac, &holdGets{}, connConfig{requestTimeout: 10 * time.Second, pollReply: 20 * time.Millisecond})
	got := make(chan error, 1)
	go func() {
		// Held by the server: pending until the connection closes at the test's end.
		_, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpGet, Path: []byte("p"), Key: []byte("k")})
		got <- err
	}()
	for i := 0; !client.callsPending(); i++ {
		if i == 1000 {
			t.Fatal("the held get never became pending")
		}
		time.Sleep(time.Millisecond)
	}
	before := client.polls.Load() // the get's caller, alone when it began, may have polled
	pings(t, client, 20)
	if polls := client.polls.Load() - before; polls != 0 {
		t.Fatalf("%d callers polled while another call was pending", polls)
	}
}

// cutOnGet answers pings and closes the connection when asked a get.
type cutOnGet struct{}

func (cutOnGet) serve(c *conn, f *wire.Frame) {
	if f.Op == wire.OpGet {
		go c.close(errors.New("cut"))
		return
	}
	c.reply(f.ID, wire.StatusOK, 0, nil, 0)
}

// TestPollingCallerSeesTheLinkCut: a caller polling for its reply when the peer closes the
// connection fails at once with ErrConnLost, well within its deadline.
func TestPollingCallerSeesTheLinkCut(t *testing.T) {
	needProcessors(t)
	dc, ac := loopbackPair(t)
	client, _ := startShared(t, dc, ac, cutOnGet{}, connConfig{requestTimeout: 10 * time.Second, pollReply: time.Second})
	pings(t, client, 5) // polling on: quick replies
	before := client.polls.Load()
	start := time.Now()
	_, err := client.roundTrip(context.Background(), &wire.Frame{Op: wire.OpGet, Path: []byte("p"), Key: []byte("k")})
	if !errors.Is(err, ErrConnLost) {
		t.Fatalf("a get whose connection was cut: %v, want ErrConnLost", err)
	}
	if client.polls.Load() == before {
		t.Fatal("the caller did not poll")
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("the cut took %v to notice", d)
	}
}

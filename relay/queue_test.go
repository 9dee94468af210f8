package relay

import (
	"context"
	"errors"
	"fmt"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/sessioncache"
)

// startQueueMember dials r and joins path's queue as name, answering "name:value".
func startQueueMember(t *testing.T, r *Relay, path, name string, served *sync.Map) *Client {
	t.Helper()
	c := dial(t, ClientConfig{Addr: r.Addr().String(), Name: name})
	require.NoError(t, c.Join(ctxT(t), path, name, func(_ context.Context, key, value []byte) ([]byte, error) {
		if served != nil {
			n, _ := served.LoadOrStore(name, new(atomic.Int64))
			n.(*atomic.Int64).Add(1)
		}
		return []byte(name + ":" + string(value)), nil
	}))
	return c
}

func TestQueueDeliversEachRequestToOneMember(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	var served sync.Map
	names := []string{"w1", "w2", "w3"}
	for _, n := range names {
		startQueueMember(t, r, "jobs", n, &served)
	}
	sender := dial(t, ClientConfig{Addr: r.Addr().String()})
	const requests = 300
	var wg sync.WaitGroup
	errs := make(chan error, requests)
	for i := range requests {
		wg.Go(func() {
			v, err := sender.Request(ctxT(t), "jobs", []byte("k"), fmt.Appendf(nil, "%d", i))
			if err != nil {
				errs <- err
				return
			}
			name, val, ok := bytesCut(v)
			if !ok || !slices.Contains(names, name) || val != fmt.Sprint(i) {
				errs <- fmt.Errorf("request %d: answer %q", i, v)
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	total := int64(0)
	for _, n := range names {
		v, ok := served.Load(n)
		require.True(t, ok, "%s served nothing", n)
		got := v.(*atomic.Int64).Load()
		total += got
		// Requests go to the least busy member, taking turns: none is starved.
		require.Greater(t, got, int64(requests/10), "%s served %d of %d", n, got, requests)
	}
	require.Equal(t, int64(requests), total, "every request was handled exactly once")
}

func bytesCut(v []byte) (string, string, bool) {
	for i, b := range v {
		if b == ':' {
			return string(v[:i]), string(v[i+1:]), true
		}
	}
	return "", "", false
}

func TestQueueRetriesWhenAMemberIsLost(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	started := make(chan string, 2)
	var first atomic.Bool
	members := map[string]*Client{}
	for _, name := range []string{"a", "b"} {
		c := dial(t, ClientConfig{Addr: r.Addr().String(), Name: name})
		require.NoError(t, c.Join(ctxT(t), "jobs", name, func(ctx context.Context, _, value []byte) ([]byte, error) {
			started <- name
			if first.CompareAndSwap(false, true) {
				<-ctx.Done() // holds the request until its client dies
				return nil, ctx.Err()
			}
			return []byte(name), nil
		}))
		members[name] = c
	}
	sender := dial(t, ClientConfig{Addr: r.Addr().String()})
	answer := make(chan []byte, 1)
	failed := make(chan error, 1)
	go func() {
		v, err := sender.Request(ctxT(t), "jobs", nil, []byte("work"))
		if err != nil {
			failed <- err
			return
		}
		answer <- v
	}()
	holder := <-started
	members[holder].Close() // the member dies holding the request
	var other string
	select {
	case other = <-started:
	case err := <-failed:
		t.Fatalf("request failed instead of moving to another member: %v", err)
	}
	require.NotEqual(t, holder, other)
	select {
	case v := <-answer:
		require.Equal(t, other, string(v))
	case err := <-failed:
		t.Fatalf("request failed instead of moving to %s: %v", other, err)
	}
}

func TestQueueErrors(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	sender := dial(t, ClientConfig{Addr: r.Addr().String()})

	short, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	_, err := sender.Request(short, "nobody", nil, []byte("x"))
	var re *RemoteError
	require.ErrorAs(t, err, &re)
	require.Contains(t, re.Message, `no member in queue "nobody"`)

	var calls atomic.Int32
	w := dial(t, ClientConfig{Addr: r.Addr().String()})
	require.NoError(t, w.Join(ctxT(t), "failing", "w", func(context.Context, []byte, []byte) ([]byte, error) {
		calls.Add(1)
		return nil, errors.New("cell A1 is not a number")
	}))
	startQueueMember(t, r, "failing", "w2", nil)
	// A member's error goes back as it is, and is not retried elsewhere: try until the
	// failing member got one.
	for i := 0; i < 10 && calls.Load() == 0; i++ {
		_, err = sender.Request(ctxT(t), "failing", nil, []byte("x"))
		if calls.Load() > 0 {
			require.ErrorAs(t, err, &re)
			require.Contains(t, re.Message, "cell A1 is not a number")
		}
	}
	require.Equal(t, int32(1), calls.Load())

	require.ErrorContains(t, w.Join(ctxT(t), "q", "two\nlines", func(context.Context, []byte, []byte) ([]byte, error) { return nil, nil }), "newline")
	require.Error(t, w.Join(ctxT(t), "q", "x", nil))
}

func TestQueueMembersFollowConnections(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	obs := dial(t, ClientConfig{Addr: r.Addr().String()})
	m1 := startQueueMember(t, r, "gateways", `{"id":"gw-1"}`, nil)
	startQueueMember(t, r, "gateways", `{"id":"gw-2"}`, nil)
	got, err := obs.Members(ctxT(t), "gateways")
	require.NoError(t, err)
	require.Equal(t, []string{`{"id":"gw-1"}`, `{"id":"gw-2"}`}, got)

	m1.Close()
	eventually(t, "gw-1 to leave when its connection closed", func() bool {
		got, err := obs.Members(ctxT(t), "gateways")
		return err == nil && slices.Equal(got, []string{`{"id":"gw-2"}`})
	})

	empty, err := obs.Members(ctxT(t), "nothing")
	require.NoError(t, err)
	require.Empty(t, empty)
}

func TestQueueMembershipSurvivesReconnect(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	addr := r.Addr().String()
	m := startQueueMember(t, r, "jobs", "w", nil)
	require.NoError(t, m.Leave(ctxT(t), "jobs"))
	require.NoError(t, m.Join(ctxT(t), "jobs", "w", func(_ context.Context, _, v []byte) ([]byte, error) { return v, nil }))
	before := m.Connects()
	r.Close()
	r2 := startRelay(t, RelayConfig{Addr: addr})
	eventually(t, "the member to reconnect", func() bool { return m.Connects() > before && m.Connected() })
	sender := dial(t, ClientConfig{Addr: r2.Addr().String()})
	v, err := sender.Request(ctxT(t), "jobs", nil, []byte("again"))
	require.NoError(t, err)
	require.Equal(t, "again", string(v))
}

// TestPeersNeverWedgeEachOther runs a client and the relay over a connection with no
// buffering at all (net.Pipe: every write waits for the other side to read), with many
// requests in flight and publications flowing back at the same time. Both readers answer
// and flush inline; if either waited on the socket while the other did too, this would
// hang.
func TestPeersNeverWedgeEachOther(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	dialPipe := func(context.Context, string) (net.Conn, error) {
		a, b := net.Pipe()
		r.srv.ServeConn(b, "pipe")
		return a, nil
	}
	c := dial(t, ClientConfig{Addr: "pipe", Dial: dialPipe})
	pub := dial(t, ClientConfig{Addr: r.Addr().String()})
	got := newChanges()
	require.NoError(t, c.Subscribe(ctxT(t), "news", got.add))
	entry, news := make([]byte, 400), make([]byte, 4096)
	done := make(chan struct{})
	go func() {
		defer close(done)
		var wg sync.WaitGroup
		for g := range 32 {
			wg.Go(func() {
				for i := range 20 {
					k := fmt.Appendf(nil, "k-%d-%d", g, i)
					if err := c.Set(ctxT(t), DefaultAuthPath, k, sessioncache.Entry{Value: entry}); err != nil {
						t.Error(err)
						return
					}
					if _, _, err := entryParts(c.Get(ctxT(t), DefaultAuthPath, k)); err != nil {
						t.Error(err)
						return
					}
				}
			})
		}
		wg.Go(func() {
			for i := range 200 {
				if err := pub.Publish(ctxT(t), "news", fmt.Appendf(nil, "n-%d", i), sessioncache.Entry{Value: news}); err != nil {
					t.Error(err)
					return
				}
			}
		})
		wg.Wait()
	}()
	select {
	case <-done:
	case <-time.After(60 * time.Second):
		t.Fatal("the client and the relay wedged each other")
	}
	got.wait(t, 200)
}

// A reply written long after the connection's last write must not trip over that write's
// expired deadline.
func TestRepliesAfterAQuietSpell(t *testing.T) {
	r := startRelay(t, RelayConfig{ServerOptions: ServerOptions{RequestTimeout: 50 * time.Millisecond, Heartbeat: -1}})
	c := dial(t, ClientConfig{Addr: r.Addr().String(), RequestTimeout: 50 * time.Millisecond, Heartbeat: -1})
	require.NoError(t, c.Set(ctxT(t), DefaultAuthPath, []byte("k"), sessioncache.Entry{Value: []byte("v")}))
	// A publication pushed to c is a waiting write on the relay's side, which sets the
	// connection's write deadline there.
	got := newChanges()
	require.NoError(t, c.Subscribe(ctxT(t), "news", got.add))
	pub := dial(t, ClientConfig{Addr: r.Addr().String(), Heartbeat: -1})
	require.NoError(t, pub.Publish(ctxT(t), "news", []byte("n"), sessioncache.Entry{Value: []byte("x")}))
	got.wait(t, 1)
	time.Sleep(150 * time.Millisecond) // the write deadlines of both ends pass
	v, _, err := entryParts(c.Get(ctxT(t), DefaultAuthPath, []byte("k")))
	require.NoError(t, err)
	require.Equal(t, "v", string(v))
	require.Equal(t, 1, c.Connects(), "the connection survived")
}

// TestARequestWaitsForTheFirstMember: a request sent while a queue has no member (its
// workers are rejoining after a restart, say) waits, within its deadline, for one to join,
// instead of failing at once.
func TestARequestWaitsForTheFirstMember(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	sender := dial(t, ClientConfig{Addr: r.Addr().String()})
	answer := make(chan error, 1)
	go func() {
		_, err := sender.Request(ctxT(t), "late", nil, []byte("x"))
		answer <- err
	}()
	eventually(t, "the request to wait", func() bool { return r.srv.QueueWaits() == 1 })
	w := dial(t, ClientConfig{Addr: r.Addr().String()})
	require.NoError(t, w.Join(ctxT(t), "late", "w", func(context.Context, []byte, []byte) ([]byte, error) { return []byte("ok"), nil }))
	select {
	case err := <-answer:
		require.NoError(t, err)
	case <-time.After(10 * time.Second):
		t.Fatal("the request never got its member")
	}
}

// A member that gives up when the requester's deadline passes does not turn the timeout
// into an error of its own: the requester sees ErrTimeout, every time.
func TestQueueRequestTimesOutAsATimeout(t *testing.T) {
	r := startRelay(t, RelayConfig{})
	sender := dial(t, ClientConfig{Addr: r.Addr().String()})
	w := dial(t, ClientConfig{Addr: r.Addr().String()})
	require.NoError(t, w.Join(ctxT(t), "slow", "w", func(ctx context.Context, _, _ []byte) ([]byte, error) {
		<-ctx.Done()
		return nil, fmt.Errorf("gave up: %w", ctx.Err())
	}))
	for range 10 {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		_, err := sender.Request(ctx, "slow", nil, []byte("x"))
		cancel()
		require.ErrorIs(t, err, ErrTimeout)
	}
}

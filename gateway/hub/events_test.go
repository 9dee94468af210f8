package hub

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sseServer is a real SSE server: it streams what the test publishes on a topic, and
// counts the open streams per topic.
type sseServer struct {
	srv  *httptest.Server
	mu   sync.Mutex
	open map[string]int
	subs map[string][]chan string
	// changed is signalled whenever a stream opens or closes.
	changed chan struct{}
}

func newSSEServer(t *testing.T) *sseServer {
	s := &sseServer{open: map[string]int{}, subs: map[string][]chan string{}, changed: make(chan struct{}, 100)}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		topic := r.URL.Path[1:]
		ch := make(chan string, 16)
		s.mu.Lock()
		s.open[topic]++
		s.subs[topic] = append(s.subs[topic], ch)
		s.mu.Unlock()
		s.changed <- struct{}{}
		defer func() {
			s.mu.Lock()
			s.open[topic]--
			s.mu.Unlock()
			s.changed <- struct{}{}
		}()
		w.Header().Set("Content-Type", "text/event-stream")
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush()
		for {
			select {
			case <-r.Context().Done():
				return
			case ev := <-ch:
				fmt.Fprintf(w, "event: update\ndata: %s\n\n", ev)
				w.(http.Flusher).Flush()
			}
		}
	}))
	t.Cleanup(func() { s.srv.CloseClientConnections(); s.srv.Close() })
	return s
}

func (s *sseServer) publish(topic, ev string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, ch := range s.subs[topic] {
		select {
		case ch <- ev:
		default:
		}
	}
}

func (s *sseServer) streams(topic string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.open[topic]
}

func (s *sseServer) waitStreams(t *testing.T, topic string, n int) {
	t.Helper()
	deadline := time.After(10 * time.Second)
	for s.streams(topic) != n {
		select {
		case <-s.changed:
		case <-deadline:
			t.Fatalf("topic %s: %d streams, want %d", topic, s.streams(topic), n)
		}
	}
}

// TestHubTopics: two users follow a topic through one upstream SSE stream; both get its
// events; when both unsubscribe (or leave) the upstream stream ends.
func TestHubTopics(t *testing.T) {
	sse := newSSEServer(t)
	f := startHub(t, HubConfig{ShortInterval: time.Hour, LongInterval: time.Hour, Events: &SSE{URL: sse.srv.URL}})
	alice, bob := f.tab(t, f.login(t)), f.tab(t, f.login(t))
	for _, c := range []*websocket.Conn{alice, bob} {
		require.NoError(t, c.WriteJSON(map[string]any{"type": "subscribe", "params": map[string]any{"topic": "project-7"}}))
	}
	assert.Equal(t, "ack", read(t, alice)["type"])
	assert.Equal(t, "ack", read(t, bob)["type"])
	sse.waitStreams(t, "project-7", 1)
	assert.Equal(t, 1, sse.streams("project-7"), "one upstream stream serves both users")

	sse.publish("project-7", "pipeline passed")
	for _, c := range []*websocket.Conn{alice, bob} {
		m := read(t, c)
		assert.Equal(t, "event", m["type"])
		assert.Equal(t, "project-7", m["topic"])
		assert.Equal(t, "pipeline passed", m["data"])
	}

	require.NoError(t, alice.WriteJSON(map[string]any{"type": "unsubscribe", "params": map[string]any{"topic": "project-7"}}))
	assert.Equal(t, "ack", read(t, alice)["type"])
	assert.Equal(t, 1, sse.streams("project-7"), "bob still follows it")
	bob.Close() // leaving ends bob's subscriptions too
	sse.waitStreams(t, "project-7", 0)
}

// TestEventStreamFields: lines end with CRLF, LF or a bare CR; the last event's id is kept
// for Last-Event-ID and a retry field sets the reconnection time.
func TestEventStreamFields(t *testing.T) {
	var st streamState
	var got []string
	stream := "retry: 1500\rid: 41\r\ndata: one\r\rid: 42\ndata: two\ndata: lines\n\n: comment\rid: 43\r" // the last event is not finished
	require.NoError(t, scanEvents(strings.NewReader(stream), &st, func(b []byte) { got = append(got, string(b)) }))
	assert.Equal(t, []string{"one", "two\nlines"}, got)
	assert.Equal(t, "42", st.lastID, "only a dispatched event's id counts")
	assert.Equal(t, 1500*time.Millisecond, st.retry)
}

// TestSSEResumesWithLastEventID: an SSE subscription whose stream breaks reconnects with
// the last event's id in Last-Event-ID, after the server's retry time.
func TestSSEResumesWithLastEventID(t *testing.T) {
	var mu sync.Mutex
	var lastIDs []string
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		lastIDs = append(lastIDs, r.Header.Get("Last-Event-ID"))
		n := len(lastIDs)
		mu.Unlock()
		w.Header().Set("Content-Type", "text/event-stream")
		fmt.Fprintf(w, "retry: 10\nid: e%d\ndata: event %d\n\n", n, n)
		// the stream ends here: the client reconnects
	}))
	defer srv.Close()
	events := make(chan string, 10)
	stop, err := (&SSE{URL: srv.URL}).Subscribe(context.Background(), "news", func(b []byte) {
		select {
		case events <- string(b):
		default:
		}
	})
	require.NoError(t, err)
	for i := 1; i <= 3; i++ {
		select {
		case e := <-events:
			assert.Equal(t, fmt.Sprintf("event %d", i), e)
		case <-time.After(10 * time.Second):
			t.Fatal("no event")
		}
	}
	stop()
	mu.Lock()
	defer mu.Unlock()
	assert.Equal(t, []string{"", "e1", "e2"}, lastIDs[:3])
}

// TestAStalledBrowserHoldsUpNoOne: one tab never reads; a topic's events keep reaching
// the other user at once, and the stalled tab is disconnected with CloseFallingBehind once
// its queue is full. A user's topics and the hub's are capped, with a clear refusal.
func TestAStalledBrowserHoldsUpNoOne(t *testing.T) {
	sse := newSSEServer(t)
	f := startHub(t, HubConfig{ShortInterval: time.Hour, LongInterval: time.Hour, Events: &SSE{URL: sse.srv.URL},
		SendQueue: 4, MaxTopicsPerUser: 2, MaxTopics: 3})
	stalled, live := f.tab(t, f.login(t)), f.tab(t, f.login(t))
	for _, c := range []*websocket.Conn{stalled, live} {
		require.NoError(t, c.WriteJSON(map[string]any{"type": "subscribe", "params": map[string]any{"topic": "big"}}))
		assert.Equal(t, "ack", read(t, c)["type"])
	}
	sse.waitStreams(t, "big", 1)
	payload := strings.Repeat("x", 64<<10) // enough to fill the stalled tab's socket buffers
	for i := range 200 {
		sse.publish("big", fmt.Sprintf("%d %s", i, payload))
		m := read(t, live) // the live tab gets each event before the next is published
		require.Equal(t, "event", m["type"])
		require.True(t, strings.HasPrefix(m["data"].(string), fmt.Sprintf("%d ", i)))
	}
	// The stalled tab reads now: what it was sent, then the close frame.
	stalled.SetReadDeadline(time.Now().Add(10 * time.Second))
	var err error
	for err == nil {
		_, _, err = stalled.ReadMessage()
	}
	var ce *websocket.CloseError
	require.ErrorAs(t, err, &ce)
	assert.Equal(t, CloseFallingBehind, ce.Code)

	for _, topic := range []string{"a", "b"} {
		require.NoError(t, live.WriteJSON(map[string]any{"type": "subscribe", "params": map[string]any{"topic": topic}}))
		m := read(t, live)
		if topic == "a" {
			assert.Equal(t, "ack", m["type"])
		} else {
			assert.Equal(t, "error", m["type"])
			assert.Contains(t, m["error"], "at most 2 topics")
		}
	}
	other := f.tab(t, f.login(t))
	for _, topic := range []string{"c", "d"} {
		require.NoError(t, other.WriteJSON(map[string]any{"type": "subscribe", "params": map[string]any{"topic": topic}}))
		m := read(t, other)
		if topic == "c" {
			assert.Equal(t, "ack", m["type"])
		} else {
			assert.Contains(t, m["error"], "this hub follows at most 3 topics")
		}
	}
}

// TestTopicsArePaths: a topic's segments stay path segments of the upstream URL, each
// escaped; empty, "." and ".." segments are refused.
func TestTopicsArePaths(t *testing.T) {
	for topic, want := range map[string]string{
		"project/42/changes":  "project/42/changes",
		"/project/42/changes": "project/42/changes",
		"a b/c?d":             "a%20b/c%3Fd",
	} {
		got, err := topicPath(topic)
		require.NoError(t, err, topic)
		assert.Equal(t, want, got)
	}
	for _, bad := range []string{"project//changes", "project/../secret", "./x", "x/", ""} {
		_, err := topicPath(bad)
		assert.Error(t, err, "%q", bad)
	}
}

// TestSubscriptionsBelongToTabs: two tabs of one user follow a topic; one unsubscribing
// does not end the other's subscription (one upstream stream all along), unsubscribing a
// topic the tab does not follow is an error, and the stream ends with the last tab.
func TestSubscriptionsBelongToTabs(t *testing.T) {
	sse := newSSEServer(t)
	f := startHub(t, HubConfig{ShortInterval: time.Hour, LongInterval: time.Hour, Events: &SSE{URL: sse.srv.URL}})
	cookie := f.login(t)
	tab1, tab2 := f.tab(t, cookie), f.tab(t, cookie)
	for _, c := range []*websocket.Conn{tab1, tab2} {
		require.NoError(t, c.WriteJSON(map[string]any{"type": "subscribe", "params": map[string]any{"topic": "project/7/changes"}}))
		assert.Equal(t, "ack", read(t, c)["type"])
	}
	sse.waitStreams(t, "project/7/changes", 1)
	require.NoError(t, tab1.WriteJSON(map[string]any{"type": "unsubscribe", "params": map[string]any{"topic": "project/7/changes"}}))
	assert.Equal(t, "ack", read(t, tab1)["type"])
	require.NoError(t, tab1.WriteJSON(map[string]any{"type": "unsubscribe", "params": map[string]any{"topic": "project/7/changes"}}))
	m := read(t, tab1)
	assert.Equal(t, "error", m["type"])
	assert.Contains(t, m["error"], "does not follow")

	sse.publish("project/7/changes", "still here")
	m = read(t, tab2)
	assert.Equal(t, "event", m["type"], "tab 2's own subscription survived tab 1's unsubscribe")
	assert.Equal(t, "still here", m["data"])
	assert.Equal(t, 1, sse.streams("project/7/changes"))
	tab2.Close()
	sse.waitStreams(t, "project/7/changes", 0)
}

package hub

import (
	"fmt"
	"net/http"
	"net/http/httptest"
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

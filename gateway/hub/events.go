package hub

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
)

// EventSource is an upstream of events by topic: an SSE server, a message bus. The hub
// subscribes once per topic, however many users follow it.
type EventSource interface {
	// Subscribe delivers the topic's events to fn until stop is called. fn must not block.
	Subscribe(ctx context.Context, topic string, fn func(data []byte)) (stop func(), err error)
}

// SSE is an EventSource reading Server-Sent Events: topic T is the stream at URL/T. A
// stream that breaks is reopened with backoff until stopped.
type SSE struct {
	// URL is the base URL of the streams.
	URL string
	// Client makes the requests. Nil means http.DefaultClient.
	Client *http.Client
}

// Subscribe implements EventSource.
func (s *SSE) Subscribe(ctx context.Context, topic string, fn func([]byte)) (func(), error) {
	u := strings.TrimSuffix(s.URL, "/") + "/" + url.PathEscape(topic)
	if _, err := url.Parse(u); err != nil {
		return nil, fmt.Errorf("gateway: sse %s: %w", u, err)
	}
	c := s.Client
	if c == nil {
		c = http.DefaultClient
	}
	ctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		backoff := 50 * time.Millisecond
		for ctx.Err() == nil {
			if readStream(ctx, c, u, fn) {
				backoff = 50 * time.Millisecond
			}
			select {
			case <-ctx.Done():
			case <-time.After(backoff):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}

// readStream reads one SSE connection until it ends; it reports whether it got through.
func readStream(ctx context.Context, c *http.Client, u string, fn func([]byte)) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Accept", "text/event-stream")
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	_ = scanEvents(resp.Body, fn)
	return true
}

// maxEventLine bounds one line of an event stream.
const maxEventLine = 1 << 20

// scanEvents reads a text/event-stream and calls fn with the data of each event: its data
// lines joined with newlines. Other fields (event, id, retry) and comments are skipped. It
// returns when r ends, with r's error, or with bufio.ErrTooLong for a line longer than
// maxEventLine.
func scanEvents(r io.Reader, fn func([]byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxEventLine)
	var data bytes.Buffer
	for sc.Scan() {
		line := sc.Bytes()
		switch {
		case len(line) == 0:
			if data.Len() > 0 {
				fn(bytes.TrimSuffix(data.Bytes(), []byte("\n")))
				data.Reset()
			}
		case bytes.HasPrefix(line, []byte("data:")):
			data.Write(bytes.TrimPrefix(bytes.TrimPrefix(line, []byte("data:")), []byte(" ")))
			data.WriteByte('\n')
		}
	}
	return sc.Err()
}

// topics fans one upstream subscription per topic out to the users following it.
type topics struct {
	src  EventSource
	mu   sync.Mutex
	subs map[string]*topic
}

type topic struct {
	users map[*User]bool
	stop  func()
}

func (t *topics) subscribe(ctx context.Context, u *User, name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := t.subs[name]
	if tp == nil {
		tp = &topic{users: map[*User]bool{}}
		stop, err := t.src.Subscribe(ctx, name, func(data []byte) { t.deliver(name, data) })
		if err != nil {
			return err
		}
		tp.stop = stop
		t.subs[name] = tp
	}
	tp.users[u] = true
	return nil
}

func (t *topics) deliver(name string, data []byte) {
	t.mu.Lock()
	tp := t.subs[name]
	var users []*User
	if tp != nil {
		for u := range tp.users {
			users = append(users, u)
		}
	}
	t.mu.Unlock()
	for _, u := range users {
		u.Send(map[string]any{"type": "event", "topic": name, "data": string(data)})
	}
}

// unsubscribe removes u from a topic (all topics when name is empty) and stops upstream
// subscriptions nobody follows any more.
func (t *topics) unsubscribe(u *User, name string) {
	t.mu.Lock()
	var stops []func()
	for n, tp := range t.subs {
		if name != "" && n != name {
			continue
		}
		delete(tp.users, u)
		if len(tp.users) == 0 {
			stops = append(stops, tp.stop)
			delete(t.subs, n)
		}
	}
	t.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
}

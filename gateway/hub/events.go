package hub

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
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
// stream that breaks is reopened until stopped: after the server's retry: time if it gave
// one, else with backoff, and with a Last-Event-ID header naming the last event's id, so
// a server that keeps them sends what was missed.
type SSE struct {
	// URL is the base URL of the streams.
	URL string
	// Client makes the requests. Nil means http.DefaultClient.
	Client *http.Client
}

// Subscribe implements EventSource. A topic is a path: its segments stay path segments
// ("project/42/changes" is the stream at URL/project/42/changes), each escaped on its own;
// a topic with an empty segment, "." or ".." is refused.
func (s *SSE) Subscribe(ctx context.Context, topic string, fn func([]byte)) (func(), error) {
	path, err := topicPath(topic)
	if err != nil {
		return nil, err
	}
	u := strings.TrimSuffix(s.URL, "/") + "/" + path
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
		var st streamState
		backoff := 50 * time.Millisecond
		for ctx.Err() == nil {
			if readStream(ctx, c, u, &st, fn) {
				backoff = 50 * time.Millisecond
			}
			wait := backoff
			if st.retry > 0 {
				wait = st.retry
			}
			select {
			case <-ctx.Done():
			case <-time.After(wait):
			}
			backoff = min(2*backoff, 5*time.Second)
		}
	}()
	return func() { cancel(); wg.Wait() }, nil
}

// streamState is what an event stream's reader keeps across reconnections.
type streamState struct {
	lastID string        // the id of the last event dispatched
	retry  time.Duration // the server's reconnection time; 0 when it gave none
}

// topicPath turns a topic into a URL path: its segments, each escaped.
func topicPath(topic string) (string, error) {
	segs := strings.Split(strings.TrimPrefix(topic, "/"), "/")
	for i, seg := range segs {
		if seg == "" || seg == "." || seg == ".." {
			return "", fmt.Errorf("topic %q: a topic is a path of non-empty segments, none of them \".\" or \"..\"", topic)
		}
		segs[i] = url.PathEscape(seg)
	}
	return strings.Join(segs, "/"), nil
}

// readStream reads one SSE connection until it ends; it reports whether it got through.
func readStream(ctx context.Context, c *http.Client, u string, st *streamState, fn func([]byte)) bool {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return false
	}
	req.Header.Set("Accept", "text/event-stream")
	if st.lastID != "" {
		req.Header.Set("Last-Event-ID", st.lastID)
	}
	resp, err := c.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return false
	}
	_ = scanEvents(resp.Body, st, fn)
	return true
}

// maxEventLine bounds one line of an event stream.
const maxEventLine = 1 << 20

// scanEvents reads a text/event-stream and calls fn with the data of each event: its data
// lines joined with newlines. Lines end with CRLF, LF or a bare CR. An id field is kept in
// st (and sent as Last-Event-ID on the next connection), a retry field of digits sets
// st's reconnection time; event fields and comments are skipped. It returns when r ends,
// with r's error, or with bufio.ErrTooLong for a line longer than maxEventLine.
func scanEvents(r io.Reader, st *streamState, fn func([]byte)) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 4096), maxEventLine)
	sc.Split(scanEventLines)
	var data bytes.Buffer
	id, idSet := "", false
	for sc.Scan() {
		line := sc.Bytes()
		field, value, _ := bytes.Cut(line, []byte(":"))
		value = bytes.TrimPrefix(value, []byte(" "))
		switch {
		case len(line) == 0:
			if idSet {
				st.lastID = id
			}
			if data.Len() > 0 {
				fn(bytes.TrimSuffix(data.Bytes(), []byte("\n")))
				data.Reset()
			}
		case string(field) == "data":
			data.Write(value)
			data.WriteByte('\n')
		case string(field) == "id" && !bytes.ContainsRune(value, 0):
			id, idSet = string(value), true
		case string(field) == "retry":
			if ms, err := strconv.ParseUint(string(value), 10, 32); err == nil {
				st.retry = time.Duration(ms) * time.Millisecond
			}
		}
	}
	return sc.Err()
}

// scanEventLines is a bufio.SplitFunc for event streams: a line ends with CRLF, LF or CR.
func scanEventLines(data []byte, atEOF bool) (int, []byte, error) {
	for i, c := range data {
		switch c {
		case '\n':
			return i + 1, data[:i], nil
		case '\r':
			if i+1 == len(data) && !atEOF {
				return 0, nil, nil // a LF may follow
			}
			if i+1 < len(data) && data[i+1] == '\n' {
				return i + 2, data[:i], nil
			}
			return i + 1, data[:i], nil
		}
	}
	if atEOF && len(data) > 0 {
		return len(data), data, nil
	}
	return 0, nil, nil
}

// topics fans one upstream subscription per topic out to the tabs following it. A
// subscription belongs to the tab that made it: another tab of the same user unsubscribing
// does not end it, and a tab that closes ends its own.
type topics struct {
	src          EventSource
	perUser, max int // caps: topics per user, topics in all
	mu           sync.Mutex
	subs         map[string]*topic
}

type topic struct {
	tabs map[*channel]*User
	stop func()
}

func (t *topics) subscribe(ctx context.Context, u *User, ch *channel, name string) error {
	t.mu.Lock()
	defer t.mu.Unlock()
	tp := t.subs[name]
	if tp != nil && tp.tabs[ch] != nil {
		return nil
	}
	if tp == nil || !followedBy(tp, u) {
		n := 0
		for _, other := range t.subs {
			if followedBy(other, u) {
				n++
			}
		}
		if n >= t.perUser {
			return fmt.Errorf("a user follows at most %d topics: unsubscribe from one first", t.perUser)
		}
	}
	if tp == nil {
		if len(t.subs) >= t.max {
			return fmt.Errorf("this hub follows at most %d topics; try later", t.max)
		}
		tp = &topic{tabs: map[*channel]*User{}}
		stop, err := t.src.Subscribe(ctx, name, func(data []byte) { t.deliver(name, data) })
		if err != nil {
			return err
		}
		tp.stop = stop
		t.subs[name] = tp
	}
	tp.tabs[ch] = u
	return nil
}

// followedBy reports whether a tab of u follows tp.
func followedBy(tp *topic, u *User) bool {
	for _, owner := range tp.tabs {
		if owner == u {
			return true
		}
	}
	return false
}

func (t *topics) deliver(name string, data []byte) {
	t.mu.Lock()
	tp := t.subs[name]
	var tabs []*channel
	if tp != nil {
		for ch := range tp.tabs {
			tabs = append(tabs, ch)
		}
	}
	t.mu.Unlock()
	msg := map[string]any{"type": "event", "topic": name, "data": string(data)}
	for _, ch := range tabs {
		ch.send(msg)
	}
}

// unsubscribe ends ch's subscription to a topic (to every topic when name is empty), and
// the upstream subscriptions no tab follows any more. It reports whether ch followed name.
func (t *topics) unsubscribe(ch *channel, name string) bool {
	t.mu.Lock()
	var stops []func()
	followed := false
	for n, tp := range t.subs {
		if name != "" && n != name {
			continue
		}
		if tp.tabs[ch] != nil {
			followed = true
			delete(tp.tabs, ch)
		}
		if len(tp.tabs) == 0 {
			stops = append(stops, tp.stop)
			delete(t.subs, n)
		}
	}
	t.mu.Unlock()
	for _, stop := range stops {
		stop()
	}
	return followed
}

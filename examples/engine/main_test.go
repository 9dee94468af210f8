package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"
)

// startEngine runs the engine on loopback until the test ends and returns its address.
func startEngine(t *testing.T) string {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	pr, pw := io.Pipe()
	done := make(chan error, 1)
	go func() { done <- run(ctx, pw, "127.0.0.1:0", "e1", "X-Session-Id"); pw.Close() }()
	line, err := bufio.NewReader(pr).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	go io.Copy(io.Discard, pr)
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	})
	return strings.TrimSpace(line[strings.LastIndex(line, " "):])
}

func prepare(t *testing.T, addr, body string) (int, string) {
	t.Helper()
	resp, err := http.Post("http://"+addr+"/v1/prepare", "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var a struct {
		SessionID string `json:"session_id"`
	}
	json.NewDecoder(resp.Body).Decode(&a)
	return resp.StatusCode, a.SessionID
}

type greeting struct {
	Session  string
	Prepared bool
	Resumed  bool
	Edits    int
}

// open connects to the document with session id and returns the greeting.
func open(t *testing.T, addr, id, document string) (*websocket.Conn, greeting) {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/"+document, http.Header{"X-Session-Id": {id}})
	if err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	var g greeting
	if err := c.ReadJSON(&g); err != nil {
		t.Fatal(err)
	}
	return c, g
}

// A prepared session keeps its state across a dropped connection within its TTL, and
// ends once the TTL passes with no connection.
func TestPreparedSessionOutlivesItsConnection(t *testing.T) {
	addr := startEngine(t)
	code, id := prepare(t, addr, `{"session":"bk-1","document":"sales.qvf","ttl_seconds":1}`)
	if code != http.StatusOK || id == "" {
		t.Fatalf("prepare: %d %q", code, id)
	}
	if _, again := prepare(t, addr, `{"session":"bk-1","document":"sales.qvf","ttl_seconds":1}`); again != id {
		t.Fatalf("preparing again gave %q, want the same session %q", again, id)
	}
	c, g := open(t, addr, id, "sales.qvf")
	if g != (greeting{Session: id, Prepared: true}) {
		t.Fatalf("first connection: %+v", g)
	}
	c.WriteMessage(websocket.TextMessage, []byte("A1=42"))
	var answer struct{ Edits int }
	if err := c.ReadJSON(&answer); err != nil || answer.Edits != 1 {
		t.Fatalf("edit: %+v %v", answer, err)
	}
	c.Close() // the user drops
	c, g = open(t, addr, id, "sales.qvf")
	if g != (greeting{Session: id, Prepared: true, Resumed: true, Edits: 1}) {
		t.Fatalf("reconnection: %+v", g)
	}
	c.Close()
	// With no connection the session ends after its TTL (1s): wait for it, bounded.
	for i := 0; sessions(t, addr) != 0; i++ {
		if i == 100 {
			t.Fatal("the session outlived its TTL by 10s")
		}
		time.Sleep(100 * time.Millisecond)
	}
	c, g = open(t, addr, id, "sales.qvf")
	defer c.Close()
	if g != (greeting{Session: id}) {
		t.Fatalf("after the TTL: %+v, want a new empty session", g)
	}
}

// Bad requests are refused with what was wrong.
func TestEngineRefusesBadRequests(t *testing.T) {
	addr := startEngine(t)
	for _, body := range []string{`{`, `{"session":"s","document":"d"}`} {
		if code, _ := prepare(t, addr, body); code != http.StatusBadRequest {
			t.Errorf("prepare %s: %d", body, code)
		}
	}
	_, id := prepare(t, addr, `{"session":"s","document":"a","ttl_seconds":60}`)
	_, resp, err := websocket.DefaultDialer.Dial("ws://"+addr+"/app/b", http.Header{"X-Session-Id": {id}})
	if err == nil || resp.StatusCode != http.StatusConflict {
		t.Fatalf("a session opened on another document: %v", err)
	}
}

func sessions(t *testing.T, addr string) int {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var n, conns int
	b, _ := io.ReadAll(resp.Body)
	if _, err := fmt.Sscanf(string(b), "engine_sessions %d\nengine_connections %d\n", &n, &conns); err != nil {
		t.Fatalf("metrics %q: %v", b, err)
	}
	return n
}

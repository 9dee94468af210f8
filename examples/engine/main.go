// Command engine is an example backend for the gateway's WebSocket proxy that keeps
// sessions the way the original design's engines do: the session service prepares a
// session on the engine it chose (a discovery block with "prepare"), the gateway then opens
// the WebSocket with the engine's session id in its session header, and the engine keeps
// the session (here, the document's edits) alive for the prepared TTL after the last
// connection drops, so a user who reconnects within it finds the session as it was.
//
//	go run ./examples/engine -addr 127.0.0.1:9076 -name engine-1
//
// Endpoints:
//
//	GET  /health           200 while serving
//	GET  /metrics          engine_sessions and engine_connections (Prometheus text)
//	POST /v1/prepare       {"session", "document", "ttl_seconds"} -> {"session_id"}
//	GET  /app/<document>   WebSocket; the session id in X-Session-Id (-header)
//
// On connect the engine sends {"engine", "session", "document", "prepared", "resumed",
// "edits"}; every text message is an edit, answered with {"session", "edits", "last"}. An
// unknown session id gets a new, unprepared session under that id (as a QIX engine does),
// so a route that outlived its session still works, from an empty state.
package main

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/gorilla/websocket"
)

func main() {
	addr := flag.String("addr", "127.0.0.1:9076", "address to listen on")
	name := flag.String("name", "engine", "this engine's name, in its greetings")
	header := flag.String("header", "X-Session-Id", "the header the gateway names the session in (its session_header)")
	flag.Parse()
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Stdout, *addr, *name, *header); err != nil {
		log.Fatal(err)
	}
}

// run serves until ctx ends.
func run(ctx context.Context, out io.Writer, addr, name, header string) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	e := newEngine(name, header)
	srv := &http.Server{Handler: e.handler(), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(out, "engine: %s serving on %s\n", name, ln.Addr())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ln) }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	shut, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	err = srv.Shutdown(shut)
	e.closeAll()
	return err
}

// engine holds the sessions of one engine process.
type engine struct {
	name, header string
	mu           sync.Mutex
	sessions     map[string]*session // by session id
	prepared     map[string]string   // "owner\x00document" -> session id
	conns        map[*websocket.Conn]bool
}

// session is one document session: its state outlives its connections by ttl.
type session struct {
	id, owner, document string
	prepared            bool
	connected           bool // a connection was opened before
	ttl                 time.Duration
	edits               []string
	conns               int
	expire              *time.Timer // set while no connection is open
}

func newEngine(name, header string) *engine {
	return &engine{name: name, header: header, sessions: map[string]*session{},
		prepared: map[string]string{}, conns: map[*websocket.Conn]bool{}}
}

func (e *engine) handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("GET /metrics", e.metrics)
	mux.HandleFunc("POST /v1/prepare", e.prepare)
	mux.HandleFunc("GET /app/", e.connect)
	return mux
}

func (e *engine) metrics(w http.ResponseWriter, _ *http.Request) {
	e.mu.Lock()
	defer e.mu.Unlock()
	fmt.Fprintf(w, "engine_sessions %d\nengine_connections %d\n", len(e.sessions), len(e.conns))
}

// prepare opens (or finds) the session of an owner and document and keeps it for its TTL.
func (e *engine) prepare(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Session    string `json:"session"`
		Document   string `json:"document"`
		TTLSeconds int64  `json:"ttl_seconds"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&req); err != nil {
		http.Error(w, "the body is not a preparation: "+err.Error(), http.StatusBadRequest)
		return
	}
	if req.Session == "" || req.Document == "" || req.TTLSeconds <= 0 {
		http.Error(w, "session, document and a positive ttl_seconds are required", http.StatusBadRequest)
		return
	}
	e.mu.Lock()
	key := req.Session + "\x00" + req.Document
	s := e.sessions[e.prepared[key]]
	if s == nil {
		s = &session{id: rand.Text(), owner: req.Session, document: req.Document, prepared: true}
		e.sessions[s.id] = s
		e.prepared[key] = s.id
	}
	s.ttl = time.Duration(req.TTLSeconds) * time.Second
	if s.conns == 0 {
		e.idleLocked(s)
	}
	e.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	json.NewEncoder(w).Encode(map[string]string{"session_id": s.id})
}

// idleLocked (re)starts the session's expiry: it ends ttl from now unless a connection
// comes first.
func (e *engine) idleLocked(s *session) {
	if s.expire != nil {
		s.expire.Stop()
	}
	s.expire = time.AfterFunc(s.ttl, func() {
		e.mu.Lock()
		defer e.mu.Unlock()
		if s.conns == 0 && e.sessions[s.id] == s {
			delete(e.sessions, s.id)
			delete(e.prepared, s.owner+"\x00"+s.document)
		}
	})
}

// attach finds the session id names for document, or starts an unprepared one, and counts
// a connection to it. It reports whether this resumes a session that had a connection.
func (e *engine) attach(id, document string) (*session, bool, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, found := e.sessions[id]
	switch {
	case found && s.document != document:
		return nil, false, fmt.Errorf("session %s is of document %q, not %q", id, s.document, document)
	case !found:
		s = &session{id: id, document: document, ttl: time.Minute}
		e.sessions[id] = s
	}
	if s.expire != nil {
		s.expire.Stop()
		s.expire = nil
	}
	s.conns++
	resumed := s.connected
	s.connected = true
	return s, resumed, nil
}

func (e *engine) detach(s *session, c *websocket.Conn) {
	e.mu.Lock()
	defer e.mu.Unlock()
	delete(e.conns, c)
	if s.conns--; s.conns == 0 {
		e.idleLocked(s)
	}
}

// connect serves a document session's WebSocket.
func (e *engine) connect(w http.ResponseWriter, r *http.Request) {
	id, document := r.Header.Get(e.header), strings.TrimPrefix(r.URL.Path, "/app/")
	if id == "" || document == "" {
		http.Error(w, "a document and the "+e.header+" header are required", http.StatusBadRequest)
		return
	}
	s, resumed, err := e.attach(id, document)
	if err != nil {
		http.Error(w, err.Error(), http.StatusConflict)
		return
	}
	up := websocket.Upgrader{} // the gateway checked the browser's origin
	c, err := up.Upgrade(w, r, nil)
	if err != nil {
		e.detach(s, nil)
		return
	}
	e.mu.Lock()
	e.conns[c] = true
	greeting := map[string]any{"engine": e.name, "session": s.id, "document": s.document, "prepared": s.prepared,
		"resumed": resumed, "edits": len(s.edits)}
	e.mu.Unlock()
	defer c.Close()
	defer e.detach(s, c)
	if c.WriteJSON(greeting) != nil {
		return
	}
	c.SetReadLimit(64 << 10)
	for {
		_, msg, err := c.ReadMessage()
		if err != nil {
			return
		}
		e.mu.Lock()
		s.edits = append(s.edits, string(msg))
		answer := map[string]any{"session": s.id, "edits": len(s.edits), "last": string(msg)}
		e.mu.Unlock()
		if c.WriteJSON(answer) != nil {
			return
		}
	}
}

// closeAll closes every open WebSocket (Shutdown does not see hijacked connections).
func (e *engine) closeAll() {
	e.mu.Lock()
	defer e.mu.Unlock()
	for c := range e.conns {
		c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseGoingAway, "engine stopping"),
			time.Now().Add(time.Second))
		c.Close()
	}
}

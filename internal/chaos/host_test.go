//go:build linux

package chaos

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// The environment of a host process.
const (
	envHost    = "GS_CHAOS_HOST"    // "1": run as a host
	envRelay   = "GS_CHAOS_RELAY"   // the relay's address (for the test's hosts, their proxy)
	envTable   = "GS_CHAOS_TABLE"   // the host's table file
	envRecords = "GS_CHAOS_RECORDS" // its el_count
	envName    = "GS_CHAOS_NAME"    // the client's name in the relay's logs
)

// recordSize is the record_size of every table of the test. Keys and values are short.
const recordSize = 256

// hostMain is a front-end host: a Manager on its own table (created, or reused after a
// restart) with one relay.Client, driven over HTTP on 127.0.0.1. It prints "ready ADDR"
// once it serves, and stops on SIGTERM. Every answer is one line:
//
//	/set?k=K&v=V&ttl=MS   ok | err MSG          Manager.Set
//	/get?k=K              value V SRC | notfound | err MSG   Manager.Get; SRC says
//	                      whether the local table held the key just before (local) or
//	                      not (remote): a diagnostic, the answer is Manager.Get's
//	/del?k=K              ok | err MSG          Manager.Delete
//	/local?k=K            value V | notfound    the local table only
//	/status               connected=BOOL connects=N len=N
//	/verify               ok | err MSG          Table.Verify
//
// Requests carry no deadline of their own: the client's RequestTimeout bounds them.
func hostMain() int {
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	records, err := strconv.Atoi(os.Getenv(envRecords))
	if err != nil {
		fmt.Fprintln(os.Stderr, "host:", envRecords, err)
		return 2
	}
	c, err := relay.NewClient(relay.ClientConfig{
		Addr:           os.Getenv(envRelay),
		Name:           os.Getenv(envName),
		BackoffMin:     10 * time.Millisecond,
		BackoffMax:     200 * time.Millisecond,
		RequestTimeout: 2 * time.Second,
		// A silent link is noticed after two heartbeats: 2s, so that with the Manager's
		// StaleFor (2s) a cut-off host stops serving its table within -chaos.stalefor (5s).
		Heartbeat: time.Second,
		Logger:    log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "host: client:", err)
		return 1
	}
	defer c.Close()
	m, err := sessioncache.NewManager(sessioncache.ManagerConfig{
		Table: sessioncache.Config{Path: os.Getenv(envTable), Create: true, ElementCount: records,
			RecordSize: recordSize},
		Remotes: []sessioncache.Remote{c},
		Logger:  log,
	})
	if err != nil {
		fmt.Fprintln(os.Stderr, "host: manager:", err)
		return 1
	}
	defer m.Close()

	mux := http.NewServeMux()
	mux.HandleFunc("/set", func(w http.ResponseWriter, r *http.Request) {
		ttl, err := strconv.Atoi(r.FormValue("ttl"))
		if err != nil {
			answer(w, nil, err)
			return
		}
		answer(w, nil, m.Set(r.Context(), []byte(r.FormValue("k")), []byte(r.FormValue("v")), time.Duration(ttl)*time.Millisecond))
	})
	mux.HandleFunc("/get", func(w http.ResponseWriter, r *http.Request) {
		k := []byte(r.FormValue("k"))
		_, lerr := m.Table().Get(k)
		v, err := m.Get(r.Context(), k)
		if err == nil {
			src := "remote"
			if lerr == nil {
				src = "local"
			}
			fmt.Fprintln(w, "value", string(v), src)
			return
		}
		answer(w, v, err)
	})
	mux.HandleFunc("/del", func(w http.ResponseWriter, r *http.Request) {
		answer(w, nil, m.Delete(r.Context(), []byte(r.FormValue("k"))))
	})
	mux.HandleFunc("/local", func(w http.ResponseWriter, r *http.Request) {
		v, err := m.Table().Get([]byte(r.FormValue("k")))
		answer(w, v, err)
	})
	mux.HandleFunc("/status", func(w http.ResponseWriter, r *http.Request) {
		fmt.Fprintf(w, "connected=%t connects=%d len=%d\n", c.Connected(), c.Connects(), m.Table().Len())
	})
	mux.HandleFunc("/verify", func(w http.ResponseWriter, r *http.Request) {
		answer(w, nil, m.Table().Verify())
	})
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "host: listen:", err)
		return 1
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	fmt.Println("ready", ln.Addr())

	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGTERM, syscall.SIGINT)
	select {
	case <-sig:
	case err := <-served:
		fmt.Fprintln(os.Stderr, "host: serve:", err)
		return 1
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = srv.Shutdown(ctx)
	return 0
}

// answer writes one line for a host command's outcome.
func answer(w http.ResponseWriter, v []byte, err error) {
	switch {
	case errors.Is(err, sessioncache.ErrNotFound):
		fmt.Fprintln(w, "notfound")
	case err != nil:
		fmt.Fprintln(w, "err", strings.ReplaceAll(err.Error(), "\n", " "))
	case v != nil:
		fmt.Fprintln(w, "value", string(v))
	default:
		fmt.Fprintln(w, "ok")
	}
}

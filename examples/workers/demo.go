package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	_ "embed"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/broker"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

// page is the demo page: log in, open the workbook, edit cells, watch the plot.
//
//go:embed page.html
var page []byte

// stack is the demo's servers: a relay, two gateway instances (each with its own session
// table in front of the relay, as two hosts would have, and the demo page at /) and two
// workers.
type stack struct {
	URLs    []string // the gateway instances
	closers []func()
}

// Close stops everything, in reverse order.
func (s *stack) Close() {
	for i := len(s.closers) - 1; i >= 0; i-- {
		s.closers[i]()
	}
}

// startStack starts the demo's servers on loopback, saying what started on out.
func startStack(ctx context.Context, out io.Writer) (_ *stack, err error) {
	s := &stack{}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	dir, err := os.MkdirTemp("", "workers-demo")
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { os.RemoveAll(dir) })
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0",
		Table: sessioncache.Config{Path: filepath.Join(dir, "relay.table"), ElementCount: 1000, RecordSize: 1024}})
	if err != nil {
		return nil, err
	}
	s.closers = append(s.closers, func() { r.Close() })
	fmt.Fprintf(out, "relay on %s\n", r.Addr())
	dial := func(name string) (*relay.Client, error) {
		c, err := relay.Dial(ctx, relay.ClientConfig{Addr: r.Addr().String(), Name: name})
		if err == nil {
			s.closers = append(s.closers, func() { c.Close() })
		}
		return c, err
	}
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("gw-%d", i)
		url, stop, err := startInstance(ctx, dir, name, dial)
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, stop)
		s.URLs = append(s.URLs, url)
		fmt.Fprintf(out, "gateway instance %s on %s\n", name, url)
	}
	for i := 1; i <= 2; i++ {
		name := fmt.Sprintf("w%d", i)
		c, err := dial(name)
		if err != nil {
			return nil, err
		}
		wb := &Workbook{Name: name, Relay: c}
		w, err := broker.NewWorker(ctx, broker.WorkerConfig{Relay: c, Name: name, Handler: wb, Files: wb})
		if err != nil {
			return nil, err
		}
		s.closers = append(s.closers, func() { w.Close() })
		fmt.Fprintf(out, "worker %s joined the queue\n", name)
	}
	return s, nil
}

// demo runs the whole path in one process (startStack) with two browsers of one user
// editing the workbook "budget", one on each instance; the second then fetches the
// workbook's plot.
func demo(ctx context.Context, out io.Writer) error {
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	s, err := startStack(ctx, out)
	if err != nil {
		return err
	}
	defer s.Close()
	urls := s.URLs

	// One login; the session lives in the relay tier, so both instances know it.
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: 10 * time.Second}
	resp, err := hc.Post(urls[0]+"/login/anonymous", "", nil)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("login: %s", resp.Status)
	}
	var cookies []string
	for _, ck := range jar.Cookies(resp.Request.URL) {
		cookies = append(cookies, ck.Name+"="+ck.Value)
	}
	hdr := http.Header{"Cookie": {strings.Join(cookies, "; ")}}
	var browsers []*websocket.Conn
	for i, u := range urls {
		c, resp, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(u, "http")+"/ws/budget", hdr)
		if err != nil {
			return fmt.Errorf("browser %d: %w", i+1, err)
		}
		resp.Body.Close()
		defer c.Close()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		_, joined, err := c.ReadMessage()
		if err != nil {
			return err
		}
		fmt.Fprintf(out, "browser %d: %s\n", i+1, joined)
		browsers = append(browsers, c)
	}

	edit, _ := json.Marshal(map[string]any{"op": "set", "cell": "A1", "value": "42", "id": 1})
	fmt.Fprintf(out, "browser 1 sends %s\n", edit)
	if err := browsers[0].WriteMessage(websocket.TextMessage, edit); err != nil {
		return err
	}
	// Browser 1 gets its ack and the cell (in either order); browser 2 gets the cell.
	for i, want := range []int{2, 1} {
		for range want {
			_, msg, err := browsers[i].ReadMessage()
			if err != nil {
				return fmt.Errorf("browser %d: %w", i+1, err)
			}
			fmt.Fprintf(out, "browser %d got %s\n", i+1, msg)
		}
	}
	bad := []byte(`{"op":"paint","id":2}`)
	fmt.Fprintf(out, "browser 2 sends %s\n", bad)
	if err := browsers[1].WriteMessage(websocket.TextMessage, bad); err != nil {
		return err
	}
	_, msg, err := browsers[1].ReadMessage()
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "browser 2 got %s\n", msg)
	return fetchPlot(ctx, out, urls[1], hdr)
}

// fetchPlot asks the instance at url for the budget workbook's plot, as browser 2's page
// would, and says what came back.
func fetchPlot(ctx context.Context, out io.Writer, url string, hdr http.Header) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/ws/budget/files/plot.svg", nil)
	if err != nil {
		return err
	}
	req.Header = hdr
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "browser 2 got plot.svg: %s, %s, %d bytes, bar %q\n", resp.Status, resp.Header.Get("Content-Type"),
		len(body), regexp.MustCompile(`<title>A1 = [^<]*</title>`).Find(body))
	return nil
}

// startInstance starts a gateway instance in broker mode on a free port.
func startInstance(ctx context.Context, dir, name string, dial func(string) (*relay.Client, error)) (string, func(), error) {
	c, err := dial(name)
	if err != nil {
		return "", nil, err
	}
	store, err := sessioncache.New(sessioncache.Config{Path: filepath.Join(dir, name+".table"), Create: true,
		ElementCount: 1000, RecordSize: 1024}, c)
	if err != nil {
		c.Close()
		return "", nil, err
	}
	signer, err := gateway.NewHS256Signer([]byte("a demo key of at least 32 bytes!"), "workers-demo")
	if err != nil {
		return "", nil, err
	}
	sessions, err := gateway.NewSessions(gateway.SessionsConfig{Store: store, Signer: signer})
	if err != nil {
		return "", nil, err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	url := "http://" + ln.Addr().String()
	b, err := broker.NewBroker(ctx, broker.BrokerConfig{Relay: c, Sessions: sessions, Instance: name, Advertise: url,
		AllowAnonymous: true})
	if err != nil {
		ln.Close()
		return "", nil, err
	}
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/ws/", b)
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	stop := func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(sctx)
		b.Shutdown(sctx)
		store.Close()
		c.Close()
	}
	return url, stop, nil
}

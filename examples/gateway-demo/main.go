// Command gateway-demo runs the whole stack on loopback with a page a person uses: a relay
// tier, discovery with two demo backends (WebSocket servers that say which of them
// answered), the gateway (login, sessions, the WebSocket proxy, the push hub) and a small
// web page: log in, open a document over the proxied WebSocket, see which backend serves
// it, watch the hub's ticks, log out.
//
//	go run ./examples/gateway-demo          then open the printed URL
package main

import (
	"context"
	_ "embed"
	"fmt"
	"log"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/hub"
	"github.com/globalsession/globalsession/gateway/wsproxy"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

//go:embed page.html
var page []byte

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	d, err := start("127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	defer d.Close()
	fmt.Printf("gateway demo: open %s in a browser (Ctrl-C stops)\n", d.URL)
	<-ctx.Done()
}

// demo is the running stack.
type demo struct {
	URL     string
	closers []func()
}

// Close stops everything, in reverse order.
func (d *demo) Close() {
	for i := len(d.closers) - 1; i >= 0; i-- {
		d.closers[i]()
	}
}

// start runs the stack with the gateway on addr.
func start(addr string) (*demo, error) {
	d := &demo{}
	fail := func(err error) (*demo, error) { d.Close(); return nil, err }
	dir, err := os.MkdirTemp("", "gateway-demo")
	if err != nil {
		return nil, err
	}
	d.closers = append(d.closers, func() { os.RemoveAll(dir) })
	table := func(name string, create bool) sessioncache.Config {
		return sessioncache.Config{Path: filepath.Join(dir, name+".table"), Create: create, ElementCount: 1000, RecordSize: 1024}
	}

	// The session tier: a relay with its sibling.
	r, err := relay.NewRelay(relay.RelayConfig{Addr: "127.0.0.1:0", Table: table("relay", true)})
	if err != nil {
		return fail(err)
	}
	d.closers = append(d.closers, func() { r.Close() })
	sib, err := relay.NewSibling(relay.SiblingConfig{Addr: "127.0.0.1:0"})
	if err != nil {
		return fail(err)
	}
	d.closers = append(d.closers, func() { sib.Close() })
	r.SetLower(sib)

	// Two demo backends and discovery over them.
	var targets discovery.Static
	for _, name := range []string{"backend-1", "backend-2"} {
		a, stop, err := backend(name)
		if err != nil {
			return fail(err)
		}
		d.closers = append(d.closers, stop)
		targets = append(targets, discovery.Target{ID: name, Addr: a})
	}
	disc, err := discovery.New(discovery.Config{Provider: targets, MetricsPath: "-", PollInterval: time.Second})
	if err != nil {
		return fail(err)
	}
	d.closers = append(d.closers, func() { disc.Close() })
	disc.Refresh(context.Background())
	disc.Start()
	ss, err := discovery.NewSessionService(discovery.SessionConfig{Source: disc})
	if err != nil {
		return fail(err)
	}

	// The gateway.
	rc, err := relay.Dial(context.Background(), relay.ClientConfig{Addr: r.Addr().String(), Name: "gateway"})
	if err != nil {
		return fail(err)
	}
	d.closers = append(d.closers, func() { rc.Close() })
	m, err := sessioncache.New(table("gateway", true), rc)
	if err != nil {
		return fail(err)
	}
	d.closers = append(d.closers, func() { m.Close() })
	signer, err := gateway.NewHS256Signer([]byte(strings.Repeat("demo-key-", 4)), "gateway-demo")
	if err != nil {
		return fail(err)
	}
	sessions, err := gateway.NewSessions(gateway.SessionsConfig{Store: m, Signer: signer})
	if err != nil {
		return fail(err)
	}
	proxy, err := wsproxy.NewProxy(wsproxy.ProxyConfig{Route: wsproxy.SessionRoute(wsproxy.RouteConfig{Sessions: sessions, Router: ss})})
	if err != nil {
		return fail(err)
	}
	h, err := hub.NewHub(hub.HubConfig{Sessions: sessions, ShortInterval: time.Second})
	if err != nil {
		return fail(err)
	}
	err = h.Register(hub.Command{Name: "clock", Handle: func(_ context.Context, u *hub.User, _ map[string]any) (any, error) {
		n := 0
		u.AddShortLoop("clock", func(context.Context, *hub.User) error {
			n++
			u.Send(map[string]any{"type": "tick", "n": n, "time": time.Now().Format(time.TimeOnly)})
			return nil
		})
		return "ticking every second", nil
	}})
	if err != nil {
		return fail(err)
	}
	login := &gateway.Login{Sessions: sessions, Anonymous: true}
	mux := http.NewServeMux()
	mux.Handle("/login/", login)
	mux.Handle("/logout", login)
	mux.Handle("/session", login)
	mux.Handle("/app/", proxy)
	mux.Handle("/hub", h)
	mux.HandleFunc("/{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Write(page)
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fail(err)
	}
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	d.closers = append(d.closers, func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		srv.Shutdown(ctx)
		proxy.Shutdown(ctx)
		h.Shutdown(ctx)
	})
	d.URL = "http://" + ln.Addr().String() + "/"
	return d, nil
}

// backend runs a demo backend: a health endpoint and a WebSocket that answers every
// message with "<name>: <message>".
func backend(name string) (addr string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	up := websocket.Upgrader{}
	mux := http.NewServeMux()
	mux.HandleFunc("/health", func(http.ResponseWriter, *http.Request) {})
	mux.HandleFunc("/app/", func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if c.WriteMessage(mt, fmt.Appendf(nil, "%s: %s (document %s)", name, msg, strings.TrimPrefix(r.URL.Path, "/app/"))) != nil {
				return
			}
		}
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go srv.Serve(ln)
	return ln.Addr().String(), func() { srv.Close() }, nil
}

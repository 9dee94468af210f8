package hub_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/hub"
	"github.com/globalsession/globalsession/sessioncache"
)

// A push hub with one command: "watch" acknowledges at once and adds a short loop that
// pushes the watched price to every tab of the user, every cycle, until the tabs close.
func ExampleHub() {
	dir, _ := os.MkdirTemp("", "hub-example")
	defer os.RemoveAll(dir)
	store, err := sessioncache.New(sessioncache.Config{Path: filepath.Join(dir, "gw.table"), Create: true, ElementCount: 1000, RecordSize: 1024})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer store.Close()
	signer, _ := gateway.NewHS256Signer([]byte("an example key of 32 bytes or more"), "example")
	sessions, err := gateway.NewSessions(gateway.SessionsConfig{Store: store, Signer: signer})
	if err != nil {
		fmt.Println(err)
		return
	}
	h, err := hub.NewHub(hub.HubConfig{Sessions: sessions, ShortInterval: 100 * time.Millisecond})
	if err != nil {
		fmt.Println(err)
		return
	}
	h.Register(hub.Command{Name: "watch", Required: []string{"symbol"},
		Handle: func(_ context.Context, u *hub.User, p map[string]any) (any, error) {
			symbol, _ := p["symbol"].(string)
			u.AddShortLoop("price "+symbol, func(context.Context, *hub.User) error {
				u.Send(map[string]any{"type": "price", "symbol": symbol, "price": 101.5})
				return nil
			})
			return "watching " + symbol, nil
		}})
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/hub", h)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer h.Shutdown(context.Background())

	// Log in (anonymously here) for the session cookie, then open the hub with it.
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar}
	resp, err := browser.Post(srv.URL+"/login/anonymous", "", nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	resp.Body.Close()
	cookie := http.Header{}
	for _, c := range jar.Cookies(resp.Request.URL) {
		cookie.Add("Cookie", c.Name+"="+c.Value)
	}
	tab, _, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(srv.URL, "http")+"/hub", cookie)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer tab.Close()
	tab.SetReadDeadline(time.Now().Add(10 * time.Second))
	var ready map[string]any
	tab.ReadJSON(&ready)
	fmt.Println(ready["type"], ready["commands"])

	tab.WriteJSON(map[string]any{"type": "watch", "params": map[string]any{"symbol": "ACME"}})
	got := map[string]map[string]any{}
	for got["ack"] == nil || got["price"] == nil {
		var m map[string]any
		if err := tab.ReadJSON(&m); err != nil {
			fmt.Println(err)
			return
		}
		got[m["type"].(string)] = m
	}
	fmt.Println("ack:", got["ack"]["result"])
	fmt.Println("pushed:", got["price"]["symbol"], got["price"]["price"])
	// Output:
	// ready [watch]
	// ack: watching ACME
	// pushed: ACME 101.5
}

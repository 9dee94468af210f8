package wsproxy_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway/wsproxy"
)

// A proxy in front of one WebSocket backend: the browser's upgrade is completed only once
// the backend's is, with the headers Route chose, and messages then flow both ways.
func ExampleNewProxy() {
	backend := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		user := r.Header.Get("X-User") // set by Route, never by the browser
		c, err := (&websocket.Upgrader{}).Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			_, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			c.WriteMessage(websocket.TextMessage, []byte(user+" said "+string(msg)))
		}
	}))
	defer backend.Close()

	p, err := wsproxy.NewProxy(wsproxy.ProxyConfig{
		Route: func(r *http.Request) (wsproxy.Backend, error) {
			// A real Route looks up the session behind the request's cookie (see
			// SessionRoute); this one sends everyone to the one backend as alice.
			return wsproxy.Backend{
				URL:    "ws" + strings.TrimPrefix(backend.URL, "http") + "/app/budget.qvf",
				Header: http.Header{"X-User": {"alice"}},
			}, nil
		},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	front := httptest.NewServer(p)
	defer front.Close()
	defer p.Shutdown(context.Background())

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	browser, _, err := websocket.DefaultDialer.DialContext(ctx, "ws"+strings.TrimPrefix(front.URL, "http"), nil)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer browser.Close()
	browser.WriteMessage(websocket.TextMessage, []byte("hello"))
	_, reply, err := browser.ReadMessage()
	if err != nil {
		fmt.Println(err)
		return
	}
	fmt.Println(string(reply))
	// Output: alice said hello
}

// Serving wss://: NewTLSListener takes the place of tls.NewListener, so that the proxy's
// event loops relay the browsers' TLS connections too. (Not run: it needs a certificate
// and serves until the process ends.)
func ExampleNewTLSListener() {
	p, err := wsproxy.NewProxy(wsproxy.ProxyConfig{
		Route: func(*http.Request) (wsproxy.Backend, error) {
			return wsproxy.Backend{URL: "ws://10.0.0.7:8080/app"}, nil
		},
	})
	if err != nil {
		log.Fatal(err)
	}
	cert, err := tls.LoadX509KeyPair("gateway.crt", "gateway.key")
	if err != nil {
		log.Fatal(err)
	}
	ln, err := net.Listen("tcp", ":8443")
	if err != nil {
		log.Fatal(err)
	}
	srv := &http.Server{Handler: p, ReadHeaderTimeout: 10 * time.Second}
	log.Fatal(srv.Serve(wsproxy.NewTLSListener(ln, &tls.Config{Certificates: []tls.Certificate{cert}})))
}

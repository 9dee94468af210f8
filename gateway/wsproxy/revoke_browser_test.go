package wsproxy

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
	"github.com/globalsession/globalsession/internal/testbrowser"
)

// socketPage logs in, opens a proxied WebSocket, checks it echoes, logs out, and writes
// the close code the socket then gets into the page.
const socketPage = `<html><body><div id="out">running</div><script>
const out = document.getElementById("out");
(async () => {
  await fetch("/login/anonymous", {method: "POST"});
  const ws = new WebSocket("ws://" + location.host + "/app/doc");
  ws.onmessage = async (e) => {
    if (e.data !== "hi") return;
    await fetch("/logout", {method: "POST"});
  };
  ws.onopen = () => ws.send("hi");
  ws.onclose = (e) => { out.textContent = "closed " + e.code; };
})();
</script></body></html>`

// TestALogoutClosesTheBrowsersSocket: in a real browser, a page's proxied WebSocket is
// closed with CloseSessionEnded as soon as the page logs out.
func TestALogoutClosesTheBrowsersSocket(t *testing.T) {
	ctx := testbrowser.New(t)
	b := newEchoBackend(t)
	d, err := discovery.New(discovery.Config{Provider: discovery.Static{{ID: "e", Addr: strings.TrimPrefix(b.srv.URL, "http://")}}, MetricsPath: "-"})
	require.NoError(t, err)
	defer d.Close()
	d.Refresh(context.Background())
	ss, err := discovery.NewSessionService(discovery.SessionConfig{Source: d,
		URL: func(in discovery.Instance, doc string) string { return "ws://" + in.Addr + "/app/" + doc }})
	require.NoError(t, err)
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	proxy, err := NewProxy(ProxyConfig{Route: SessionRoute(RouteConfig{Sessions: sessions, Router: ss}), Sessions: sessions})
	require.NoError(t, err)
	defer proxy.Shutdown(context.Background())
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/logout", &gateway.Login{Sessions: sessions})
	mux.Handle("/app/", proxy)
	mux.HandleFunc("/page", func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprint(w, socketPage)
	})
	srv := httptest.NewServer(mux)
	defer srv.Close()

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/page")))
	_, err = chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("out").textContent.startsWith("closed")`))
	require.NoError(t, err)
	text, err := chromedp.Run(ctx, chromedp.Text("#out"))
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("closed %d", CloseSessionEnded), text)
}

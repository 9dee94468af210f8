package wsproxy

import (
	"fmt"
	"net/http"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

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
	srv, _ := sessionProxy(t, false, func(mux *http.ServeMux) {
		mux.HandleFunc("/page", func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "text/html")
			fmt.Fprint(w, socketPage)
		})
	})

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate(srv.URL+"/page")))
	_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.getElementById("out").textContent.startsWith("closed")`))
	require.NoError(t, err)
	text, err := chromedp.Run(ctx, chromedp.Text("#out"))
	require.NoError(t, err)
	assert.Equal(t, fmt.Sprintf("closed %d", CloseSessionEnded), text)
}

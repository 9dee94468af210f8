package gateway_test

import (
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/gatewaytest"
	"github.com/globalsession/globalsession/internal/testbrowser"
)

// formPage serves a page whose form posts itself, at once, to action.
func formPage(action string) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html")
		fmt.Fprintf(w, `<html><body><form id="f" method="POST" action=%q></form>
<script>document.getElementById("f").submit()</script></body></html>`, action)
	})
}

// TestCrossSiteFormsInABrowser: in a real browser, a page on another site (localhost
// against the gateway's 127.0.0.1) that posts a login form to the gateway is refused and
// leaves the browser without a session; the same form on the gateway's own site logs in.
func TestCrossSiteFormsInABrowser(t *testing.T) {
	ctx := testbrowser.New(t)
	sessions := gatewaytest.Sessions(t, gateway.SessionsConfig{})
	mux := http.NewServeMux()
	mux.Handle("/login/", &gateway.Login{Sessions: sessions, Anonymous: true})
	mux.Handle("/session", &gateway.Login{Sessions: sessions})
	mux.Handle("/own-page", formPage("/login/anonymous"))
	gw := httptest.NewServer(mux)
	defer gw.Close()
	_, port, _ := net.SplitHostPort(strings.TrimPrefix(gw.URL, "http://"))
	evil := httptest.NewServer(formPage(gw.URL + "/login/anonymous"))
	defer evil.Close()
	_, evilPort, _ := net.SplitHostPort(strings.TrimPrefix(evil.URL, "http://"))

	session := func() string {
		t.Helper()
		require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://127.0.0.1:"+port+"/session"), chromedp.WaitReady("body")))
		body, err := chromedp.Run(ctx, chromedp.Text("body"))
		require.NoError(t, err)
		return body
	}
	// The form posts itself on load; the browser then shows the gateway's answer.
	landed := func(text string) string {
		t.Helper()
		_, err := chromedp.Run(ctx, chromedp.Poll[bool](`document.body !== null && document.body.innerText.includes(`+fmt.Sprintf("%q", text)+`)`))
		require.NoError(t, err)
		body, err := chromedp.Run(ctx, chromedp.Text("body"))
		require.NoError(t, err)
		return body
	}
	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://localhost:"+evilPort+"/")))
	assert.Contains(t, landed("another site"), "a request from another site is refused")
	assert.Contains(t, session(), "not logged in", "the cross-site form made no session")

	require.NoError(t, chromedp.Do(ctx, chromedp.Navigate("http://127.0.0.1:"+port+"/own-page")))
	assert.Contains(t, landed(`"anonymous"`), `"anonymous":true`)
	assert.Contains(t, session(), `"user":"anonymous-`, "the gateway's own form logged in")
}

package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/oauth2-proxy/mockoidc"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/testbrowser"
)

// TestSingleSignOnInABrowser goes through single sign-on in headless Chromium: the
// gateway's /login/oidc sends the browser to the provider, which sends it back to the
// callback (the state cookie must survive the cross-site redirects), and it lands on
// /session logged in; a WebSocket it opens from that page is proxied to the backend; the
// provider's back-channel logout then closes that WebSocket with 1008.
func TestSingleSignOnInABrowser(t *testing.T) {
	base, m, _ := startSSOGateway(t)
	ctx := testbrowser.New(t)
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(base+"/login/oidc?return=/session"),
		chromedp.WaitReady("body"),
	))
	who, err := chromedp.Run(ctx, chromedp.Text("body"))
	require.NoError(t, err)
	require.Contains(t, who, `"user":"`+mockoidc.DefaultUser().PreferredUsername+`"`, "logged in after the provider's redirects")

	open := `new Promise((resolve, reject) => {
		const ws = new WebSocket(location.origin.replace('http', 'ws') + '/app/sales.qvf');
		window.ssoClosed = null;
		ws.onclose = ev => { window.ssoClosed = ev.code; };
		ws.onerror = () => reject('the WebSocket failed');
		ws.onopen = () => ws.send('hello');
		ws.onmessage = ev => resolve(ev.data);
	})`
	echo, err := chromedp.Run(ctx, chromedp.Evaluate[string](open, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.True(t, strings.HasSuffix(echo, ":hello"), echo)

	backchannelLogout(t, base, m)
	require.NoError(t, chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tgt *chromedp.Target) error {
		_, err := chromedp.Poll[bool](`window.ssoClosed === 1008`, chromedp.WithPollingInterval(20*time.Millisecond))(ctx, tgt)
		return err
	})), "the page's WebSocket closes with 1008 when the provider logs the user out")
}

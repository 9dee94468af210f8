package main

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/globalsession/globalsession/internal/testbrowser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestPageInABrowser drives the demo page in a real headless Chromium: log in, open a
// document through the proxied WebSocket, see which backend serves it and the hub's ticks,
// log out, and find the document refused.
func TestPageInABrowser(t *testing.T) {
	d, err := start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(d.Close)
	ctx := testbrowser.New(t) // stopped before the demo: cleanups run last-in first-out

	waitFor := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond))(ctx, t)
			return err
		})
	}
	text := func(sel string) string {
		t.Helper()
		s, err := chromedp.Run(ctx, chromedp.Text(sel))
		require.NoError(t, err)
		return s
	}
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Navigate(d.URL),
		chromedp.WaitVisible("#login"),
		chromedp.Click("#login"),
		waitFor(`document.getElementById('who').textContent.startsWith('anonymous-')`),
	))
	who := text("#who")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click("#open"),
		waitFor(`document.getElementById('backend').textContent.startsWith('backend-')`),
		waitFor(`document.getElementById('hub').textContent.startsWith('tick')`),
	))
	backend, hub := text("#backend"), text("#hub")
	require.NoError(t, chromedp.Do(ctx,
		chromedp.Click("#logout"),
		waitFor(`document.getElementById('who').textContent === 'not logged in'`),
		chromedp.Click("#open"),
		waitFor(`document.getElementById('log').textContent.includes('could not connect')`),
	))
	logText := text("#log")
	assert.True(t, strings.HasPrefix(who, "anonymous-"), who)
	assert.Contains(t, []string{"backend-1", "backend-2"}, backend)
	assert.True(t, strings.HasPrefix(hub, "tick"), hub)
	assert.Contains(t, logText, "logout: 204")
	assert.Contains(t, logText, "which backend? (document sales.qvf)")
}

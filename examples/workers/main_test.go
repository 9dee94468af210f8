package main

import (
	"bytes"
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/stretchr/testify/require"

	"github.com/globalsession/globalsession/internal/testbrowser"
)

func TestDemo(t *testing.T) {
	var out bytes.Buffer
	if err := demo(context.Background(), &out); err != nil {
		t.Fatalf("%v\n%s", err, out.String())
	}
	s := out.String()
	for _, want := range []string{
		`browser 1: {"gateway":{"event":"joined","group":"budget","instance":"gw-1"`,
		`browser 2: {"gateway":{"event":"joined","group":"budget","instance":"gw-2"`,
		`browser 1 got {"type":"ack","id":1,"worker":"w`,
		`browser 2 got {"type":"cell","cell":"A1","value":"42","by":"anonymous-`,
		`browser 2 got {"gateway":{"event":"error","seq":1,"error":"unknown op \"paint\""}}`,
		`browser 2 got plot.svg: 200 OK, image/svg+xml, `,
		`bar "<title>A1 = 42</title>"`,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("the demo did not print %s\n%s", want, s)
		}
	}
}

// TestPlotInTwoBrowsers drives the demo page in two headless Chromium browsers, one on
// each gateway instance: both log in and open the workbook; an edit in the first reaches
// the second, whose plot (an SVG a worker draws, fetched from the instance that holds its
// WebSocket) loads again and shows the new value.
func TestPlotInTwoBrowsers(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), testbrowser.Timeout)
	defer cancel()
	s, err := startStack(ctx, io.Discard)
	require.NoError(t, err)
	t.Cleanup(s.Close)
	first, second := testbrowser.New(t), testbrowser.New(t) // stopped before the stack
	waitFor := func(js string) chromedp.Action[chromedp.Void] {
		return chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
			_, err := chromedp.Poll[bool](js, chromedp.WithPollingInterval(20*time.Millisecond))(ctx, t)
			return err
		})
	}
	for i, b := range []context.Context{first, second} {
		require.NoError(t, chromedp.Do(b,
			chromedp.Navigate(s.URLs[i]+"/"),
			chromedp.WaitVisible("#login"),
			chromedp.Click("#login"),
			waitFor(`document.getElementById('instance').textContent.startsWith('gw-')`),
			waitFor(`document.getElementById('plot').dataset.loaded === '1'`),
		), "browser %d", i+1)
	}
	require.NoError(t, chromedp.Do(first,
		chromedp.SetValue("#cell", "B2"),
		chromedp.SetValue("#value", "7"),
		chromedp.Click("#set"),
	))
	require.NoError(t, chromedp.Do(second,
		waitFor(`document.getElementById('log').textContent.includes('cell B2 = 7')`),
		waitFor(`Number(document.getElementById('plot').dataset.loaded) >= 2 && document.getElementById('plot').naturalWidth > 0`),
	))
	// What the plot now shows, fetched as the page does (the image itself is not readable
	// from script).
	shows, err := chromedp.Run(second, chromedp.Evaluate[string](
		`fetch('/ws/budget/files/plot.svg').then(r => r.text())`, chromedp.EvalAsValue, chromedp.EvalAwaitPromise))
	require.NoError(t, err)
	require.Contains(t, shows, "<title>B2 = 7</title>")
}

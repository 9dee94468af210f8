// Package testbrowser starts a real headless Chromium for the project's page tests and
// drives it over the DevTools protocol (github.com/chromedp/chromedp).
//
// The browser runs with the flags this project's machines need: no sandbox (tests run as
// root), no GPU, and no background networking, so Chromium does not try to reach hosts the
// closed network refuses. A test that needs a browser is skipped, with a printed reason, only
// when no Chromium binary exists and CI is unset; under CI a missing browser fails the test.
package testbrowser

import (
	"context"
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
)

// Timeout bounds everything one test does in its browser.
const Timeout = 60 * time.Second

// Path returns the path of a Chromium binary, or skips (fails under CI) the test without one.
func Path(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("CI") != "" {
		t.Fatal("chromium is not installed; .ci/run should have installed it")
	}
	t.Skip("chromium is not installed (apt-get install chromium)")
	return ""
}

// New starts a headless Chromium with a fresh profile and returns a chromedp context for
// one tab in it, bounded by Timeout. The browser is stopped when the test ends.
func New(t testing.TB) context.Context {
	t.Helper()
	browser := Path(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(browser), chromedp.NoSandbox,
		chromedp.Flag("disable-gpu", true), chromedp.Flag("disable-quic", true),
		chromedp.Flag("disable-background-networking", true), chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true), chromedp.UserDataDir(t.TempDir()))
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(alloc)
	ctx, cancel := context.WithTimeout(ctx, Timeout)
	t.Cleanup(func() {
		cancel()
		cancelCtx()
		cancelAlloc()
	})
	return ctx
}

// DOM loads url in the browser's tab, waits for its body, and returns the serialized DOM the
// browser built.
func DOM(ctx context.Context, url string) (string, error) {
	if err := chromedp.Do(ctx, chromedp.Navigate(url), chromedp.WaitReady("body")); err != nil {
		return "", err
	}
	return chromedp.Run(ctx, chromedp.OuterHTML("html"))
}

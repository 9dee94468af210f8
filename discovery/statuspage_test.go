package discovery

import (
	"context"
	"net/http/httptest"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// chromium returns the path of a headless Chromium, skipping the test without one (CI
// installs Debian's chromium).
func chromium(t *testing.T) string {
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

// render loads url in headless Chromium and returns the DOM it built.
func render(t *testing.T, browser, url string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
		"--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--dump-dom", url).Output()
	require.NoError(t, err)
	return string(out)
}

// TestStatusPageInABrowser renders the status page in a real browser: a person sees at a
// glance how many instances are healthy, which are not and why, and their key metrics.
func TestStatusPageInABrowser(t *testing.T) {
	browser := chromium(t)
	good, bad := newEngine(t, 5), newEngine(t, 0)
	bad.status.Store(503)
	s := newService(t, Static{{ID: "engine-good", Addr: good.addr()}, {ID: "engine-bad", Addr: bad.addr()}}, Config{})
	s.Refresh(context.Background())
	srv := httptest.NewServer(Handler(s, nil))
	defer srv.Close()

	dom := render(t, browser, srv.URL+"/")
	assert.Contains(t, dom, "1 of 2 instances healthy")
	assert.Contains(t, dom, "engine-bad")
	assert.Contains(t, dom, "status 503")
	assert.Contains(t, dom, "qix_active_sessions=5")
	assert.Contains(t, dom, `http-equiv="refresh"`, "the page refreshes itself")
	assert.Less(t, strings.Index(dom, "engine-bad"), strings.Index(dom, "engine-good"), "unhealthy instances come first")

	bad.status.Store(200)
	s.Poll(context.Background())
	dom = render(t, browser, srv.URL+"/")
	assert.Contains(t, dom, "2 of 2 instances healthy")
}

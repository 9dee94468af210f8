package discovery

import (
	"context"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/globalsession/globalsession/internal/testbrowser"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStatusPageInABrowser renders the status page in a real browser: a person sees at a
// glance how many instances are healthy, which are not and why, and their key metrics.
func TestStatusPageInABrowser(t *testing.T) {
	browser := testbrowser.New(t)
	good, bad := newEngine(t, 5), newEngine(t, 0)
	bad.status.Store(503)
	s := newService(t, Static{{ID: "engine-good", Addr: good.addr()}, {ID: "engine-bad", Addr: bad.addr()}}, Config{})
	s.Refresh(context.Background())
	srv := httptest.NewServer(Handler(s, nil))
	defer srv.Close()

	dom, err := testbrowser.DOM(browser, srv.URL+"/")
	require.NoError(t, err)
	assert.Contains(t, dom, "1 of 2 instances healthy")
	assert.Contains(t, dom, "engine-bad")
	assert.Contains(t, dom, "status 503")
	assert.Contains(t, dom, "qix_active_sessions=5")
	assert.Contains(t, dom, `http-equiv="refresh"`, "the page refreshes itself")
	assert.Less(t, strings.Index(dom, "engine-bad"), strings.Index(dom, "engine-good"), "unhealthy instances come first")

	bad.status.Store(200)
	s.Poll(context.Background())
	dom, err = testbrowser.DOM(browser, srv.URL+"/")
	require.NoError(t, err)
	assert.Contains(t, dom, "2 of 2 instances healthy")
}

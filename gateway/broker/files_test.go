package broker

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// getFile asks instance g for path with cookie and returns the status and body.
func getFile(t *testing.T, g *gatewayInstance, method, path string, cookie http.Header) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(method, g.srv.URL+path, nil)
	require.NoError(t, err)
	for k, v := range cookie {
		req.Header[k] = v
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

// plots serves "plot.svg" naming the group and user; "big" is size bytes; "slow" waits
// for release (and says it started on started).
func plots(size int, started chan<- struct{}, release <-chan struct{}) FileHandlerFunc {
	return func(ctx context.Context, req *FileRequest) (*File, error) {
		switch req.Name {
		case "plot.svg":
			return &File{ContentType: "image/svg+xml", Body: []byte("<svg><text>" + req.Group + " for " + req.User + "</text></svg>")}, nil
		case "big":
			return &File{Body: bytes.Repeat([]byte("x"), size)}, nil
		case "slow":
			started <- struct{}{}
			select {
			case <-release:
			case <-ctx.Done():
				return nil, ctx.Err()
			}
			return &File{Body: []byte("done")}, nil
		}
		return &File{Status: http.StatusNotFound, Body: []byte("no file " + req.Name)}, nil
	}
}

// A session that holds a group's WebSocket on an instance gets the group's files from a
// worker there; nobody else does.
func TestBrokerServesFilesToTheGroupsSession(t *testing.T) {
	f := newBrokerFixture(t)
	g := f.instance(t, "gw", BrokerConfig{})
	f.workerWith(t, WorkerConfig{Name: "w", Handler: workbook("w"), Files: plots(0, nil, nil)})
	cookie := loginCookie(t, g)
	code, _, _ := getFile(t, g, "GET", "/ws/wb/files/plot.svg", cookie)
	require.Equal(t, http.StatusForbidden, code, "before the session opens the group")

	openGroup(t, g, cookie, "wb")
	code, h, body := getFile(t, g, "GET", "/ws/wb/files/plot.svg", cookie)
	require.Equal(t, http.StatusOK, code, body)
	assert.Equal(t, "image/svg+xml", h.Get("Content-Type"))
	assert.Equal(t, "nosniff", h.Get("X-Content-Type-Options"))
	assert.Contains(t, body, "wb for anonymous-")
	code, _, body = getFile(t, g, "GET", "/ws/wb/files/none", cookie)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "no file none", body)

	for _, tc := range []struct {
		name, method, path string
		cookie             http.Header
		want               int
	}{
		{"no session", "GET", "/ws/wb/files/plot.svg", nil, http.StatusUnauthorized},
		{"another session", "GET", "/ws/wb/files/plot.svg", loginCookie(t, g), http.StatusForbidden},
		{"another group", "GET", "/ws/other/files/plot.svg", cookie, http.StatusForbidden},
		{"not a GET", "POST", "/ws/wb/files/plot.svg", cookie, http.StatusMethodNotAllowed},
		{"a slash in the name", "GET", "/ws/wb/files/a/b", cookie, http.StatusBadRequest},
	} {
		code, _, body := getFile(t, g, tc.method, tc.path, tc.cookie)
		assert.Equal(t, tc.want, code, "%s: %s", tc.name, body)
	}
}

// File requests are bounded: size (502), time (504) and requests of one session at once
// (429); a worker without Files answers 404.
func TestBrokerFileLimits(t *testing.T) {
	f := newBrokerFixture(t)
	g := f.instance(t, "gw", BrokerConfig{MaxFileSize: 1000, FileTimeout: 300 * time.Millisecond, MaxFileRequests: 1})
	started, release := make(chan struct{}, 1), make(chan struct{})
	f.workerWith(t, WorkerConfig{Name: "w", Handler: workbook("w"), Files: plots(1001, started, release), MaxFileSize: 1 << 20})
	cookie := loginCookie(t, g)
	openGroup(t, g, cookie, "wb")

	code, _, body := getFile(t, g, "GET", "/ws/wb/files/big", cookie)
	assert.Equal(t, http.StatusBadGateway, code)
	assert.Contains(t, body, "larger than this gateway serves")

	slow := make(chan int, 1)
	go func() { c, _, _ := getFile(t, g, "GET", "/ws/wb/files/slow", cookie); slow <- c }()
	<-started
	code, h, _ := getFile(t, g, "GET", "/ws/wb/files/plot.svg", cookie)
	assert.Equal(t, http.StatusTooManyRequests, code, "a second request of the session while one is under way")
	assert.Equal(t, "1", h.Get("Retry-After"))
	assert.Equal(t, http.StatusGatewayTimeout, <-slow)
	close(release)
	code, _, _ = getFile(t, g, "GET", "/ws/wb/files/plot.svg", cookie)
	assert.Equal(t, http.StatusOK, code, "the slot is free again")
}

// Workers written before files existed answer every file request 404, and keep serving
// messages.
func TestBrokerFilesFromAWorkerWithout(t *testing.T) {
	f := newBrokerFixture(t)
	g := f.instance(t, "gw", BrokerConfig{})
	f.worker(t, "w", workbook("w"))
	cookie := loginCookie(t, g)
	c := openGroup(t, g, cookie, "wb")
	code, _, body := getFile(t, g, "GET", "/ws/wb/files/plot.svg", cookie)
	assert.Equal(t, http.StatusNotFound, code)
	assert.Equal(t, "worker w serves no files", strings.TrimSpace(body))
	c.send(t, "hello")
	assert.Equal(t, "echo hello", c.read(t))
}

func FuzzDecodeFile(f *testing.F) {
	b, _ := encodeFile(&File{Status: 404, ContentType: "text/plain", Body: []byte("no such plot")})
	f.Add(b)
	f.Fuzz(func(t *testing.T, data []byte) {
		file, err := decodeFile(data)
		if err != nil {
			return
		}
		again, err := encodeFile(file)
		if err != nil {
			t.Fatalf("a decoded file does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("round trip changed the bytes")
		}
	})
}

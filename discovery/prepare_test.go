package discovery

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// instanceOf is an Instance at srv's address.
func instanceOf(srv *httptest.Server) Instance {
	return Instance{Target: Target{ID: "engine", Addr: strings.TrimPrefix(srv.URL, "http://")}, Healthy: true}
}

// HTTPPreparer posts the session, document and TTL to the instance and takes the session
// id and headers from its answer.
func TestHTTPPreparer(t *testing.T) {
	var got prepareRequest
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodPost || r.URL.Path != "/engine/prepare" {
			http.Error(w, "wrong request", http.StatusBadRequest)
			return
		}
		if err := json.NewDecoder(r.Body).Decode(&got); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		json.NewEncoder(w).Encode(PrepareAnswer{SessionID: "qix-7", Headers: map[string]string{"X-Engine": "e1"}})
	}))
	defer srv.Close()
	p := &HTTPPreparer{Path: "/engine/prepare", TTL: 90 * time.Second}
	id, h, err := p.Prepare(context.Background(), instanceOf(srv), "bk-1", "sales.qvf")
	require.NoError(t, err)
	assert.Equal(t, "qix-7", id)
	assert.Equal(t, map[string]string{"X-Engine": "e1"}, h)
	assert.Equal(t, prepareRequest{Session: "bk-1", Document: "sales.qvf", TTLSeconds: 90}, got)
}

// Every way an instance can fail to prepare is an error that says what it was.
func TestHTTPPreparerFailures(t *testing.T) {
	hang := make(chan struct{}) // closed when the silent case is over
	for _, tc := range []struct {
		name    string
		handler http.HandlerFunc
		want    string
	}{
		{"refusal", func(w http.ResponseWriter, _ *http.Request) {
			http.Error(w, "no such document", http.StatusNotFound)
		}, "404 Not Found: no such document"},
		{"not JSON", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte("<html>")) }, "not a preparation"},
		{"no id", func(w http.ResponseWriter, _ *http.Request) { w.Write([]byte(`{"headers":{}}`)) }, "no session_id"},
		{"huge", func(w http.ResponseWriter, _ *http.Request) {
			w.Write([]byte(`{"session_id":"` + strings.Repeat("x", maxPrepareAnswer) + `"}`))
		}, "more than 65536 bytes"},
		{"silent", func(http.ResponseWriter, *http.Request) {
			<-hang
		}, "deadline exceeded"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(tc.handler)
			defer srv.Close()
			if tc.name == "silent" {
				defer close(hang) // before srv.Close, which waits for the handler
			}
			p := &HTTPPreparer{Timeout: 200 * time.Millisecond}
			_, _, err := p.Prepare(context.Background(), instanceOf(srv), "bk", "doc")
			require.Error(t, err)
			assert.Contains(t, err.Error(), tc.want)
		})
	}
}

package discovery

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"time"
)

// HTTPPreparer is a Preparer that asks the chosen instance itself to prepare the session,
// as the original design's session service opens the document on a QIX engine and sets the
// engine's session TTL so that a user who drops can reconnect to the same engine session.
//
// It POSTs, as JSON, to http://<instance address><Path>:
//
//	{"session": "<the gateway's backend id of the session>", "document": "<document>", "ttl_seconds": 300}
//
// and expects 200 with
//
//	{"session_id": "<the engine's session id>", "headers": {"<name>": "<value>"}}
//
// where headers may be left out. The session id is what the gateway then sends the engine
// in its session header with the WebSocket upgrade. Any other answer, or none within
// Timeout, fails the preparation (and the session service tries the next instance).
type HTTPPreparer struct {
	// Path is the instances' preparation endpoint. Empty means "/v1/prepare".
	Path string
	// TTL is how long the engine keeps a prepared session alive with no connection, sent
	// as ttl_seconds. Zero means 5 minutes.
	TTL time.Duration
	// Timeout bounds one preparation. Zero means 5 seconds.
	Timeout time.Duration
	// Client makes the requests. Nil means a client of its own.
	Client *http.Client
}

// prepareRequest is the body HTTPPreparer sends.
type prepareRequest struct {
	Session    string `json:"session"`
	Document   string `json:"document"`
	TTLSeconds int64  `json:"ttl_seconds"`
}

// PrepareAnswer is what an instance answers an HTTPPreparer with.
type PrepareAnswer struct {
	// SessionID is the instance's session id for the prepared session; required.
	SessionID string `json:"session_id"`
	// Headers are sent to the instance with the WebSocket upgrade.
	Headers map[string]string `json:"headers,omitempty"`
}

// maxPrepareAnswer bounds what is read of an instance's answer.
const maxPrepareAnswer = 64 << 10

var defaultPrepareClient = &http.Client{}

// Prepare implements Preparer.
func (p *HTTPPreparer) Prepare(ctx context.Context, in Instance, session, document string) (string, map[string]string, error) {
	path, ttl, timeout, client := p.Path, p.TTL, p.Timeout, p.Client
	if path == "" {
		path = "/v1/prepare"
	}
	if ttl == 0 {
		ttl = 5 * time.Minute
	}
	if timeout == 0 {
		timeout = 5 * time.Second
	}
	if client == nil {
		client = defaultPrepareClient
	}
	body, err := json.Marshal(prepareRequest{Session: session, Document: document, TTLSeconds: int64(ttl / time.Second)})
	if err != nil {
		return "", nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://"+in.Addr+path, bytes.NewReader(body))
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	answer, err := io.ReadAll(io.LimitReader(resp.Body, maxPrepareAnswer+1))
	if err != nil {
		return "", nil, fmt.Errorf("reading the answer of %s: %w", path, err)
	}
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("%s answered %s: %.200s", path, resp.Status, bytes.TrimSpace(answer))
	}
	if len(answer) > maxPrepareAnswer {
		return "", nil, fmt.Errorf("%s answered more than %d bytes", path, maxPrepareAnswer)
	}
	var a PrepareAnswer
	if err := json.Unmarshal(answer, &a); err != nil {
		return "", nil, fmt.Errorf("%s answered what is not a preparation: %w", path, err)
	}
	if a.SessionID == "" {
		return "", nil, fmt.Errorf("%s answered no session_id", path)
	}
	return a.SessionID, a.Headers, nil
}

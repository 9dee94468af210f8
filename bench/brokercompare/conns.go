package main

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// opTimeout bounds every read and write of the load generator: a reply that does not come
// within it fails the cell rather than hanging it.
const opTimeout = 5 * time.Second

var dialer = websocket.Dialer{HandshakeTimeout: 10 * time.Second}

// dialEcho opens a connection to the echo server.
func dialEcho(addr string) (*websocket.Conn, error) {
	c, resp, err := dialer.Dial("ws://"+addr+"/", nil)
	if err != nil {
		return nil, fmt.Errorf("dial the echo server: %w", err)
	}
	resp.Body.Close()
	return c, nil
}

// dialBroker opens a connection to group at the gateway instance gw (a base URL) with
// the session's header and reads the broker's joined notice.
func dialBroker(gw, group string, hdr http.Header) (*websocket.Conn, error) {
	url := "ws" + strings.TrimPrefix(gw, "http") + "/ws/" + group
	c, resp, err := dialer.Dial(url, hdr)
	if err != nil {
		if resp != nil {
			err = fmt.Errorf("%w (%s)", err, resp.Status)
		}
		return nil, fmt.Errorf("dial %s: %w", url, err)
	}
	resp.Body.Close()
	c.SetReadDeadline(time.Now().Add(opTimeout))
	_, msg, err := c.ReadMessage()
	if err != nil {
		c.Close()
		return nil, fmt.Errorf("%s: no joined notice: %w", url, err)
	}
	if n, ok := parseNotice(msg); !ok || n.Event != "joined" {
		c.Close()
		return nil, fmt.Errorf("%s: first message %.200q, not a joined notice", url, msg)
	}
	return c, nil
}

// brokerNotice is the body of the broker's own messages, {"gateway":{...}}.
type brokerNotice struct {
	Event string `json:"event"`
	Seq   uint64 `json:"seq"`
	Error string `json:"error"`
}

// parseNotice reads msg as a broker notice; ok is false for anything else.
func parseNotice(msg []byte) (n brokerNotice, ok bool) {
	if !bytes.HasPrefix(msg, []byte(`{"gateway":`)) {
		return n, false
	}
	var v struct {
		Gateway brokerNotice `json:"gateway"`
	}
	if json.Unmarshal(msg, &v) != nil {
		return n, false
	}
	return v.Gateway, true
}

// unexpected describes a message that is not the one wanted, naming a broker error
// notice as such.
func unexpected(msg []byte, want string) error {
	if n, ok := parseNotice(msg); ok && n.Event == "error" {
		return fmt.Errorf("broker error notice (message %d): %s", n.Seq, n.Error)
	}
	return fmt.Errorf("got %.100q, want %s", msg, want)
}

// readTimed reads one message within opTimeout.
func readTimed(c *websocket.Conn) ([]byte, error) {
	c.SetReadDeadline(time.Now().Add(opTimeout))
	_, msg, err := c.ReadMessage()
	return msg, err
}

// writeTimed writes one text message within opTimeout.
func writeTimed(c *websocket.Conn, msg []byte) error {
	c.SetWriteDeadline(time.Now().Add(opTimeout))
	return c.WriteMessage(websocket.TextMessage, msg)
}

// closeConn sends a normal close and closes the socket.
func closeConn(c *websocket.Conn) {
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
	c.Close()
}

// closeAll closes every connection.
func closeAll(cs []*websocket.Conn) {
	for _, c := range cs {
		closeConn(c)
	}
}

package wsconn

import (
	"io"
	"time"

	"github.com/gorilla/websocket"
)

// CloseWith sends a close frame; 1005 becomes a close frame without a code, as the
// protocol requires (1005, 1006 and 1015 never go on the wire).
func CloseWith(c *websocket.Conn, code int, text string, timeout time.Duration) {
	if code == websocket.CloseAbnormalClosure || code == websocket.CloseTLSHandshake {
		code = websocket.CloseInternalServerErr
	}
	_ = c.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, text), time.Now().Add(timeout))
}

// LingerClose closes a connection without losing what was sent last: closing a socket with
// unread data makes the kernel reset it, which can destroy the close frame just written.
// So the write side is shut first and what the peer still sends is read away, briefly.
func LingerClose(c *websocket.Conn) {
	nc := c.UnderlyingConn()
	if tc, ok := nc.(interface{ CloseWrite() error }); ok && tc.CloseWrite() == nil {
		nc.SetReadDeadline(time.Now().Add(time.Second))
		io.Copy(io.Discard, io.LimitReader(nc, 1<<20))
	}
	nc.Close()
}

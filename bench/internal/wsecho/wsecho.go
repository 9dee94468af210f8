// Package wsecho is the WebSocket echo server the comparison programs use as their
// baseline: every message goes back as it came.
package wsecho

import (
	"net/http"

	"github.com/gorilla/websocket"
)

// Handler upgrades every request and echoes each message, text or binary, until the
// connection ends.
func Handler() http.Handler {
	up := websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := up.Upgrade(w, r, nil)
		if err != nil {
			return
		}
		defer c.Close()
		for {
			mt, msg, err := c.ReadMessage()
			if err != nil {
				return
			}
			if err := c.WriteMessage(mt, msg); err != nil {
				return
			}
		}
	})
}

package hub

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
)

// Close codes the hub ends a channel with (besides 1001 on shutdown).
const (
	// CloseSessionEnded (1008, policy violation) ends the channels of a session that was
	// logged out, expired or failed Validate.
	CloseSessionEnded = websocket.ClosePolicyViolation
	// CloseFallingBehind (1013, try again later) ends a channel whose browser does not read
	// its messages as fast as they come: its send queue filled up.
	CloseFallingBehind = websocket.CloseTryAgainLater
)

// channel is one browser tab's WebSocket. Messages to it go through a bounded queue that
// its own writer goroutine drains, so nothing that sends to a user (a loop, a topic's
// events) ever waits for a browser; a channel whose queue fills up is ended.
type channel struct {
	conn    *websocket.Conn
	session string
	queue   chan outgoing
	done    chan struct{} // closed when the channel's reader has left
	leave   sync.Once
	ending  atomic.Bool
}

// outgoing is a message for the writer, or (with a close code) the channel's last frame.
type outgoing struct {
	v     any
	code  int
	text  string
	close bool
}

// endGrace bounds how long an ended channel's close frame may take to leave before its
// connection is closed anyway: as long as any write may take.
const endGrace = 10 * time.Second

// newChannel starts conn's writer; wg counts it until it has written its last frame.
func newChannel(conn *websocket.Conn, session string, queueLen int, wg *sync.WaitGroup) *channel {
	ch := &channel{conn: conn, session: session, queue: make(chan outgoing, queueLen), done: make(chan struct{})}
	wg.Add(1)
	go ch.write(wg)
	return ch
}

// write sends the queued messages until the channel ends.
func (ch *channel) write(wg *sync.WaitGroup) {
	defer wg.Done()
	for {
		select {
		case m := <-ch.queue:
			if m.close {
				ch.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(m.code, m.text), time.Now().Add(time.Second))
				ch.conn.Close()
				return
			}
			ch.conn.SetWriteDeadline(time.Now().Add(10 * time.Second))
			if err := ch.conn.WriteJSON(m.v); err != nil {
				ch.conn.Close()
				return
			}
		case <-ch.done:
			return
		}
	}
}

// send queues v without waiting; a channel whose queue is full is ended with
// CloseFallingBehind.
func (ch *channel) send(v any) {
	if ch.ending.Load() {
		return
	}
	select {
	case ch.queue <- outgoing{v: v}:
	case <-ch.done:
	default:
		ch.end(CloseFallingBehind, "falling behind")
	}
}

// end sends a close frame with code after what is queued (or instead of it, when the queue
// is full) and closes the connection; it does not wait. The connection is closed after
// endGrace whatever the writer is doing.
func (ch *channel) end(code int, text string) {
	if ch.ending.Swap(true) {
		return
	}
	last := outgoing{code: code, text: text, close: true}
	for {
		select {
		case ch.queue <- last:
			time.AfterFunc(endGrace, func() { ch.conn.Close() })
			return
		default:
		}
		select { // full: make room by dropping what a browser that far behind would get
		case <-ch.queue:
		default:
		}
	}
}

// left marks the channel's reader gone: the writer stops and the connection closes.
func (ch *channel) left() {
	ch.leave.Do(func() {
		close(ch.done)
		ch.conn.Close()
	})
}

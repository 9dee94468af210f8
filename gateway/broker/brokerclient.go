package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway"
	"github.com/globalsession/globalsession/gateway/internal/wsconn"
	"github.com/globalsession/globalsession/relay"
)

// brokerClient is one client connection of a Broker.
type brokerClient struct {
	id, group string
	session   *gateway.Session
	conn      *websocket.Conn
	out       chan outMsg
	sem       chan struct{}
	ctx       context.Context
	cancel    context.CancelFunc
	slow      sync.Once
	checked   time.Time      // last session check; only the reader touches it
	recheck   atomic.Bool    // check the session at the next message: ends may have been missed
	pending   sync.WaitGroup // messages being handled; Add only on the reader

	tokenMu  sync.Mutex
	token    string    // the backend token workers get, signed when needed
	tokenAge time.Time // when it was signed
}

// backendToken returns the session's token for workers, making a new one when the one
// held is older than tokenRefresh.
func (c *brokerClient) backendToken(b *Broker) (string, error) {
	c.tokenMu.Lock()
	defer c.tokenMu.Unlock()
	if c.token == "" || time.Since(c.tokenAge) > tokenRefresh {
		t, err := b.cfg.Sessions.BackendToken(c.ctx, c.session, b.cfg.BackendToken)
		if err != nil {
			return "", err
		}
		c.token, c.tokenAge = t, time.Now()
	}
	return c.token, nil
}

// tokenRefresh is how old a worker's token may get before the next message gets a new one:
// well within the shortest token life a gateway is likely to give.
const tokenRefresh = 30 * time.Second

type outMsg struct {
	binary bool
	data   []byte
}

// notice is a message of the broker's own.
type notice struct {
	Gateway noticeBody `json:"gateway"`
}

type noticeBody struct {
	Event    string `json:"event"`
	Group    string `json:"group,omitempty"`
	Instance string `json:"instance,omitempty"`
	Client   string `json:"client,omitempty"`
	Seq      uint64 `json:"seq,omitempty"`
	Error    string `json:"error,omitempty"`
}

// readLoop reads the client's messages until it goes; it returns the close code to send
// (0: none, the connection is gone).
func (b *Broker) readLoop(c *brokerClient) (int, string) {
	wait := 2 * b.cfg.PingInterval
	c.conn.SetReadDeadline(time.Now().Add(wait))
	c.conn.SetPongHandler(func(string) error { return c.conn.SetReadDeadline(time.Now().Add(wait)) })
	var seq uint64
	for {
		mt, data, err := readLimited(c.conn, b.cfg.MaxMessageSize)
		if err != nil {
			var ce *websocket.CloseError
			switch {
			case errors.As(err, &ce):
				return websocket.CloseNormalClosure, ""
			case errors.Is(err, websocket.ErrReadLimit):
				return websocket.CloseMessageTooBig, fmt.Sprintf("message larger than %d bytes", b.cfg.MaxMessageSize)
			}
			return 0, ""
		}
		c.conn.SetReadDeadline(time.Now().Add(wait))
		if time.Since(c.checked) > b.cfg.SessionCheck || c.recheck.Swap(false) {
			c.checked = time.Now()
			if _, err := b.cfg.Sessions.LookupID(c.ctx, c.session.ID); errors.Is(err, gateway.ErrNoSession) {
				return websocket.ClosePolicyViolation, "the session ended"
			}
		}
		seq++
		select {
		case c.sem <- struct{}{}:
		case <-c.ctx.Done():
			return 0, ""
		}
		c.pending.Add(1)
		go func(seq uint64) {
			defer func() { <-c.sem; c.pending.Done() }()
			b.handle(c, seq, mt == websocket.BinaryMessage, data)
		}(seq)
	}
}

// handle sends one message to the worker queue and routes the replies.
func (b *Broker) handle(c *brokerClient, seq uint64, binaryMsg bool, data []byte) {
	b.messages.Add(1)
	token, err := c.backendToken(b)
	if err != nil {
		b.fail(c, seq, "the gateway could not sign the session's token")
		b.cfg.Logger.Warn("gateway: broker: signing a token failed", "err", err)
		return
	}
	req, err := encodeRequest(&Message{User: c.session.User, Group: c.group, Token: token, Data: data, Binary: binaryMsg,
		ID: c.id + "/" + strconv.FormatUint(seq, 10)})
	if err != nil {
		b.fail(c, seq, err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(c.ctx, b.cfg.RequestTimeout)
	defer cancel()
	out, err := b.cfg.Relay.Request(ctx, QueuePath(b.cfg.Queue), []byte(c.id), req)
	if err != nil {
		if c.ctx.Err() != nil {
			return // the client is gone
		}
		b.fail(c, seq, describeBrokerError(err))
		return
	}
	replies, err := decodeReplies(out)
	if err != nil {
		b.fail(c, seq, "the worker's answer was malformed: "+err.Error())
		return
	}
	for _, rp := range replies {
		if err := b.route(ctx, c, rp); err != nil {
			b.fail(c, seq, fmt.Sprintf("a reply to %s %s was not delivered: %v", rp.Kind, rp.Target, err))
		}
	}
}

func describeBrokerError(err error) string {
	var re *relay.RemoteError
	switch {
	case errors.As(err, &re):
		return re.Message
	case errors.Is(err, relay.ErrTimeout) || errors.Is(err, context.DeadlineExceeded):
		return "no worker answered in time"
	case errors.Is(err, relay.ErrUnavailable):
		return "the broker is unreachable: " + err.Error()
	}
	return err.Error()
}

// fail sends an error notice for message seq.
func (b *Broker) fail(c *brokerClient, seq uint64, msg string) {
	b.failures.Add(1)
	c.notice(noticeBody{Event: "error", Seq: seq, Error: msg})
}

// writeLoop writes c's queued messages and pings until c's reader ends.
func (b *Broker) writeLoop(c *brokerClient) {
	ping := time.NewTicker(b.cfg.PingInterval)
	defer ping.Stop()
	for {
		select {
		case m := <-c.out:
			mt := websocket.TextMessage
			if m.binary {
				mt = websocket.BinaryMessage
			}
			c.conn.SetWriteDeadline(time.Now().Add(b.cfg.WriteTimeout))
			if err := c.conn.WriteMessage(mt, m.data); err != nil {
				c.conn.Close() // the reader fails and ends the connection
				return
			}
		case <-ping.C:
			if err := c.conn.WriteControl(websocket.PingMessage, nil, time.Now().Add(b.cfg.WriteTimeout)); err != nil {
				c.conn.Close()
				return
			}
		case <-c.ctx.Done():
			return
		}
	}
}

// send queues m for c without waiting; a client whose queue is full is too slow and is
// disconnected. It reports whether m was queued.
func (c *brokerClient) send(m outMsg, b *Broker) bool {
	select {
	case c.out <- m:
		return true
	case <-c.ctx.Done():
		return false
	default:
	}
	c.slow.Do(func() {
		b.cfg.Logger.Warn("gateway: client too slow, disconnecting", "client", c.id, "queued", cap(c.out))
		go func() {
			wsconn.CloseWith(c.conn, websocket.CloseTryAgainLater, "too slow to keep up", b.cfg.WriteTimeout)
			c.conn.Close()
		}()
	})
	return false
}

func (c *brokerClient) notice(n noticeBody) {
	data, _ := json.Marshal(notice{Gateway: n})
	select {
	case c.out <- outMsg{data: data}:
	case <-c.ctx.Done():
	default:
	}
}

// readLimited reads the next message, failing with websocket.ErrReadLimit once it has more
// than limit bytes, without reading the rest. The library's own limit would answer 1009
// itself, with no reason; the broker's answer says why.
func readLimited(conn *websocket.Conn, limit int64) (int, []byte, error) {
	mt, r, err := conn.NextReader()
	if err != nil {
		return mt, nil, err
	}
	data, err := io.ReadAll(io.LimitReader(r, limit+1))
	if err != nil {
		return mt, nil, err
	}
	if int64(len(data)) > limit {
		return mt, nil, websocket.ErrReadLimit
	}
	return mt, data, nil
}

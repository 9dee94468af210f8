package endpoint

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
)

// QueueHandler answers a request handed to this client as a member of a queue (see
// Client.Join). key and value are the request's own copies. It returns the value to answer
// with, or an error whose message goes back to the requester.
type QueueHandler func(ctx context.Context, key, value []byte) ([]byte, error)

type queueMembership struct {
	label string
	h     QueueHandler
}

// Join makes this client a member of path's queue under label (its advertised address,
// say; no newline): the server hands each request on path (see Request) to one member,
// the least busy one, and when a member's connection is lost while it holds a request,
// to another. h runs in a goroutine of its own per request, with a context that ends at
// the requester's deadline or when the connection closes; a request whose handler is cut
// short that way is not answered, and the server hands it to another member. The
// membership lasts until Leave or Close and is renewed on every reconnection; a member
// whose connection drops leaves the queue at once.
func (c *Client) Join(ctx context.Context, path, label string, h QueueHandler) error {
	if h == nil {
		return errors.New("relay: join: nil handler")
	}
	if err := validLabel(label); err != nil {
		return fmt.Errorf("relay: join %q: %w", path, err)
	}
	c.mu.Lock()
	c.queues[path] = queueMembership{label: label, h: h}
	c.expectPushesLocked()
	c.mu.Unlock()
	return c.send(ctx, &wire.Frame{Op: wire.OpSubscribe, Flags: wire.FlagQueue, Path: []byte(path), Key: []byte(label)})
}

// Leave ends this client's membership of path's queue. Requests it holds still get their
// answers.
func (c *Client) Leave(ctx context.Context, path string) error {
	c.mu.Lock()
	delete(c.queues, path)
	c.mu.Unlock()
	return c.send(ctx, &wire.Frame{Op: wire.OpUnsubscribe, Flags: wire.FlagQueue, Path: []byte(path)})
}

// Members returns the labels of path's queue members, in the order they joined.
func (c *Client) Members(ctx context.Context, path string) ([]string, error) {
	cl, err := c.do(ctx, &wire.Frame{Op: wire.OpMembers, Path: []byte(path)})
	if err != nil {
		return nil, err
	}
	defer putCall(cl)
	if err := replyErr(wire.OpMembers, cl); err != nil {
		return nil, err
	}
	if len(cl.value) == 0 {
		return nil, nil
	}
	return strings.Split(string(cl.value), "\n"), nil
}

// Request hands key=value to one member of path's queue and returns that member's answer.
// ctx's deadline (or the client's RequestTimeout) travels with the request, so the server
// and the member stop at the same moment. The request is sent once: when the connection to
// the server is lost with it in flight, Request fails with ErrUnavailable rather than risk
// the work being done twice. A member's error comes back as a *RemoteError.
func (c *Client) Request(ctx context.Context, path string, key, value []byte) ([]byte, error) {
	if _, ok := ctx.Deadline(); !ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, c.cfg.RequestTimeout)
		defer cancel()
	}
	deadline, _ := ctx.Deadline()
	cn, err := c.current(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := cn.roundTrip(ctx, &wire.Frame{Op: wire.OpRequest, Path: []byte(path), Key: key, Value: value, Expiry: deadline.UnixNano()})
	if errors.Is(err, ErrConnLost) {
		err = fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	if err != nil {
		return nil, err
	}
	defer putCall(cl)
	if err := replyErr(wire.OpRequest, cl); err != nil {
		if !time.Now().Before(deadline) {
			// An error that arrives once the deadline has passed (the server's or the
			// member's own timeout) is the request timing out.
			return nil, fmt.Errorf("%w: %w", ErrTimeout, err)
		}
		return nil, err
	}
	return append([]byte(nil), cl.value...), nil
}

// clientDispatcher answers the requests a server sends to a client: queue requests with
// the handler joined for their path, entry requests with the configured Backend.
type clientDispatcher struct {
	c *Client
}

func (d clientDispatcher) serve(cn *conn, f *wire.Frame) {
	if f.Op != wire.OpRequest {
		backendDispatcher{d.c.cfg.Backend}.serve(cn, f)
		return
	}
	d.c.mu.Lock()
	q, ok := d.c.queues[string(f.Path)]
	d.c.mu.Unlock()
	if !ok {
		cn.replyError(f.ID, fmt.Sprintf("not a member of queue %q", f.Path))
		return
	}
	req := CopyFrame(f)
	go func() {
		// The handler stops when the requester's deadline passes or the connection
		// closes (Close closes it): the server hands the request to another member.
		ctx, cancel := cn.ctx, context.CancelFunc(func() {})
		if req.Expiry != 0 {
			ctx, cancel = context.WithDeadline(ctx, time.Unix(0, req.Expiry))
		}
		defer cancel()
		v, err := q.h(ctx, req.Key, req.Value)
		if d.c.ctx.Err() != nil || cn.ctx.Err() != nil {
			// The client is closing under the handler, or the connection is gone: leave
			// the request unanswered, so the server hands it to another member.
			return
		}
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			// The requester has stopped waiting: its own deadline answers it with
			// ErrTimeout, which an error reply racing that deadline would hide.
			return
		}
		if err != nil {
			cn.replyError(req.ID, err.Error())
			return
		}
		cn.reply(req.ID, wire.StatusValue, 0, v, 0)
	}()
}

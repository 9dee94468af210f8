package endpoint

import (
	"context"
	"sync"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/sessioncache"
)

// streamSub is a subscription to a server's stream of a path's changes, which the client
// resumes on every connection from the last change it delivered.
type streamSub struct {
	path string
	fn   func(sessioncache.Change)
	// resumeMu is held while the subscription is resumed on a connection; on is the
	// connection it was last resumed on.
	resumeMu sync.Mutex
	on       *conn
	// mu guards the rest and serializes the calls of fn.
	mu       sync.Mutex
	pos      sessioncache.StreamPos
	resuming bool                  // live changes wait in held until the missed ones are in
	held     []sessioncache.Change // copies
}

var _ sessioncache.StreamRemote = (*Client)(nil)

// SubscribeStream implements sessioncache.StreamRemote: it delivers the changes of path
// after from, then StreamResumed (or StreamGap), then the changes as they happen, and
// resumes after the last change delivered on every reconnection (with StreamLost when a
// connection ends). fn runs on the client's goroutines, one call at a time: it must not
// block, and the slices it gets are valid only during the call. It returns once the first
// resumption is done, or with an error if the server cannot be reached in time (the
// subscription stays and is made when the connection comes).
func (c *Client) SubscribeStream(ctx context.Context, path string, from sessioncache.StreamPos, fn func(sessioncache.Change)) error {
	s := &streamSub{path: path, fn: fn, pos: from}
	c.mu.Lock()
	c.streams[path] = s
	c.expectPushesLocked()
	c.mu.Unlock()
	cn, err := c.current(ctx)
	if err != nil {
		return err
	}
	return c.resumeStream(ctx, cn, s)
}

// resumeStream subscribes s on cn from its position and delivers what was missed, then
// the changes held back meanwhile.
func (c *Client) resumeStream(ctx context.Context, cn *conn, s *streamSub) error {
	s.resumeMu.Lock()
	defer s.resumeMu.Unlock()
	if s.on == cn {
		return nil // resumed on it already (by the connection's set-up)
	}
	s.mu.Lock()
	s.resuming = true
	s.mu.Unlock()
	done := false
	defer func() {
		if !done {
			// The connection failed: the next one resumes again; what is held is dropped,
			// since that resumption covers it.
			s.mu.Lock()
			s.resuming, s.held = false, nil
			s.mu.Unlock()
		}
	}()
	for {
		s.mu.Lock()
		from := s.pos
		s.mu.Unlock()
		f := &wire.Frame{Op: wire.OpSubscribe, Flags: wire.FlagResume, Path: []byte(s.path), Value: wire.ResumeRequest(from.Epoch, from.Seq)}
		cl, err := cn.roundTrip(ctx, f)
		if err != nil {
			return err
		}
		if err := replyErr(wire.OpSubscribe, cl); err != nil {
			putCall(cl)
			return err
		}
		s.mu.Lock()
		epoch, seq, mode, err := wire.ParseResumeReply(cl.value, func(m *wire.Frame) error {
			c.deliverStreamLocked(s, m)
			return nil
		})
		putCall(cl)
		if err != nil {
			s.mu.Unlock()
			return err
		}
		switch mode {
		case wire.ResumePartial:
			s.mu.Unlock()
			continue
		case wire.ResumeGap:
			s.pos = sessioncache.StreamPos{Epoch: epoch, Seq: seq}
			s.fn(sessioncache.Change{Event: sessioncache.StreamGap, Epoch: epoch, Seq: seq})
		default:
			s.pos.Epoch = epoch // a subscriber from nothing takes the stream's epoch
			s.fn(sessioncache.Change{Event: sessioncache.StreamResumed, Epoch: epoch, Seq: s.pos.Seq})
		}
		held := s.held
		s.resuming, s.held = false, nil
		for _, ch := range held {
			if ch.Seq > s.pos.Seq {
				s.pos.Seq = ch.Seq
				s.fn(ch)
			}
		}
		s.mu.Unlock()
		s.on, done = cn, true
		return nil
	}
}

// deliverStreamLocked hands a change of s's stream to fn unless it was delivered before;
// s.mu is held.
func (c *Client) deliverStreamLocked(s *streamSub, m *wire.Frame) {
	if m.ID != 0 && m.ID <= s.pos.Seq {
		return
	}
	if m.ID != 0 {
		s.pos.Seq = m.ID
	}
	s.fn(changeOf(m, s.pos.Epoch))
}

// deliverStream handles a live change of a stream subscription: held back while the
// subscription is being resumed, delivered otherwise.
func (c *Client) deliverStream(s *streamSub, m *wire.Frame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.resuming {
		ch := changeOf(m, s.pos.Epoch)
		ch.Key, ch.Value = clone(ch.Key), clone(ch.Value)
		s.held = append(s.held, ch)
		return
	}
	c.deliverStreamLocked(s, m)
}

// streamLost tells every stream subscription that the connection is gone.
func (c *Client) streamLost() {
	c.mu.Lock()
	subs := make([]*streamSub, 0, len(c.streams))
	for _, s := range c.streams {
		subs = append(subs, s)
	}
	c.mu.Unlock()
	for _, s := range subs {
		s.mu.Lock()
		s.fn(sessioncache.Change{Event: sessioncache.StreamLost, Epoch: s.pos.Epoch, Seq: s.pos.Seq})
		s.mu.Unlock()
	}
}

func changeOf(f *wire.Frame, epoch uint64) sessioncache.Change {
	return sessioncache.Change{Key: f.Key, Value: f.Value, Expiry: UnixTime(f.Expiry), Deleted: f.Flags&wire.FlagDeleted != 0,
		Rev: f.Rev, Seq: f.ID, Epoch: epoch}
}

func clone(b []byte) []byte { return append([]byte(nil), b...) }

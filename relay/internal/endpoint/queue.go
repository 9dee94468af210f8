package endpoint

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
)

// DefaultQueueAttempts is how many members a request is offered to, one after another,
// when members' connections are lost while they hold it.
const DefaultQueueAttempts = 3

// MaxQueueWait bounds how long the server waits for a member's answer, whatever deadline
// the requester sent, so a request cannot pin the server's resources indefinitely.
const MaxQueueWait = 10 * time.Minute

// queue is one path's queue group: the peers that joined it, each request going to one.
type queue struct {
	members []*member
	turn    int // where the next search for the least busy member starts
}

// member is one peer in a queue.
type member struct {
	p        *Peer
	label    string
	inflight atomic.Int32
}

// join makes p a member of path's queue (again, with a new label, if it already is).
func (s *Server) join(p *Peer, path, label string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[path]
	if q == nil {
		q = &queue{}
		s.queues[path] = q
	}
	for _, m := range q.members {
		if m.p == p {
			m.label = label
			return
		}
	}
	q.members = append(q.members, &member{p: p, label: label})
	close(s.queueCh)
	s.queueCh = make(chan struct{})
}

// awaitMember waits for a member to join path's queue (one that was empty: after a relay
// restart the members rejoin a moment after the requests come back), and picks it. It
// gives up a little before ctx's deadline, so the sender still gets the answer that says
// why.
func (s *Server) awaitMember(ctx context.Context, path string) *member {
	s.queueWaits.Add(1)
	if d, ok := ctx.Deadline(); ok {
		var cancel context.CancelFunc
		ctx, cancel = context.WithDeadline(ctx, d.Add(-min(250*time.Millisecond, time.Until(d)/5)))
		defer cancel()
	}
	for {
		s.mu.Lock()
		joined := s.queueCh
		s.mu.Unlock()
		if m := s.pick(path, nil); m != nil {
			return m
		}
		select {
		case <-joined:
		case <-ctx.Done():
			return nil
		}
	}
}

// QueueWaits returns how many queue requests found no member and waited for the first to
// join.
func (s *Server) QueueWaits() int64 { return s.queueWaits.Load() }

// leave removes p from path's queue.
func (s *Server) leave(p *Peer, path string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.leaveLocked(p, path)
}

func (s *Server) leaveLocked(p *Peer, path string) {
	q := s.queues[path]
	if q == nil {
		return
	}
	q.members = slices.DeleteFunc(q.members, func(m *member) bool { return m.p == p })
	if len(q.members) == 0 {
		delete(s.queues, path)
	}
}

// members returns the labels of path's queue members, in the order they joined.
func (s *Server) members(path string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[path]
	if q == nil {
		return nil
	}
	out := make([]string, len(q.members))
	for i, m := range q.members {
		out[i] = m.label
	}
	return out
}

// pick chooses the member of path's queue with the fewest requests in flight, taking turns
// among equals, skipping the members in tried. It returns nil when there is none.
func (s *Server) pick(path string, tried []*Peer) *member {
	s.mu.Lock()
	defer s.mu.Unlock()
	q := s.queues[path]
	if q == nil {
		return nil
	}
	var best *member
	n := len(q.members)
	for i := range n {
		m := q.members[(q.turn+i)%n]
		if slices.Contains(tried, m.p) {
			continue
		}
		if best == nil || m.inflight.Load() < best.inflight.Load() {
			best = m
		}
	}
	if best != nil {
		q.turn++
		best.inflight.Add(1)
	}
	return best
}

// request hands a request for path's queue to one member after another until one answers,
// and answers the sender with that member's answer. f is a copy the call may keep.
func (s *Server) request(from *Peer, f *wire.Frame) {
	// The sender's connection closing abandons the request.
	var ctx context.Context
	var cancel context.CancelFunc
	if f.Expiry != 0 {
		ctx, cancel = context.WithDeadline(from.c.ctx, time.Unix(0, min(f.Expiry, time.Now().Add(MaxQueueWait).UnixNano())))
	} else {
		ctx, cancel = context.WithTimeout(from.c.ctx, s.opts.RequestTimeout)
	}
	defer cancel()
	var tried []*Peer
	var lastErr error
	for attempt := 0; attempt < s.opts.QueueAttempts; attempt++ {
		m := s.pick(string(f.Path), tried)
		if m == nil && len(tried) == 0 {
			m = s.awaitMember(ctx, string(f.Path)) // no member yet: wait for one, within the deadline
		}
		if m == nil {
			break
		}
		tried = append(tried, m.p)
		cl, err := m.p.c.roundTrip(ctx, &wire.Frame{Op: wire.OpRequest, Path: f.Path, Key: f.Key, Value: f.Value, Expiry: f.Expiry})
		m.inflight.Add(-1)
		if err == nil {
			from.c.reply(f.ID, cl.status, cl.flags, cl.value, cl.expiry)
			putCall(cl)
			return
		}
		lastErr = err
		if !errors.Is(err, ErrConnLost) && !errors.Is(err, ErrClosed) {
			break // a timeout: the member may still be working on it, so do not repeat it
		}
		s.opts.Logger.Info("relay: queue member lost with a request, trying another",
			"path", string(f.Path), "member", m.p.name, "err", err)
	}
	switch {
	case len(tried) == 0:
		from.c.replyError(f.ID, fmt.Sprintf("no member in queue %q", f.Path))
	case errors.Is(lastErr, ErrConnLost) || errors.Is(lastErr, ErrClosed):
		from.c.replyError(f.ID, fmt.Sprintf("queue %q: %d member(s) lost with the request: %v", f.Path, len(tried), lastErr))
	default:
		from.c.replyError(f.ID, fmt.Sprintf("queue %q: %v", f.Path, lastErr))
	}
}

// validLabel checks a queue member's label.
func validLabel(label string) error {
	if strings.ContainsAny(label, "\n") {
		return errors.New("a queue member's label must not contain a newline")
	}
	return nil
}

package endpoint

import (
	"math/rand/v2"
	"sync"

	"github.com/globalsession/globalsession/internal/wire"
)

// ChangeStream numbers the changes a server publishes on a path (a relay's auth path) and
// keeps the latest of them (a backlog, as Redis keeps one for replicas that reconnect), so
// a subscriber that reconnects gets the changes it missed (see Client.SubscribeStream)
// instead of serving stale sessions. A stream lives as long as its process: a restarted
// server starts a new epoch, and subscribers that come back to it learn that they missed
// what they cannot get back (a gap).
type ChangeStream struct {
	srv   *Server
	mu    sync.Mutex // held across numbering a change and fanning it out
	epoch uint64
	seq   uint64
	ring  [][]byte // encoded message frames; ring[seq%len] holds change seq
}

// NewChangeStream returns a stream of changes that srv publishes, keeping the latest
// backlog of them.
func NewChangeStream(srv *Server, backlog int) *ChangeStream {
	return &ChangeStream{srv: srv, epoch: rand.Uint64()>>1 | 1, ring: make([][]byte, max(backlog, 1))}
}

// Publish numbers msg, a message frame (its ID becomes its sequence number), keeps it in
// the backlog and fans it out to the subscribers of its path but except, all at once, so
// that a subscriber resuming meanwhile gets it exactly once.
func (s *ChangeStream) Publish(msg *wire.Frame, except *Peer) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.add(msg)
	s.srv.FanOut(msg, except)
}

// Resume answers f, a subscribe with FlagResume from p: it subscribes p to f's path and
// replies with the changes p missed since the position f gives, all at once with the
// subscription, so none falls between the two. The reply holds what fits in one frame;
// the subscriber asks again for the rest.
func (s *ChangeStream) Resume(p *Peer, f *wire.Frame) {
	epoch, after, err := wire.ParseResumeRequest(f.Value)
	if err != nil {
		p.ReplyError(f.ID, "subscribe: "+err.Error())
		return
	}
	limit := wire.DefaultMaxFrame
	if s.srv.opts.MaxFrame > 0 {
		limit = min(limit, s.srv.opts.MaxFrame)
	}
	limit -= wire.HeaderSize + len(f.Path) + 64
	s.mu.Lock()
	s.srv.subscribe(p, string(f.Path))
	v := s.since(nil, epoch, after, limit)
	s.mu.Unlock()
	p.Reply(f.ID, wire.StatusValue, 0, v, 0)
}

// add numbers f (its ID becomes its sequence number) and keeps a copy; s.mu is held.
func (s *ChangeStream) add(f *wire.Frame) {
	s.seq++
	f.ID = s.seq
	slot := &s.ring[s.seq%uint64(len(s.ring))]
	b, err := wire.Append((*slot)[:0], f) // reuses the buffer of the change it replaces
	if err != nil {
		b = nil // too large to keep: a resume across it reports a gap
	}
	*slot = b
}

// since appends to dst the reply to a subscriber that applied every change up to after in
// epoch: the changes it missed that fit in limit bytes, and the mode; s.mu is held.
func (s *ChangeStream) since(dst []byte, epoch, after uint64, limit int) []byte {
	switch {
	case epoch == 0 && s.seq == 0, epoch == s.epoch && after == s.seq:
		return wire.AppendResumeReply(dst, s.epoch, s.seq, wire.ResumeComplete)
	case epoch != s.epoch || after > s.seq || s.seq-after > uint64(len(s.ring)):
		return wire.AppendResumeReply(dst, s.epoch, s.seq, wire.ResumeGap)
	}
	head := len(dst)
	dst = wire.AppendResumeReply(dst, s.epoch, s.seq, wire.ResumeComplete)
	for seq := after + 1; seq <= s.seq; seq++ {
		b := s.ring[seq%uint64(len(s.ring))]
		if b == nil {
			dst[head+16] = wire.ResumeGap
			return dst[:head+17]
		}
		if len(dst)+len(b) > limit {
			if len(dst) == head+17 {
				dst[head+16] = wire.ResumeGap // not even one change fits
				return dst
			}
			dst[head+16] = wire.ResumePartial
			return dst
		}
		dst = append(dst, b...)
	}
	return dst
}

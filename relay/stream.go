package relay

import (
	"math/rand/v2"
	"sync"

	"github.com/globalsession/globalsession/internal/wire"
)

// changeStream numbers the changes a relay makes on its auth path and keeps the latest of
// them (a backlog, as Redis keeps one for replicas that reconnect), so a front end that
// reconnects gets the changes it missed instead of serving stale sessions. A stream lives
// as long as the relay's process: a restarted relay starts a new epoch, and front ends that
// come back to it learn that they missed what they cannot get back (a gap).
type changeStream struct {
	mu    sync.Mutex // held across numbering a change and fanning it out
	epoch uint64
	seq   uint64
	ring  [][]byte // encoded message frames; ring[seq%len] holds change seq
}

func newChangeStream(backlog int) *changeStream {
	return &changeStream{epoch: rand.Uint64()>>1 | 1, ring: make([][]byte, max(backlog, 1))}
}

// add numbers f (its ID becomes its sequence number) and keeps a copy; s.mu is held.
func (s *changeStream) add(f *wire.Frame) {
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
func (s *changeStream) since(dst []byte, epoch, after uint64, limit int) []byte {
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

// resumer is a role that keeps streams of changes: it answers a subscribe with FlagResume.
type resumer interface {
	resume(p *peer, f *wire.Frame)
}

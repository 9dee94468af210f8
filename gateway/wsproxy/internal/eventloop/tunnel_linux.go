//go:build linux

package eventloop

import (
	"errors"
	"io"
	"time"

	"golang.org/x/sys/unix"

	"github.com/globalsession/globalsession/gateway/wsproxy/internal/tlsrecord"
	"github.com/globalsession/globalsession/gateway/wsproxy/internal/wsframe"
)

// tunnel is one proxied connection in a loop: side 0 is the browser, side 1 the backend.
type tunnel struct {
	side     [2]tunnelSide
	phase    phase
	dirty    bool      // in its loop's dirty list
	early    []byte    // what the backend sent with its 101, relayed when registered
	lastPing time.Time // when both sides were last pinged
	closeBy  time.Time // when a closing tunnel's sockets are closed whatever the peers do
	done     func()
}

// phase is how far a tunnel is in its life; it only moves forward.
type phase uint8

const (
	// relaying: the bytes each side sends go to the other.
	relaying phase = iota
	// closing: nothing more is relayed; what is owed to the sides is being written.
	closing
	// lingering: all was written and both write halves are shut; the sockets are closed
	// once both peers have closed theirs, or at closeBy.
	lingering
)

// tunnelSide is one socket of a tunnel.
type tunnelSide struct {
	tu       *tunnel
	i        int // 0 the browser, 1 the backend
	fd       int
	tls      *tlsrecord.Stream // the record layer of a browser's wss:// connection; nil: plain
	state    sideState
	events   uint32          // what the loop waits for on the socket; 0: not in the epoll set
	scan     wsframe.Scanner // the frames this side sends
	held     []byte          // the start of a frame it sent, too short yet to check
	drained  int             // bytes read from it and dropped since its tunnel began closing
	out      []byte          // bytes waiting to be written to this side
	borrowed []byte          // bytes for this side in the round's write batch, not copied
	outSince time.Time       // when out stopped being empty, or last shrank
	pending  [][]byte        // control frames for this side, waiting for a frame boundary
	lastIn   time.Time       // when this side last sent something
}

// sideState is the set of things that have happened to a side, beyond its buffers.
type sideState uint8

const (
	readEnded   sideState = 1 << iota // its read half ended: end of stream, or a reset
	writeFailed                       // a write to it failed: nothing more is written
	writeQueued                       // it is in the round's write batch
)

func (f sideState) has(x sideState) bool { return f&x != 0 }
func (f *sideState) set(x sideState)     { *f |= x }
func (f *sideState) unset(x sideState)   { *f &^= x }

// newTunnel returns the tunnel of a browser's socket (front, with its TLS record layer
// frontTLS, or nil) and a backend's (back).
func newTunnel(front, back int, frontTLS *tlsrecord.Stream, maxMessage int64, early []byte, done func()) *tunnel {
	now := time.Now()
	tu := &tunnel{lastPing: now, early: early, done: done}
	tu.side[0] = tunnelSide{tu: tu, i: 0, fd: front, tls: frontTLS, lastIn: now, scan: wsframe.NewScanner(maxMessage, true)}
	tu.side[1] = tunnelSide{tu: tu, i: 1, fd: back, lastIn: now, scan: wsframe.NewScanner(maxMessage, false)}
	return tu
}

func (s *tunnelSide) peer() *tunnelSide { return &s.tu.side[1-s.i] }

// owed is what is to be written to side s in this round.
func (s *tunnelSide) owed() []byte {
	if len(s.out) > 0 {
		return s.out
	}
	return s.borrowed
}

// flushed reports whether all that was owed to side s is written, or nothing more can be:
// a write failed, or its control frames wait for the end of a frame whose sender is gone.
func (s *tunnelSide) flushed() bool {
	stuck := s.peer().state.has(readEnded) && !s.peer().scan.AtBoundary()
	return s.state.has(writeFailed) || len(s.out) == 0 && (len(s.pending) == 0 || stuck)
}

// drainLimit is how much of what a side sends is read and dropped once its tunnel is
// closing, at most: as much as the goroutine pipe's lingering close reads away.
const drainLimit = 1 << 20

// wants is what the loop waits for on side s's socket: readable while the peer can take
// more (what cannot be written is not read: back-pressure) and, once closing, until
// drainLimit is dropped; writable while bytes wait.
func (s *tunnelSide) wants() uint32 {
	var want uint32
	if !s.state.has(readEnded) && len(s.peer().out) == 0 && s.drained < drainLimit {
		want |= unix.EPOLLIN
	}
	if len(s.out) > 0 {
		want |= unix.EPOLLOUT
	}
	return want
}

func sideName(i int) string {
	if i == 0 {
		return "browser"
	}
	return "backend"
}

// register adds a new tunnel's sockets to the loop and sends the backend's early bytes.
func (l *loop) register(tu *tunnel) {
	l.all[tu] = struct{}{}
	l.touch(tu)
	for i := range tu.side {
		s := &tu.side[i]
		l.byFD[int32(s.fd)] = s
		l.watch(s, unix.EPOLLIN)
	}
	if len(tu.early) > 0 {
		l.relay(&tu.side[1], tu.early)
		tu.early = nil
	}
}

// relay checks the frames in b, which side s sent, and sends them on to its peer. A
// frame is sent only once it is checked: the start of one that is too short to check
// (its header cut by the end of a read) is held until the next read.
func (l *loop) relay(s *tunnelSide, b []byte) {
	if len(s.held) > 0 {
		// Rare, and b is borrowed by send: a new buffer each time.
		b = append(append(make([]byte, 0, len(s.held)+len(b)), s.held...), b...)
		s.held = nil
	}
	valid, err := s.scan.Scan(b)
	if valid > 0 {
		l.send(s.peer(), b[:valid])
	}
	switch {
	case err != nil:
		l.refuse(s, err)
	case valid < len(b):
		s.held = append([]byte(nil), b[valid:]...)
	}
}

// refuse closes a tunnel whose side s broke the rules (err, from Scan). As from the
// goroutine pipe, s hears why: 1009 for a message over the limit, 1002 for a protocol
// error. The other side hears 1011 for a message over the limit, and otherwise what it
// would had s vanished (goneFrame). Nothing more is relayed from s: the stream to the
// peer ends with the frame before the bad one, between frames.
func (l *loop) refuse(s *tunnelSide, err error) {
	l.t.cfg.Logger.Info("gateway: closing a proxied connection", "side", sideName(s.i), "err", err)
	code, toPeer := 1002, goneFrame(s)
	if errors.Is(err, wsframe.ErrTooLarge) {
		code = 1009
		toPeer = wsframe.CloseFrame(1011, "the peer sent a message that was too large", s.peer().i == 1)
	}
	s.scan.Truncate()
	l.inject(s.peer(), toPeer)
	l.inject(s, wsframe.CloseFrame(code, err.Error(), s.i == 1))
	l.startClosing(s.tu, time.Now().Add(l.t.cfg.WriteTimeout))
}

// finishFrame relays, of what side s sent once its tunnel began closing, the rest of the
// frame whose payload the stream to its peer is in the middle of, if it is: a close frame
// for the peer waits for that frame's end (inject). The rest is dropped.
func (l *loop) finishFrame(s *tunnelSide, b []byte) {
	rest := b[:min(s.scan.PayloadLeft(), int64(len(b)))]
	if _, err := s.scan.Scan(rest); err == nil && len(rest) > 0 { // payload: always valid
		l.send(s.peer(), rest)
	}
	s.drained += len(b) - len(rest)
}

// goneFrame is the close frame that tells the peer of side s that s went away without a
// close frame of its own: 1011 when s is the backend (1014, "bad gateway", is refused by
// some client libraries), 1001 (going away) when it is the browser.
func goneFrame(s *tunnelSide) []byte {
	if s.i == 1 {
		return wsframe.CloseFrame(1011, "the backend went away", false)
	}
	return wsframe.CloseFrame(1001, "the client went away", true)
}

// received takes what side s sent (b, read from its socket): for a TLS side, the records
// are opened first, and a close_notify or a record that cannot be accepted ends what s
// sends.
func (l *loop) received(s *tunnelSide, b []byte) {
	var end error
	if s.tls != nil {
		b, end = s.tls.Open(b)
		if s.tls.UpdateOwed() {
			l.send(s, nil) // our key update, as the peer asked
		}
	}
	if len(b) > 0 {
		if s.tu.phase == relaying {
			l.relay(s, b)
		} else {
			l.finishFrame(s, b)
		}
	}
	if end != nil {
		if !errors.Is(end, io.EOF) {
			l.t.cfg.Logger.Info("gateway: closing a proxied connection", "side", sideName(s.i), "err", end)
		}
		s.state.set(readEnded)
		l.ended(s)
	}
}

// ended handles the end of what side s sends.
func (l *loop) ended(s *tunnelSide) {
	tu := s.tu
	if tu.phase != relaying {
		return
	}
	if !s.scan.Closed() {
		// It vanished without a close frame: the other side hears so, as it would from
		// the goroutine pipe.
		l.inject(s.peer(), goneFrame(s))
	}
	l.startClosing(tu, time.Now().Add(l.t.cfg.WriteTimeout))
}

// failWrite gives up writing to side s: a write failed, or has waited WriteTimeout. As
// from the goroutine pipe, the other side hears that s failed (1011), and the tunnel
// closes.
func (l *loop) failWrite(s *tunnelSide) {
	s.out = s.out[:0]
	s.state.set(writeFailed)
	if s.tu.phase == relaying {
		l.inject(s.peer(), wsframe.CloseFrame(1011, "the other side failed", s.peer().i == 1))
	}
	l.startClosing(s.tu, l.now.Add(l.t.cfg.WriteTimeout))
}

// goAway tells both sides of a tunnel that the proxy is shutting down, and closes it.
func (l *loop) goAway(tu *tunnel) {
	l.touch(tu)
	if tu.phase == relaying {
		l.inject(&tu.side[0], wsframe.CloseFrame(1001, "server shutting down", false))
		l.inject(&tu.side[1], wsframe.CloseFrame(1001, "server shutting down", true))
		l.startClosing(tu, time.Now().Add(l.t.cfg.WriteTimeout))
	}
}

// end closes a tunnel that Pair.End asked to: the browser hears the given code, the
// backend 1001.
func (l *loop) end(e ending) {
	tu := e.tu
	l.touch(tu)
	if tu.phase == relaying {
		l.inject(&tu.side[0], wsframe.CloseFrame(e.code, e.text, false))
		l.inject(&tu.side[1], wsframe.CloseFrame(1001, "the client's session ended", true))
		l.startClosing(tu, time.Now().Add(l.t.cfg.WriteTimeout))
	}
}

// inject sends a control frame to side s as soon as the stream to it is between frames.
func (l *loop) inject(s *tunnelSide, f []byte) {
	if s.peer().scan.AtBoundary() && len(s.pending) == 0 {
		l.send(s, f)
		return
	}
	s.pending = append(s.pending, f)
}

// sendPending sends the control frames waiting for a frame boundary that has come.
func (l *loop) sendPending(tu *tunnel) {
	for i := range tu.side {
		s := &tu.side[i]
		for len(s.pending) > 0 && s.peer().scan.AtBoundary() {
			f := s.pending[0]
			s.pending = s.pending[1:]
			l.send(s, f)
		}
	}
}

// send queues b for side s; the round's write batch sends it. b is borrowed rather than
// copied when nothing else waits for the socket: it stays unchanged until the batch (it is
// the round's read buffer, a control frame or the early bytes), and usually the socket
// takes it all. To a TLS side it goes sealed in records, in the out buffer.
func (l *loop) send(s *tunnelSide, b []byte) {
	if s.state.has(writeFailed) {
		return
	}
	if s.tls != nil {
		if len(s.out) == 0 {
			s.outSince = l.now
		}
		s.out = s.tls.Seal(s.out, b)
		l.queueWrite(s)
		return
	}
	switch {
	case len(s.out) == 0 && s.borrowed == nil:
		s.borrowed = b
	case len(s.out) == 0:
		s.out = append(append(s.out, s.borrowed...), b...)
		s.borrowed = nil
		s.outSince = l.now
	default:
		s.out = append(s.out, b...)
	}
	l.queueWrite(s)
}

// startClosing stops relaying; the tunnel's sockets are shut once what is owed is written,
// and closed when the peers have closed theirs or at by (or earlier, if it was so already).
func (l *loop) startClosing(tu *tunnel, by time.Time) {
	if tu.phase == relaying || by.Before(tu.closeBy) {
		tu.closeBy = by
	}
	if tu.phase == relaying {
		tu.phase = closing
	}
}

// clock runs the tunnels' timers: keepalive pings, dead peers, stuck writes.
func (l *loop) clock(now time.Time) {
	ping, wait := l.t.cfg.PingInterval, 2*l.t.cfg.PingInterval
	for tu := range l.all {
		if tu.phase != relaying {
			continue
		}
		for i := range tu.side {
			s := &tu.side[i]
			switch {
			case now.Sub(s.lastIn) > wait:
				l.t.cfg.Logger.Info("gateway: a side of a proxied connection sent nothing, not even a pong", "side", sideName(i), "for", wait)
				l.ended(s)
			case len(s.out) > 0 && now.Sub(s.outSince) > l.t.cfg.WriteTimeout:
				l.failWrite(s)
			}
		}
		if tu.phase == relaying && now.Sub(tu.lastPing) >= ping {
			tu.lastPing = now
			l.inject(&tu.side[0], wsframe.KeepaliveFrame(false))
			l.inject(&tu.side[1], wsframe.KeepaliveFrame(true))
		}
	}
}

// settle sets what the loop waits for on each socket of a tunnel the round touched, after
// its writes, and moves a closing tunnel on.
func (l *loop) settle(tu *tunnel) {
	if tu.phase != relaying && l.finishClosing(tu) {
		return
	}
	for i := range tu.side {
		s := &tu.side[i]
		l.watch(s, s.wants())
	}
}

// finishClosing moves a closing tunnel on, and reports whether it closed it. Once all that
// was owed is written, the control frames waiting for a frame boundary included, it shuts
// both write halves and keeps reading (a lingering close: the last frames are not reset
// away by data left unread) until both peers have closed theirs, or for a second at most.
// Whatever happens, the sockets are closed at closeBy.
func (l *loop) finishClosing(tu *tunnel) bool {
	if tu.phase == closing && tu.side[0].flushed() && tu.side[1].flushed() {
		if s := &tu.side[0]; s.tls != nil && !s.state.has(writeFailed) {
			// A TLS side hears close_notify before its write half is shut.
			var sealed bool
			if s.out, sealed = s.tls.SealCloseNotify(s.out); sealed {
				s.outSince = l.now
				return false
			}
		}
		tu.phase = lingering
		unix.Shutdown(tu.side[0].fd, unix.SHUT_WR)
		unix.Shutdown(tu.side[1].fd, unix.SHUT_WR)
		tu.closeBy = time.Now().Add(time.Second)
	}
	ended := tu.side[0].state.has(readEnded) && tu.side[1].state.has(readEnded)
	if (tu.phase == lingering && ended) || !time.Now().Before(tu.closeBy) {
		l.close(tu)
		return true
	}
	return false
}

// close closes a tunnel's sockets and forgets it.
func (l *loop) close(tu *tunnel) {
	for i := range tu.side {
		s := &tu.side[i]
		l.watch(s, 0)
		delete(l.byFD, int32(s.fd))
		unix.Close(s.fd)
	}
	delete(l.all, tu)
	l.t.closed()
	tu.done()
}

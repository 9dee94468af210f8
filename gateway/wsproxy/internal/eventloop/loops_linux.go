//go:build linux

package eventloop

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"github.com/globalsession/globalsession/gateway/wsproxy/internal/wsframe"
)

// A proxied connection whose two sides are plain TCP is handed, once both upgrades are
// done, to one of a few loop goroutines, each waiting in epoll (in a system call, so on a
// thread of its own while it waits) for all of its connections. A loop moves the bytes
// each side sends to the other as they come, following frame headers only
// (wsframe.Scanner): to refuse a message over the limit, and to put pings and close frames
// between frames. It reads the ready sockets and writes what it relays in batches
// (uring_linux.go). An idle connection costs no goroutine, and a message costs one wake-up
// of a thread that is already waiting, where the proxy's goroutine pipe wakes a goroutine
// per direction and decodes every frame.

// Loops are the event loops of a proxy. Each pair of connections handed over with Take is
// called a tunnel here.
type Loops struct {
	cfg   Config
	loops []*loop
	next  uint32
	mu    sync.Mutex
	n     int // tunnels open
}

// New returns the event loops of a proxy with cfg's limits (none runs until Take hands it
// a pair). It returns nil on systems without event loops.
func New(cfg Config) *Loops {
	t := &Loops{cfg: cfg}
	for range max(1, min(runtime.GOMAXPROCS(0), 4)) {
		t.loops = append(t.loops, &loop{t: t, epfd: -1, byFD: map[int32]*tunnelSide{}, all: map[*tunnel]struct{}{}})
	}
	return t
}

// Stats reports the loops' state.
func (t *Loops) Stats() Stats {
	t.mu.Lock()
	st := Stats{Loops: len(t.loops), Open: t.n}
	t.mu.Unlock()
	for _, l := range t.loops {
		l.mu.Lock()
		if l.ring != nil {
			st.IORings++
		}
		if l.ring != nil || l.epfd >= 0 {
			st.Holding++
		}
		l.mu.Unlock()
	}
	return st
}

// Take hands a pair of upgraded connections, the browser's (front) and the backend's
// (back), to a loop, which relays them until both are done and then closes them. early is
// what the backend sent right after its 101 (already read from its socket); done runs when
// the pair is closed. Take fails, leaving both connections to the caller, when they are
// not plain TCP.
func (t *Loops) Take(front, back net.Conn, early []byte, done func()) error {
	t.mu.Lock()
	l := t.loops[t.next%uint32(len(t.loops))]
	t.next++
	t.mu.Unlock()
	if err := l.setup(); err != nil {
		return err
	}
	ff, err := dupTCP(front)
	if err != nil {
		return err
	}
	bf, err := dupTCP(back)
	if err != nil {
		syscall.Close(ff)
		return err
	}
	// The dups keep the sockets; closing the originals takes them out of Go's poller.
	front.Close()
	back.Close()
	syscall.SetNonblock(ff, true)
	syscall.SetNonblock(bf, true)
	now := time.Now()
	tu := &tunnel{lastPing: now, early: early, done: done}
	tu.side[0] = tunnelSide{tu: tu, i: 0, fd: ff, lastIn: now, scan: wsframe.NewScanner(t.cfg.MaxMessageSize, true)}
	tu.side[1] = tunnelSide{tu: tu, i: 1, fd: bf, lastIn: now, scan: wsframe.NewScanner(t.cfg.MaxMessageSize, false)}
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
	l.add(tu)
	return nil
}

// Shutdown sends 1001 (going away) to both sides of every tunnel and closes them; a pair
// taken later is closed the same way. Call Release once every done has run.
func (t *Loops) Shutdown() {
	for _, l := range t.loops {
		l.mu.Lock()
		l.stopping = true
		if l.running {
			l.wakeUpLocked()
		}
		l.mu.Unlock()
	}
}

// rawIO makes a read-like or write-like system call on a non-blocking descriptor. It never
// blocks, so it goes without the scheduler's bookkeeping for system calls that may
// (syscall.Read and Write do it), which is a measurable part of relaying a small message.
func rawIO(trap uintptr, fd int, b []byte, flags uintptr) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	n, _, e := syscall.RawSyscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), flags, 0, 0)
	if e != 0 {
		return -1, e
	}
	return int(n), nil
}

// Release closes the loops' epoll, wake-up and io_uring descriptors; the proxy's Shutdown
// calls it once every tunnel is closed. A loop still running (a tunnel admitted late)
// keeps its own, and closes them when it ends.
func (t *Loops) Release() {
	for _, l := range t.loops {
		l.mu.Lock()
		if !l.running {
			l.closeDescriptors()
		}
		l.mu.Unlock()
	}
}

// dupTCP returns a duplicate of a TCP connection's descriptor.
func dupTCP(c net.Conn) (int, error) {
	tc, ok := c.(*net.TCPConn)
	if !ok {
		return -1, errors.New("gateway: not a TCP connection")
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return -1, err
	}
	fd := -1
	var derr error
	if err := rc.Control(func(s uintptr) { fd, derr = syscall.Dup(int(s)) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	syscall.CloseOnExec(fd)
	return fd, nil
}

// tunnel is one proxied connection in a loop: side 0 is the browser, side 1 the backend.
type tunnel struct {
	side     [2]tunnelSide
	early    []byte
	lastPing time.Time
	closing  bool      // closing: no more bytes are relayed; the sockets end at closeBy
	closeBy  time.Time // when a closing tunnel's sockets are closed whatever the peers do
	shut     bool      // both write sides are shut (the lingering close has begun)
	dirty    bool      // in its loop's dirty list
	done     func()
}

// tunnelSide is one socket of a tunnel.
type tunnelSide struct {
	tu       *tunnel
	i        int
	fd       int
	scan     wsframe.Scanner // the frames this side sends
	out      []byte          // bytes waiting to be written to this side
	borrowed []byte          // bytes for this side in the round's write batch, not copied
	outSince time.Time       // when out stopped being empty
	pending  [][]byte        // control frames for this side, waiting for a frame boundary
	lastIn   time.Time
	eof      bool   // this side's read half ended
	gone     bool   // a write failed: nothing more is written
	queued   bool   // in the loop's write batch
	events   uint32 // what the loop waits for on the socket
	watched  bool   // the socket is in the epoll set
}

func (s *tunnelSide) peer() *tunnelSide { return &s.tu.side[1-s.i] }

// loop is one event loop.
type loop struct {
	t        *Loops
	mu       sync.Mutex
	epfd     int
	wakeFD   int
	running  bool
	stopping bool
	added    []*tunnel
	byFD     map[int32]*tunnelSide // loop goroutine only
	all      map[*tunnel]struct{}  // loop goroutine only
	dirty    []*tunnel             // touched since the last settle; loop goroutine only
	now      time.Time             // when the last wait returned; loop goroutine only
	slab     []byte                // the read batch's buffer
	ring     *ioRing               // nil: calls are made one by one; set under mu
	noRing   bool                  // io_uring is missing or failed; set under mu
	ops      []ioOp                // a batch's calls, reused
	reading  []*tunnelSide         // the round's read batch
	writing  []*tunnelSide         // the round's write batch
}

// setup creates the loop's epoll instance and wake-up descriptor, once.
func (l *loop) setup() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epfd >= 0 {
		return nil
	}
	epfd, err := syscall.EpollCreate1(syscall.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	r, _, e := syscall.RawSyscall(syscall.SYS_EVENTFD2, 0, syscall.O_CLOEXEC|syscall.O_NONBLOCK, 0)
	if e != 0 {
		syscall.Close(epfd)
		return e
	}
	if err := syscall.EpollCtl(epfd, syscall.EPOLL_CTL_ADD, int(r), &syscall.EpollEvent{Events: syscall.EPOLLIN, Fd: int32(r)}); err != nil {
		syscall.Close(epfd)
		syscall.Close(int(r))
		return err
	}
	l.epfd, l.wakeFD = epfd, int(r)
	return nil
}

// add gives the loop a tunnel, starting the loop if it is not running.
func (l *loop) add(tu *tunnel) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.added = append(l.added, tu)
	if l.running {
		l.wakeUpLocked()
		return
	}
	l.running = true
	go l.run()
}

// wakeUpLocked makes a waiting loop return from its wait; l.mu is held, so the descriptor
// cannot be closed meanwhile.
func (l *loop) wakeUpLocked() {
	one := [8]byte{1}
	rawIO(syscall.SYS_WRITE, l.wakeFD, one[:], 0)
}

// loopYieldInterval is how often a loop gives the scheduler a turn of its own accord. The
// runtime preempts a goroutine that has not been rescheduled for 10ms with a signal, which
// also cuts the wait short; a busy loop never blocks that long, and yielding itself costs
// less. The loop is not locked to its thread for the same reason: a preempted or yielding
// locked goroutine hands its thread off to another through futex wake-ups, where an
// unlocked one simply resumes on the same processor (measured with bench/gatewaycompare:
// 15-25% less CPU per message at one connection).
const loopYieldInterval = 2 * time.Millisecond

// tick is how often the loop looks at its tunnels' clocks: pings, dead peers, deadlines.
func (l *loop) tick() time.Duration {
	return min(l.t.cfg.PingInterval/4, l.t.cfg.WriteTimeout/4, 250*time.Millisecond)
}

// run is the loop: it ends when it has no tunnel left. Each round waits for events, reads
// every socket that has something (one batch), relays what came, runs the clock, and
// writes everything owed (another batch) before it settles the tunnels it touched.
func (l *loop) run() {
	if l.slab == nil {
		l.slab = make([]byte, readSlabSize)
	}
	l.mu.Lock()
	if l.ring == nil && !l.noRing {
		if r, err := newIORing(); err == nil && !ForceNoIORing.Load() {
			l.ring = r
		} else {
			if r != nil {
				r.close()
			}
			l.noRing = true
			l.t.cfg.Logger.Debug("gateway: event loop makes its socket calls one by one", "err", err)
		}
	}
	l.mu.Unlock()
	events := make([]syscall.EpollEvent, 128)
	tick := l.tick()
	lastTick := time.Now()
	lastYield := lastTick
	shutDown := false // every tunnel was told the proxy is shutting down
	for {
		l.mu.Lock()
		added, stopping := l.added, l.stopping
		l.added = nil
		if len(added) == 0 && len(l.all) == 0 {
			l.running = false
			if stopping { // the proxy is shut down: nothing will come again
				l.closeDescriptors()
			}
			l.mu.Unlock()
			return
		}
		l.mu.Unlock()
		for _, tu := range added {
			l.register(tu)
			if stopping && shutDown {
				l.goAway(tu) // admitted just before the shutdown
			}
		}
		if stopping && !shutDown {
			shutDown = true
			for tu := range l.all {
				l.goAway(tu)
			}
		}
		wait := int(tick/time.Millisecond) + 1
		if len(l.dirty) > 0 {
			wait = 0 // something to settle already
		}
		n, err := syscall.EpollWait(l.epfd, events, wait)
		if err != nil && err != syscall.EINTR {
			n = 0
		}
		l.now = time.Now()
		for _, ev := range events[:max(n, 0)] {
			if int(ev.Fd) == l.wakeFD {
				var b [8]byte
				syscall.Read(l.wakeFD, b[:])
				continue
			}
			s := l.byFD[ev.Fd]
			if s == nil {
				continue
			}
			l.touch(s.tu)
			if ev.Events&(syscall.EPOLLOUT|syscall.EPOLLERR|syscall.EPOLLHUP) != 0 && len(s.out) > 0 {
				l.queueWrite(s)
			}
			if ev.Events&(syscall.EPOLLIN|syscall.EPOLLHUP|syscall.EPOLLERR) != 0 && !s.eof {
				l.reading = append(l.reading, s)
			}
		}
		l.readAll()
		if l.now.Sub(lastYield) >= loopYieldInterval {
			lastYield = l.now
			runtime.Gosched()
		}
		if now := l.now; now.Sub(lastTick) >= tick {
			lastTick = now
			l.clock(now)
			for tu := range l.all {
				l.touch(tu)
			}
		}
		// Only the tunnels something happened to are looked at after each wait: a loop
		// may hold thousands of idle ones.
		for _, tu := range l.dirty {
			l.sendPending(tu)
		}
		l.writeAll()
		for _, tu := range l.dirty {
			tu.dirty = false
			l.settle(tu)
		}
		clear(l.dirty)
		l.dirty = l.dirty[:0]
	}
}

// closeDescriptors closes the loop's epoll, wake-up and io_uring descriptors; l.mu is held
// and the loop is not running.
func (l *loop) closeDescriptors() {
	if l.epfd >= 0 {
		syscall.Close(l.epfd)
		syscall.Close(l.wakeFD)
		l.epfd, l.wakeFD = -1, -1
	}
	if l.ring != nil {
		l.ring.close()
		l.ring = nil
	}
}

// readSlabSize is the loop's read buffer, shared by the sockets of one batch: 64 KiB each
// when few are read at once, down to 2 KiB each for a full batch of 128 (a socket with
// more to read stays ready and is read again after the next wait).
const readSlabSize = 256 << 10

// ForceNoIORing makes new loops make their calls one by one, as where io_uring is missing
// (set by tests to cover that path).
var ForceNoIORing atomic.Bool

// IORingSupported reports why this system gives a loop no io_uring, or nil if it does.
func IORingSupported() error {
	r, err := newIORing()
	if err != nil {
		return err
	}
	r.close()
	return nil
}

// readAll reads every socket in l.reading, in one batch, and relays what each sent.
func (l *loop) readAll() {
	if len(l.reading) == 0 {
		return
	}
	chunk := min(64<<10, len(l.slab)/len(l.reading))
	ops := l.ops[:0]
	for i, s := range l.reading {
		ops = append(ops, ioOp{fd: s.fd, buf: l.slab[i*chunk : (i+1)*chunk]})
	}
	l.io(ops)
	for i, s := range l.reading {
		op := &ops[i]
		switch {
		case op.err == 0 && op.n > 0:
			s.lastIn = l.now
			if !s.tu.closing {
				l.relay(s, op.buf[:op.n])
			}
		case op.err == syscall.EAGAIN || op.err == syscall.EINTR:
		default: // end of stream or a reset
			s.eof = true
			l.ended(s)
		}
	}
	clear(l.reading)
	l.reading = l.reading[:0]
	l.ops = ops[:0]
}

// writeAll writes what is owed to every socket in l.writing, in one batch. What a socket
// does not take is kept in its out buffer until it is writable again.
func (l *loop) writeAll() {
	ops := l.ops[:0]
	queued := len(l.writing)
	sides := l.writing[:0] // filtered in place
	for _, s := range l.writing {
		s.queued = false
		buf := s.out
		if len(buf) == 0 {
			buf = s.borrowed
		}
		if s.gone || len(buf) == 0 {
			s.borrowed = nil
			continue
		}
		ops = append(ops, ioOp{fd: s.fd, buf: buf, send: true})
		sides = append(sides, s)
	}
	l.io(ops)
	for i, s := range sides {
		op := &ops[i]
		n := 0
		if op.err == 0 {
			n = op.n
		}
		if len(s.out) > 0 {
			s.out = s.out[:copy(s.out, s.out[n:])]
		} else {
			// The bytes were borrowed: keep what the socket did not take.
			s.out = append(s.out, s.borrowed[n:]...)
			s.outSince = l.now
		}
		s.borrowed = nil
		if n > 0 {
			s.outSince = l.now
		}
		if op.err != 0 && op.err != syscall.EAGAIN && op.err != syscall.EINTR { // the socket is gone
			s.out, s.gone = s.out[:0], true
			l.startClosing(s.tu, l.now)
		}
		if len(s.out) == 0 && cap(s.out) > 256<<10 {
			s.out = nil
		}
	}
	clear(l.writing[:queued])
	l.writing = l.writing[:0]
	l.ops = ops[:0]
}

// io performs a batch of socket calls: through the loop's io_uring when it has one, else
// one by one.
func (l *loop) io(ops []ioOp) {
	if len(ops) == 0 {
		return
	}
	if l.ring != nil {
		if err := l.ring.do(ops); err != nil {
			l.t.cfg.Logger.Warn("gateway: event loop goes on without io_uring", "err", err)
			l.mu.Lock()
			l.ring.close()
			l.ring, l.noRing = nil, true
			l.mu.Unlock()
		}
		return
	}
	for i := range ops {
		op := &ops[i]
		var n int
		var err error
		if op.send {
			n, err = sendRaw(op.fd, op.buf)
		} else {
			n, err = recvRaw(op.fd, op.buf)
		}
		op.n, op.err, op.done = max(n, 0), 0, true
		if errno, ok := err.(syscall.Errno); ok {
			op.err = errno
		}
	}
}

// goAway tells both sides of a tunnel that the proxy is shutting down, and closes it.
func (l *loop) goAway(tu *tunnel) {
	l.touch(tu)
	if !tu.closing {
		l.inject(&tu.side[0], wsframe.CloseFrame(1001, "server shutting down", false))
		l.inject(&tu.side[1], wsframe.CloseFrame(1001, "server shutting down", true))
		l.startClosing(tu, time.Now().Add(l.t.cfg.WriteTimeout))
	}
}

// touch marks a tunnel for settle after this round of events.
func (l *loop) touch(tu *tunnel) {
	if !tu.dirty {
		tu.dirty = true
		l.dirty = append(l.dirty, tu)
	}
}

// register adds a new tunnel's sockets to the loop and sends the backend's early bytes.
func (l *loop) register(tu *tunnel) {
	l.all[tu] = struct{}{}
	l.touch(tu)
	for i := range tu.side {
		s := &tu.side[i]
		l.byFD[int32(s.fd)] = s
		l.watch(s, syscall.EPOLLIN)
	}
	if len(tu.early) > 0 {
		l.relay(&tu.side[1], tu.early)
		tu.early = nil
	}
}

// relay checks the frames in b, which side s sent, and sends them on to its peer.
func (l *loop) relay(s *tunnelSide, b []byte) {
	valid, err := s.scan.Scan(b)
	if valid > 0 {
		l.send(s.peer(), b[:valid])
	}
	if err == nil {
		return
	}
	// The sender broke the rules: it hears why, the other side that its peer failed.
	code, other := 1002, "the peer broke the protocol"
	if errors.Is(err, wsframe.ErrTooLarge) {
		code, other = 1009, "the peer sent a message that was too large"
	}
	l.t.cfg.Logger.Info("gateway: closing a proxied connection", "side", sideName(s.i), "err", err)
	if valid >= 0 {
		// Nothing more is relayed from s: the stream to the peer ends with the frame
		// before the bad one, between frames.
		s.scan.Truncate()
		l.inject(s.peer(), wsframe.CloseFrame(1011, other, s.peer().i == 1))
	}
	l.inject(s, wsframe.CloseFrame(code, err.Error(), s.i == 1))
	l.startClosing(s.tu, time.Now().Add(l.t.cfg.WriteTimeout))
}

func sideName(i int) string {
	if i == 0 {
		return "browser"
	}
	return "backend"
}

// ended handles the end of what side s sends.
func (l *loop) ended(s *tunnelSide) {
	tu := s.tu
	if tu.closing {
		return
	}
	if !s.scan.Closed() {
		// It vanished without a close frame: the other side hears so, as it would from
		// the goroutine pipe.
		if s.i == 1 {
			l.inject(s.peer(), wsframe.CloseFrame(1011, "the backend went away", false))
		} else {
			l.inject(s.peer(), wsframe.CloseFrame(1001, "the client went away", true))
		}
	}
	l.startClosing(tu, time.Now().Add(l.t.cfg.WriteTimeout))
}

// inject sends a control frame to side s as soon as the stream to it is between frames.
func (l *loop) inject(s *tunnelSide, f []byte) {
	if s.peer().scan.AtBoundary() && len(s.pending) == 0 {
		l.send(s, f)
		return
	}
	s.pending = append(s.pending, f)
}

// send queues b for side s; the round's write batch sends it. b is borrowed rather than
// copied when nothing else waits for the socket: it stays unchanged until the batch (it is
// the round's read buffer, a control frame or the early bytes), and usually the socket
// takes it all.
func (l *loop) send(s *tunnelSide, b []byte) {
	if s.gone {
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

// queueWrite puts side s in the round's write batch.
func (l *loop) queueWrite(s *tunnelSide) {
	if !s.queued {
		s.queued = true
		l.writing = append(l.writing, s)
	}
}

// startClosing stops relaying; the tunnel's sockets are shut once what is owed is written,
// and closed when the peers have closed theirs or at by.
func (l *loop) startClosing(tu *tunnel, by time.Time) {
	if !tu.closing || by.Before(tu.closeBy) {
		tu.closeBy = by
	}
	tu.closing = true
}

// clock runs the tunnels' timers: keepalive pings, dead peers, stuck writes.
func (l *loop) clock(now time.Time) {
	ping, wait := l.t.cfg.PingInterval, 2*l.t.cfg.PingInterval
	for tu := range l.all {
		if tu.closing {
			continue
		}
		for i := range tu.side {
			s := &tu.side[i]
			switch {
			case now.Sub(s.lastIn) > wait:
				l.t.cfg.Logger.Info("gateway: a side of a proxied connection sent nothing, not even a pong", "side", sideName(i), "for", wait)
				l.ended(s)
			case len(s.out) > 0 && now.Sub(s.outSince) > l.t.cfg.WriteTimeout:
				l.startClosing(tu, now)
			}
		}
		if !tu.closing && now.Sub(tu.lastPing) >= ping {
			tu.lastPing = now
			l.inject(&tu.side[0], wsframe.KeepaliveFrame(false))
			l.inject(&tu.side[1], wsframe.KeepaliveFrame(true))
		}
	}
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

// settle sets what the loop waits for on each socket of a tunnel the round touched, after
// its writes, and closes a closing tunnel whose time has come.
func (l *loop) settle(tu *tunnel) {
	if tu.closing {
		done := len(tu.side[0].out) == 0 && len(tu.side[1].out) == 0
		if done && !tu.shut {
			// Lingering close: shut the write halves, then read until the peers close
			// theirs, so that the last frames are not reset away by unread data.
			tu.shut = true
			syscall.Shutdown(tu.side[0].fd, syscall.SHUT_WR)
			syscall.Shutdown(tu.side[1].fd, syscall.SHUT_WR)
			tu.closeBy = time.Now().Add(time.Second)
		}
		if (tu.shut && tu.side[0].eof && tu.side[1].eof) || !time.Now().Before(tu.closeBy) {
			l.close(tu)
			return
		}
	}
	for i := range tu.side {
		s := &tu.side[i]
		var want uint32
		if !s.eof && len(s.peer().out) == 0 {
			want |= syscall.EPOLLIN // read only what the peer can take
		}
		if len(s.out) > 0 {
			want |= syscall.EPOLLOUT
		}
		l.watch(s, want)
	}
}

// watch sets what the loop waits for on side s's socket. With nothing to wait for, the
// socket leaves the epoll set: a closed socket would otherwise be reported again and again.
func (l *loop) watch(s *tunnelSide, want uint32) {
	switch {
	case want == s.events && (want == 0) == !s.watched:
	case want == 0:
		syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_DEL, s.fd, nil)
		s.watched = false
	case !s.watched:
		syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_ADD, s.fd, &syscall.EpollEvent{Events: want, Fd: int32(s.fd)})
		s.watched = true
	default:
		syscall.EpollCtl(l.epfd, syscall.EPOLL_CTL_MOD, s.fd, &syscall.EpollEvent{Events: want, Fd: int32(s.fd)})
	}
	s.events = want
}

// close closes a tunnel's sockets and forgets it.
func (l *loop) close(tu *tunnel) {
	for i := range tu.side {
		s := &tu.side[i]
		l.watch(s, 0)
		delete(l.byFD, int32(s.fd))
		syscall.Close(s.fd)
	}
	delete(l.all, tu)
	l.t.mu.Lock()
	l.t.n--
	l.t.mu.Unlock()
	tu.done()
}

//go:build linux

package eventloop

import (
	"errors"
	"net"
	"runtime"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/globalsession/globalsession/gateway/wsproxy/internal/tlsrecord"
)

// A proxied connection whose two sides are plain TCP is handed, once both upgrades are
// done, to one of a few loop goroutines, each waiting in epoll (in a system call, so on a
// thread of its own while it waits) for all of its connections. A loop moves the bytes
// each side sends to the other as they come, following frame headers only
// (wsframe.Scanner): to refuse a message over the limit, and to put pings and close frames
// between frames. It reads the ready sockets and writes what it relays in batches
// (uring_linux.go). An idle connection costs no goroutine, and a message costs one wake-up
// of a thread that is already waiting, where the proxy's goroutine pipe wakes a goroutine
// per direction and decodes every frame. What a loop does with each connection is in
// tunnel_linux.go.

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

// Pair is a pair of connections a loop relays.
type Pair struct {
	l  *loop
	tu *tunnel
}

// ending is a request to end a pair, with the close code the browser hears.
type ending struct {
	tu   *tunnel
	code int
	text string
}

// End closes the pair at once: the browser hears code and text, the backend 1001, each
// after the frame it is receiving; it does not wait. A pair already closed is left alone.
func (p *Pair) End(code int, text string) {
	l := p.l
	l.mu.Lock()
	defer l.mu.Unlock()
	l.ending = append(l.ending, ending{tu: p.tu, code: code, text: text})
	if l.running {
		l.wakeUpLocked()
	}
}

// Take hands a pair of upgraded connections, the browser's (front) and the backend's
// (back), to a loop, which relays them until both are done and then closes them. frontTLS
// is the record layer of a browser's TLS connection, whose TCP connection front is, or nil
// for a plain one. early is what the backend sent right after its 101 (already read from
// its socket); done runs when the pair is closed. Take fails, leaving both connections to
// the caller, when they are not TCP.
func (t *Loops) Take(front, back net.Conn, frontTLS *tlsrecord.Stream, early []byte, done func()) (*Pair, error) {
	t.mu.Lock()
	l := t.loops[t.next%uint32(len(t.loops))]
	t.next++
	t.mu.Unlock()
	if err := l.setup(); err != nil {
		return nil, err
	}
	ff, err := dupTCP(front)
	if err != nil {
		return nil, err
	}
	bf, err := dupTCP(back)
	if err != nil {
		unix.Close(ff)
		return nil, err
	}
	// The dups keep the sockets; closing the originals takes them out of Go's poller.
	front.Close()
	back.Close()
	unix.SetNonblock(ff, true)
	unix.SetNonblock(bf, true)
	tu := newTunnel(ff, bf, frontTLS, t.cfg.MaxMessageSize, early, done)
	t.mu.Lock()
	t.n++
	t.mu.Unlock()
	l.add(tu)
	return &Pair{l: l, tu: tu}, nil
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

// closed counts a tunnel out.
func (t *Loops) closed() {
	t.mu.Lock()
	t.n--
	t.mu.Unlock()
}

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

// rawIO makes a read-like or write-like system call on a non-blocking descriptor. It never
// blocks, so it goes without the scheduler's bookkeeping for system calls that may
// (unix.Read and Write do it), which is a measurable part of relaying a small message. It
// returns 0 bytes with the error.
func rawIO(trap uintptr, fd int, b []byte, flags uintptr) (int, unix.Errno) {
	if len(b) == 0 {
		return 0, 0
	}
	n, _, e := unix.RawSyscall6(trap, uintptr(fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)), flags, 0, 0)
	if e != 0 {
		return 0, e
	}
	return int(n), 0
}

// dupTCP returns a duplicate of a TCP connection's descriptor, closed on exec.
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
	if err := rc.Control(func(s uintptr) { fd, derr = unix.FcntlInt(s, unix.F_DUPFD_CLOEXEC, 0) }); err != nil {
		return -1, err
	}
	if derr != nil {
		return -1, derr
	}
	return fd, nil
}

// loop is one event loop. The fields below mu are the loop goroutine's only, but for those
// said to be set under mu.
type loop struct {
	t        *Loops
	mu       sync.Mutex
	epfd     int
	wakeFD   int
	running  bool
	stopping bool
	added    []*tunnel
	ending   []ending // pairs to end (Pair.End), under mu
	ring     *ioRing  // nil: calls are made one by one; set under mu
	noRing   bool     // io_uring is missing or failed; set under mu

	byFD      map[int32]*tunnelSide
	all       map[*tunnel]struct{}
	dirty     []*tunnel // touched since the last flush
	now       time.Time // when the last wait returned
	events    []unix.EpollEvent
	tick      time.Duration // how often the clock runs
	lastTick  time.Time
	lastYield time.Time
	shutDown  bool          // every tunnel was told the proxy is shutting down
	slab      []byte        // the read batch's buffer
	ops       []ioOp        // a batch's calls, reused
	reading   []*tunnelSide // the round's read batch
	writing   []*tunnelSide // the round's write batch
}

// setup creates the loop's epoll instance and wake-up descriptor, once.
func (l *loop) setup() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.epfd >= 0 {
		return nil
	}
	epfd, err := unix.EpollCreate1(unix.EPOLL_CLOEXEC)
	if err != nil {
		return err
	}
	wake, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		unix.Close(epfd)
		return err
	}
	if err := unix.EpollCtl(epfd, unix.EPOLL_CTL_ADD, wake, &unix.EpollEvent{Events: unix.EPOLLIN, Fd: int32(wake)}); err != nil {
		unix.Close(epfd)
		unix.Close(wake)
		return err
	}
	l.epfd, l.wakeFD = epfd, wake
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
	rawIO(unix.SYS_WRITE, l.wakeFD, one[:], 0)
}

// closeDescriptors closes the loop's epoll, wake-up and io_uring descriptors; l.mu is held
// and the loop is not running.
func (l *loop) closeDescriptors() {
	if l.epfd >= 0 {
		unix.Close(l.epfd)
		unix.Close(l.wakeFD)
		l.epfd, l.wakeFD = -1, -1
	}
	if l.ring != nil {
		l.ring.close()
		l.ring = nil
	}
}

// loopYieldInterval is how often a loop gives the scheduler a turn of its own accord. The
// runtime preempts a goroutine that has not been rescheduled for 10ms with a signal, which
// also cuts the wait short; a busy loop never blocks that long, and yielding itself costs
// less. The loop is not locked to its thread for the same reason: a preempted or yielding
// locked goroutine hands its thread off to another through futex wake-ups, where an
// unlocked one simply resumes on the same processor (measured with bench/gatewaycompare:
// 15-25% less CPU per message at one connection).
const loopYieldInterval = 2 * time.Millisecond

// readSlabSize is the loop's read buffer, shared by the sockets of one batch: 64 KiB each
// when few are read at once, down to 2 KiB each for a full batch of 128 (a socket with
// more to read stays ready and is read again after the next wait).
const readSlabSize = 256 << 10

// run is the loop: it ends when it has no tunnel left. Each round waits for events, reads
// every socket that has something (one batch) and relays what came, runs the clock, and
// writes everything owed (another batch) before it settles the tunnels it touched.
func (l *loop) run() {
	l.prepare()
	for l.admit() {
		l.poll()
		l.readAll()
		l.runTimers()
		l.flush()
	}
}

// prepare readies the loop to run: its buffers, its clock and, the first time it runs,
// an io_uring if the system gives it one.
func (l *loop) prepare() {
	if l.slab == nil {
		l.slab = make([]byte, readSlabSize)
		l.events = make([]unix.EpollEvent, 128)
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
	l.tick = min(l.t.cfg.PingInterval/4, l.t.cfg.WriteTimeout/4, 250*time.Millisecond)
	l.lastTick = time.Now()
	l.lastYield = l.lastTick
	l.shutDown = false
}

// admit registers the tunnels handed over since the last round and, once the proxy is
// shutting down, tells every tunnel so. It returns false when the loop has no tunnel left,
// and is then no longer running: it has closed its descriptors if the proxy is shut down.
func (l *loop) admit() bool {
	l.mu.Lock()
	added, stopping, ends := l.added, l.stopping, l.ending
	l.added, l.ending = nil, nil
	if len(added) == 0 && len(l.all) == 0 {
		l.running = false
		if stopping { // the proxy is shut down: nothing will come again
			l.closeDescriptors()
		}
		l.mu.Unlock()
		return false
	}
	l.mu.Unlock()
	for _, tu := range added {
		l.register(tu)
		if stopping && l.shutDown {
			l.goAway(tu) // admitted just before the shutdown
		}
	}
	if stopping && !l.shutDown {
		l.shutDown = true
		for tu := range l.all {
			l.goAway(tu)
		}
	}
	for _, e := range ends {
		if _, open := l.all[e.tu]; open {
			l.end(e)
		}
	}
	return true
}

// poll waits for events, for a tick at most and not at all when tunnels are waiting to be
// flushed, and puts the sockets they concern in the round's batches.
func (l *loop) poll() {
	wait := int(l.tick/time.Millisecond) + 1
	if len(l.dirty) > 0 {
		wait = 0 // something to settle already
	}
	n, err := unix.EpollWait(l.epfd, l.events, wait)
	if err != nil { // EINTR: nothing happened
		n = 0
	}
	l.now = time.Now()
	for i := range l.events[:n] {
		l.ready(&l.events[i])
	}
}

// ready puts the socket of an event in the round's read batch, write batch, or both.
func (l *loop) ready(ev *unix.EpollEvent) {
	if int(ev.Fd) == l.wakeFD {
		var b [8]byte
		unix.Read(l.wakeFD, b[:])
		return
	}
	s := l.byFD[ev.Fd]
	if s == nil {
		return
	}
	l.touch(s.tu)
	if ev.Events&(unix.EPOLLOUT|unix.EPOLLERR|unix.EPOLLHUP) != 0 && len(s.out) > 0 {
		l.queueWrite(s)
	}
	if ev.Events&(unix.EPOLLIN|unix.EPOLLHUP|unix.EPOLLERR) != 0 && !s.state.has(readEnded) {
		l.reading = append(l.reading, s)
	}
}

// runTimers yields to the scheduler every loopYieldInterval, and runs the tunnels' clock
// every tick.
func (l *loop) runTimers() {
	if l.now.Sub(l.lastYield) >= loopYieldInterval {
		l.lastYield = l.now
		runtime.Gosched()
	}
	if l.now.Sub(l.lastTick) >= l.tick {
		l.lastTick = l.now
		l.clock(l.now)
		for tu := range l.all {
			l.touch(tu)
		}
	}
}

// flush ends a round: it sends the control frames whose frame boundary has come, writes
// everything owed in one batch, and settles the tunnels the round touched. Only those are
// looked at: a loop may hold thousands of idle ones.
func (l *loop) flush() {
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

// touch marks a tunnel for the round's flush.
func (l *loop) touch(tu *tunnel) {
	if !tu.dirty {
		tu.dirty = true
		l.dirty = append(l.dirty, tu)
	}
}

// queueWrite puts side s in the round's write batch.
func (l *loop) queueWrite(s *tunnelSide) {
	if !s.state.has(writeQueued) {
		s.state.set(writeQueued)
		l.writing = append(l.writing, s)
	}
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
			l.received(s, op.buf[:op.n])
		case op.err == unix.EAGAIN || op.err == unix.EINTR:
		default: // end of stream or a reset
			s.state.set(readEnded)
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
		s.state.unset(writeQueued)
		buf := s.owed()
		if s.state.has(writeFailed) || len(buf) == 0 {
			s.borrowed = nil
			continue
		}
		ops = append(ops, ioOp{fd: s.fd, buf: buf, send: true})
		sides = append(sides, s)
	}
	l.io(ops)
	for i, s := range sides {
		l.wrote(s, &ops[i])
	}
	clear(l.writing[:queued])
	l.writing = l.writing[:0]
	l.ops = ops[:0]
}

// wrote takes the result of a write to side s: what the socket did not take stays in its
// out buffer; a failed write ends the tunnel.
func (l *loop) wrote(s *tunnelSide, op *ioOp) {
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
	if op.err != 0 && op.err != unix.EAGAIN && op.err != unix.EINTR { // the socket is gone
		l.failWrite(s)
	}
	// A TLS side seals everything into its out buffer: an idle one keeps no more than a
	// small message's records.
	if len(s.out) == 0 && (cap(s.out) > 256<<10 || s.tls != nil && cap(s.out) > 4<<10) {
		s.out = nil
	}
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
		if op.send {
			op.n, op.err = sendRaw(op.fd, op.buf)
		} else {
			op.n, op.err = recvRaw(op.fd, op.buf)
		}
		op.done = true
	}
}

// watch sets what the loop waits for on side s's socket. With nothing to wait for, the
// socket leaves the epoll set: a closed socket would otherwise be reported again and again.
func (l *loop) watch(s *tunnelSide, want uint32) {
	if want == s.events {
		return
	}
	ev := unix.EpollEvent{Events: want, Fd: int32(s.fd)}
	switch {
	case want == 0:
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_DEL, s.fd, nil)
	case s.events == 0:
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_ADD, s.fd, &ev)
	default:
		unix.EpollCtl(l.epfd, unix.EPOLL_CTL_MOD, s.fd, &ev)
	}
	s.events = want
}

package wsproxy

import (
	"bufio"
	"crypto/sha1"
	"crypto/tls"
	"encoding/base64"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// FuzzLoopsMatchPipe relays the same WebSocket conversation through the event loops and
// through the goroutine pipe, over loopback TCP, between a scripted browser and a scripted
// backend that speak raw frames, and again through the event loops with the browser over
// TLS (wss://: the loops protect its records), and requires both ends to receive the same
// things every way: the same messages (type and unmasked payload; the pipe re-frames and re-masks
// them, so fragment boundaries and masking keys are not compared), the same pings and
// pongs, in the same order, and the same close code. decodeConversation turns the input
// into turns of frames from either side or both (fragmented messages, pings and pongs
// between fragments, messages at and over the read limit, frames that break the
// protocol), the backend's first frames sent with its 101, and an ending: a close with a
// valid or invalid code, a side vanishing, both closing at once.
//
// After each turn a side waits until it has received what the other sent, so that what
// it receives does not depend on timing. For the same reason a turn in which a side breaks
// the protocol or the limit is the last, and is played one side after the other when both
// send: the proxies close the connection, and both sides wait for their close frame. The
// proxies' keepalive pings stay out of it (PingInterval is an hour).
func FuzzLoopsMatchPipe(f *testing.F) {
	for _, seed := range conversationSeeds {
		f.Add(seed)
	}
	h := newDiffHarness(f)
	f.Fuzz(h.compare)
}

// compare plays the conversation data through both proxies and fails if an end received
// something else through the event loops than through the goroutine pipe.
func (h *diffHarness) compare(t *testing.T, data []byte) {
	c := decodeConversation(data)
	proxies := h.proxies[c.limit]
	viaPipe := h.play(t, proxies.pipe, c)
	viaLoops := h.play(t, proxies.loops, c)
	require.Equal(t, viaPipe, viaLoops, "what the ends received through the goroutine pipe (expected) and the "+
		"event loops (actual), in this conversation:\n%s", c)
	viaLoopsTLS := h.play(t, proxies.loopsTLS, c)
	require.Equal(t, viaPipe, viaLoopsTLS, "what the ends received through the goroutine pipe (expected) and the "+
		"event loops with the browser over TLS (actual), in this conversation:\n%s", c)
}

// conversationSeeds are hand-made inputs; decodeConversation says what the bytes mean.
var conversationSeeds = [][]byte{
	// Limit 1024, the browser closes with 1000 "bye": a text message each way.
	{0x04, 0, 3, 0x00, 0x00, 5, 'a', 0x01, 0x10, 7, 'b'},
	// The backend's first message comes with its 101; then both send at once, the browser
	// a message in three fragments with a ping between, the backend a pong, a text and a
	// binary message in two fragments; the backend closes with 4000.
	{0x1c, 13, 0, 0x01, 0x10, 20, 'e', 0x0e, 0x08, 30, 'f', 0x04, 4, 'p', 0x08, 0, 'g', 0x00, 60, 'h',
		0x05, 3, 'o', 0x00, 10, 'i', 0x18, 5, 'j', 0x00, 6, 'k'},
	// Limit 32: the browser's second message is over it (1009 to it, 1011 to the backend).
	{0x00, 0, 0, 0x06, 0x00, 31, 'a', 0x00, 250, 'z'},
	// The backend vanishes after a binary message of 295 bytes (a 16-bit length).
	{0x35, 0, 0, 0x01, 0x10, 213, 'q'},
	// The browser vanishes in the middle of a fragmented message.
	{0x24, 0, 0, 0x00, 0x08, 40, 'm'},
	// The browser sends an unmasked frame: 1002 to it, 1001 to the backend (as when the
	// browser vanishes).
	{0x04, 0, 0, 0x00, 0x27, 5, 'u'},
	// The backend closes with the reserved 1006: a protocol error; the browser hears 1011.
	{0x14, 19, 5, 0x01, 0x00, 5, 'r'},
	// The backend closes with 1014 (bad gateway), which is not relayed either.
	{0x14, 20, 0, 0x01, 0x00, 5, 'r'},
	// The browser closes with an empty close frame, after a ping.
	{0x04, 25, 0, 0x00, 0x04, 3, 'p'},
	// Both close at once, with 1001 and 1011, after a message each way.
	{0x44, 1, 0, 0x02, 0x00, 2, 'x', 0x00, 2, 'y'},
	// The backend sends a continuation frame with no message open (1002 to it) while the
	// browser is in the middle of a message.
	{0x04, 0, 0, 0x00, 0x08, 9, 'k', 0x01, 0x57, 2, 'c'},
	// The browser closes with 3000 in the middle of a fragmented message.
	{0x04, 11, 4, 0x00, 0x08, 8, 'i'},
	// Limit 70000: messages with a 64-bit length, one under the limit, one at it.
	{0x17, 0, 0, 0x02, 0x10, 247, 's', 0x00, 248, 't'},
}

// A conversation is a decoded fuzz input. Side 0 is the browser, side 1 the backend.
type conversation struct {
	limit int64 // the proxies' MaxMessageSize
	early bool  // the backend sends its first step with its 101, if it sends alone in it
	steps []step
	end   ending
	desc  []string
}

// step is what the sides send before each waits for what the other sent; when both send,
// they do it at once.
type step struct {
	frames [2][]byte // the frames each side sends, encoded
	events [2]int    // the messages, pings and pongs among them
	breaks bool      // a side breaks the protocol or the limit: the proxies close
}

// ending is how a conversation ends, once the steps are played (unless a side has
// received a close or lost its connection by then).
type ending struct {
	kind  int       // one of the constants below
	close [2][]byte // the close frames' payloads
}

const (
	browserCloses = iota
	backendCloses
	browserVanishes
	backendVanishes
	bothClose
	endings
)

func (c conversation) String() string { return strings.Join(c.desc, "\n") }

// closeCodes are the codes an input's close frames may carry: the first validCloseCodes
// may be sent, the others may not (a protocol error, which the proxies do not relay).
var closeCodes = []int{1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 3000, 3999, 4000, 4999,
	0, 999, 1004, 1005, 1006, 1014, 1015, 1016, 2999, 5000}

const validCloseCodes = 15

// limits are the read limits an input may choose: around the 7-bit and 16-bit lengths.
var limits = [8]int64{32, 64, 125, 126, 1024, 4096, 65535, 70000}

// fuzzInput hands out an input's bytes, then zeros.
type fuzzInput []byte

func (in *fuzzInput) next() byte {
	if len(*in) == 0 {
		return 0
	}
	b := (*in)[0]
	*in = (*in)[1:]
	return b
}

// decodeConversation reads a conversation from data:
//
//	byte 0: bits 0-2 the read limit (limits), bit 3 early, bits 4-6 the ending (mod 5);
//	byte 1: the close code's index in closeCodes (one past them: an empty close frame);
//	byte 2: the close reason's length (mod 40);
//
// then up to 8 turns: a byte, whose value mod 3 says who sends (the browser, the
// backend, both) and whose bits 2-3 how many frames each (1-4), and each frame in 3
// bytes: kind, length and payload seed (frameWriter.frame). A side's frames stop at one
// that breaks the protocol or the limit, and the turns with that turn.
func decodeConversation(data []byte) conversation {
	in := fuzzInput(data)
	b0, code, reason := in.next(), in.next(), in.next()
	c := conversation{limit: limits[b0&7], early: b0&0x08 != 0}
	c.end = decodeEnding(int(b0>>4)%endings, code, reason)
	c.desc = append(c.desc, fmt.Sprintf("limit %d, early %v", c.limit, c.early))
	ws := [2]frameWriter{{browser: true, limit: c.limit}, {limit: c.limit}}
	for len(in) > 0 && len(c.steps) < 8 {
		h := in.next()
		from, n := int(h%3), 1+int(h>>2)%4
		var turn [2]step // each side's part
		for side := range 2 {
			if from != 2 && from != side {
				continue
			}
			for i := 0; i < n && !turn[side].breaks; i++ {
				d, breaks := ws[side].frame(&in, &turn[side], side)
				turn[side].breaks = breaks
				c.desc = append(c.desc, fmt.Sprintf("step %d: the %s sends %s", len(c.steps), sideName(side), d))
			}
		}
		if turn[0].breaks || turn[1].breaks {
			// The last turn, one side after the other: see FuzzLoopsMatchPipe.
			for side := range 2 {
				if turn[side].frames[side] != nil {
					c.steps = append(c.steps, turn[side])
				}
				if turn[side].breaks {
					break
				}
			}
			break
		}
		turn[0].frames[1], turn[0].events[1] = turn[1].frames[1], turn[1].events[1]
		c.steps = append(c.steps, turn[0])
	}
	c.desc = append(c.desc, fmt.Sprintf("ending %d, close payloads %q", c.end.kind, c.end.close))
	return c
}

func sideName(side int) string { return [2]string{"browser", "backend"}[side] }

// decodeEnding returns an ending of the kind; both sides closing at once use valid codes.
func decodeEnding(kind int, code, reason byte) ending {
	e := ending{kind: kind}
	closePayload := func(i int) []byte {
		if i >= len(closeCodes) {
			return []byte{}
		}
		p := binary.BigEndian.AppendUint16(nil, uint16(closeCodes[i]))
		return append(p, strings.Repeat("bye ", 10)[:int(reason)%40]...)
	}
	if kind == bothClose {
		e.close = [2][]byte{closePayload(int(code) % validCloseCodes), closePayload((int(code) + 7) % validCloseCodes)}
	} else {
		e.close[0] = closePayload(int(code) % (len(closeCodes) + 1))
		e.close[1] = e.close[0]
	}
	return e
}

// frameWriter encodes one side's frames, following its messages as a proxy would.
type frameWriter struct {
	browser bool // frames are masked
	limit   int64
	inMsg   bool  // a fragmented message is open
	msgLen  int64 // its length so far
}

// frame decodes a frame from in and adds it to side's frames in st. It returns a
// description, and whether the frame breaks the protocol or the limit.
//
// The kind byte: its bits 0-2 are 0-3 for a data frame (text, or binary if bit 4 is set;
// a continuation while a message is open), 4 for a ping, 5 for a pong, 6 for a data frame
// over the limit, 7 for a frame that breaks the protocol (which: kind>>4 mod 6); bit 3
// clears FIN. The length byte: below 200, a length mod 126; below 240, a 16-bit length;
// else around the limit.
func (w *frameWriter) frame(in *fuzzInput, st *step, side int) (string, bool) {
	kind, l, seed := in.next(), in.next(), in.next()
	fin := kind&0x08 == 0
	var b0 byte
	if fin {
		b0 = 0x80
	}
	masked := w.browser
	var n int64
	breaks := false
	switch kind & 7 {
	case 4: // a ping
		b0, n = 0x89, int64(l%126)
		st.events[side]++
	case 5: // a pong
		b0, n = 0x8a, int64(l%126)
		st.events[side]++
	case 6: // over the limit
		n, breaks = w.limit+1+int64(l%8), true
		b0 |= w.dataOp(kind)
	case 7:
		var what string
		b0, n, masked, what = w.broken(kind, b0, int64(l%100))
		st.frames[side] = appendFrame(st.frames[side], b0, payload(n, seed), masked)
		return what, true
	default:
		n = w.dataLength(l)
		b0 |= w.dataOp(kind)
		if b0&0x0f != 0 {
			w.msgLen = 0
		}
		w.msgLen += n
		breaks = w.msgLen > w.limit
		if fin && !breaks {
			st.events[side]++
		}
		w.inMsg = !fin
	}
	st.frames[side] = appendFrame(st.frames[side], b0, payload(n, seed), masked)
	return fmt.Sprintf("a frame of %d bytes, first byte %#x", n, b0), breaks
}

// dataOp is the opcode of the next data frame: a continuation inside a message.
func (w *frameWriter) dataOp(kind byte) byte {
	switch {
	case w.inMsg:
		return 0x0
	case kind&0x10 != 0:
		return 0x2
	}
	return 0x1
}

func (w *frameWriter) dataLength(l byte) int64 {
	switch {
	case l < 200:
		return int64(l % 126)
	case l < 240:
		return 126 + int64(l-200)*13
	}
	return w.limit - 8 + int64(l-240)
}

// broken returns a frame that breaks the protocol: its first byte, length and masking.
func (w *frameWriter) broken(kind, b0 byte, n int64) (byte, int64, bool, string) {
	switch (kind >> 4) % 6 {
	case 0:
		return b0 | 0x40 | w.dataOp(kind), n, w.browser, "a data frame with RSV1 set"
	case 1:
		return 0x83, n, w.browser, "a frame with the reserved opcode 3"
	case 2:
		return 0x81, n, !w.browser, "a text frame masked wrongly"
	case 3:
		return 0x89, 126, w.browser, "a ping of 126 bytes"
	case 4:
		return 0x09, n % 126, w.browser, "a ping without FIN"
	}
	if w.inMsg {
		return 0x81, n, w.browser, "a text frame inside a message"
	}
	return 0x80, n, w.browser, "a continuation frame outside a message"
}

// payload is n bytes that seed picks.
func payload(n int64, seed byte) []byte {
	p := make([]byte, n)
	for i := range p {
		p[i] = seed + byte(i)*7
	}
	return p
}

// appendFrame encodes a frame of payload p whose first byte is b0, masked or not.
func appendFrame(dst []byte, b0 byte, p []byte, masked bool) []byte {
	var maskBit byte
	if masked {
		maskBit = 0x80
	}
	dst = append(dst, b0)
	if n := len(p); n < 126 {
		dst = append(dst, maskBit|byte(n))
	} else if n < 1<<16 {
		dst = binary.BigEndian.AppendUint16(append(dst, maskBit|126), uint16(n))
	} else {
		dst = binary.BigEndian.AppendUint64(append(dst, maskBit|127), uint64(n))
	}
	if !masked {
		return append(dst, p...)
	}
	key := [4]byte{0x37, b0, byte(len(p)), 0xa5}
	dst = append(dst, key[:]...)
	for i := range p {
		dst = append(dst, p[i]^key[i%4])
	}
	return dst
}

// diffHarness is a scripted backend with, for each read limit, three proxies in front: one
// with event loops, one with the goroutine pipe only, and one with event loops whose
// browsers come over TLS (NewTLSListener).
type diffHarness struct {
	backend *scriptedBackend
	proxies map[int64]proxyPair
	next    atomic.Uint64
}

// proxyPair is the proxies of a read limit.
type proxyPair struct {
	loops, pipe, loopsTLS entrance
	withLoops, withTLS    *Proxy
}

// entrance is where a browser reaches a proxy: its address, and the browser's TLS
// configuration for wss:// (nil for ws://).
type entrance struct {
	addr string
	tls  *tls.Config
}

func newDiffHarness(tb testing.TB) *diffHarness {
	h := &diffHarness{backend: newScriptedBackend(tb), proxies: map[int64]proxyPair{}}
	route := func(r *http.Request) (Backend, error) {
		return Backend{URL: "ws://" + h.backend.ln.Addr().String() + r.URL.Path}, nil
	}
	serverTLS, browserTLS := testTLS(tb)
	for _, limit := range limits {
		cfg := ProxyConfig{Route: route, MaxMessageSize: limit, PingInterval: time.Hour, WriteTimeout: 2 * time.Second}
		p, viaLoops := startProxy(tb, cfg)
		if p.loops == nil {
			tb.Skip("no event loops on this system")
		}
		pt, viaTLS := startTLSProxy(tb, cfg, serverTLS)
		cfg.GoroutinePipe = true
		_, viaPipe := startProxy(tb, cfg)
		h.proxies[limit] = proxyPair{
			loops:     entrance{addr: viaLoops.Listener.Addr().String()},
			pipe:      entrance{addr: viaPipe.Listener.Addr().String()},
			loopsTLS:  entrance{addr: viaTLS.Listener.Addr().String(), tls: browserTLS},
			withLoops: p, withTLS: pt,
		}
	}
	return h
}

// play has a conversation through the proxy at in and returns what each end received.
func (h *diffHarness) play(t *testing.T, in entrance, c conversation) string {
	path := fmt.Sprintf("/conversation/%d", h.next.Add(1))
	steps := c.steps
	var early []byte
	if c.early && len(steps) > 0 && steps[0].frames[0] == nil {
		early = steps[0].frames[1]
	}
	var ends [2]*diffEnd
	ends[0], ends[1] = h.rawPair(t, in, path, early)
	for _, e := range ends {
		go e.read()
	}
	for i, st := range steps {
		if ends[0].over() || ends[1].over() {
			break
		}
		for side, e := range ends {
			if i > 0 || early == nil {
				e.send(st.frames[side])
			}
			ends[1-side].expect(st.events[side])
			if st.breaks {
				e.expect(math.MaxInt32) // a close frame
			}
		}
		for _, e := range ends {
			e.await(3 * time.Second)
		}
	}
	if !ends[0].over() && !ends[1].over() {
		c.end.play(ends)
	}
	awaitEnd(t, ends[:]...)
	return ends[0].record() + "\n" + ends[1].record()
}

// rawPair opens a browser's connection through the proxy at in, and returns its end and
// the backend's, which has sent early with its 101. They are closed when t ends.
func (h *diffHarness) rawPair(t *testing.T, in entrance, path string, early []byte) (browser, backend *diffEnd) {
	reached := h.backend.expect(path, early)
	defer h.backend.forget(path)
	browser = dialBrowser(t, in, path)
	t.Cleanup(func() { browser.conn.Close() })
	select {
	case backend = <-reached:
		t.Cleanup(func() { backend.conn.Close() })
	case <-time.After(5 * time.Second):
		t.Fatal("the proxy never reached the backend")
	}
	return browser, backend
}

// awaitEnd waits until the ends' connections have ended (they have deadlines).
func awaitEnd(t *testing.T, ends ...*diffEnd) {
	for _, e := range ends {
		select {
		case <-e.done:
		case <-time.After(15 * time.Second):
			t.Fatalf("the %s's connection never ended", e.name)
		}
	}
}

// play ends a conversation.
func (e ending) play(ends [2]*diffEnd) {
	switch e.kind {
	case browserCloses, backendCloses:
		if ends[e.kind].claimClose() {
			ends[e.kind].sendClose(e.close[e.kind])
		}
	case browserVanishes, backendVanishes:
		ends[e.kind-browserVanishes].vanish()
	case bothClose:
		// Each sends its own close, even if the other's has come in the meantime.
		ok0, ok1 := ends[0].claimClose(), ends[1].claimClose()
		for side, ok := range []bool{ok0, ok1} {
			if ok {
				ends[side].sendClose(e.close[side])
			}
		}
	}
}

// diffEnd is one end of a conversation, the browser or the backend, speaking raw frames.
type diffEnd struct {
	name    string
	browser bool // it masks what it sends, and must receive unmasked frames
	conn    endConn
	br      *bufio.Reader
	done    chan struct{} // read has returned
	changed chan struct{}
	wmu     sync.Mutex // held while writing

	mu         sync.Mutex
	events     []string // messages, pings and pongs received
	msg        []byte   // the message being received
	msgOp      byte
	want       int    // events it expects by the end of the current step
	closeCode  string // set when a close frame is received
	sentClose  bool   // it sends a close frame, or has
	wroteClose bool   // it has
	shut       bool   // its write half is shut
	vanished   bool   // its connection was dropped: it receives nothing more
	ended      bool   // its stream ended
}

// endConn is an end's connection: TCP, or TLS for a browser over wss:// (whose CloseWrite
// sends close_notify).
type endConn interface {
	net.Conn
	CloseWrite() error
}

func newDiffEnd(name string, browser bool, nc endConn, br *bufio.Reader) *diffEnd {
	nc.SetDeadline(time.Now().Add(10 * time.Second)) // every conversation ends
	return &diffEnd{name: name, browser: browser, conn: nc, br: br, done: make(chan struct{}),
		changed: make(chan struct{}, 1)}
}

// read records the frames that come until the stream ends, answering a close frame.
func (e *diffEnd) read() {
	defer close(e.done)
	for {
		f, err := readWireFrame(e.br)
		if err != nil {
			e.mu.Lock()
			e.ended = true
			e.mu.Unlock()
			e.poke()
			return
		}
		e.received(f)
		e.poke()
	}
}

func (e *diffEnd) poke() {
	select {
	case e.changed <- struct{}{}:
	default:
	}
}

// received records a frame. A close frame is answered with the same payload, unless this
// end sent one first.
func (e *diffEnd) received(f wireFrame) {
	e.mu.Lock()
	if e.vanished || e.closeCode != "" {
		e.mu.Unlock()
		return
	}
	if f.masked == e.browser || f.rsv != 0 {
		e.events = append(e.events, fmt.Sprintf("a bad frame header: masked %v, rsv %#x", f.masked, f.rsv))
	}
	answer := false
	switch f.op {
	case 0x8:
		e.closeCode = closeCodeOf(f.payload)
		answer = !e.sentClose
		e.sentClose = true
	case 0x9, 0xa:
		e.events = append(e.events, map[byte]string{0x9: "ping ", 0xa: "pong "}[f.op]+describe(f.payload))
	case 0x0, 0x1, 0x2:
		if f.op != 0 {
			e.msg, e.msgOp = e.msg[:0], f.op
		}
		e.msg = append(e.msg, f.payload...)
		if f.fin {
			e.events = append(e.events, map[byte]string{1: "text ", 2: "binary "}[e.msgOp]+describe(e.msg))
		}
	default:
		e.events = append(e.events, fmt.Sprintf("opcode %#x", f.op))
	}
	closed := e.closeCode != ""
	e.mu.Unlock()
	switch {
	case answer:
		e.sendClose(f.payload)
	case closed:
		e.shutIfDone()
	}
}

// sendClose writes a close frame with payload p; claimClose must have said it may.
func (e *diffEnd) sendClose(p []byte) {
	e.send(appendFrame(nil, 0x88, p, e.browser))
	e.mu.Lock()
	e.wroteClose = true
	e.mu.Unlock()
	e.shutIfDone()
}

// shutIfDone shuts the backend's write half once it has written a close frame and
// received one (a server closes the connection first).
func (e *diffEnd) shutIfDone() {
	e.mu.Lock()
	shut := !e.browser && !e.shut && e.wroteClose && e.closeCode != ""
	e.shut = e.shut || shut
	e.mu.Unlock()
	if shut {
		e.conn.CloseWrite()
	}
}

// describe shows a payload, or for a long one its length and a hash.
func describe(p []byte) string {
	if len(p) <= 40 {
		return fmt.Sprintf("%q", p)
	}
	return fmt.Sprintf("%d bytes, SHA-1 %x", len(p), sha1.Sum(p))
}

func closeCodeOf(p []byte) string {
	if len(p) < 2 {
		return fmt.Sprintf("without a code (%d bytes)", len(p))
	}
	return fmt.Sprint(binary.BigEndian.Uint16(p))
}

// send writes frames; an error means the conversation is over for this end.
func (e *diffEnd) send(frames []byte) {
	if len(frames) == 0 {
		return
	}
	e.wmu.Lock()
	defer e.wmu.Unlock()
	e.conn.Write(frames)
}

// expect adds n events to what this end waits for in the current step.
func (e *diffEnd) expect(n int) {
	e.mu.Lock()
	e.want += n
	e.mu.Unlock()
}

// await waits until this end has received what it expects, a close frame, or the end of
// its stream, for timeout at most.
func (e *diffEnd) await(timeout time.Duration) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		e.mu.Lock()
		ok := len(e.events) >= e.want || e.closeCode != "" || e.ended
		e.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-e.changed:
		case <-deadline.C:
			return
		}
	}
}

// over reports whether this end received a close frame or lost its stream.
func (e *diffEnd) over() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.closeCode != "" || e.ended
}

// claimClose marks a close frame as sent by this end, unless it has received one (it
// then has answered it) or its stream is over.
func (e *diffEnd) claimClose() bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closeCode != "" || e.ended || e.sentClose {
		return false
	}
	e.sentClose = true
	return true
}

// vanish ends this end's stream without a close frame; it receives nothing more. Its
// write half is shut rather than its socket closed: a close with unread data would reset
// the connection, and lose what it sent last or not, depending on timing.
func (e *diffEnd) vanish() {
	e.mu.Lock()
	e.vanished = true
	e.mu.Unlock()
	e.conn.CloseWrite()
}

// record is what this end received.
func (e *diffEnd) record() string {
	e.mu.Lock()
	defer e.mu.Unlock()
	end := "the stream ended without a close frame"
	switch {
	case e.vanished:
		end = "it vanished"
	case e.closeCode != "":
		end = "close " + e.closeCode
	}
	return e.name + " received:\n\t" + strings.Join(append(e.events[:len(e.events):len(e.events)], end), "\n\t")
}

// wireFrame is a frame as read from a socket, its payload unmasked.
type wireFrame struct {
	fin, masked bool
	rsv, op     byte
	payload     []byte
}

func readWireFrame(br *bufio.Reader) (wireFrame, error) {
	var h [14]byte
	if _, err := io.ReadFull(br, h[:2]); err != nil {
		return wireFrame{}, err
	}
	f := wireFrame{fin: h[0]&0x80 != 0, rsv: h[0] & 0x70, op: h[0] & 0x0f, masked: h[1]&0x80 != 0}
	n, ext := uint64(h[1]&0x7f), map[uint64]int{126: 2, 127: 8}[uint64(h[1]&0x7f)]
	if _, err := io.ReadFull(br, h[2:2+ext]); err != nil {
		return wireFrame{}, err
	}
	switch ext {
	case 2:
		n = uint64(binary.BigEndian.Uint16(h[2:]))
	case 8:
		n = binary.BigEndian.Uint64(h[2:])
	}
	if n > 1<<20 {
		return wireFrame{}, fmt.Errorf("a frame of %d bytes", n)
	}
	var key [4]byte
	if f.masked {
		if _, err := io.ReadFull(br, key[:]); err != nil {
			return wireFrame{}, err
		}
	}
	f.payload = make([]byte, n)
	if _, err := io.ReadFull(br, f.payload); err != nil {
		return wireFrame{}, err
	}
	for i := range f.payload {
		f.payload[i] ^= key[i%4]
	}
	return f, nil
}

// dialBrowser opens a WebSocket to the proxy at in as a browser would, raw.
func dialBrowser(t *testing.T, in entrance, path string) *diffEnd {
	addr := in.addr
	tcp, err := net.DialTimeout("tcp", addr, 5*time.Second)
	require.NoError(t, err)
	tcp.SetDeadline(time.Now().Add(5 * time.Second))
	nc := endConn(tcp.(*net.TCPConn))
	if in.tls != nil {
		nc = tls.Client(tcp, in.tls)
	}
	_, err = fmt.Fprintf(nc, "GET %s HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"+
		"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n", path, addr)
	require.NoError(t, err)
	br := bufio.NewReader(nc)
	resp, err := http.ReadResponse(br, nil)
	require.NoError(t, err)
	resp.Body.Close()
	require.Equal(t, http.StatusSwitchingProtocols, resp.StatusCode)
	return newDiffEnd("browser", true, nc, br)
}

// scriptedBackend accepts the proxies' WebSocket connections and hands each, upgraded,
// to the conversation that expects it (by its path), after sending its early frames with
// the 101.
type scriptedBackend struct {
	ln   net.Listener
	mu   sync.Mutex
	want map[string]backendWait
	wg   sync.WaitGroup
}

type backendWait struct {
	early   []byte
	reached chan *diffEnd
}

func newScriptedBackend(tb testing.TB) *scriptedBackend {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(tb, err)
	b := &scriptedBackend{ln: ln, want: map[string]backendWait{}}
	b.wg.Add(1)
	go b.serve()
	tb.Cleanup(func() {
		ln.Close()
		b.wg.Wait()
	})
	return b
}

func (b *scriptedBackend) expect(path string, early []byte) <-chan *diffEnd {
	w := backendWait{early: early, reached: make(chan *diffEnd, 1)}
	b.mu.Lock()
	b.want[path] = w
	b.mu.Unlock()
	return w.reached
}

func (b *scriptedBackend) forget(path string) {
	b.mu.Lock()
	delete(b.want, path)
	b.mu.Unlock()
}

func (b *scriptedBackend) serve() {
	defer b.wg.Done()
	for {
		nc, err := b.ln.Accept()
		if err != nil {
			return
		}
		b.wg.Add(1)
		go b.upgrade(nc.(*net.TCPConn))
	}
}

func (b *scriptedBackend) upgrade(nc *net.TCPConn) {
	defer b.wg.Done()
	nc.SetDeadline(time.Now().Add(5 * time.Second))
	br := bufio.NewReader(nc)
	req, err := http.ReadRequest(br)
	if err != nil {
		nc.Close()
		return
	}
	b.mu.Lock()
	w, ok := b.want[req.URL.Path]
	delete(b.want, req.URL.Path)
	b.mu.Unlock()
	if !ok {
		nc.Close()
		return
	}
	sum := sha1.Sum([]byte(req.Header.Get("Sec-WebSocket-Key") + "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"))
	resp := "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n" +
		"Sec-WebSocket-Accept: " + base64.StdEncoding.EncodeToString(sum[:]) + "\r\n\r\n"
	if _, err := nc.Write(append([]byte(resp), w.early...)); err != nil {
		nc.Close()
		return
	}
	w.reached <- newDiffEnd("backend", false, nc, br)
}

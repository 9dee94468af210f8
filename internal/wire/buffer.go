package wire

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
)

// Buffer collects the bytes of a stream as its owner reads them and yields the whole
// frames among them, decoded where they lie. Unlike Reader it makes no read of its own:
// the owner reads into Space and reports what it read with Wrote. That suits a read loop
// driven by the socket's readiness, which reads only when the socket has bytes and so
// never makes a read that finds it empty (see the relay's connections).
//
// Limits are those of Reader: a frame longer than the limit fails with ErrFrameTooLarge
// as soon as its length prefix is in; the buffer grows only as bytes arrive, never ahead of
// them, so a peer that announces a large frame and sends little of it costs the memory of
// what it sent; a frame body over LargeFrame goes to a buffer of its own, dropped once the
// frame is consumed, and, under a Budget, takes its share of the budget first.
type Buffer struct {
	buf  []byte // the bytes read; buf[r:w] are not consumed yet
	r, w int
	max  int // the largest frame body accepted

	// A large frame (body over LargeFrame) is read into big until it is whole; bigNeed is
	// its size, prefix included. The frame consumed last may have been one (bigDone).
	big     []byte
	bigNeed int
	bigDone bool

	budget    *Budget
	budgetCtx context.Context
	held      int // the budget's share taken for the current or last large frame

	first [4]byte // the first length prefix seen, for LooksLikeHTTP
	seen  bool
}

// NewBuffer returns a Buffer that starts with size bytes of room and refuses frames
// longer than maxFrame bytes (after the prefix); zero means DefaultMaxFrame.
func NewBuffer(size, maxFrame int) *Buffer {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	return &Buffer{buf: make([]byte, max(size, 4+HeaderSize)), max: maxFrame}
}

// SetBudget makes the buffer take a share of b for each large frame before reading its
// body, waiting within ctx for one.
func (b *Buffer) SetBudget(ctx context.Context, budget *Budget) {
	b.budget, b.budgetCtx = budget, ctx
}

// Release gives back the large frame's buffer and its share of the budget, if any: call it
// when done with the buffer (the stream ended or failed).
func (b *Buffer) Release() {
	b.big, b.bigNeed, b.bigDone = nil, 0, false
	b.releaseShare()
}

// consumed lets a large frame go once it has been handled: Next returned it and the owner
// calls Space or Next again.
func (b *Buffer) consumed() {
	if b.bigDone {
		b.big, b.bigNeed, b.bigDone = nil, 0, false
		b.releaseShare()
	}
}

func (b *Buffer) releaseShare() {
	if b.held > 0 {
		b.budget.release(b.held)
		b.held = 0
	}
}

// announced checks the length prefix at buf[r:] (at least four bytes there) and returns
// the frame's size, prefix included.
func (b *Buffer) announced() (int, error) {
	p := b.buf[b.r : b.r+4]
	if !b.seen {
		copy(b.first[:], p)
		b.seen = true
	}
	n := binary.BigEndian.Uint32(p)
	if uint64(n) > uint64(b.max) {
		return 0, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, n, b.max)
	}
	if n < HeaderSize {
		return 0, fmt.Errorf("%w: length %d, the header alone needs %d", ErrMalformed, n, HeaderSize)
	}
	return 4 + int(n), nil
}

// Space returns room to read the next bytes of the stream into; report what was read into
// it with Wrote before calling Space or Next again. For a large frame under a budget it
// first waits for the frame's share, and fails if the context given to SetBudget ends.
// It fails too, without waiting, when the frame being read is too large or malformed.
func (b *Buffer) Space() ([]byte, error) {
	b.consumed()
	if b.big != nil {
		return b.bigSpace(), nil
	}
	if b.r == b.w {
		b.r, b.w = 0, 0
	}
	need := 0 // the size of the frame at r, once its prefix is in
	if b.w-b.r >= 4 {
		var err error
		if need, err = b.announced(); err != nil {
			return nil, err
		}
		if need-4 > LargeFrame {
			return b.startBig(need)
		}
	}
	if b.r > 0 && (b.w == len(b.buf) || b.r+need > len(b.buf)) {
		b.compact()
	}
	if b.w == len(b.buf) {
		// Full of the start of a frame larger than the buffer (the owner consumes whole
		// frames before reading more): grow, as far as the frame has arrived.
		grown := make([]byte, min(2*len(b.buf), need))
		copy(grown, b.buf[:b.w])
		b.buf = grown
	}
	return b.buf[b.w:], nil
}

// compact moves the bytes not consumed to the front of the buffer.
func (b *Buffer) compact() {
	b.w = copy(b.buf, b.buf[b.r:b.w])
	b.r = 0
}

// startBig moves the start of a large frame of need bytes into a buffer of its own, after
// taking its share of the budget, and returns room to read the rest into.
func (b *Buffer) startBig(need int) ([]byte, error) {
	if b.budget != nil {
		if err := b.budget.acquire(b.budgetCtx, need-4); err != nil {
			return nil, err
		}
		b.held = need - 4
	}
	have := b.w - b.r
	b.big = make([]byte, have, min(need, max(2*have, 4096)))
	copy(b.big, b.buf[b.r:b.w])
	b.r, b.w = 0, 0
	b.bigNeed = need
	return b.bigSpace(), nil
}

// bigSpace returns room for the rest of the large frame being read, growing its buffer
// (doubling) once it is full: never past what the frame needs, so no byte after the frame
// lands in it.
func (b *Buffer) bigSpace() []byte {
	if len(b.big) == cap(b.big) {
		grown := make([]byte, len(b.big), min(b.bigNeed, 2*cap(b.big)))
		copy(grown, b.big)
		b.big = grown
	}
	return b.big[len(b.big):cap(b.big)]
}

// Fill makes one read from r into the buffer's room (Space, then Wrote) and returns what
// the read returned: bytes and r's error as they are (mind EOF only once the whole frames
// buffered are consumed: see EOF).
func (b *Buffer) Fill(r io.Reader) (int, error) {
	room, err := b.Space()
	if err != nil {
		return 0, err
	}
	n, err := r.Read(room)
	b.Wrote(n)
	return n, err
}

// Wrote records that n bytes were read into the room Space returned.
func (b *Buffer) Wrote(n int) {
	if b.big != nil {
		b.big = b.big[:len(b.big)+n]
		return
	}
	b.w += n
}

// Next decodes the next whole frame into f and reports whether there was one. f's slices
// point into the buffer and stay valid until the next call to Space, Next or Release.
func (b *Buffer) Next(f *Frame) (bool, error) {
	b.consumed()
	if b.big != nil {
		if len(b.big) < b.bigNeed {
			return false, nil
		}
		b.bigDone = true
		return true, Decode(b.big[4:], f)
	}
	if b.w-b.r < 4 {
		return false, nil
	}
	need, err := b.announced()
	if err != nil {
		return false, err
	}
	if need-4 > LargeFrame || b.w-b.r < need {
		return false, nil
	}
	body := b.buf[b.r+4 : b.r+need]
	b.r += need
	return true, Decode(body, f)
}

// Whole reports whether a whole frame is buffered, so that Next returns it without
// another read. A frame whose prefix is bad counts as whole: Next reports it.
func (b *Buffer) Whole() bool {
	if b.big != nil {
		return !b.bigDone && len(b.big) >= b.bigNeed
	}
	if b.w-b.r < 4 {
		return false
	}
	n := uint64(binary.BigEndian.Uint32(b.buf[b.r:]))
	return n < HeaderSize || n > uint64(b.max) || n <= LargeFrame && uint64(b.w-b.r) >= 4+n
}

// Buffered returns the bytes buffered and not yet consumed by Next (none while a large
// frame is being read): look, don't keep; they stay valid until the next call to Space.
func (b *Buffer) Buffered() []byte {
	if b.big != nil {
		return nil
	}
	return b.buf[b.r:b.w]
}

// MidFrame reports whether the buffer holds part of a frame that Next cannot return yet.
func (b *Buffer) MidFrame() bool {
	return b.w > b.r || b.big != nil && !b.bigDone
}

// EOF returns the error that the end of the stream means now: io.EOF between frames,
// io.ErrUnexpectedEOF within one.
func (b *Buffer) EOF() error {
	if b.MidFrame() {
		return io.ErrUnexpectedEOF
	}
	return io.EOF
}

// LooksLikeHTTP reports whether the stream began like an HTTP request ("GET ", "POST",
// ...): someone pointed a browser or an HTTP client at a port that speaks this protocol.
func (b *Buffer) LooksLikeHTTP() bool {
	return b.seen && looksLikeHTTP(b.first)
}

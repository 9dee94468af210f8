package wire

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"math"
	"slices"
)

// Append appends f, length prefix included, to dst and returns the extended slice.
// It fails only if a field is too long for its length field.
func Append(dst []byte, f *Frame) ([]byte, error) {
	if len(f.Path) > math.MaxUint16 || len(f.Key) > math.MaxUint16 || uint64(len(f.Value)) > math.MaxUint32-HeaderSize-2*math.MaxUint16 {
		return dst, fmt.Errorf("%w: path %d, key %d, value %d bytes", ErrFrameTooLarge, len(f.Path), len(f.Key), len(f.Value))
	}
	n := f.Len()
	dst = slices.Grow(dst, 4+n) // one allocation at most
	dst = binary.BigEndian.AppendUint32(dst, uint32(n))
	dst = append(dst, Version, byte(f.Op), byte(f.Status), f.Flags)
	dst = binary.BigEndian.AppendUint64(dst, f.ID)
	dst = binary.BigEndian.AppendUint64(dst, uint64(f.Expiry))
	dst = binary.BigEndian.AppendUint64(dst, f.Rev)
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(f.Path)))
	dst = binary.BigEndian.AppendUint16(dst, uint16(len(f.Key)))
	dst = binary.BigEndian.AppendUint32(dst, uint32(len(f.Value)))
	dst = append(dst, f.Path...)
	dst = append(dst, f.Key...)
	return append(dst, f.Value...), nil
}

// Decode parses one frame body (the bytes after the length prefix) into f. The frame's
// slices point into body.
func Decode(body []byte, f *Frame) error {
	if len(body) < HeaderSize {
		return fmt.Errorf("%w: %d bytes, the header alone needs %d", ErrMalformed, len(body), HeaderSize)
	}
	if body[0] != Version {
		return fmt.Errorf("%w: version %d, this side speaks %d", ErrMalformed, body[0], Version)
	}
	op, status := Op(body[1]), Status(body[2])
	if op == 0 || op > opMax {
		return fmt.Errorf("%w: unknown op %d", ErrMalformed, body[1])
	}
	if status > statusMax || (op != OpReply && status != 0) {
		return fmt.Errorf("%w: status %d on a %s frame", ErrMalformed, body[2], op)
	}
	pl := int(binary.BigEndian.Uint16(body[28:]))
	kl := int(binary.BigEndian.Uint16(body[30:]))
	vl := uint64(binary.BigEndian.Uint32(body[32:]))
	if uint64(HeaderSize+pl+kl)+vl != uint64(len(body)) {
		return fmt.Errorf("%w: fields of %d+%d+%d bytes in a %d-byte frame", ErrMalformed, pl, kl, vl, len(body))
	}
	*f = Frame{
		Op:     op,
		Status: status,
		Flags:  body[3],
		ID:     binary.BigEndian.Uint64(body[4:]),
		Expiry: int64(binary.BigEndian.Uint64(body[12:])),
		Rev:    binary.BigEndian.Uint64(body[20:]),
	}
	p := body[HeaderSize:]
	f.Path, p = p[:pl:pl], p[pl:]
	f.Key, p = p[:kl:kl], p[kl:]
	f.Value = p
	return nil
}

// RequestKey returns the key of body, a whole frame body (the bytes after the length
// prefix), when it is a get, set, delete or single evict, without decoding the rest; ok is
// false for any other frame or a body too short for its header's lengths.
func RequestKey(body []byte) (key []byte, ok bool) {
	if len(body) < HeaderSize {
		return nil, false
	}
	switch Op(body[1]) {
	case OpGet, OpSet, OpDelete:
	case OpEvict:
		if body[3]&FlagBatch != 0 {
			return nil, false
		}
	default:
		return nil, false
	}
	pl := int(binary.BigEndian.Uint16(body[28:]))
	kl := int(binary.BigEndian.Uint16(body[30:]))
	if HeaderSize+pl+kl > len(body) {
		return nil, false
	}
	return body[HeaderSize+pl : HeaderSize+pl+kl], true
}

// Reader reads frames from a stream, reusing one buffer, so reading allocates nothing once
// the buffer has grown to the largest frame seen.
type Reader struct {
	r      io.Reader
	br     *bufio.Reader // r, when it is one: whole frames are decoded where they lie
	max    int
	buf    []byte
	prefix [4]byte
	// With a budget, large frames are read into a buffer of their own, held (with their
	// share of the budget) until the next Read.
	budget    *Budget
	budgetCtx context.Context
	held      int // bytes of the budget held for the last frame
}

// SetBudget makes the reader take a share of b for every large frame (over LargeFrame)
// before reading its body, waiting for it while ctx lasts, and give it back at the next
// Read (when the frame's slices become invalid) or Release.
func (r *Reader) SetBudget(ctx context.Context, b *Budget) {
	r.budget, r.budgetCtx = b, ctx
}

// Release gives back the share of the budget held for the last frame read; call it when
// the reader is done.
func (r *Reader) Release() {
	if r.held > 0 {
		r.budget.release(r.held)
		r.held = 0
	}
}

// NewReader returns a Reader that refuses frames longer than maxFrame bytes (after the
// prefix); zero means DefaultMaxFrame. Give it a buffered reader. With a *bufio.Reader, a
// frame already whole in its buffer is decoded where it lies, without a copy: its slices
// then point into that buffer, so nothing else may read from the bufio.Reader (or Peek
// past what it holds) until the next Read.
func NewReader(r io.Reader, maxFrame int) *Reader {
	if maxFrame <= 0 {
		maxFrame = DefaultMaxFrame
	}
	br, _ := r.(*bufio.Reader)
	return &Reader{r: r, br: br, max: maxFrame, buf: make([]byte, 0, 4096)}
}

// Read reads the next frame into f. f's slices are valid until the next Read. A frame
// longer than the limit returns ErrFrameTooLarge without reading its body; io.EOF means the
// stream ended cleanly between frames.
func (r *Reader) Read(f *Frame) error {
	r.Release()
	if b, ok := r.peekFrame(); ok {
		copy(r.prefix[:], b)
		r.br.Discard(len(b)) // the bytes stay where they are until the buffer is filled again
		return Decode(b[4:], f)
	}
	if _, err := io.ReadFull(r.r, r.prefix[:]); err != nil {
		return err
	}
	n := binary.BigEndian.Uint32(r.prefix[:])
	if uint64(n) > uint64(r.max) {
		return fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, n, r.max)
	}
	if n < HeaderSize {
		return fmt.Errorf("%w: length %d, the header alone needs %d", ErrMalformed, n, HeaderSize)
	}
	body, err := r.readBody(int(n))
	if err != nil {
		if err == io.EOF {
			err = io.ErrUnexpectedEOF
		}
		return err
	}
	return Decode(body, f)
}

// peekFrame returns the next frame, prefix included, when it is whole in the bufio.Reader's
// buffer and within the limits (anything else takes the path that reports it).
func (r *Reader) peekFrame() ([]byte, bool) {
	if r.br == nil {
		return nil, false
	}
	have := r.br.Buffered()
	if have < 4+HeaderSize {
		return nil, false
	}
	p, _ := r.br.Peek(4)
	n := uint64(binary.BigEndian.Uint32(p))
	if n < HeaderSize || n > uint64(r.max) || n > LargeFrame || 4+n > uint64(have) {
		return nil, false
	}
	b, err := r.br.Peek(4 + int(n))
	return b, err == nil
}

// LooksLikeHTTP reports whether the last length prefix read is the start of an HTTP
// request ("GET ", "POST", ...): someone pointed a browser or an HTTP client at a port
// that speaks this protocol.
func (r *Reader) LooksLikeHTTP() bool { return looksLikeHTTP(r.prefix) }

// looksLikeHTTP reports whether a length prefix is the start of an HTTP request.
func looksLikeHTTP(prefix [4]byte) bool {
	switch string(prefix[:]) {
	case "GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC", "CONN", "PRI ":
		return true
	}
	return false
}

// readBody reads a frame body of n bytes: into the reader's buffer, or, for a large frame
// under a budget, into a buffer of its own once the budget has room for it.
func (r *Reader) readBody(n int) ([]byte, error) {
	if r.budget == nil || n <= LargeFrame {
		return r.body(n)
	}
	if err := r.budget.acquire(r.budgetCtx, n); err != nil {
		return nil, err
	}
	r.held = n
	small := r.buf
	r.buf = nil // grown as the bytes arrive, and dropped at the next Read
	body, err := r.body(n)
	r.buf = small
	return body, err
}

// body reads a frame body of n bytes into the reader's buffer. A buffer too small grows as
// the bytes arrive (doubling, from 4 KiB), never ahead of them: a peer that announces a
// large frame and sends little of it costs the memory of what it sent, not of what it
// announced.
func (r *Reader) body(n int) ([]byte, error) {
	if cap(r.buf) >= n {
		body := r.buf[:n]
		_, err := io.ReadFull(r.r, body)
		return body, err
	}
	buf := r.buf[:0]
	for len(buf) < n {
		if len(buf) == cap(buf) {
			grown := make([]byte, len(buf), min(n, max(2*cap(buf), 4096)))
			copy(grown, buf)
			buf = grown
		}
		m, err := io.ReadFull(r.r, buf[len(buf):cap(buf)])
		buf = buf[:len(buf)+m]
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, err
		}
	}
	r.buf = buf
	return buf, nil
}

package wire

import (
	"context"
	"encoding/binary"
	"errors"
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

// Reader reads frames from a stream through a Buffer, so reading allocates nothing once the
// buffer has grown to the largest frame seen. It reads ahead: what it read of the stream
// past the frame it returned stays in its buffer for the next Read.
type Reader struct {
	r   io.Reader
	buf *Buffer
	err error // the stream's error, returned once the buffered frames are read
}

// NewReader returns a Reader that refuses frames longer than maxFrame bytes (after the
// prefix); zero means DefaultMaxFrame.
func NewReader(r io.Reader, maxFrame int) *Reader {
	return &Reader{r: r, buf: NewBuffer(4096, maxFrame)}
}

// SetBudget makes the reader take a share of b for every large frame (over LargeFrame)
// before reading its body, waiting for it while ctx lasts, and give it back at the next
// Read (when the frame's slices become invalid) or Release.
func (r *Reader) SetBudget(ctx context.Context, b *Budget) { r.buf.SetBudget(ctx, b) }

// Release gives back the share of the budget held for the last frame read; call it when
// the reader is done.
func (r *Reader) Release() { r.buf.Release() }

// Read reads the next frame into f. f's slices are valid until the next Read. A frame
// longer than the limit returns ErrFrameTooLarge as soon as its prefix is read; io.EOF
// means the stream ended cleanly between frames, io.ErrUnexpectedEOF within one.
func (r *Reader) Read(f *Frame) error {
	for {
		if ok, err := r.buf.Next(f); ok || err != nil {
			return err
		}
		if r.err != nil {
			if errors.Is(r.err, io.EOF) {
				return r.buf.EOF()
			}
			return r.err
		}
		_, r.err = r.buf.Fill(r.r)
	}
}

// LooksLikeHTTP reports whether the stream began like an HTTP request ("GET ", "POST",
// ...): someone pointed a browser or an HTTP client at a port that speaks this protocol.
func (r *Reader) LooksLikeHTTP() bool { return r.buf.LooksLikeHTTP() }

// looksLikeHTTP reports whether a length prefix is the start of an HTTP request.
func looksLikeHTTP(prefix [4]byte) bool {
	switch string(prefix[:]) {
	case "GET ", "POST", "HEAD", "PUT ", "DELE", "OPTI", "PATC", "CONN", "PRI ":
		return true
	}
	return false
}

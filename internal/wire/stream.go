package wire

import (
	"encoding/binary"
	"fmt"
)

// Resume modes, in the reply to a subscribe with FlagResume.
const (
	// ResumeComplete: the reply holds every change after the asked position; the
	// subscription is in place.
	ResumeComplete byte = 0
	// ResumeGap: the server no longer has every change after the asked position (it
	// restarted, or too much happened since); the subscription is in place from now on.
	ResumeGap byte = 1
	// ResumePartial: the reply holds the first changes after the asked position, not all
	// of them: ask again from the last one.
	ResumePartial byte = 2
)

// ResumeRequest is the value of a subscribe with FlagResume: the stream's epoch and the last
// sequence number the subscriber applied (16 bytes, big-endian). Epoch 0 asks for no
// changes: the reply then says ResumeGap unless nothing ever changed.
func ResumeRequest(epoch, seq uint64) []byte {
	b := binary.BigEndian.AppendUint64(make([]byte, 0, 16), epoch)
	return binary.BigEndian.AppendUint64(b, seq)
}

// ParseResumeRequest reads a ResumeRequest.
func ParseResumeRequest(v []byte) (epoch, seq uint64, err error) {
	if len(v) != 16 {
		return 0, 0, fmt.Errorf("%w: a resume request is 16 bytes, not %d", ErrMalformed, len(v))
	}
	return binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), nil
}

// AppendResumeReply appends the head of a reply to a resume: the stream's epoch, its
// current sequence number and the mode. The missed changes follow as message frames, each
// with its length prefix, their ids being their sequence numbers.
func AppendResumeReply(dst []byte, epoch, seq uint64, mode byte) []byte {
	dst = binary.BigEndian.AppendUint64(dst, epoch)
	dst = binary.BigEndian.AppendUint64(dst, seq)
	return append(dst, mode)
}

// ParseResumeReply reads a reply to a resume and calls fn with each change it holds (valid
// only during the call).
func ParseResumeReply(v []byte, fn func(*Frame) error) (epoch, seq uint64, mode byte, err error) {
	if len(v) < 17 {
		return 0, 0, 0, fmt.Errorf("%w: a resume reply of %d bytes", ErrMalformed, len(v))
	}
	epoch, seq, mode = binary.BigEndian.Uint64(v), binary.BigEndian.Uint64(v[8:]), v[16]
	if mode > ResumePartial {
		return 0, 0, 0, fmt.Errorf("%w: resume mode %d", ErrMalformed, mode)
	}
	err = eachEmbedded(v[17:], "a resume reply", func(f *Frame) error {
		if f.Op != OpMessage {
			return fmt.Errorf("%w: a %s in a resume reply", ErrMalformed, f.Op)
		}
		return fn(f)
	})
	if err != nil {
		return 0, 0, 0, err
	}
	return epoch, seq, mode, nil
}

// eachEmbedded calls fn with each of the length-prefixed frames rest holds, back to back;
// what names the container in errors.
func eachEmbedded(rest []byte, what string, fn func(*Frame) error) error {
	var f Frame // one for all: fn may not keep it (it escapes, so this is one allocation, not one per frame)
	for len(rest) > 0 {
		if len(rest) < 4 {
			return fmt.Errorf("%w: a torn frame in %s", ErrMalformed, what)
		}
		n := binary.BigEndian.Uint32(rest)
		if uint64(n) > uint64(len(rest)-4) {
			return fmt.Errorf("%w: a frame of %d bytes in the %d left of %s", ErrMalformed, n, len(rest)-4, what)
		}
		if err := Decode(rest[4:4+n], &f); err != nil {
			return err
		}
		if err := fn(&f); err != nil {
			return err
		}
		rest = rest[4+n:]
	}
	return nil
}

// AppendBatch appends f, an evict or delete frame, to the value of a batch (an evict with
// FlagBatch): the frames of a batch follow each other with their length prefixes.
func AppendBatch(dst []byte, f *Frame) ([]byte, error) {
	if f.Op != OpEvict && f.Op != OpDelete || f.Flags&FlagBatch != 0 {
		return dst, fmt.Errorf("%w: a batch holds evictions and deletions, not a %s with flags %#x", ErrMalformed, f.Op, f.Flags)
	}
	return Append(dst, f)
}

// ParseBatch calls fn with each frame of a batch's value (valid only during the call). It
// fails if the value is torn or holds anything but evictions and deletions.
func ParseBatch(v []byte, fn func(*Frame) error) error {
	return eachEmbedded(v, "a batch", func(f *Frame) error {
		if f.Op != OpEvict && f.Op != OpDelete || f.Flags&FlagBatch != 0 {
			return fmt.Errorf("%w: a %s with flags %#x in a batch", ErrMalformed, f.Op, f.Flags)
		}
		return fn(f)
	})
}

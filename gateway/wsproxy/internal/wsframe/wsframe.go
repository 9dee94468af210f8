package wsframe

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
)

const (
	opContinuation = 0x0
	opText         = 0x1
	opBinary       = 0x2
	opClose        = 0x8
	opPing         = 0x9
	opPong         = 0xA
)

// KeepalivePayload is the payload of the proxy's own keepalive pings: a pong that carries it
// answers the proxy and goes no further.
const KeepalivePayload = "gs-keepalive"

// Errors a Scanner reports: the sender is answered with close code 1009 for ErrTooLarge,
// 1002 for ErrProtocol.
var (
	ErrTooLarge = errors.New("message too large")
	ErrProtocol = errors.New("protocol error")
)

// Scanner follows the frames of one direction of a WebSocket stream. Make one with
// NewScanner.
type Scanner struct {
	max    int64 // largest message, in bytes
	masked bool  // frames must be masked (they come from a browser); else must not be

	hdr    [14]byte
	hdrN   int   // header bytes collected
	need   int64 // payload bytes of the current frame still to come
	msg    int64 // payload bytes of the current data message so far
	inMsg  bool  // a fragmented data message is open
	opcode byte  // the current frame's opcode
	closed bool  // a close frame went by
	code   [2]byte
	codeN  int     // bytes of a close frame's code collected
	key    [4]byte // the close frame's mask key
}

// NewScanner returns a scanner of a stream whose messages may be at most max bytes long;
// masked says the frames must be masked (they come from a browser), else they must not be.
func NewScanner(max int64, masked bool) Scanner { return Scanner{max: max, masked: masked} }

// headerLen returns the length of a header whose second byte is b1 (mask bit and length).
func headerLen(b1 byte) int {
	n := 2
	switch b1 & 0x7F {
	case 126:
		n += 2
	case 127:
		n += 8
	}
	if b1&0x80 != 0 {
		n += 4
	}
	return n
}

// AtBoundary reports whether the stream is between frames, so that a frame may be inserted.
func (s *Scanner) AtBoundary() bool { return s.hdrN == 0 && s.need == 0 }

// PayloadLeft reports how many payload bytes of the current frame are still to come: 0
// between frames. (Between calls to Scan, no frame's header is half read.)
func (s *Scanner) PayloadLeft() int64 { return s.need }

// Closed reports whether a close frame went by.
func (s *Scanner) Closed() bool { return s.closed }

// Truncate ends the stream where the frame being followed began: nothing more of it is
// relayed, and the scanner is between frames, so that a close frame may follow the last
// valid one.
func (s *Scanner) Truncate() { s.hdrN, s.need = 0, 0 }

// Scan follows b, the next bytes of the stream, and returns how many of them may be
// relayed. That is all of b, but for the beginning of a frame that is too short to check
// at its end (part of a header, or a close frame's header without its whole status code),
// which Scan leaves as if it had not seen it: the caller passes those bytes again, with
// the ones that follow. So a frame is relayed only once it is known to be valid.
//
// At the first frame that breaks the rules, Scan returns an error wrapping ErrTooLarge or
// ErrProtocol, and how many bytes of b came before that frame: those can still be relayed,
// and the stream stays whole.
func (s *Scanner) Scan(b []byte) (int, error) {
	start, mark := 0, *s // where in b the frame being followed began, and the scanner then
	for i := 0; i < len(b); {
		if s.need > 0 {
			if s.opcode == opClose && s.codeN < 2 {
				// A close frame's status code is checked: it reaches the other side.
				s.code[s.codeN] = b[i] ^ s.key[s.codeN]
				s.codeN++
				s.need--
				i++
				if s.codeN == 2 {
					if code := int(binary.BigEndian.Uint16(s.code[:])); !validCloseCode(code) {
						return start, fmt.Errorf("%w: close code %d may not be sent", ErrProtocol, code)
					}
				}
				continue
			}
			n := min(int64(len(b)-i), s.need)
			s.need -= n
			i += int(n)
			continue
		}
		if s.hdrN == 0 {
			start, mark = i, *s
		}
		if s.hdrN < 2 {
			s.hdr[s.hdrN] = b[i]
			s.hdrN++
			i++
			continue
		}
		want := headerLen(s.hdr[1])
		n := copy(s.hdr[s.hdrN:want], b[i:])
		s.hdrN += n
		i += n
		if s.hdrN < want {
			break
		}
		if err := s.header(); err != nil {
			return start, err
		}
	}
	// A header of a frame without payload is complete as soon as it is collected.
	if s.hdrN >= 2 && s.hdrN == headerLen(s.hdr[1]) {
		if err := s.header(); err != nil {
			return start, err
		}
	}
	if s.hdrN > 0 || (s.opcode == opClose && s.need > 0 && s.codeN < 2) {
		*s = mark // the frame is not all here to check: it is left for the next call
		return start, nil
	}
	return len(b), nil
}

// header checks a complete header and starts its payload.
func (s *Scanner) header() error {
	b0, b1 := s.hdr[0], s.hdr[1]
	fin, op := b0&0x80 != 0, b0&0x0F
	var n int64
	switch l := b1 & 0x7F; l {
	case 126:
		n = int64(binary.BigEndian.Uint16(s.hdr[2:4]))
	case 127:
		u := binary.BigEndian.Uint64(s.hdr[2:10])
		if u > 1<<62 {
			return fmt.Errorf("%w: frame length %d", ErrProtocol, u)
		}
		n = int64(u)
	default:
		n = int64(l)
	}
	switch {
	case b0&0x70 != 0:
		return fmt.Errorf("%w: reserved bits set (no extension was negotiated)", ErrProtocol)
	case (b1&0x80 != 0) != s.masked:
		if s.masked {
			return fmt.Errorf("%w: a client frame must be masked", ErrProtocol)
		}
		return fmt.Errorf("%w: a server frame must not be masked", ErrProtocol)
	}
	switch op {
	case opClose, opPing, opPong:
		if !fin || n > 125 {
			return fmt.Errorf("%w: a control frame must be whole and at most 125 bytes", ErrProtocol)
		}
		if op == opClose {
			if n == 1 {
				return fmt.Errorf("%w: a close frame of one byte", ErrProtocol)
			}
			s.closed, s.codeN, s.key = true, 0, [4]byte{}
			if b1&0x80 != 0 {
				copy(s.key[:], s.hdr[headerLen(b1)-4:])
			}
		}
	case opText, opBinary, opContinuation:
		if (op == opContinuation) != s.inMsg {
			return fmt.Errorf("%w: a continuation frame must follow a fragment, and only it", ErrProtocol)
		}
		if op != opContinuation {
			s.msg = 0
		}
		s.msg += n
		if s.msg > s.max {
			return fmt.Errorf("%w: %d bytes so far, the limit is %d", ErrTooLarge, s.msg, s.max)
		}
		s.inMsg = !fin
	default:
		return fmt.Errorf("%w: reserved opcode %#x", ErrProtocol, op)
	}
	s.opcode, s.need, s.hdrN = op, n, 0
	return nil
}

// validCloseCode reports whether code may be sent in a close frame: the reserved 1004, 1005,
// 1006 and 1015, and codes below 1000 or in the unassigned ranges, may not (browsers fail the
// connection on them), nor may 1014 (bad gateway), which some client libraries refuse. These
// are the codes the goroutine pipe's WebSocket library accepts.
func validCloseCode(code int) bool {
	switch {
	case code >= 3000 && code <= 4999:
		return true
	case code >= 1000 && code <= 1013:
		return code != 1004 && code != 1005 && code != 1006
	}
	return false
}

// controlFrame encodes a control frame with payload p (at most 125 bytes), masked when it
// goes to a server.
func controlFrame(op byte, p []byte, masked bool) []byte {
	b := make([]byte, 0, 6+len(p))
	b = append(b, 0x80|op)
	if !masked {
		return append(append(b, byte(len(p))), p...)
	}
	var key [4]byte
	rand.Read(key[:])
	b = append(b, 0x80|byte(len(p)))
	b = append(b, key[:]...)
	for i, c := range p {
		b = append(b, c^key[i%4])
	}
	return b
}

// KeepaliveFrame encodes a ping with KeepalivePayload, masked when it goes to a server.
func KeepaliveFrame(masked bool) []byte {
	return controlFrame(opPing, []byte(KeepalivePayload), masked)
}

// CloseFrame encodes a close frame with code and reason (cut to fit in 125 bytes), masked
// when it goes to a server.
func CloseFrame(code int, reason string, masked bool) []byte {
	p := binary.BigEndian.AppendUint16(nil, uint16(code))
	p = append(p, reason[:min(len(reason), 123)]...)
	return controlFrame(opClose, p, masked)
}

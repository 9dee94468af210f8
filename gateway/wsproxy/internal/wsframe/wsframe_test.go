package wsframe

import (
	"bytes"
	"encoding/binary"
	"errors"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// frame encodes a frame as a peer would.
func frame(fin bool, op byte, payload []byte, masked bool) []byte {
	b0 := op
	if fin {
		b0 |= 0x80
	}
	var b []byte
	var m byte
	if masked {
		m = 0x80
	}
	switch n := len(payload); {
	case n < 126:
		b = append(b, b0, m|byte(n))
	case n < 1<<16:
		b = append(b, b0, m|126)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, b0, m|127)
		b = binary.BigEndian.AppendUint64(b, uint64(n))
	}
	if masked {
		key := []byte{1, 2, 3, 4}
		b = append(b, key...)
		for i, c := range payload {
			b = append(b, c^key[i%4])
		}
		return b
	}
	return append(b, payload...)
}

func TestFrameScannerFollowsBoundaries(t *testing.T) {
	var stream []byte
	stream = append(stream, frame(true, opText, []byte("hello"), true)...)
	stream = append(stream, frame(false, opBinary, bytes.Repeat([]byte{7}, 300), true)...)
	stream = append(stream, frame(true, opPing, []byte("p"), true)...) // between fragments
	stream = append(stream, frame(true, opContinuation, bytes.Repeat([]byte{8}, 70000), true)...)
	stream = append(stream, frame(true, opPong, nil, true)...)
	stream = append(stream, frame(true, opClose, []byte{3, 232}, true)...)
	// However the stream is cut into reads, the scanner ends between frames, having seen
	// the close, and is between frames exactly at the frames' ends.
	for _, step := range []int{1, 2, 3, 7, 100, 4096, len(stream)} {
		s := Scanner{max: 1 << 20, masked: true}
		n, err := scanPieces(&s, stream, step)
		require.NoError(t, err, "step %d", step)
		assert.Equal(t, len(stream), n, "step %d", step)
		assert.True(t, s.AtBoundary(), "step %d", step)
		assert.True(t, s.closed, "step %d", step)
	}
	s := Scanner{max: 1 << 20, masked: true}
	n, err := s.Scan(stream[:3])
	require.NoError(t, err)
	assert.Zero(t, n, "a header cut short is left for the next call")
	assert.True(t, s.AtBoundary())
	n, err = s.Scan(stream[:9])
	require.NoError(t, err)
	assert.Equal(t, 9, n)
	assert.False(t, s.AtBoundary(), "in the middle of a payload")
	assert.Equal(t, int64(2), s.PayloadLeft())
	n, err = s.Scan(stream[9:17])
	require.NoError(t, err)
	assert.Equal(t, 2, n, "the next frame's header is not all there")
	assert.True(t, s.AtBoundary())
	assert.Zero(t, s.PayloadLeft())
	_, err = s.Scan(stream[11:30])
	require.NoError(t, err)
	assert.Equal(t, int64(300-(30-19)), s.PayloadLeft(), "in the middle of a payload")
	// A close frame waits for its code too.
	s = Scanner{max: 10}
	closeFrame := frame(true, opClose, []byte{0x03, 0xE8, 'o', 'k'}, false)
	n, err = s.Scan(closeFrame[:3])
	require.NoError(t, err)
	assert.Zero(t, n)
	assert.False(t, s.Closed())
	n, err = s.Scan(closeFrame)
	require.NoError(t, err)
	assert.Equal(t, len(closeFrame), n)
	assert.True(t, s.Closed())
}

// scanPieces scans stream in pieces of step bytes as a caller does, passing what Scan left
// again with the next piece. It returns how many bytes may be relayed.
func scanPieces(s *Scanner, stream []byte, step int) (int, error) {
	relayed := 0
	for end := 0; end < len(stream); {
		end = min(end+step, len(stream))
		n, err := s.Scan(stream[relayed:end])
		relayed += n
		if err != nil {
			return relayed, err
		}
	}
	return relayed, nil
}

func TestFrameScannerRefuses(t *testing.T) {
	tests := []struct {
		name   string
		masked bool
		stream []byte
		want   error
		at     int // where in stream the bad frame starts
	}{
		{"message over the limit", true, frame(true, opText, make([]byte, 101), true), ErrTooLarge, 0},
		{"fragments over the limit", true, append(frame(false, opText, make([]byte, 60), true), frame(true, opContinuation, make([]byte, 60), true)...), ErrTooLarge, 66},
		{"unmasked client frame", true, frame(true, opText, []byte("x"), false), ErrProtocol, 0},
		{"masked server frame", false, frame(true, opText, []byte("x"), true), ErrProtocol, 0},
		{"long control frame", true, frame(true, opPing, make([]byte, 126), true), ErrProtocol, 0},
		{"fragmented control frame", true, frame(false, opPing, nil, true), ErrProtocol, 0},
		{"continuation without a start", true, frame(true, opContinuation, nil, true), ErrProtocol, 0},
		{"data frame inside a fragmented message", true, append(frame(false, opText, nil, true), frame(true, opText, nil, true)...), ErrProtocol, 6},
		{"reserved opcode", true, frame(true, 0x3, nil, true), ErrProtocol, 0},
		{"reserved bits", true, append([]byte{0xC1, 0x80}, 1, 2, 3, 4), ErrProtocol, 0},
		{"reserved close code 1006", false, frame(true, opClose, []byte{0x03, 0xEE}, false), ErrProtocol, 0},
		{"reserved close code 1005, masked", true, frame(true, opClose, []byte{0x03, 0xED, 'x'}, true), ErrProtocol, 0},
		{"close code 999", false, frame(true, opClose, []byte{0x03, 0xE7}, false), ErrProtocol, 0},
		{"close code 1014", false, frame(true, opClose, []byte{0x03, 0xF6}, false), ErrProtocol, 0},
		{"close frame of one byte", false, frame(true, opClose, []byte{0x03}, false), ErrProtocol, 0},
	}

	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Scanner{max: 100, masked: tt.masked}
			// A good frame first: the scanner says where the bad one starts.
			good := frame(true, opText, []byte("fine"), tt.masked)
			valid, err := s.Scan(append(append([]byte(nil), good...), tt.stream...))
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.want), "%v", err)
			assert.Equal(t, len(good)+tt.at, valid, "where the bad frame starts")
		})
	}
}

func TestControlFrames(t *testing.T) {
	for _, masked := range []bool{false, true} {
		s := Scanner{max: 10, masked: masked}
		_, err := s.Scan(CloseFrame(1001, "going away", masked))
		require.NoError(t, err)
		assert.True(t, s.closed)
		assert.True(t, s.AtBoundary())
		_, err = s.Scan(controlFrame(opPing, []byte("keepalive"), masked))
		require.NoError(t, err)
		assert.True(t, s.AtBoundary())
	}
	assert.Equal(t, []byte{0x88, 4, 0x03, 0xE9, 'b', 'y'}, CloseFrame(1001, "by", false))
	for _, code := range []int{1000, 1001, 1011, 1013, 3000, 4999} {
		s := Scanner{max: 10, masked: true}
		_, err := s.Scan(CloseFrame(code, "", true))
		require.NoError(t, err, "close code %d", code)
	}
	s := Scanner{max: 10}
	_, err := s.Scan(frame(true, opClose, nil, false))
	require.NoError(t, err, "a close frame without a code")
}

// FuzzFrameScanner checks that where reads cut a stream does not matter: scanning it whole
// and scanning it in two pieces (what Scan leaves of the first passed again with the
// second) agree on whether it is valid, on where a bad frame starts, on how much may be
// relayed and on where the scanner stands; and that a bad frame is never relayed.
func FuzzFrameScanner(f *testing.F) {
	f.Add(append(frame(true, opText, []byte("hello"), true), frame(true, opClose, nil, true)...), 3, true)
	f.Add(frame(false, opBinary, make([]byte, 200), false), 100, false)
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 1, 0}, 5, true)
	f.Add(append(frame(true, opBinary, make([]byte, 70), false), 0x89, 126, 0, 126), 73, false)
	f.Add(frame(true, opClose, []byte{0x03, 0xEE}, false), 3, false)
	f.Fuzz(func(t *testing.T, stream []byte, cut int, masked bool) {
		if cut < 0 || cut > len(stream) {
			return
		}
		whole := Scanner{max: 1000, masked: masked}
		validWhole, errWhole := whole.Scan(stream)
		split := Scanner{max: 1000, masked: masked}
		valid, errSplit := split.Scan(stream[:cut])
		if errSplit == nil {
			var more int
			more, errSplit = split.Scan(stream[valid:])
			valid += more
		}
		if (errWhole == nil) != (errSplit == nil) || valid != validWhole {
			t.Fatalf("whole: %d valid, %v; cut at %d: %d valid, %v", validWhole, errWhole, cut, valid, errSplit)
		}
		if errWhole == nil && whole != split {
			t.Fatalf("whole and cut at %d disagree: %+v against %+v", cut, whole, split)
		}
		if errWhole != nil {
			// What may be relayed is valid on its own.
			again := Scanner{max: 1000, masked: masked}
			if n, err := again.Scan(stream[:validWhole]); err != nil || n != validWhole {
				t.Fatalf("the %d bytes before the bad frame: %d valid, %v", validWhole, n, err)
			}
		}
	})
}

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
		for off := 0; off < len(stream); off += step {
			_, err := s.Scan(stream[off:min(off+step, len(stream))])
			require.NoError(t, err, "step %d", step)
		}
		assert.True(t, s.AtBoundary(), "step %d", step)
		assert.True(t, s.closed, "step %d", step)
	}
	s := Scanner{max: 1 << 20, masked: true}
	_, err := s.Scan(stream[:3])
	require.NoError(t, err)
	assert.False(t, s.AtBoundary(), "in the middle of a header")
	_, err = s.Scan(stream[3:9])
	require.NoError(t, err)
	assert.False(t, s.AtBoundary(), "in the middle of a payload")
	_, err = s.Scan(stream[9:11])
	require.NoError(t, err)
	assert.True(t, s.AtBoundary())
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
	for _, code := range []int{1000, 1001, 1011, 1014, 3000, 4999} {
		s := Scanner{max: 10, masked: true}
		_, err := s.Scan(CloseFrame(code, "", true))
		require.NoError(t, err, "close code %d", code)
	}
	s := Scanner{max: 10}
	_, err := s.Scan(frame(true, opClose, nil, false))
	require.NoError(t, err, "a close frame without a code")
}

// FuzzFrameScanner checks that where reads cut a stream does not matter: scanning it whole
// and scanning it in two pieces agree on whether it is valid and on where it stands.
func FuzzFrameScanner(f *testing.F) {
	f.Add(append(frame(true, opText, []byte("hello"), true), frame(true, opClose, nil, true)...), 3, true)
	f.Add(frame(false, opBinary, make([]byte, 200), false), 100, false)
	f.Add([]byte{0x81, 0xFF, 0, 0, 0, 0, 0, 0, 1, 0}, 5, true)
	f.Fuzz(func(t *testing.T, stream []byte, cut int, masked bool) {
		if cut < 0 || cut > len(stream) {
			return
		}
		whole := Scanner{max: 1000, masked: masked}
		validWhole, errWhole := whole.Scan(stream)
		split := Scanner{max: 1000, masked: masked}
		valid, errSplit := split.Scan(stream[:cut])
		if errSplit == nil {
			var v2 int
			v2, errSplit = split.Scan(stream[cut:])
			if v2 >= 0 {
				valid = cut + v2
			} else {
				valid = -1
			}
		}
		if errWhole != nil && errSplit != nil && valid >= 0 && valid != validWhole {
			t.Fatalf("the bad frame starts at %d whole, at %d when cut at %d", validWhole, valid, cut)
		}
		if errWhole == nil && validWhole != len(stream) {
			t.Fatalf("a valid stream of %d bytes reported %d valid", len(stream), validWhole)
		}
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole: %v, cut at %d: %v", errWhole, cut, errSplit)
		}
		if errWhole == nil && (whole.AtBoundary() != split.AtBoundary() || whole.closed != split.closed || whole.need != split.need) {
			t.Fatalf("whole and cut at %d disagree: %+v against %+v", cut, whole, split)
		}
	})
}

package gateway

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
		s := frameScanner{max: 1 << 20, masked: true}
		for off := 0; off < len(stream); off += step {
			require.NoError(t, s.scan(stream[off:min(off+step, len(stream))]), "step %d", step)
		}
		assert.True(t, s.atBoundary(), "step %d", step)
		assert.True(t, s.closed, "step %d", step)
	}
	s := frameScanner{max: 1 << 20, masked: true}
	require.NoError(t, s.scan(stream[:3]))
	assert.False(t, s.atBoundary(), "in the middle of a header")
	require.NoError(t, s.scan(stream[3:9]))
	assert.False(t, s.atBoundary(), "in the middle of a payload")
	require.NoError(t, s.scan(stream[9:11]))
	assert.True(t, s.atBoundary())
}

func TestFrameScannerRefuses(t *testing.T) {
	tests := []struct {
		name   string
		masked bool
		stream []byte
		want   error
	}{
		{"message over the limit", true, frame(true, opText, make([]byte, 101), true), errFrameTooLarge},
		{"fragments over the limit", true, append(frame(false, opText, make([]byte, 60), true), frame(true, opContinuation, make([]byte, 60), true)...), errFrameTooLarge},
		{"unmasked client frame", true, frame(true, opText, []byte("x"), false), errFrameProtocol},
		{"masked server frame", false, frame(true, opText, []byte("x"), true), errFrameProtocol},
		{"long control frame", true, frame(true, opPing, make([]byte, 126), true), errFrameProtocol},
		{"fragmented control frame", true, frame(false, opPing, nil, true), errFrameProtocol},
		{"continuation without a start", true, frame(true, opContinuation, nil, true), errFrameProtocol},
		{"data frame inside a fragmented message", true, append(frame(false, opText, nil, true), frame(true, opText, nil, true)...), errFrameProtocol},
		{"reserved opcode", true, frame(true, 0x3, nil, true), errFrameProtocol},
		{"reserved bits", true, append([]byte{0xC1, 0x80}, 1, 2, 3, 4), errFrameProtocol},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := frameScanner{max: 100, masked: tt.masked}
			err := s.scan(tt.stream)
			require.Error(t, err)
			assert.True(t, errors.Is(err, tt.want), "%v", err)
		})
	}
}

func TestControlFrames(t *testing.T) {
	for _, masked := range []bool{false, true} {
		s := frameScanner{max: 10, masked: masked}
		require.NoError(t, s.scan(closeFrame(1001, "going away", masked)))
		assert.True(t, s.closed)
		assert.True(t, s.atBoundary())
		require.NoError(t, s.scan(controlFrame(opPing, []byte("keepalive"), masked)))
		assert.True(t, s.atBoundary())
	}
	assert.Equal(t, []byte{0x88, 4, 0x03, 0xE9, 'b', 'y'}, closeFrame(1001, "by", false))
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
		whole := frameScanner{max: 1000, masked: masked}
		errWhole := whole.scan(stream)
		split := frameScanner{max: 1000, masked: masked}
		errSplit := split.scan(stream[:cut])
		if errSplit == nil {
			errSplit = split.scan(stream[cut:])
		}
		if (errWhole == nil) != (errSplit == nil) {
			t.Fatalf("whole: %v, cut at %d: %v", errWhole, cut, errSplit)
		}
		if errWhole == nil && (whole.atBoundary() != split.atBoundary() || whole.closed != split.closed || whole.need != split.need) {
			t.Fatalf("whole and cut at %d disagree: %+v against %+v", cut, whole, split)
		}
	})
}

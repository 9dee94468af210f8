package wire

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"testing"
)

// drain feeds data to b in reads of at most the sizes given (cycled; 0 means as much as
// there is room for) and returns every frame b yields, encoded again, and the error that
// ended the stream: b's error, or b.EOF() once data ran out.
func drain(t *testing.T, b *Buffer, data []byte, sizes []int) ([][]byte, error) {
	t.Helper()
	var frames [][]byte
	for i := 0; i < 1<<20; i++ {
		for {
			var f Frame
			ok, err := b.Next(&f)
			if err != nil {
				return frames, err
			}
			if !ok {
				break
			}
			enc, err := Append(nil, &f)
			if err != nil {
				t.Fatal(err)
			}
			frames = append(frames, enc)
		}
		if len(data) == 0 {
			return frames, b.EOF()
		}
		room, err := b.Space()
		if err != nil {
			return frames, err
		}
		if len(room) == 0 {
			t.Fatal("Space returned no room")
		}
		n := min(len(room), len(data))
		if len(sizes) > 0 {
			if s := sizes[i%len(sizes)]; s > 0 {
				n = min(n, s)
			}
		}
		copy(room, data[:n])
		b.Wrote(n)
		data = data[n:]
	}
	t.Fatal("drain did not end")
	return nil, nil
}

// referenceFrames decodes data the plain way, as a whole: each length prefix checked
// against the limits, each body decoded by Decode. It returns the frames, encoded again,
// and the error that ends the stream.
func referenceFrames(data []byte, maxFrame int) ([][]byte, error) {
	if maxFrame == 0 {
		maxFrame = DefaultMaxFrame
	}
	var frames [][]byte
	for {
		switch {
		case len(data) == 0:
			return frames, io.EOF
		case len(data) < 4:
			return frames, io.ErrUnexpectedEOF
		}
		n := binary.BigEndian.Uint32(data)
		switch {
		case uint64(n) > uint64(maxFrame):
			return frames, fmt.Errorf("%w: %d bytes, the limit is %d", ErrFrameTooLarge, n, maxFrame)
		case n < HeaderSize:
			return frames, fmt.Errorf("%w: length %d, the header alone needs %d", ErrMalformed, n, HeaderSize)
		case uint64(len(data)-4) < uint64(n):
			return frames, io.ErrUnexpectedEOF
		}
		var f Frame
		if err := Decode(data[4:4+n], &f); err != nil {
			return frames, err
		}
		enc, err := Append(nil, &f)
		if err != nil {
			return frames, err
		}
		frames = append(frames, enc)
		data = data[4+n:]
	}
}

func TestBufferYieldsFramesWhateverTheReads(t *testing.T) {
	var stream []byte
	for i, size := range []int{0, 10, 100, 16 << 10, 40 << 10, 3 * LargeFrame, 5} {
		f := Frame{Op: OpSet, ID: uint64(i + 1), Path: []byte("auths"), Key: []byte("k"), Value: bytes.Repeat([]byte{byte(i)}, size)}
		var err error
		if stream, err = Append(stream, &f); err != nil {
			t.Fatal(err)
		}
	}
	want, err := referenceFrames(stream, 0)
	if !errors.Is(err, io.EOF) || len(want) != 7 {
		t.Fatalf("the reference decoding: %d frames, %v", len(want), err)
	}
	for _, sizes := range [][]int{nil, {1}, {3, 1000, 7}, {4096}, {50000}} {
		got, err := drain(t, NewBuffer(1024, 0), stream, sizes)
		if !errors.Is(err, io.EOF) {
			t.Fatalf("reads of %v: the stream ended with %v, want io.EOF", sizes, err)
		}
		if len(got) != len(want) {
			t.Fatalf("reads of %v: %d frames, want %d", sizes, len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("reads of %v: frame %d differs", sizes, i)
			}
		}
	}
}

func TestBufferRefusesBadPrefixes(t *testing.T) {
	cases := []struct {
		name string
		data []byte
		want error
	}{
		{"too large", binary.BigEndian.AppendUint32(nil, 4097), ErrFrameTooLarge},
		{"shorter than a header", binary.BigEndian.AppendUint32(nil, HeaderSize-1), ErrMalformed},
		{"an HTTP request", []byte("GET / HTTP/1.1\r\n\r\n"), ErrFrameTooLarge},
	}
	for _, c := range cases {
		b := NewBuffer(64, 4096)
		_, err := drain(t, b, c.data, []int{2})
		if !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
		if http := c.name == "an HTTP request"; b.LooksLikeHTTP() != http {
			t.Errorf("%s: LooksLikeHTTP = %v", c.name, !http)
		}
	}
	seed, _ := Append(nil, &Frame{Op: OpPing, ID: 1})
	if _, err := drain(t, NewBuffer(64, 0), seed[:len(seed)-1], nil); !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Errorf("a torn frame: %v, want io.ErrUnexpectedEOF", err)
	}
}

// A peer that announces a large frame and sends little of it costs the memory of what it
// sent: the room a Buffer offers grows with the bytes, not with the announcement.
func TestBufferGrowsOnlyAsBytesArrive(t *testing.T) {
	b := NewBuffer(1024, 0)
	room, err := b.Space()
	if err != nil {
		t.Fatal(err)
	}
	announced := binary.BigEndian.AppendUint32(nil, DefaultMaxFrame)
	copy(room, announced)
	b.Wrote(len(announced) + 100)
	room, err = b.Space()
	if err != nil {
		t.Fatal(err)
	}
	if len(room) > 8192 {
		t.Fatalf("%d bytes of room after 104 bytes of an announced %d-byte frame", len(room), DefaultMaxFrame)
	}
	b.Wrote(len(room))
	if room, _ = b.Space(); len(room) > 16384 {
		t.Fatalf("the room more than doubled: %d bytes", len(room))
	}
	b.Release()
}

// A Buffer with a Budget takes a share for a large frame before its body comes in and
// holds it until the frame is consumed; one whose share is not free waits, and gives up
// when its context ends.
func TestBufferBudget(t *testing.T) {
	big, err := Append(nil, &Frame{Op: OpPublish, ID: 1, Value: make([]byte, 2*LargeFrame)})
	if err != nil {
		t.Fatal(err)
	}
	small, _ := Append(nil, &Frame{Op: OpPing, ID: 2})
	n := int64(len(big) - 4)
	budget := NewBudget(n)
	b := NewBuffer(4096, 0)
	b.SetBudget(context.Background(), budget)
	feed := func(data []byte) {
		for len(data) > 0 {
			room, err := b.Space()
			if err != nil {
				t.Fatal(err)
			}
			m := copy(room, data)
			b.Wrote(m)
			data = data[m:]
		}
	}
	feed(big[:100])
	if _, err := b.Space(); err != nil || budget.Held() != n {
		t.Fatalf("held %d (%v) when asked for room for the rest of a large frame, want %d", budget.Held(), err, n)
	}
	b.Wrote(0)
	feed(big[100:])
	var f Frame
	if ok, err := b.Next(&f); !ok || err != nil || f.ID != 1 || len(f.Value) != 2*LargeFrame {
		t.Fatalf("big frame: %v %v", ok, err)
	}
	if budget.Held() != n {
		t.Fatalf("the share went back before the frame was consumed")
	}

	ctx, cancel := context.WithCancel(context.Background())
	other := NewBuffer(4096, 0)
	other.SetBudget(ctx, budget)
	room, _ := other.Space()
	other.Wrote(copy(room, big[:64]))
	cancel()
	if _, err := other.Space(); !errors.Is(err, context.Canceled) {
		t.Fatalf("a buffer without a share: %v, want to wait until its context ended", err)
	}

	room, err = b.Space()
	if err != nil {
		t.Fatal(err)
	}
	if budget.Held() != 0 {
		t.Fatalf("held %d once the large frame was consumed, want 0", budget.Held())
	}
	b.Wrote(copy(room, small))
	if ok, err := b.Next(&f); !ok || err != nil || f.ID != 2 {
		t.Fatalf("small frame: %v %v", ok, err)
	}
	feed(big[:1000])
	b.Release()
	if budget.Held() != 0 || budget.Waiting() != 0 {
		t.Fatalf("held %d waiting %d after Release of a frame half read", budget.Held(), budget.Waiting())
	}
}

// FuzzBuffer checks that a Buffer yields exactly what decoding the whole stream at once
// gives (the same frames and the same error), whatever the reads' sizes and the frames'
// boundaries.
func FuzzBuffer(f *testing.F) {
	seed, _ := Append(nil, &Frame{Op: OpSet, ID: 9, Path: []byte("auths"), Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 100)})
	reply, _ := Append(nil, &Frame{Op: OpReply, Status: StatusError, ID: 9, Value: []byte("boom")})
	f.Add(append(append(seed, reply...), seed...), uint8(16), uint8(3))
	f.Add(seed[:50], uint8(0), uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, size, read uint8) {
		want, wantErr := referenceFrames(data, 4096)
		got, err := drain(t, NewBuffer(64+int(size), 4096), data, []int{int(read)})
		if err == nil || err.Error() != wantErr.Error() {
			t.Fatalf("the stream ended with %v, its decoding as a whole with %v", err, wantErr)
		}
		if len(got) != len(want) {
			t.Fatalf("%d frames, its decoding as a whole %d", len(got), len(want))
		}
		for i := range want {
			if !bytes.Equal(got[i], want[i]) {
				t.Fatalf("frame %d differs", i)
			}
		}
	})
}

package wire

import (
	"bufio"
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"io"
	"runtime"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRoundTrip(t *testing.T) {
	frames := []Frame{
		{Op: OpHello, ID: 1, Key: []byte("front-1"), Value: []byte{1, 's', 'e', 'c'}},
		{Op: OpSet, ID: 2, Path: []byte("auths"), Key: []byte("k"), Value: []byte("v"), Expiry: 1234567890123, Rev: 1<<63 | 7},
		{Op: OpGet, ID: 3, Path: []byte("auths"), Key: []byte("k")},
		{Op: OpReply, Status: StatusValue, ID: 3, Value: bytes.Repeat([]byte("x"), 5000), Expiry: -1},
		{Op: OpReply, Status: StatusNotFound, ID: 4},
		{Op: OpReply, Status: StatusError, ID: 5, Value: []byte("no such path")},
		{Op: OpMessage, Flags: FlagDeleted, ID: 12, Rev: 99, Path: []byte("auths"), Key: []byte("gone")},
		{Op: OpReply, Status: StatusNotFound, ID: 6, Rev: 42, Expiry: 77},
		{Op: OpEvict, ID: 1 << 60, Key: []byte("old"), Value: []byte("session")},
	}
	var stream []byte
	for i := range frames {
		var err error
		stream, err = Append(stream, &frames[i])
		require.NoError(t, err)
	}
	r := NewReader(bufio.NewReader(bytes.NewReader(stream)), 0)
	for i := range frames {
		var f Frame
		require.NoError(t, r.Read(&f))
		assertFrameEqual(t, &frames[i], &f)
	}
	var f Frame
	require.ErrorIs(t, r.Read(&f), io.EOF)
}

func assertFrameEqual(t testing.TB, want, got *Frame) {
	t.Helper()
	assert.Equal(t, want.Op, got.Op)
	assert.Equal(t, want.Status, got.Status)
	assert.Equal(t, want.Flags, got.Flags)
	assert.Equal(t, want.ID, got.ID)
	assert.Equal(t, want.Expiry, got.Expiry)
	assert.Equal(t, want.Rev, got.Rev)
	assert.Equal(t, string(want.Path), string(got.Path))
	assert.Equal(t, string(want.Key), string(got.Key))
	assert.Equal(t, string(want.Value), string(got.Value))
}

func TestBadFrames(t *testing.T) {
	good, err := Append(nil, &Frame{Op: OpGet, ID: 7, Path: []byte("p"), Key: []byte("k")})
	require.NoError(t, err)
	mutate := func(off int, b ...byte) []byte {
		c := append([]byte(nil), good...)
		copy(c[off:], b)
		return c
	}
	tests := []struct {
		name  string
		bytes []byte
		want  error
		msg   string
	}{
		{"too large", binary.BigEndian.AppendUint32(nil, 2<<20), ErrFrameTooLarge, "limit"},
		{"shorter than a header", append(binary.BigEndian.AppendUint32(nil, 5), 1, 2, 3, 4, 5), ErrMalformed, "header"},
		{"other version", mutate(4, 9), ErrMalformed, "version 9"},
		{"unknown op", mutate(5, 99), ErrMalformed, "unknown op 99"},
		{"status on a request", mutate(6, 1), ErrMalformed, "status 1 on a get"},
		{"unknown status", mutate(5, byte(OpReply), 9), ErrMalformed, "status 9"},
		{"lengths disagree", mutate(36, 0, 0, 0, 9), ErrMalformed, "fields"},
		{"truncated body", good[:len(good)-1], io.ErrUnexpectedEOF, ""},
		{"truncated prefix", good[:2], io.ErrUnexpectedEOF, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var f Frame
			err := NewReader(bytes.NewReader(tt.bytes), 1<<20).Read(&f)
			require.ErrorIs(t, err, tt.want)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	t.Run("oversize field", func(t *testing.T) {
		_, err := Append(nil, &Frame{Op: OpSet, Key: make([]byte, 70000)})
		require.True(t, errors.Is(err, ErrFrameTooLarge))
	})
}

func TestReadAllocatesNothing(t *testing.T) {
	b, err := Append(nil, &Frame{Op: OpSet, ID: 1, Path: []byte("auths"), Key: make([]byte, 32), Value: make([]byte, 384)})
	require.NoError(t, err)
	src := bytes.NewReader(b)
	r := NewReader(src, 0)
	var f Frame
	var out []byte
	allocs := testing.AllocsPerRun(100, func() {
		src.Reset(b)
		if err := r.Read(&f); err != nil {
			t.Fatal(err)
		}
		out, _ = Append(out[:0], &f)
	})
	assert.Zero(t, allocs)
}

// FuzzDecode feeds arbitrary bytes to the reader: it must never panic or allocate beyond
// its limit, and whatever it accepts must encode back to the same bytes.
func FuzzDecode(f *testing.F) {
	seed, _ := Append(nil, &Frame{Op: OpSet, ID: 9, Path: []byte("auths"), Key: []byte("k"), Value: []byte("v"), Expiry: 5})
	f.Add(seed)
	reply, _ := Append(nil, &Frame{Op: OpReply, Status: StatusError, ID: 9, Value: []byte("boom")})
	f.Add(append(seed, reply...))
	f.Add([]byte{0, 0, 0, 36, 2, 8, 0, 0})
	f.Fuzz(func(t *testing.T, data []byte) {
		r := NewReader(bytes.NewReader(data), 4096)
		consumed := 0
		for i := 0; i < 1000; i++ {
			var fr Frame
			if err := r.Read(&fr); err != nil {
				return
			}
			if n := len(r.buf.buf); n > 4+4096 {
				t.Fatalf("buffer grew to %d past the 4096-byte limit and its prefix", n)
			}
			re, err := Append(nil, &fr)
			if err != nil {
				t.Fatalf("re-encode: %v", err)
			}
			if !bytes.Equal(re, data[consumed:consumed+len(re)]) {
				t.Fatalf("decode(encode(x)) != x at offset %d", consumed)
			}
			consumed += len(re)
		}
	})
}

// FuzzRoundTrip builds frames from arbitrary fields and checks decode(encode(x)) == x.
func FuzzRoundTrip(f *testing.F) {
	f.Add(uint8(2), uint8(0), uint8(0), uint64(1), int64(0), uint64(3), []byte("auths"), []byte("k"), []byte("v"))
	f.Add(uint8(9), uint8(3), uint8(1), uint64(1<<63), int64(-5), uint64(0), []byte{}, []byte{}, []byte("error"))
	f.Fuzz(func(t *testing.T, op, status, flags uint8, id uint64, exp int64, rev uint64, path, key, value []byte) {
		fr := Frame{Op: Op(op), Status: Status(status), Flags: flags, ID: id, Expiry: exp, Rev: rev, Path: path, Key: key, Value: value}
		b, err := Append(nil, &fr)
		if err != nil {
			return
		}
		var got Frame
		err = NewReader(bytes.NewReader(b), len(b)).Read(&got)
		valid := fr.Op != 0 && fr.Op <= opMax && fr.Status <= statusMax && (fr.Op == OpReply || fr.Status == 0)
		if !valid {
			if err == nil {
				t.Fatalf("accepted an invalid frame %v", &fr)
			}
			return
		}
		if err != nil {
			t.Fatalf("read back %v: %v", &fr, err)
		}
		assertFrameEqual(t, &fr, &got)
	})
}

func BenchmarkAppendRead(b *testing.B) {
	fr := Frame{Op: OpSet, ID: 1, Path: []byte("auths"), Key: make([]byte, 32), Value: make([]byte, 384)}
	buf, _ := Append(nil, &fr)
	src := bytes.NewReader(buf)
	r := NewReader(src, 0)
	var got Frame
	b.ReportAllocs()
	b.SetBytes(int64(len(buf)))
	for b.Loop() {
		buf, _ = Append(buf[:0], &fr)
		src.Reset(buf)
		if err := r.Read(&got); err != nil {
			b.Fatal(err)
		}
	}
}

// TestAnnouncedLengthIsNotAllocatedAhead: a peer that announces a frame of the largest size
// and sends only a little of it makes the reader allocate about what arrived, not what was
// announced; a whole large frame still reads back.
func TestAnnouncedLengthIsNotAllocatedAhead(t *testing.T) {
	announced := binary.BigEndian.AppendUint32(nil, DefaultMaxFrame)
	partial := append(announced, make([]byte, 100)...)
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	err := NewReader(bytes.NewReader(partial), 0).Read(new(Frame))
	runtime.ReadMemStats(&after)
	if !errors.Is(err, io.ErrUnexpectedEOF) {
		t.Fatalf("a torn frame: %v, want io.ErrUnexpectedEOF", err)
	}
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 64<<10 {
		t.Fatalf("reading 100 bytes of an announced %d-byte frame allocated %d bytes", DefaultMaxFrame, grew)
	}

	big := Frame{Op: OpSet, Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 300<<10)}
	b, err := Append(nil, &big)
	if err != nil {
		t.Fatal(err)
	}
	var got Frame
	if err := NewReader(bytes.NewReader(b), 0).Read(&got); err != nil {
		t.Fatal(err)
	}
	assertFrameEqual(t, &big, &got)
}

// A Reader with a Budget holds a share for a large frame until its next Read; a reader
// whose share is not free waits, and gives up when its context ends.
func TestReaderBudget(t *testing.T) {
	big, err := Append(nil, &Frame{Op: OpPublish, ID: 1, Value: make([]byte, 2*LargeFrame)})
	if err != nil {
		t.Fatal(err)
	}
	small, _ := Append(nil, &Frame{Op: OpPing, ID: 2})
	n := int64(len(big) - 4)
	b := NewBudget(n)
	rd := NewReader(bytes.NewReader(append(append(append([]byte{}, big...), small...), big...)), 0)
	rd.SetBudget(context.Background(), b)
	var f Frame
	if err := rd.Read(&f); err != nil || f.ID != 1 {
		t.Fatalf("big frame: %v %d", err, f.ID)
	}
	if b.Held() != n {
		t.Fatalf("held %d, want %d", b.Held(), n)
	}
	ctx, cancel := context.WithCancel(context.Background())
	other := NewReader(bytes.NewReader(big), 0)
	other.SetBudget(ctx, b)
	cancel()
	if err := other.Read(&f); !errors.Is(err, context.Canceled) {
		t.Fatalf("a reader without a share: %v, want to wait until its context ended", err)
	}
	if err := rd.Read(&f); err != nil || f.ID != 2 || b.Held() != 0 {
		t.Fatalf("small frame: %v id %d held %d, want the share back", err, f.ID, b.Held())
	}
	if err := rd.Read(&f); err != nil || f.ID != 1 || len(f.Value) != 2*LargeFrame {
		t.Fatalf("big frame again: %v", err)
	}
	rd.Release()
	if b.Held() != 0 || b.Waiting() != 0 {
		t.Fatalf("held %d waiting %d after Release", b.Held(), b.Waiting())
	}
	tooBig := NewBudget(LargeFrame * 2)
	rd = NewReader(bytes.NewReader(big), 0)
	rd.SetBudget(context.Background(), tooBig)
	if err := rd.Read(&f); !errors.Is(err, ErrFrameTooLarge) {
		t.Fatalf("a frame larger than the budget: %v", err)
	}
}

// FuzzRequestKey checks that RequestKey never reads past a body, whatever it holds, and that
// on a frame Decode accepts it returns the key Decode finds, for exactly the request ops.
func FuzzRequestKey(f *testing.F) {
	for _, fr := range []Frame{
		{Op: OpSet, Path: []byte("auths"), Key: []byte("k"), Value: []byte("v")},
		{Op: OpGet, Key: []byte("some key")},
		{Op: OpEvict, Flags: FlagBatch, Key: []byte("k"), Value: []byte("batch")},
		{Op: OpReply, Value: []byte("v")},
	} {
		b, _ := Append(nil, &fr)
		f.Add(b[4:])
	}
	f.Add(make([]byte, HeaderSize))
	f.Fuzz(func(t *testing.T, body []byte) {
		key, ok := RequestKey(body)
		var fr Frame
		if Decode(body, &fr) != nil {
			return // RequestKey may still answer for a body Decode refuses; it must not panic
		}
		want := fr.Op == OpGet || fr.Op == OpSet || fr.Op == OpDelete || (fr.Op == OpEvict && fr.Flags&FlagBatch == 0)
		if ok != want {
			t.Fatalf("RequestKey of a %s frame with flags %#x: ok = %v", fr.Op, fr.Flags, ok)
		}
		if ok && !bytes.Equal(key, fr.Key) {
			t.Fatalf("RequestKey = %q, Decode's key = %q", key, fr.Key)
		}
	})
}

// FuzzBufferedRead checks that a Reader over a bufio.Reader reads exactly what a Reader
// over the plain stream reads: the same frames and the same error, whatever the buffer's
// size and the frames' boundaries.
func FuzzBufferedRead(f *testing.F) {
	seed, _ := Append(nil, &Frame{Op: OpSet, ID: 9, Path: []byte("auths"), Key: []byte("k"), Value: bytes.Repeat([]byte("v"), 100)})
	reply, _ := Append(nil, &Frame{Op: OpReply, Status: StatusError, ID: 9, Value: []byte("boom")})
	f.Add(append(append(seed, reply...), seed...), uint8(16))
	f.Add(seed[:50], uint8(0))
	f.Fuzz(func(t *testing.T, data []byte, size uint8) {
		plain := NewReader(bytes.NewReader(data), 4096)
		buffered := NewReader(bufio.NewReaderSize(bytes.NewReader(data), 16+int(size)), 4096)
		for i := 0; i < 1000; i++ {
			var a, b Frame
			errA, errB := plain.Read(&a), buffered.Read(&b)
			if (errA == nil) != (errB == nil) || errA != nil && errA.Error() != errB.Error() {
				t.Fatalf("frame %d: plain reader: %v, buffered: %v", i, errA, errB)
			}
			if errA != nil {
				return
			}
			ea, _ := Append(nil, &a)
			eb, _ := Append(nil, &b)
			if !bytes.Equal(ea, eb) {
				t.Fatalf("frame %d differs: %v against %v", i, &a, &b)
			}
		}
	})
}

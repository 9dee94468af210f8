package wire

import (
	"bytes"
	"errors"
	"testing"
)

func TestBatchRoundTrip(t *testing.T) {
	in := []Frame{
		{Op: OpEvict, Expiry: 5, Rev: 7, Path: []byte("auths"), Key: []byte("a"), Value: []byte("one")},
		{Op: OpDelete, Expiry: 6, Rev: 9, Path: []byte("auths"), Key: []byte("b")},
		{Op: OpEvict, Flags: FlagDeleted, Rev: 11, Path: []byte("auths"), Key: []byte("c")},
	}
	var v []byte
	for i := range in {
		var err error
		if v, err = AppendBatch(v, &in[i]); err != nil {
			t.Fatal(err)
		}
	}
	var got []Frame
	if err := ParseBatch(v, func(f *Frame) error {
		got = append(got, Frame{Op: f.Op, Flags: f.Flags, Expiry: f.Expiry, Rev: f.Rev,
			Path: bytes.Clone(f.Path), Key: bytes.Clone(f.Key), Value: bytes.Clone(f.Value)})
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(got) != len(in) {
		t.Fatalf("parsed %d frames, want %d", len(got), len(in))
	}
	for i := range in {
		assertFrameEqual(t, &in[i], &got[i])
	}
	if err := ParseBatch(nil, func(*Frame) error { t.Fatal("a frame in an empty batch"); return nil }); err != nil {
		t.Fatalf("empty batch: %v", err)
	}
}

func TestBadBatches(t *testing.T) {
	if _, err := AppendBatch(nil, &Frame{Op: OpSet, Key: []byte("k")}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a set appended to a batch: %v", err)
	}
	if _, err := AppendBatch(nil, &Frame{Op: OpEvict, Flags: FlagBatch}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("a batch appended to a batch: %v", err)
	}
	good, _ := AppendBatch(nil, &Frame{Op: OpEvict, Key: []byte("k"), Value: []byte("v")})
	set, _ := Append(nil, &Frame{Op: OpSet, Key: []byte("k")})
	nested, _ := Append(nil, &Frame{Op: OpEvict, Flags: FlagBatch, Value: good})
	for name, v := range map[string][]byte{
		"torn prefix":   good[:2],
		"torn frame":    good[:len(good)-1],
		"huge length":   {0xff, 0xff, 0xff, 0xff, 1, 2, 3},
		"a set":         set,
		"nested batch":  nested,
		"trailing junk": append(bytes.Clone(good), 0, 0, 0, 1, 9),
	} {
		if err := ParseBatch(v, func(*Frame) error { return nil }); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	stop := errors.New("stop")
	if err := ParseBatch(good, func(*Frame) error { return stop }); err != stop {
		t.Fatalf("fn's error: %v", err)
	}
}

// FuzzParseBatch checks that no input makes ParseBatch panic or hand over anything but
// evictions and deletions, and that what it accepts encodes back to the same bytes.
func FuzzParseBatch(f *testing.F) {
	good, _ := AppendBatch(nil, &Frame{Op: OpEvict, Rev: 3, Key: []byte("k"), Value: []byte("v")})
	good, _ = AppendBatch(good, &Frame{Op: OpDelete, Rev: 4, Key: []byte("k")})
	f.Add(good)
	f.Add([]byte{0, 0, 0, 1})
	f.Fuzz(func(t *testing.T, v []byte) {
		var again []byte
		err := ParseBatch(v, func(fr *Frame) error {
			if fr.Op != OpEvict && fr.Op != OpDelete || fr.Flags&FlagBatch != 0 {
				t.Fatalf("handed over %v", fr)
			}
			var err error
			again, err = AppendBatch(again, fr)
			return err
		})
		if err == nil && !bytes.Equal(again, v) {
			t.Fatalf("accepted %x, which encodes back as %x", v, again)
		}
	})
}

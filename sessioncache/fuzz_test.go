package sessioncache

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"
)

// modelEntry is what the model remembers of a key.
type modelEntry struct {
	value  []byte
	expiry int64 // 0: none
}

// FuzzTableModel runs random operation sequences against a table and a map that models it.
// The eviction callback tells the model which entries the table pushed out, so the two must
// agree exactly: a Get hits exactly when the model holds an unexpired entry, with its value.
func FuzzTableModel(f *testing.F) {
	f.Add([]byte{4, 0, 1, 10, 1, 1, 0, 2, 1, 0, 1, 1, 0})
	f.Add([]byte{2, 0, 1, 5, 0, 2, 5, 0, 3, 5, 1, 1, 0, 1, 2, 0, 3, 0, 9, 1, 1, 0, 4, 0, 0})
	f.Add(bytes.Repeat([]byte{0, 3, 40, 0, 4, 7, 3, 0, 2, 1, 3, 0, 5, 0, 0}, 20))
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) < 2 {
			return
		}
		n++
		capacity := 2 + int(ops[0]%30)
		ops = ops[1:]
		model := map[string]modelEntry{}
		var evictErr error
		clock := &fakeClock{now: 1_000_000_000}
		tb, err := Open(Config{
			Path: filepath.Join(dir, fmt.Sprintf("f%d.table", n)), Create: true, Replace: true,
			ElementCount: capacity, RecordSize: 40, MaxKeySize: 8, Shards: 1 + int(ops[0]%2),
			OnEvict: func(k, v []byte, e time.Time) {
				m, ok := model[string(k)]
				switch {
				case !ok:
					evictErr = fmt.Errorf("evicted %q, which the model does not hold", k)
				case !bytes.Equal(m.value, v):
					evictErr = fmt.Errorf("evicted %q with %q, model has %q", k, v, m.value)
				case m.expiry != 0 && m.expiry <= clock.now:
					evictErr = fmt.Errorf("evicted expired %q to the callback", k)
				}
				delete(model, string(k))
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Remove()
		defer tb.Close()
		clock.install(tb)
		live := func(m modelEntry) bool { return m.expiry == 0 || m.expiry > clock.now }
		for i := 0; i+2 < len(ops) && i < 3*500; i += 3 {
			op, key, arg := ops[i]%7, fmt.Appendf(nil, "k%d", ops[i+1]%24), int(ops[i+2])
			switch op {
			case 0, 1: // Set, with or without expiry
				value := bytes.Repeat([]byte{byte(arg)}, arg%40)
				var exp time.Time
				if op == 1 {
					exp = clock.at(time.Duration(arg%8) * time.Second)
				}
				err := tb.Set(key, value, exp)
				if len(key)+len(value) > 40 {
					if !errors.Is(err, ErrValueTooLarge) {
						t.Fatalf("op %d: oversize Set: %v", i, err)
					}
					continue
				}
				if err != nil {
					t.Fatalf("op %d: Set: %v", i, err)
				}
				if op == 1 && arg%8 == 0 {
					delete(model, string(key))
				} else {
					model[string(key)] = modelEntry{value, exp.UnixNano() * int64(op)}
				}
			case 2, 3: // Get
				v, err := tb.Get(key)
				m, ok := model[string(key)]
				if ok && live(m) {
					if err != nil || !bytes.Equal(v, m.value) {
						t.Fatalf("op %d: Get(%s) = %q, %v; model has %q", i, key, v, err, m.value)
					}
				} else if !errors.Is(err, ErrNotFound) {
					t.Fatalf("op %d: Get(%s) = %q, %v; model has none", i, key, v, err)
				}
			case 4: // Delete
				found, err := tb.Delete(key)
				m, ok := model[string(key)]
				if err != nil || found != (ok && live(m)) {
					t.Fatalf("op %d: Delete(%s) = %v, %v; model %v", i, key, found, err, ok && live(m))
				}
				delete(model, string(key))
			case 5: // time passes
				clock.advance(time.Duration(arg%5) * time.Second)
			case 6: // reclaim expired
				if _, err := tb.DeleteExpired(); err != nil {
					t.Fatal(err)
				}
				for k, m := range model {
					if !live(m) {
						delete(model, k)
					}
				}
			}
			if evictErr != nil {
				t.Fatalf("op %d: %v", i, evictErr)
			}
			unexpired := 0
			for _, m := range model {
				if live(m) {
					unexpired++
				}
			}
			if l := tb.Len(); l < unexpired || l > len(model) || l > capacity {
				t.Fatalf("op %d: Len %d, model holds %d unexpired of %d, capacity %d", i, l, unexpired, len(model), capacity)
			}
		}
		if err := tb.Verify(); err != nil {
			t.Fatal(err)
		}
	})
}

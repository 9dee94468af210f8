package sessioncache

import (
	"bytes"
	"errors"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// withFewTags narrows every key's tag to one of eight, spread over the index, until the test
// ends: keys of a shard then share tags all the time, where real tags (40 bits) collide
// about once in 2^40 pairs.
func withFewTags(tb testing.TB) {
	testHookTag = func(tag uint64) uint64 { return (tag & 7) << 29 }
	tb.Cleanup(func() { testHookTag = nil })
}

func storeAlways([]byte, int64, bool) (bool, int64) { return true, 0 }

func sameTagsOf(tb *Table) uint32 {
	n := uint32(0)
	for s := range tb.shards {
		n += tb.shards[s].hdr.sameTags
	}
	return n
}

func TestSetIfKeepsKeysThatShareATag(t *testing.T) {
	withFewTags(t)
	tb := openTest(t, Config{ElementCount: 256, RecordSize: 64, Shards: 1})
	const keys = 150
	key := func(i int) []byte { return fmt.Appendf(nil, "key-%d", i) }
	check := func(what string, want func(i int) []byte) {
		t.Helper()
		for i := range keys {
			v, err := tb.Get(key(i))
			if w := want(i); w == nil {
				require.ErrorIs(t, err, ErrNotFound, "%s: key %d", what, i)
			} else {
				require.NoError(t, err, "%s: key %d", what, i)
				require.Equal(t, string(w), string(v), "%s: key %d", what, i)
			}
		}
		require.NoError(t, tb.Verify(), what)
	}

	// version gives each key's expected value: v-i, or nil for the keys of parity gone.
	version := func(v string, gone int) func(i int) []byte {
		return func(i int) []byte {
			if i%2 == gone {
				return nil
			}
			return fmt.Appendf(nil, "%s-%d", v, i)
		}
	}
	setIfAll := func(v string) {
		t.Helper()
		for i := range keys {
			stored, err := tb.SetIf(key(i), fmt.Appendf(nil, "%s-%d", v, i), time.Time{}, 0, storeAlways)
			require.NoError(t, err)
			require.True(t, stored)
		}
	}
	deleteEveryOther := func(from int) {
		t.Helper()
		for i := from; i < keys; i += 2 {
			found, err := tb.Delete(key(i))
			require.NoError(t, err)
			require.True(t, found, "key %d", i)
		}
	}

	setIfAll("v1")
	check("after the first SetIfs", version("v1", -1))
	assert.NotZero(t, sameTagsOf(tb), "150 keys over 8 tags share them, and the shard records it")
	setIfAll("v2")
	check("after updates", version("v2", -1))
	deleteEveryOther(0)
	check("after deleting the even keys", version("v2", 0))

	// Plain Sets in a shard that records shared tags find entries by the whole key: an
	// update replaces its own key's entry, not another's with its tag, and leaves no second
	// version behind for a Delete to uncover.
	for i := range keys {
		require.NoError(t, tb.Set(key(i), fmt.Appendf(nil, "v3-%d", i), time.Time{}))
	}
	check("after plain Sets", version("v3", -1))
	deleteEveryOther(1)
	check("after deleting the odd keys", version("v3", 1))
}

func TestKeysThatShareATagSurviveEvictionAndRepair(t *testing.T) {
	withFewTags(t)
	evicted := map[string]bool{}
	tb := openTest(t, Config{ElementCount: 64, RecordSize: 64, Shards: 1,
		OnEvict: func(k, _ []byte, _ time.Time) { evicted[string(k)] = true }})
	const keys = 200
	for i := range keys {
		_, err := tb.SetIf(fmt.Appendf(nil, "key-%d", i), fmt.Appendf(nil, "v-%d", i), time.Time{}, 0, storeAlways)
		require.NoError(t, err)
	}
	require.NoError(t, tb.Verify())
	held := map[int]bool{}
	for i := range keys {
		k := fmt.Appendf(nil, "key-%d", i)
		v, err := tb.Get(k)
		switch {
		case err == nil:
			require.Equal(t, fmt.Sprintf("v-%d", i), string(v))
			require.False(t, evicted[string(k)], "key %d was reported evicted and is still held", i)
			held[i] = true
		case errors.Is(err, ErrNotFound):
			require.True(t, evicted[string(k)], "key %d is gone without an eviction", i)
		default:
			t.Fatal(err)
		}
	}
	require.Len(t, held, 64, "a full table holds as many keys as it has records")

	// A dead writer's shard is rebuilt from its records: keys that share a tag each keep
	// their own slot.
	sh := &tb.shards[0]
	tb.lockShard(sh)
	tb.repair(sh)
	tb.unlockShard(sh)
	require.NoError(t, tb.Verify())
	for i := range held {
		v, err := tb.Get(fmt.Appendf(nil, "key-%d", i))
		require.NoError(t, err, "key %d after repair", i)
		require.Equal(t, fmt.Sprintf("v-%d", i), string(v))
	}
}

func TestVerifyFindsAnUnrecordedSharedTag(t *testing.T) {
	withFewTags(t)
	tb := openTest(t, Config{ElementCount: 64, RecordSize: 64, Shards: 1})
	for i := range 40 {
		_, err := tb.SetIf(fmt.Appendf(nil, "key-%d", i), []byte("v"), time.Time{}, 0, storeAlways)
		require.NoError(t, err)
	}
	require.NoError(t, tb.Verify())
	sh := &tb.shards[0]
	saved := sh.hdr.sameTags
	sh.hdr.sameTags = 0
	err := tb.Verify()
	require.ErrorIs(t, err, ErrCorrupt)
	assert.Contains(t, err.Error(), "sameTags")
	sh.hdr.sameTags = saved
	require.NoError(t, tb.Verify())
}

// FuzzSetIfSharedTags runs SetIf, Get and Delete against a map, with tags narrowed so that
// keys share them: no key is lost or answered with another's value, and every entry the
// table pushes out reaches the eviction callback.
func FuzzSetIfSharedTags(f *testing.F) {
	f.Add([]byte{4, 0, 1, 10, 1, 1, 0, 2, 1, 0, 1, 1, 0})
	f.Add(bytes.Repeat([]byte{0, 3, 40, 0, 9, 7, 2, 3, 2, 1, 3, 0, 5, 0, 0}, 20))
	dir := f.TempDir()
	n := 0
	f.Fuzz(func(t *testing.T, ops []byte) {
		if len(ops) < 2 {
			return
		}
		withFewTags(t)
		n++
		capacity := 2 + int(ops[0]%40)
		ops = ops[1:]
		model := map[string][]byte{}
		var evictErr error
		tb, err := Open(Config{
			Path: filepath.Join(dir, fmt.Sprintf("f%d.table", n)), Create: true, Replace: true,
			ElementCount: capacity, RecordSize: 40, MaxKeySize: 8, Shards: 1 + int(ops[0]%2),
			OnEvict: func(k, v []byte, _ time.Time) {
				if m, ok := model[string(k)]; !ok || !bytes.Equal(m, v) {
					evictErr = fmt.Errorf("evicted %q = %q, model has %q", k, v, m)
				}
				delete(model, string(k))
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		defer tb.Remove()
		defer tb.Close()
		for i := 0; i+2 < len(ops) && i < 3*500; i += 3 {
			op, key, arg := ops[i]%4, fmt.Appendf(nil, "k%d", ops[i+1]%48), int(ops[i+2])
			switch op {
			case 0, 1:
				value := fmt.Appendf(nil, "%s=%d", key, arg)
				if _, err := tb.SetIf(key, value, time.Time{}, 0, storeAlways); err != nil {
					t.Fatalf("op %d: SetIf: %v", i, err)
				}
				model[string(key)] = value
			case 2:
				v, err := tb.Get(key)
				if m, ok := model[string(key)]; ok {
					if err != nil || !bytes.Equal(v, m) {
						t.Fatalf("op %d: Get(%s) = %q, %v; model has %q", i, key, v, err, m)
					}
				} else if !errors.Is(err, ErrNotFound) {
					t.Fatalf("op %d: Get(%s) = %q, %v; model has none", i, key, v, err)
				}
			case 3:
				found, err := tb.Delete(key)
				_, ok := model[string(key)]
				if err != nil || found != ok {
					t.Fatalf("op %d: Delete(%s) = %v, %v; model %v", i, key, found, err, ok)
				}
				delete(model, string(key))
			}
			if evictErr != nil {
				t.Fatalf("op %d: %v", i, evictErr)
			}
			if l := tb.Len(); l != len(model) {
				t.Fatalf("op %d: Len %d, model holds %d", i, l, len(model))
			}
		}
		if err := tb.Verify(); err != nil {
			t.Fatal(err)
		}
	})
}

package sessioncache_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// One process creates the section and another attaches to it; both see the same entries.
// Here both handles are in one process, but each could be in its own.
func Example() {
	dir, _ := os.MkdirTemp("", "sessioncache-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sessions.table")

	creator, err := sessioncache.Open(sessioncache.Config{
		Path: path, Create: true, ElementCount: 1000, RecordSize: 384, Seed: 9849381,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer creator.Close()

	attached, err := sessioncache.Open(sessioncache.Config{Path: path, Seed: 9849381})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer attached.Close()

	_ = creator.Set([]byte("sid-42"), []byte(`{"user":"alice"}`), time.Now().Add(30*time.Minute))
	v, err := attached.Get([]byte("sid-42"))
	fmt.Println(string(v), err)

	_, _ = attached.Delete([]byte("sid-42"))
	_, err = creator.Get([]byte("sid-42"))
	fmt.Println(err)
	// Output:
	// {"user":"alice"} <nil>
	// sessioncache: not found
}

// An attacher whose config disagrees with the section is refused with the field named.
func ExampleLayoutError() {
	dir, _ := os.MkdirTemp("", "sessioncache-example")
	defer os.RemoveAll(dir)
	path := filepath.Join(dir, "sessions.table")
	t, _ := sessioncache.Open(sessioncache.Config{Path: path, Create: true, RecordSize: 384})
	defer t.Close()

	_, err := sessioncache.Open(sessioncache.Config{Path: path, RecordSize: 512})
	fmt.Println(errors.Is(err, sessioncache.ErrLayoutMismatch))
	var le *sessioncache.LayoutError
	if errors.As(err, &le) {
		fmt.Println(le.Field, le.Section, le.Config)
	}
	// Output:
	// true
	// record_size 384 512
}

// Entries pushed out of a full table are handed to OnEvict, so they can be kept elsewhere.
func ExampleConfig_onEvict() {
	dir, _ := os.MkdirTemp("", "sessioncache-example")
	defer os.RemoveAll(dir)
	t, _ := sessioncache.Open(sessioncache.Config{
		Path: filepath.Join(dir, "small.table"), Create: true, ElementCount: 2, RecordSize: 64,
		OnEvict: func(key, value []byte, _ time.Time) {
			fmt.Printf("evicted %s=%s\n", key, value)
		},
	})
	defer t.Close()
	_ = t.Set([]byte("a"), []byte("1"), time.Time{})
	_ = t.Set([]byte("b"), []byte("2"), time.Time{})
	_, _ = t.Get([]byte("b")) // b is used, a is not
	_ = t.Set([]byte("c"), []byte("3"), time.Time{})
	// Output:
	// evicted a=1
}

// A server that receives a batch of writes tells the table which keys come first, so that
// the cache misses of the batch overlap instead of following one another; the writes then
// find their memory on the way.
func ExampleTable_Prefetch() {
	dir, _ := os.MkdirTemp("", "sessioncache-example")
	defer os.RemoveAll(dir)
	t, err := sessioncache.Open(sessioncache.Config{
		Path: filepath.Join(dir, "sessions.table"), Create: true, ElementCount: 1000, RecordSize: 384,
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer t.Close()

	batch := map[string]string{"sid-1": "alice", "sid-2": "bob", "sid-3": "carol"}
	keys := make([][]byte, 0, len(batch))
	for k := range batch {
		keys = append(keys, []byte(k))
	}
	t.Prefetch(keys)
	for _, k := range keys {
		_ = t.Set(k, []byte(batch[string(k)]), time.Time{})
	}
	v, _ := t.Get([]byte("sid-2"))
	fmt.Println(string(v), t.Len())
	// Output: bob 3
}

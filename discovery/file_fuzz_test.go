package discovery

import (
	"net"
	"strconv"
	"testing"
)

// FuzzFileParse feeds arbitrary files to the file provider's parser: it never panics, and
// what it accepts has host:port addresses with a port in range and no two targets with one
// key.
func FuzzFileParse(f *testing.F) {
	f.Add([]byte(`[{"id": "engine-1", "addr": "10.0.0.1:9076", "labels": {"zone": "a"}}, {"addr": "10.0.0.2:9076"}]`))
	f.Add([]byte(`[{"addr": "[::1]:80"}, {"addr": "[::1]:80"}]`))
	f.Add([]byte(`[{"addr": ":80"}]`))
	f.Add([]byte(`{"addr": "x:1"}`))
	f.Add([]byte(`null`))
	f.Fuzz(func(t *testing.T, data []byte) {
		targets, err := fileParse(data)
		if err != nil {
			return
		}
		if targets == nil {
			t.Fatal("a parsed file gave a nil list (an empty file list must be empty, not absent)")
		}
		seen := map[string]bool{}
		for i, tg := range targets {
			host, port, err := net.SplitHostPort(tg.Addr)
			if err != nil || host == "" {
				t.Fatalf("target %d: accepted addr %q", i, tg.Addr)
			}
			if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
				t.Fatalf("target %d: accepted port %q", i, port)
			}
			if seen[tg.Key()] {
				t.Fatalf("target %d: key %q accepted twice", i, tg.Key())
			}
			seen[tg.Key()] = true
		}
	})
}

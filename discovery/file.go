package discovery

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"strconv"
	"sync"
	"time"
)

// File is a Provider that lists the instances written in a JSON file, an array
// of targets such as
//
//	[{"id": "engine-1", "addr": "10.0.0.1:9076", "labels": {"zone": "a"}},
//	 {"addr": "10.0.0.2:9076"}]
//
// It reads the file again only when its modification time or size changed
// since the last successful read. Writers should replace the file atomically
// (write a temporary file, then rename it), so that no read sees half a file. A
// File is safe for concurrent use.
type File struct {
	path string

	mu      sync.Mutex
	read    bool // targets holds the last successful read
	modTime time.Time
	size    int64
	targets []Target
}

var _ Provider = (*File)(nil)

// NewFile returns a File provider reading the file at path. The file is first
// read by Targets.
func NewFile(path string) *File {
	return &File{path: path}
}

// Name implements Provider: it is "file " followed by the path of the file.
func (f *File) Name() string { return "file " + f.path }

// Targets implements Provider. It returns the targets of the file in the order
// the file lists them, from its last read if the file did not change since. A
// missing or unreadable file, bad JSON, a target without a valid "host:port"
// address and two targets with the same key (ID, or address) are errors; the
// caller keeps its last good list, and so does File, reading the file again on
// the next call.
func (f *File) Targets(ctx context.Context) ([]Target, error) {
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("discovery: file %s: %w", f.path, err)
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	// The file is stated before it is read: if it changes in between, the
	// next call sees a new modification time or size and reads it again.
	st, err := os.Stat(f.path)
	if err != nil {
		return nil, fmt.Errorf("discovery: file %s: %w", f.path, err)
	}
	if !f.read || !st.ModTime().Equal(f.modTime) || st.Size() != f.size {
		data, err := os.ReadFile(f.path)
		if err != nil {
			return nil, fmt.Errorf("discovery: file %s: %w", f.path, err)
		}
		targets, err := fileParse(data)
		if err != nil {
			return nil, fmt.Errorf("discovery: file %s: %w", f.path, err)
		}
		f.read, f.modTime, f.size, f.targets = true, st.ModTime(), st.Size(), targets
	}
	out := make([]Target, len(f.targets))
	for i, t := range f.targets {
		t.Labels = maps.Clone(t.Labels)
		out[i] = t
	}
	return out, nil
}

// fileParse decodes and checks the targets of a file.
func fileParse(data []byte) ([]Target, error) {
	var targets []Target
	if err := json.Unmarshal(data, &targets); err != nil {
		var syntax *json.SyntaxError
		if errors.As(err, &syntax) {
			return nil, fmt.Errorf("bad JSON at byte %d: %w", syntax.Offset, err)
		}
		return nil, fmt.Errorf("bad JSON: %w", err)
	}
	seen := make(map[string]int, len(targets))
	for i, t := range targets {
		host, port, err := net.SplitHostPort(t.Addr)
		if err == nil && host == "" {
			err = errors.New("no host")
		}
		if err == nil {
			if n, perr := strconv.Atoi(port); perr != nil || n < 1 || n > 65535 {
				err = fmt.Errorf("bad port %q", port)
			}
		}
		if err != nil {
			return nil, fmt.Errorf("target %d: addr %q is not host:port: %w", i, t.Addr, err)
		}
		if j, dup := seen[t.Key()]; dup {
			return nil, fmt.Errorf("targets %d and %d have the same key %q", j, i, t.Key())
		}
		seen[t.Key()] = i
	}
	if targets == nil {
		targets = []Target{}
	}
	return targets, nil
}

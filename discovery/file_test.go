package discovery

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// fileTestWrite writes content to path and sets its modification time to
// mtime, so that tests do not depend on the clock's resolution.
func fileTestWrite(t *testing.T, path, content string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

func TestFileTargets(t *testing.T) {
	tests := []struct {
		name    string
		content string
		want    []Target
		wantErr string
	}{{
		name: "targets",
		content: `[
  {"id": "engine-1", "addr": "10.0.0.1:9076", "labels": {"zone": "eu-west-1a", "tier": "gold"}},
  {"addr": "engine-2.example.com:9076"},
  {"id": "engine-3", "addr": "[fd00::3]:9076", "labels": {}}
]`,
		want: []Target{
			{ID: "engine-1", Addr: "10.0.0.1:9076", Labels: map[string]string{"zone": "eu-west-1a", "tier": "gold"}},
			{Addr: "engine-2.example.com:9076"},
			{ID: "engine-3", Addr: "[fd00::3]:9076", Labels: map[string]string{}},
		},
	}, {
		name:    "empty list",
		content: "[]\n",
		want:    []Target{},
	}, {
		name:    "null",
		content: "null",
		want:    []Target{},
	}, {
		name:    "bad JSON",
		content: `[{"id": "engine-1", "addr": "10.0.0.1:9076",}]`,
		wantErr: "bad JSON at byte 45: invalid character '}'",
	}, {
		name:    "truncated JSON",
		content: `[{"id": "engine-1", "addr": "10.0.0.1:9076"`,
		wantErr: "bad JSON",
	}, {
		name:    "empty file",
		content: "",
		wantErr: "bad JSON",
	}, {
		name:    "an object, not a list",
		content: `{"id": "engine-1", "addr": "10.0.0.1:9076"}`,
		wantErr: "bad JSON: json: cannot unmarshal object",
	}, {
		name:    "labels that are not strings",
		content: `[{"addr": "10.0.0.1:9076", "labels": {"weight": 3}}]`,
		wantErr: "bad JSON",
	}, {
		name:    "trailing garbage",
		content: `[{"addr": "10.0.0.1:9076"}] x`,
		wantErr: "bad JSON",
	}, {
		name:    "no addr",
		content: `[{"addr": "10.0.0.1:9076"}, {"id": "engine-2"}]`,
		wantErr: `target 1: addr "" is not host:port`,
	}, {
		name:    "no port",
		content: `[{"addr": "10.0.0.1"}]`,
		wantErr: `target 0: addr "10.0.0.1" is not host:port: address 10.0.0.1: missing port in address`,
	}, {
		name:    "bad port",
		content: `[{"addr": "10.0.0.1:http"}]`,
		wantErr: `target 0: addr "10.0.0.1:http" is not host:port: bad port "http"`,
	}, {
		name:    "port out of range",
		content: `[{"addr": "10.0.0.1:65536"}]`,
		wantErr: `bad port "65536"`,
	}, {
		name:    "no host",
		content: `[{"addr": ":9076"}]`,
		wantErr: `target 0: addr ":9076" is not host:port: no host`,
	}, {
		name:    "same ID twice",
		content: `[{"id": "engine-1", "addr": "10.0.0.1:9076"}, {"id": "engine-1", "addr": "10.0.0.2:9076"}]`,
		wantErr: `targets 0 and 1 have the same key "engine-1"`,
	}, {
		name:    "same address twice without ID",
		content: `[{"addr": "10.0.0.1:9076"}, {"id": "engine-2", "addr": "10.0.0.2:9076"}, {"addr": "10.0.0.1:9076"}]`,
		wantErr: `targets 0 and 2 have the same key "10.0.0.1:9076"`,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "targets.json")
			fileTestWrite(t, path, tt.content, time.Unix(1_700_000_000, 0))
			f := NewFile(path)
			got, err := f.Targets(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Targets() = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				if prefix := "discovery: file " + path + ": "; !strings.HasPrefix(err.Error(), prefix) {
					t.Errorf("error %q does not start with %q", err, prefix)
				}
				return
			}
			if err != nil {
				t.Fatalf("Targets(): %v", err)
			}
			equalTargetsForTest(t, got, tt.want)
		})
	}
}

func TestFileChanges(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "targets.json")
	f := NewFile(path)
	if got, want := f.Name(), "file "+path; got != want {
		t.Errorf("Name() = %q, want %q", got, want)
	}
	one := []Target{{ID: "e1", Addr: "10.0.0.1:9076", Labels: map[string]string{"zone": "a"}}}
	two := []Target{{ID: "e2", Addr: "10.0.0.2:9076", Labels: map[string]string{"zone": "b"}}}
	three := []Target{
		{ID: "e2", Addr: "10.0.0.2:9076", Labels: map[string]string{"zone": "b"}},
		{ID: "e3", Addr: "10.0.0.3:9076"},
	}
	t0 := time.Unix(1_700_000_000, 0)

	steps := []struct {
		name    string
		write   *string // content written with mtime, if not nil
		mtime   time.Time
		remove  bool
		want    []Target
		wantErr string
	}{{
		name:    "missing file",
		wantErr: "discovery: file " + path + ": stat " + path + ": no such file or directory",
	}, {
		name:  "first read",
		write: new(`[{"id": "e1", "addr": "10.0.0.1:9076", "labels": {"zone": "a"}}]`),
		mtime: t0,
		want:  one,
	}, {
		name: "unchanged",
		want: one,
	}, {
		// Same size, same modification time: the cached list, though the
		// content changed.
		name:  "same size and time",
		write: new(`[{"id": "e2", "addr": "10.0.0.2:9076", "labels": {"zone": "b"}}]`),
		mtime: t0,
		want:  one,
	}, {
		name:  "newer time",
		write: new(`[{"id": "e2", "addr": "10.0.0.2:9076", "labels": {"zone": "b"}}]`),
		mtime: t0.Add(time.Second),
		want:  two,
	}, {
		name:  "other size, same time",
		write: new(`[{"id": "e2", "addr": "10.0.0.2:9076", "labels": {"zone": "b"}}, {"id": "e3", "addr": "10.0.0.3:9076"}]`),
		mtime: t0.Add(time.Second),
		want:  three,
	}, {
		name:    "bad JSON",
		write:   new(`[{"id": "e4", "addr": "10.0.0.4:9076"`),
		mtime:   t0.Add(2 * time.Second),
		wantErr: "discovery: file " + path + ": bad JSON",
	}, {
		name:    "still bad JSON",
		wantErr: "discovery: file " + path + ": bad JSON",
	}, {
		// The failed read was not kept: the file is compared with the last
		// good read, whose content it has again.
		name:  "fixed, back to the last good content, time and size",
		write: new(`[{"id": "e2", "addr": "10.0.0.2:9076", "labels": {"zone": "b"}}, {"id": "e3", "addr": "10.0.0.3:9076"}]`),
		mtime: t0.Add(time.Second),
		want:  three,
	}, {
		name:    "removed",
		remove:  true,
		wantErr: "discovery: file " + path + ": stat " + path + ": no such file or directory",
	}, {
		name:  "written again",
		write: new(`[{"id": "e1", "addr": "10.0.0.1:9076", "labels": {"zone": "a"}}]`),
		mtime: t0.Add(3 * time.Second),
		want:  one,
	}}
	for _, step := range steps {
		if step.write != nil {
			fileTestWrite(t, path, *step.write, step.mtime)
		}
		if step.remove {
			if err := os.Remove(path); err != nil {
				t.Fatal(err)
			}
		}
		got, err := f.Targets(context.Background())
		if step.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), step.wantErr) {
				t.Fatalf("%s: Targets() = %v, %v; want error containing %q", step.name, got, err, step.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		equalTargetsForTest(t, got, step.want)
		// What the caller does with the list does not change the next one.
		for i := range got {
			got[i].ID = "changed"
			if got[i].Labels != nil {
				got[i].Labels["zone"] = "changed"
			}
		}
	}
}

func TestFileContext(t *testing.T) {
	path := filepath.Join(t.TempDir(), "targets.json")
	fileTestWrite(t, path, `[{"addr": "10.0.0.1:9076"}]`, time.Unix(1_700_000_000, 0))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := NewFile(path).Targets(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Targets() with a canceled context = %v, %v; want context.Canceled", got, err)
	}
}

package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAuditedRelief runs the example and checks the extension's behaviour: the skipped
// key was refused by the override, the others reached the embedded server, lookups and
// the administration command went through the extension.
func TestAuditedRelief(t *testing.T) {
	path := filepath.Join(t.TempDir(), "out.txt")
	f, err := os.Create(path)
	require.NoError(t, err)
	require.NoError(t, run(f))
	require.NoError(t, f.Close())
	b, err := os.ReadFile(path)
	require.NoError(t, err)
	out := string(b)
	t.Log(out)
	for _, want := range []string{
		"audit: set sid-1", "audit: skip csrf-abc", "audit: set sid-2",
		"audit: get sid-1: true", "audit: get csrf-abc: false",
		"sibling asks for sid-1: found", "sibling asks for csrf-abc: sessioncache: not found",
		"stored 2 entries (2 sets, 2 lookups, 1 hits)",
	} {
		assert.True(t, strings.Contains(out, want), "missing %q", want)
	}
}

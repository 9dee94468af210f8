package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/globalsession/globalsession/internal/exampletest"
)

// TestSharedTable runs the example as a user would: three processes share one table.
func TestSharedTable(t *testing.T) {
	out := exampletest.Run(t, time.Minute)
	t.Log(out)
	for _, want := range []string{
		`sees session:carol = {"user":"carol"}, written by another process`,
		`sees session:bob = {"user":"bob"}, written by another process`,
		"creator: deleted session:bob; get now says sessioncache: not found",
		"creator: Verify found the layout intact",
	} {
		assert.True(t, strings.Contains(out, want), "missing %q", want)
	}
}

package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/globalsession/globalsession/internal/exampletest"
)

// TestTwoHosts runs the example as a user would: a login on one host is read on the other,
// and a logout on the other is final on both.
func TestTwoHosts(t *testing.T) {
	out := exampletest.Run(t, time.Minute)
	t.Log(out)
	for _, want := range []string{
		"host-a: logged alice in as sid-7f3a",
		`host-b: get sid-7f3a = {"user":"alice"} (err <nil>)`,
		"host-b: logged sid-7f3a out",
		"host-a: get sid-7f3a now says: sessioncache: not found",
	} {
		assert.True(t, strings.Contains(out, want), "missing %q", want)
	}
}

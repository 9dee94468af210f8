package main

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"

	"github.com/globalsession/globalsession/internal/exampletest"
)

// TestQuickstart runs the example as a user would and checks each step's outcome.
func TestQuickstart(t *testing.T) {
	out := exampletest.Run(t, 2*time.Minute)
	t.Log(out)
	for _, want := range []string{
		"-> alice (found, pid",            // the second process of host A reads its shared table
		"-> alice (found)",                // host B gets it through the relay
		"it comes back from aging relief", // pushed out of every table...
		"aging relief answered 1 lookup",  // ...and served by aging relief
		"host A (second process): not found",
		"aging relief's store: not found",
		"relay's table: not found",
	} {
		assert.True(t, strings.Contains(out, want), "missing %q", want)
	}
}

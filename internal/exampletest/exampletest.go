// Package exampletest runs an example program as a user would, for the examples' tests:
// it builds the example in the test's directory with `go build` and runs the program,
// returning what it printed. It is a test helper, not part of the library.
package exampletest

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"
)

// Run builds the example package in the current directory and runs it with args, failing
// the test if it does not exit cleanly within timeout. It returns standard output and
// standard error together.
func Run(t *testing.T, timeout time.Duration, args ...string) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "example")
	build := exec.Command("go", "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = t.TempDir()
	cmd.Env = os.Environ()
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	cmd.WaitDelay = 5 * time.Second
	if err := cmd.Run(); err != nil {
		t.Fatalf("the example failed: %v\n%s", err, out.String())
	}
	return out.String()
}

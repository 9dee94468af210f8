package wakeup

import (
	"os"
	"path/filepath"
	"testing"
)

func TestNoIdleDriver(t *testing.T) {
	dir := t.TempDir()
	for _, c := range []struct {
		content string
		want    bool
	}{
		{"none\n", true},
		{"none", true},
		{"haltpoll\n", false},
		{"acpi_idle\n", false},
	} {
		file := filepath.Join(dir, "current_driver")
		if err := os.WriteFile(file, []byte(c.content), 0o644); err != nil {
			t.Fatal(err)
		}
		if got := noIdleDriver(file); got != c.want {
			t.Errorf("driver file %q: noIdleDriver = %v, want %v", c.content, got, c.want)
		}
	}
	if noIdleDriver(filepath.Join(dir, "missing")) {
		t.Error("a missing driver file counts as no driver")
	}
}

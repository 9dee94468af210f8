package config

import (
	"bytes"
	"errors"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the config parser: it must never panic, every
// failure must be an *Error naming the file, and comment stripping must keep every
// offset and newline (errors give line numbers) and change nothing inside strings.
func FuzzParse(f *testing.F) {
	for _, s := range []string{seedRelay, seedSibling, seedRelief, `{"half_edge": true, "port": 1, "address": "a//b"} // c`,
		`{"gateway": {"listen": "127.0.0.1:0"}}`, `{"discovery": {"static": []}}`, `{`, `"\"//"`, `[1,2]`, ``} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		clean := stripComments(b)
		if len(clean) != len(b) {
			t.Fatalf("stripComments changed the length from %d to %d", len(b), len(clean))
		}
		for i := range b {
			if (b[i] == '\n') != (clean[i] == '\n') {
				t.Fatalf("stripComments moved a newline at offset %d", i)
			}
			if clean[i] != b[i] && clean[i] != ' ' {
				t.Fatalf("stripComments wrote %q at offset %d", clean[i], i)
			}
		}
		if !bytes.Contains(b, []byte("//")) && !bytes.Equal(clean, b) {
			t.Fatal("stripComments changed a text without comments")
		}
		f, err := Parse(b, "fuzz.conf", "/etc/gs")
		if err != nil {
			var ce *Error
			if !errors.As(err, &ce) || ce.File != "fuzz.conf" {
				t.Fatalf("error %q (%T) does not name the file", err, err)
			}
			return
		}
		if f.Role() == "" {
			t.Fatal("a config that parsed has no role")
		}
	})
}

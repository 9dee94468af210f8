package hub

import (
	"bytes"
	"strings"
	"testing"
)

// FuzzScanEvents checks the event-stream reader two ways: arbitrary bytes never make it
// panic, and events written as the protocol writes them (each line of an event's data as a
// "data:" line, a blank line after the event) come back exactly, among comments and other
// fields it must skip.
func FuzzScanEvents(f *testing.F) {
	f.Add([]byte("data: hello\n\n"), "hello\x00two\nlines\x00")
	f.Add([]byte(": comment\nevent: tick\nid: 7\ndata:x\r\n\r\ndata: y\n"), "  leading spaces\x00\x00")
	f.Add([]byte("data"), "")
	f.Fuzz(func(t *testing.T, raw []byte, events string) {
		_ = scanEvents(bytes.NewReader(raw), new(streamState), func([]byte) {})

		if strings.ContainsRune(events, '\r') {
			return // a carriage return ends a line in this protocol
		}
		want := strings.Split(events, "\x00")
		var stream strings.Builder
		stream.WriteString(": a comment the reader skips\n")
		for i, ev := range want {
			if i%2 == 1 {
				stream.WriteString("event: update\nid: 1\n")
			}
			for _, line := range strings.Split(ev, "\n") {
				stream.WriteString("data: " + line + "\n")
			}
			stream.WriteString("\n")
		}
		var got []string
		if err := scanEvents(strings.NewReader(stream.String()), new(streamState), func(b []byte) { got = append(got, string(b)) }); err != nil {
			t.Fatal(err)
		}
		if len(got) != len(want) {
			t.Fatalf("%d events back, %d written: %q", len(got), len(want), got)
		}
		for i := range want {
			if got[i] != want[i] {
				t.Fatalf("event %d: got %q, wrote %q", i, got[i], want[i])
			}
		}
	})
}

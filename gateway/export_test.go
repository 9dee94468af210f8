package gateway

import "time"

// SetNow replaces the clock of s, for the external tests.
func SetNow(s *Sessions, now func() time.Time) { s.now = now }

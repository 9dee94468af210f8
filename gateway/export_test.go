package gateway

import "time"

// SetNow replaces the clock of s, for the external tests.
func SetNow(s *Sessions, now func() time.Time) { s.now = now }

// SetOIDCNow replaces the clock of o (state expiry, token checks and refreshes).
func SetOIDCNow(o *OIDC, now func() time.Time) { o.now = now }

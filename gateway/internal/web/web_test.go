package web

import (
	"crypto/tls"
	"net/http"
	"net/http/httptest"
	"testing"
)

// TestOriginAllowedComparesTheScheme: without an allowed list only the request's own
// origin passes, scheme included: a plain-HTTP gateway refuses https://<its host> and a
// bare host; an allowed list is matched exactly.
func TestOriginAllowedComparesTheScheme(t *testing.T) {
	plain := httptest.NewRequest("GET", "http://gw.example:8080/hub", nil)
	secure := httptest.NewRequest("GET", "https://gw.example:8443/hub", nil)
	secure.TLS = &tls.ConnectionState{}
	for _, tt := range []struct {
		name    string
		r       *http.Request
		origin  string
		allowed []string
		want    bool
	}{
		{"no origin: not a browser", plain, "", nil, true},
		{"own origin", plain, "http://gw.example:8080", nil, true},
		{"own host, other scheme", plain, "https://gw.example:8080", nil, false},
		{"bare host", plain, "gw.example:8080", nil, false},
		{"own origin over TLS", secure, "https://gw.example:8443", nil, true},
		{"plain origin to a TLS gateway", secure, "http://gw.example:8443", nil, false},
		{"another site", plain, "http://evil.example", nil, false},
		{"an allowed origin", plain, "https://app.example", []string{"https://app.example"}, true},
		{"own origin not in the allowed list", plain, "http://gw.example:8080", []string{"https://app.example"}, false},
	} {
		r := tt.r.Clone(tt.r.Context())
		if tt.origin != "" {
			r.Header.Set("Origin", tt.origin)
		}
		if got := OriginAllowed(r, tt.allowed); got != tt.want {
			t.Errorf("%s: OriginAllowed(%q) = %v, want %v", tt.name, tt.origin, got, tt.want)
		}
	}
}

package web

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
)

// WriteJSON answers with status and v as JSON, never cached.
func WriteJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// WriteError answers with status and {"error": msg}.
func WriteError(w http.ResponseWriter, status int, msg string) {
	WriteJSON(w, status, map[string]string{"error": msg})
}

// Fail answers a failure behind an endpoint: status with msg and a request id, but not the
// failure's detail, which goes to log once at WARN with the same id. With asJSON the body
// is {"error": ...}, else plain text.
func Fail(w http.ResponseWriter, r *http.Request, log *slog.Logger, status int, msg string, err error, asJSON bool) {
	id, _ := RandomID(6)
	if log != nil {
		log.Warn("gateway: "+msg, "request_id", id, "status", status, "method", r.Method, "path", r.URL.Path, "err", err)
	}
	msg += " (request " + id + ")"
	if asJSON {
		WriteError(w, status, msg)
		return
	}
	http.Error(w, msg, status)
}

// RandomID returns n random bytes in unpadded URL-safe base64.
func RandomID(n int) (string, error) {
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("gateway: random id: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// IsWebSocketUpgrade reports whether r asks for a WebSocket upgrade, and nothing else.
func IsWebSocketUpgrade(r *http.Request) bool {
	return r.Method == http.MethodGet && headerHasToken(r.Header, "Connection", "upgrade") &&
		strings.EqualFold(strings.TrimSpace(r.Header.Get("Upgrade")), "websocket")
}

func headerHasToken(h http.Header, name, token string) bool {
	for _, v := range h.Values(name) {
		for _, t := range strings.Split(v, ",") {
			if strings.EqualFold(strings.TrimSpace(t), token) {
				return true
			}
		}
	}
	return false
}

// OriginAllowed reports whether r's Origin may open a WebSocket: no Origin (not a
// browser), one of allowed, or, with allowed empty, the request's own origin, scheme
// included (https when r came over TLS, else http). This refuses cross-site WebSocket
// hijacking.
func OriginAllowed(r *http.Request, allowed []string) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	if len(allowed) == 0 {
		scheme := "http://"
		if r.TLS != nil {
			scheme = "https://"
		}
		return strings.EqualFold(origin, scheme+r.Host)
	}
	for _, o := range allowed {
		if strings.EqualFold(o, origin) {
			return true
		}
	}
	return false
}

package admin

import (
	"bufio"
	"errors"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// httpBuckets are the bounds, in seconds, of the HTTP request latency histogram.
var httpBuckets = []float64{0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10}

// InstrumentHTTP wraps h (a ServeMux) so that its requests are counted by route pattern
// and status code (prefix_requests_total) and timed (prefix_request_seconds); WebSocket
// upgrades are counted with code 101 as the handler takes the connection over, and not
// timed, since they last as long as the connection.
func (s *Server) InstrumentHTTP(prefix string, h http.Handler) http.Handler {
	count := prometheus.NewCounterVec(prometheus.CounterOpts{Name: prefix + "_requests_total",
		Help: "HTTP requests answered, by route and status code."}, []string{"route", "code"})
	timing := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: prefix + "_request_seconds",
		Help: "Time to answer an HTTP request (WebSocket upgrades left out), by route.", Buckets: httpBuckets}, []string{"route"})
	s.registry.MustRegister(count, timing)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		route := func() string { // the mux sets r.Pattern before it calls the route's handler
			if r.Pattern == "" {
				return "unmatched"
			}
			return r.Pattern
		}
		sw := &statusWriter{ResponseWriter: w, hijacked: func() {
			count.WithLabelValues(route(), strconv.Itoa(http.StatusSwitchingProtocols)).Inc()
		}}
		h.ServeHTTP(sw, r)
		if sw.tookOver {
			return
		}
		code := sw.status
		if code == 0 {
			code = http.StatusOK
		}
		count.WithLabelValues(route(), strconv.Itoa(code)).Inc()
		timing.WithLabelValues(route()).Observe(time.Since(start).Seconds())
	})
}

// statusWriter records the status code a handler answers with, and whether it took the
// connection over.
type statusWriter struct {
	http.ResponseWriter
	status   int
	tookOver bool   // the handler hijacked the connection
	hijacked func() // called when it does
}

func (w *statusWriter) WriteHeader(code int) {
	if w.status == 0 {
		w.status = code
	}
	w.ResponseWriter.WriteHeader(code)
}

func (w *statusWriter) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.ResponseWriter.Write(b)
}

// Flush lets streaming handlers (event streams) flush through the wrapper.
func (w *statusWriter) Flush() {
	if f, ok := w.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}

// Hijack lets WebSocket upgrades take the connection through the wrapper.
func (w *statusWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	hj, ok := w.ResponseWriter.(http.Hijacker)
	if !ok {
		return nil, nil, errors.New("admin: the response writer cannot be hijacked")
	}
	c, rw, err := hj.Hijack()
	if err == nil {
		w.tookOver = true
		w.hijacked()
	}
	return c, rw, err
}

// Unwrap gives http.ResponseController the writer underneath.
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

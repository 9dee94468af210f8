// Package admin is the HTTP listener every role of the global-sessions binary can open for
// its operators: /health (the process is alive), /ready (it can do its job: its checks
// pass) and /metrics (Prometheus). It is not a public API: the binary wires it, and the
// library's types report their counts through their own Stats methods.
package admin

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check is a readiness check: nil when its part can do its job.
type Check struct {
	Name  string
	Check func(ctx context.Context) error
}

// Server is an admin listener.
type Server struct {
	srv      *http.Server
	ln       net.Listener
	registry *prometheus.Registry
	checks   []Check
	done     chan struct{}
}

// Listen opens an admin listener on addr ("127.0.0.1:9100") with a fresh registry holding
// the Go runtime's and the process's collectors. Add metrics with Registry and checks
// with Ready; Serve starts answering.
func Listen(addr string) (*Server, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("admin: listen %s: %w", addr, err)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return &Server{ln: ln, registry: reg, done: make(chan struct{})}, nil
}

// Addr returns the address the listener is bound to.
func (s *Server) Addr() net.Addr { return s.ln.Addr() }

// Registry is where the role registers its metrics.
func (s *Server) Registry() *prometheus.Registry { return s.registry }

// Ready adds readiness checks; call it before Serve.
func (s *Server) Ready(checks ...Check) { s.checks = append(s.checks, checks...) }

// Serve answers until Shutdown; log receives a failure to serve.
func (s *Server) Serve(log *slog.Logger) {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /health", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /ready", s.ready)
	mux.Handle("GET /metrics", promhttp.HandlerFor(s.registry, promhttp.HandlerOpts{}))
	s.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() {
		defer close(s.done)
		if err := s.srv.Serve(s.ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("admin: serving failed", "addr", s.ln.Addr().String(), "err", err)
		}
	}()
}

// ready answers 200 when every check passes, else 503 naming the checks that failed.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	var failed []string
	for _, c := range s.checks {
		if err := c.Check(ctx); err != nil {
			failed = append(failed, c.Name+": "+err.Error())
		}
	}
	if len(failed) > 0 {
		http.Error(w, "not ready: "+strings.Join(failed, "; "), http.StatusServiceUnavailable)
		return
	}
	fmt.Fprintln(w, "ready")
}

// Shutdown stops the listener and waits for it, or for ctx.
func (s *Server) Shutdown(ctx context.Context) error {
	if s.srv == nil {
		return s.ln.Close()
	}
	err := s.srv.Shutdown(ctx)
	select {
	case <-s.done:
	case <-ctx.Done():
	}
	return err
}

// CounterFunc registers a counter whose value f reads when scraped; labels are constant
// label pairs ("id", "a1", ...).
func (s *Server) CounterFunc(name, help string, f func() float64, labels ...string) {
	s.registry.MustRegister(prometheus.NewCounterFunc(prometheus.CounterOpts{Name: name, Help: help, ConstLabels: pairs(labels)}, f))
}

// GaugeFunc registers a gauge whose value f reads when scraped; labels as for CounterFunc.
func (s *Server) GaugeFunc(name, help string, f func() float64, labels ...string) {
	s.registry.MustRegister(prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: name, Help: help, ConstLabels: pairs(labels)}, f))
}

func pairs(kv []string) prometheus.Labels {
	if len(kv) == 0 {
		return nil
	}
	l := prometheus.Labels{}
	for i := 0; i+1 < len(kv); i += 2 {
		l[kv[i]] = kv[i+1]
	}
	return l
}

// LabeledCounters registers a counter family with one label, whose values f reads when
// scraped (one per label value).
func (s *Server) LabeledCounters(name, help, label string, f func() map[string]float64) {
	s.registry.MustRegister(&labeled{desc: prometheus.NewDesc(name, help, []string{label}, nil), f: f})
}

type labeled struct {
	desc *prometheus.Desc
	f    func() map[string]float64
}

func (l *labeled) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *labeled) Collect(ch chan<- prometheus.Metric) {
	for v, n := range l.f() {
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.CounterValue, n, v)
	}
}

// CountersBy2 registers a counter family with two labels, whose values f reads when
// scraped (one per pair of label values).
func (s *Server) CountersBy2(name, help string, labels [2]string, f func() map[[2]string]float64) {
	s.registry.MustRegister(&labeled2{desc: prometheus.NewDesc(name, help, labels[:], nil), f: f})
}

type labeled2 struct {
	desc *prometheus.Desc
	f    func() map[[2]string]float64
}

func (l *labeled2) Describe(ch chan<- *prometheus.Desc) { ch <- l.desc }

func (l *labeled2) Collect(ch chan<- prometheus.Metric) {
	for v, n := range l.f() {
		ch <- prometheus.MustNewConstMetric(l.desc, prometheus.CounterValue, n, v[0], v[1])
	}
}

// Histogram is one histogram's state: Buckets[i] counts the observations within Bounds[i]
// (and above the bound before), the last those above every bound; Sum is in seconds.
type Histogram struct {
	Buckets []uint64
	Sum     float64
}

// Histograms registers a histogram family with one label over bounds (in seconds), whose
// histograms f reads when scraped (one per label value).
func (s *Server) Histograms(name, help, label string, bounds []float64, f func() map[string]Histogram) {
	s.registry.MustRegister(&histograms{desc: prometheus.NewDesc(name, help, []string{label}, nil), bounds: bounds, f: f})
}

type histograms struct {
	desc   *prometheus.Desc
	bounds []float64
	f      func() map[string]Histogram
}

func (h *histograms) Describe(ch chan<- *prometheus.Desc) { ch <- h.desc }

func (h *histograms) Collect(ch chan<- prometheus.Metric) {
	for v, hist := range h.f() {
		cumulative := make(map[float64]uint64, len(h.bounds))
		var n uint64
		for i, b := range h.bounds {
			if i < len(hist.Buckets) {
				n += hist.Buckets[i]
			}
			cumulative[b] = n
		}
		if len(hist.Buckets) > len(h.bounds) {
			n += hist.Buckets[len(h.bounds)]
		}
		ch <- prometheus.MustNewConstHistogram(h.desc, n, hist.Sum, cumulative, v)
	}
}

package discovery

import (
	"context"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Handler returns the Mira-style HTTP API of s:
//
//	GET /v1/engines   every instance: address, labels, health, last error, latest metrics (JSON)
//	GET /v1/health    the discovery service's own health (a liveness probe): 200, or 503
//	                  when the provider's last refresh failed; the body says why (JSON)
//	GET /v1/ready     readiness (a Kubernetes readiness probe): 200 when at least one
//	                  instance is healthy, else 503 with the same JSON body
//	GET /metrics      the discovery service's own metrics (Prometheus text format)
//	GET /             a status page that refreshes itself
//
// sessions, when not nil, is served at /v1/route (see SessionService.ServeHTTP).
func Handler(s *Service, sessions *SessionService) http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /v1/engines", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, s.Snapshot().All)
	})
	health := func(ready bool) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			snap := s.Snapshot()
			body := map[string]any{"provider": snap.Provider, "instances": len(snap.All), "healthy": len(snap.Healthy),
				"refreshed": snap.Refreshed}
			status := http.StatusOK
			if snap.ProviderError != "" {
				body["provider_error"] = snap.ProviderError
				status = http.StatusServiceUnavailable
			}
			if ready && len(snap.Healthy) == 0 {
				body["ready_error"] = "no healthy instance to route sessions to"
				status = http.StatusServiceUnavailable
			}
			writeJSON(w, status, body)
		}
	}
	mux.HandleFunc("GET /v1/health", health(false))
	mux.HandleFunc("GET /v1/ready", health(true))
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "discovery_instances", Help: "Instances the provider lists."},
			func() float64 { return float64(len(s.Snapshot().All)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "discovery_instances_healthy", Help: "Instances whose last health check passed."},
			func() float64 { return float64(len(s.Snapshot().Healthy)) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "discovery_provider_up", Help: "1 if the provider's last refresh succeeded."},
			func() float64 {
				if s.Snapshot().ProviderError != "" {
					return 0
				}
				return 1
			}),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "discovery_snapshots", Help: "Snapshots published so far."},
			func() float64 { return float64(s.Snapshot().Version) }),
	)
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	if sessions != nil {
		mux.Handle("/v1/route", sessions)
	}
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if err := statusPage.Execute(w, statusData(s.Snapshot())); err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
		}
	})
	return mux
}

type statusRow struct {
	Instance
	Key     string
	Metrics []string
	Age     string
}

func statusData(snap *Snapshot) map[string]any {
	rows := make([]statusRow, 0, len(snap.All))
	for _, in := range snap.All {
		row := statusRow{Instance: in, Key: in.Key()}
		names := make([]string, 0, len(in.Metrics))
		for n := range in.Metrics {
			names = append(names, n)
		}
		sort.Strings(names)
		for _, n := range names[:min(len(names), 6)] {
			row.Metrics = append(row.Metrics, fmt.Sprintf("%s=%g", n, in.Metrics[n]))
		}
		if !in.LastCheck.IsZero() {
			row.Age = time.Since(in.LastCheck).Round(time.Second).String() + " ago"
		}
		rows = append(rows, row)
	}
	slices.SortStableFunc(rows, func(a, b statusRow) int {
		switch {
		case a.Healthy == b.Healthy:
			return 0
		case !a.Healthy:
			return -1 // the unhealthy ones first: they are what a person looks for
		}
		return 1
	})
	return map[string]any{"Snap": snap, "Rows": rows, "Now": time.Now().Format(time.RFC3339)}
}

var statusPage = template.Must(template.New("status").Parse(`<!doctype html>
<html><head><meta charset="utf-8"><meta http-equiv="refresh" content="5">
<title>discovery: {{len .Snap.Healthy}}/{{len .Snap.All}} healthy</title>
<style>
body{font-family:system-ui,sans-serif;margin:2em}table{border-collapse:collapse}
td,th{padding:.3em .8em;border-bottom:1px solid #ddd;text-align:left;vertical-align:top}
.ok{color:#176b2c;font-weight:bold}.bad{color:#b00020;font-weight:bold}.err{color:#b00020}
small{color:#666}
</style></head><body>
<h1>{{len .Snap.Healthy}} of {{len .Snap.All}} instances healthy</h1>
<p>Provider <b>{{.Snap.Provider}}</b>{{if .Snap.ProviderError}} <span class="err">failing: {{.Snap.ProviderError}}</span> (showing the last good list){{else}}, last refreshed {{.Snap.Refreshed.Format "15:04:05"}}{{end}}. <small>Page from {{.Now}}; it refreshes every 5 s.</small></p>
<table><tr><th>instance</th><th>address</th><th>health</th><th>last error</th><th>metrics</th><th>checked</th></tr>
{{range .Rows}}<tr><td>{{.Key}}</td><td>{{.Addr}}</td>
<td>{{if .Healthy}}<span class="ok">healthy</span>{{else}}<span class="bad">unhealthy</span>{{end}}</td>
<td class="err">{{.LastError}}{{if .MetricsError}}<br>metrics: {{.MetricsError}}{{end}}</td>
<td>{{range .Metrics}}{{.}}<br>{{end}}</td><td><small>{{.Age}}</small></td></tr>
{{else}}<tr><td colspan="6">no instances</td></tr>{{end}}
</table></body></html>
`))

// RemoteSessions asks a session service in another process for routes over HTTP.
type RemoteSessions struct {
	// URL is the service's base URL, e.g. "http://127.0.0.1:9100".
	URL string
	// Client makes the requests. Nil means http.DefaultClient.
	Client *http.Client
}

// Route implements the same contract as SessionService.Route over HTTP: an error matching
// ErrNoHealthyInstance when the service answers 503.
func (rs *RemoteSessions) Route(ctx context.Context, session, document string) (Route, error) {
	return rs.route(ctx, session, document, "")
}

// Reroute implements SessionService.Reroute over HTTP.
func (rs *RemoteSessions) Reroute(ctx context.Context, session, document, refused string) (Route, error) {
	return rs.route(ctx, session, document, refused)
}

func (rs *RemoteSessions) route(ctx context.Context, session, document, refused string) (Route, error) {
	c := rs.Client
	if c == nil {
		c = http.DefaultClient
	}
	u := rs.URL + "/v1/route?session=" + urlQuery(session) + "&document=" + urlQuery(document)
	if refused != "" {
		u += "&refused=" + urlQuery(refused)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return Route{}, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return Route{}, fmt.Errorf("discovery: session service %s: %w", rs.URL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		var e struct{ Error string }
		_ = json.NewDecoder(resp.Body).Decode(&e)
		if resp.StatusCode == http.StatusServiceUnavailable {
			return Route{}, fmt.Errorf("%w: %s", ErrNoHealthyInstance, e.Error)
		}
		return Route{}, fmt.Errorf("discovery: session service %s: status %d: %s", rs.URL, resp.StatusCode, e.Error)
	}
	var route Route
	if err := json.NewDecoder(resp.Body).Decode(&route); err != nil {
		return Route{}, fmt.Errorf("discovery: session service %s: %w", rs.URL, err)
	}
	return route, nil
}

func urlQuery(s string) string { return url.QueryEscape(s) }

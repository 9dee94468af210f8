package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/globalsession/globalsession/internal/admin"
	"github.com/globalsession/globalsession/internal/config"
	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/relief"
	"github.com/globalsession/globalsession/sessioncache"
)

// startAdmin opens the file's admin listener, if it names one, lets register add the
// role's metrics and checks, and serves it until the role stops.
func startAdmin(f *config.File, out io.Writer, log *slog.Logger, stops *stopper, register func(*admin.Server)) error {
	if f.Admin == nil {
		return nil
	}
	addr := f.Admin.Address
	if addr == "" {
		addr = "127.0.0.1"
	}
	a, err := admin.Listen(config.HostPort(addr, f.Admin.Port))
	if err != nil {
		return &config.Error{File: f.Name, Field: "admin", Msg: err.Error()}
	}
	register(a)
	a.Serve(log)
	*stops = append(*stops, a.Shutdown)
	fmt.Fprintf(out, "admin: /health, /ready and /metrics on http://%s\n", a.Addr())
	return nil
}

// serverMetrics registers a relay protocol server's counts under prefix.
func serverMetrics(a *admin.Server, prefix string, stats func() relay.ServerStats) {
	a.GaugeFunc(prefix+"_connections", "Connections open now.", func() float64 { return float64(stats().Open) })
	a.CounterFunc(prefix+"_connections_accepted_total", "Connections served since the start.", func() float64 { return float64(stats().Accepted) })
	a.CounterFunc(prefix+"_connections_refused_total", "Connections closed at once: the connection limit was reached.",
		func() float64 { return float64(stats().Refused) })
	a.GaugeFunc(prefix+"_large_frame_bytes", "Bytes of the frame budget that large frames hold now.",
		func() float64 { return float64(stats().LargeFrameBytes) })
	a.GaugeFunc(prefix+"_large_frame_waits", "Connections waiting for a share of the frame budget now.",
		func() float64 { return float64(stats().LargeFrameWaits) })
	a.LabeledCounters(prefix+"_frames_received_total", "Frames received, by op.", "op", func() map[string]float64 {
		m := map[string]float64{}
		for op, n := range stats().Requests {
			m[op] = float64(n)
		}
		return m
	})
}

// requestMetrics registers a relay protocol server's answered requests under prefix: by
// op and status, and a latency histogram by op.
func requestMetrics(a *admin.Server, prefix string, requests func() []relay.RequestStats) {
	a.CountersBy2(prefix+"_requests_total", "Requests answered, by op and reply status.", [2]string{"op", "status"},
		func() map[[2]string]float64 {
			m := map[[2]string]float64{}
			for _, r := range requests() {
				for status, n := range r.ByStatus {
					m[[2]string{r.Op, status}] = float64(n)
				}
			}
			return m
		})
	a.Histograms(prefix+"_request_seconds", "Time from a request's arrival to its reply, by op.", "op", relay.LatencyBuckets,
		func() map[string]admin.Histogram {
			m := map[string]admin.Histogram{}
			for _, r := range requests() {
				m[r.Op] = admin.Histogram{Buckets: r.Buckets, Sum: r.Sum.Seconds()}
			}
			return m
		})
}

// tableMetrics registers a shared-memory table's counts under prefix.
func tableMetrics(a *admin.Server, prefix string, t *sessioncache.Table) {
	a.GaugeFunc(prefix+"_entries", "Entries in the table.", func() float64 { return float64(t.Stats().Len) })
	a.GaugeFunc(prefix+"_capacity", "Records in the table.", func() float64 { return float64(t.Capacity()) })
	a.CounterFunc(prefix+"_evictions_total", "Unexpired entries pushed out to make room.", func() float64 { return float64(t.Stats().Evictions) })
	a.CounterFunc(prefix+"_hits_total", "Lookups that found an entry.", func() float64 { return float64(t.Stats().Hits) })
	a.CounterFunc(prefix+"_misses_total", "Lookups that found none.", func() float64 { return float64(t.Stats().Misses) })
	a.CounterFunc(prefix+"_lock_recoveries_total", "Locks taken over from dead processes.", func() float64 { return float64(t.Stats().Recoveries) })
}

// relayMetrics registers the relay's metrics and readiness: its table is open and its
// tier below (the sibling) is set.
func relayMetrics(a *admin.Server, r *relay.Relay, lower func() bool) {
	serverMetrics(a, "relay", r.Server)
	requestMetrics(a, "relay", r.Requests)
	tableMetrics(a, "relay_table", r.Table())
	a.GaugeFunc("relay_outbox_pending", "Evictions and deletions not yet confirmed by the tier below.", func() float64 { return float64(r.Outbox().Pending) })
	a.CounterFunc("relay_outbox_refused_total", "Hand-downs refused because the outbox was full.", func() float64 { return float64(r.Outbox().Refused) })
	a.CounterFunc("relay_outbox_retries_total", "Hand-downs tried again after the tier below failed them.", func() float64 { return float64(r.Outbox().Retries) })
	a.CounterFunc("relay_lower_get_failures_total", "Lookups the tier below failed; the front end got an error, not a miss.",
		func() float64 { return float64(r.LowerGetFailures()) })
	a.CounterFunc("relay_evictions_unplaced_total", "Evictions dropped: the tier below keeps none.", func() float64 { return float64(r.Outbox().Unplaced) })
	a.CounterFunc("relay_expiries_left_out_total", "Deletions of versions that expired in the relay's table not handed down: the outbox was over half full.",
		func() float64 { return float64(r.Outbox().ExpiriesLeftOut) })
	a.Ready(admin.Check{Name: "table", Check: func(context.Context) error {
		if _, err := r.Table().Get([]byte("\x00ready")); err != nil && !errors.Is(err, sessioncache.ErrNotFound) {
			return err
		}
		return nil
	}}, admin.Check{Name: "sibling", Check: func(context.Context) error {
		if !lower() {
			return errors.New("not connected")
		}
		return nil
	}})
}

// siblingMetrics registers the sibling's metrics and readiness: a relief server is
// connected.
func siblingMetrics(a *admin.Server, s *relay.Sibling) {
	serverMetrics(a, "sibling", s.Server)
	requestMetrics(a, "sibling", s.Requests)
	a.GaugeFunc("sibling_relief_connected", "Relief servers connected now.", func() float64 { return float64(s.Relief()) })
	a.GaugeFunc("sibling_relief_members", "Relief servers that own keys, connected or not.", func() float64 { return float64(len(s.Members())) })
	a.CounterFunc("sibling_hints_added_total", "Changes kept for absent relief servers.", func() float64 { return float64(s.Hints().Added) })
	a.CounterFunc("sibling_hints_delivered_total", "Changes handed over to returning relief servers.", func() float64 { return float64(s.Hints().Delivered) })
	a.CounterFunc("sibling_hints_refused_total", "Changes refused: a server's hints were at their limit.", func() float64 { return float64(s.Hints().Refused) })
	a.CounterFunc("sibling_get_errors_total", "Lookups a relief server failed.", func() float64 { return float64(s.GetErrors()) })
	a.Ready(admin.Check{Name: "relief", Check: func(context.Context) error {
		if s.Relief() == 0 {
			return errors.New("no relief server is connected")
		}
		return nil
	}})
}

// reliefMetrics registers a relief server's metrics and readiness: it is connected to its
// sibling.
func reliefMetrics(a *admin.Server, s *relief.Server) {
	l := []string{"kind", s.Kind(), "id", s.ID()}
	a.GaugeFunc("relief_entries", "Entries in the store.", func() float64 { return float64(s.Stats().Entries) }, l...)
	a.CounterFunc("relief_sets_total", "New entries handed in.", func() float64 { return float64(s.Stats().Sets) }, l...)
	a.CounterFunc("relief_evictions_total", "Evicted entries handed in.", func() float64 { return float64(s.Stats().Evictions) }, l...)
	a.CounterFunc("relief_gets_total", "Lookups asked.", func() float64 { return float64(s.Stats().Gets) }, l...)
	a.CounterFunc("relief_hits_total", "Lookups answered with an entry.", func() float64 { return float64(s.Stats().Hits) }, l...)
	a.CounterFunc("relief_connects_total", "Connections made to the sibling.", func() float64 { return float64(s.Client().Connects()) }, l...)
	a.Ready(admin.Check{Name: "relief " + s.ID(), Check: func(context.Context) error {
		if !s.Client().Connected() {
			return errors.New("not connected to the sibling")
		}
		return nil
	}})
}

// gatewayMetrics registers a gateway's metrics and readiness: its relay is reachable.
func gatewayMetrics(a *admin.Server, parts *gatewayParts) {
	a.GaugeFunc("gateway_hub_users", "Users with push channels open.", func() float64 { return float64(parts.hub.Users()) })
	if parts.proxy != nil {
		a.GaugeFunc("gateway_proxied_connections", "WebSockets being relayed to backends now.", func() float64 { return float64(parts.proxy.Open()) })
	}
	if parts.relay == nil {
		return
	}
	a.CounterFunc("gateway_relay_connects_total", "Connections made to the relay.", func() float64 { return float64(parts.relay.Connects()) })
	a.Ready(admin.Check{Name: "relay", Check: func(context.Context) error {
		if !parts.relay.Connected() {
			return errors.New("not connected to the relay")
		}
		return nil
	}})
}

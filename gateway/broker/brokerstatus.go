package broker

import (
	"fmt"
	"net/http"
)

// Health answers 200 while the instance is connected to its relay, else 503: discovery
// polls it.
func (b *Broker) Health() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b.mu.Lock()
		closed := b.closed
		b.mu.Unlock()
		if closed || !b.cfg.Relay.Connected() {
			http.Error(w, "no relay connection", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
}

// Metrics serves the instance's counters in the Prometheus text format; the session
// service can pick the least loaded instance by gateway_broker_clients.
func (b *Broker) Metrics() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		b.mu.Lock()
		clients, groups := len(b.clients), len(b.groups)
		b.mu.Unlock()
		w.Header().Set("Content-Type", "text/plain; version=0.0.4")
		fmt.Fprintf(w, "# HELP gateway_broker_clients Connected WebSocket clients.\n# TYPE gateway_broker_clients gauge\ngateway_broker_clients %d\n", clients)
		fmt.Fprintf(w, "# HELP gateway_broker_groups Groups with a client here.\n# TYPE gateway_broker_groups gauge\ngateway_broker_groups %d\n", groups)
		for _, m := range []struct {
			name, help string
			v          uint64
		}{
			{"gateway_broker_messages_total", "Client messages sent to workers.", b.messages.Load()},
			{"gateway_broker_failures_total", "Client messages answered with an error notice.", b.failures.Load()},
			{"gateway_broker_delivered_total", "Replies delivered to clients of this instance.", b.delivered.Load()},
			{"gateway_broker_pushes_total", "Replies handed to the relay for other instances.", b.pushes.Load()},
		} {
			fmt.Fprintf(w, "# HELP %s %s\n# TYPE %s counter\n%s %d\n", m.name, m.help, m.name, m.name, m.v)
		}
	})
}

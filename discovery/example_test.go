package discovery_test

import (
	"context"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"

	"github.com/globalsession/globalsession/discovery"
)

// engine starts a stand-in for an engine instance: the health and Prometheus metrics
// endpoints discovery polls, reporting active sessions.
func engine(active int) *httptest.Server {
	return httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/health":
			fmt.Fprintln(w, "ok")
		case "/metrics":
			fmt.Fprintf(w, "# TYPE qix_active_sessions gauge\nqix_active_sessions %d\n", active)
		default:
			http.NotFound(w, r)
		}
	}))
}

// Discovery polls two instances and the session service sends a user's document to the
// less loaded one, and keeps sending it there.
func Example() {
	busy, idle := engine(40), engine(3)
	defer busy.Close()
	defer idle.Close()
	addr := func(s *httptest.Server) string { return strings.TrimPrefix(s.URL, "http://") }

	svc, err := discovery.New(discovery.Config{
		Provider: discovery.Static{{ID: "engine-busy", Addr: addr(busy)}, {ID: "engine-idle", Addr: addr(idle)}},
		Metrics:  []string{"qix_active_sessions"},
	})
	if err != nil {
		fmt.Println(err)
		return
	}
	defer svc.Close()
	ctx := context.Background()
	svc.Refresh(ctx) // now, rather than at Start's first interval
	for _, in := range svc.Instances() {
		load, _ := in.Metric("qix_active_sessions")
		fmt.Printf("%s healthy=%v active=%v\n", in.Key(), in.Healthy, load)
	}

	sessions, err := discovery.NewSessionService(discovery.SessionConfig{Source: svc, Metric: "qix_active_sessions"})
	if err != nil {
		fmt.Println(err)
		return
	}
	for range 2 {
		route, err := sessions.Route(ctx, "sid-alice", "budget.qvf")
		if err != nil {
			fmt.Println(err)
			return
		}
		fmt.Println("alice's budget.qvf goes to", route.Instance, "at", strings.TrimPrefix(route.URL, "ws://"+addr(idle)))
	}
	// Output:
	// engine-busy healthy=true active=40
	// engine-idle healthy=true active=3
	// alice's budget.qvf goes to engine-idle at /app/budget.qvf
	// alice's budget.qvf goes to engine-idle at /app/budget.qvf
}

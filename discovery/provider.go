package discovery

import (
	"context"
	"fmt"
)

// Target is an instance as a provider lists it: where it is and what it is labelled.
type Target struct {
	// ID identifies the instance across refreshes. Empty means Addr.
	ID string `json:"id"`
	// Addr is host:port of the instance's HTTP server (health, metrics, WebSocket).
	Addr string `json:"addr"`
	// Labels are free-form attributes (Kubernetes labels, SRV target, zone, ...).
	Labels map[string]string `json:"labels,omitempty"`
}

// Key returns the target's identity: its ID, or its address.
func (t Target) Key() string {
	if t.ID != "" {
		return t.ID
	}
	return t.Addr
}

func (t Target) String() string { return fmt.Sprintf("%s (%s)", t.Key(), t.Addr) }

// Provider lists the instances that exist now. Providers are polled every refresh
// interval; one that fails leaves the last good list in place.
type Provider interface {
	// Name says what the provider is, for status pages and errors ("static", "dns
	// _engine._tcp.example.com", ...).
	Name() string
	// Targets returns the current instances.
	Targets(ctx context.Context) ([]Target, error)
}

// ProviderFunc adapts a function to a Provider.
type ProviderFunc struct {
	// Label is returned by Name.
	Label string
	// Func is called by Targets.
	Func func(ctx context.Context) ([]Target, error)
}

var _ Provider = ProviderFunc{}

// Name implements Provider.
func (p ProviderFunc) Name() string { return p.Label }

// Targets implements Provider.
func (p ProviderFunc) Targets(ctx context.Context) ([]Target, error) { return p.Func(ctx) }

// Static is a fixed list of instances.
type Static []Target

var _ Provider = Static(nil)

// Name implements Provider.
func (s Static) Name() string { return "static" }

// Targets implements Provider.
func (s Static) Targets(context.Context) ([]Target, error) { return append([]Target(nil), s...), nil }

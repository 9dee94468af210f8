package broker

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"

	"github.com/globalsession/globalsession/discovery"
	"github.com/globalsession/globalsession/relay"
)

// memberLabel is how a gateway instance labels itself in GatewaysPath.
type memberLabel struct {
	ID  string `json:"id"`
	URL string `json:"url"`
}

// MemberProvider is a discovery.Provider of the gateway instances that are live now: those
// whose Broker joined GatewaysPath with an Advertise URL and whose relay connection has not
// dropped. Each target's ID is the instance name, its Addr the URL's host:port, and its
// "url" label the advertised URL (see BrokerURL). A member whose label is not one a Broker
// writes is left out, so one bad member cannot hide the others.
type MemberProvider struct {
	// Relay is the relay the gateway instances register with.
	Relay *relay.Client
}

var _ discovery.Provider = MemberProvider{}

// Name implements discovery.Provider.
func (p MemberProvider) Name() string { return "gateway members on relay " + p.Relay.Addr() }

// Targets implements discovery.Provider.
func (p MemberProvider) Targets(ctx context.Context) ([]discovery.Target, error) {
	labels, err := p.Relay.Members(ctx, GatewaysPath)
	if err != nil {
		return nil, err
	}
	out := make([]discovery.Target, 0, len(labels))
	var bad []string
	for _, l := range labels {
		var m memberLabel
		u, err := (*url.URL)(nil), json.Unmarshal([]byte(l), &m)
		if err == nil {
			u, err = url.Parse(m.URL)
		}
		if err != nil || m.ID == "" || u.Host == "" {
			bad = append(bad, l)
			continue
		}
		out = append(out, discovery.Target{ID: m.ID, Addr: u.Host, Labels: map[string]string{"url": m.URL}})
	}
	if len(out) == 0 && len(bad) > 0 {
		return nil, fmt.Errorf("gateway: no usable member label on %s: %q", GatewaysPath, bad)
	}
	return out, nil
}

// Live reports whether instance is registered on the relay now: its relay connection has
// not dropped (the relay forgets a member the moment its connection does). When the relay
// cannot be asked it reports true, leaving the decision to discovery's health checks.
func (p MemberProvider) Live(ctx context.Context, instance string) bool {
	targets, err := p.Targets(ctx)
	if err != nil {
		return true
	}
	for _, t := range targets {
		if t.ID == instance {
			return true
		}
	}
	return false
}

// BrokerURL is a discovery.SessionConfig URL function for gateway instances found by a
// MemberProvider: the WebSocket URL of group on the instance ("ws://host:port/ws/<group>",
// wss for an https instance).
func BrokerURL(in discovery.Instance, group string) string {
	return InstanceURL(in, "/ws/"+url.PathEscape(group))
}

// InstanceURL is the WebSocket URL of path on a gateway instance found by a MemberProvider
// (wss for an https instance): InstanceURL(in, "/hub") is its push hub.
func InstanceURL(in discovery.Instance, path string) string {
	scheme := "ws"
	if u, err := url.Parse(in.Labels["url"]); err == nil && u.Scheme == "https" {
		scheme = "wss"
	}
	return scheme + "://" + in.Addr + path
}

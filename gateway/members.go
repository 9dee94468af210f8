package gateway

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
// "url" label the advertised URL (see BrokerURL).
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
	for _, l := range labels {
		var m memberLabel
		if err := json.Unmarshal([]byte(l), &m); err != nil {
			return nil, fmt.Errorf("gateway: member label %q: %w", l, err)
		}
		u, err := url.Parse(m.URL)
		if err != nil || u.Host == "" {
			return nil, fmt.Errorf("gateway: member %s advertises %q, not a URL with a host", m.ID, m.URL)
		}
		out = append(out, discovery.Target{ID: m.ID, Addr: u.Host, Labels: map[string]string{"url": m.URL}})
	}
	return out, nil
}

// BrokerURL is a discovery.SessionConfig URL function for gateway instances found by a
// MemberProvider: the WebSocket URL of group on the instance ("ws://host:port/ws/<group>",
// wss for an https instance).
func BrokerURL(in discovery.Instance, group string) string {
	scheme := "ws"
	if u, err := url.Parse(in.Labels["url"]); err == nil && u.Scheme == "https" {
		scheme = "wss"
	}
	return scheme + "://" + in.Addr + "/ws/" + url.PathEscape(group)
}

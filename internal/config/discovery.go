package config

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/globalsession/globalsession/discovery"
)

// Discovery is the discovery block: a Mira-style discovery service with its session
// service. Exactly one provider (static, dns, kubernetes, file) is given.
type Discovery struct {
	Address    string             `json:"address"`
	Port       *int               `json:"port"`
	Static     []discovery.Target `json:"static"`
	DNS        *DNSBlock          `json:"dns"`
	Kubernetes *KubernetesBlock   `json:"kubernetes"`
	File       string             `json:"file"`
	// RefreshInterval, PollInterval and Timeout are Go durations ("10s").
	RefreshInterval Duration `json:"refresh_interval"`
	PollInterval    Duration `json:"poll_interval"`
	Timeout         Duration `json:"timeout"`
	HealthPath      string   `json:"health_path"`
	MetricsPath     string   `json:"metrics_path"`
	// Metrics names the metric families to keep; empty keeps all.
	Metrics []string `json:"metrics"`
	// LoadMetric makes the session service pick the less loaded instance by this metric;
	// without it, round-robin.
	LoadMetric string `json:"load_metric"`
	// NotSticky turns off keeping a session and document on their first instance.
	NotSticky bool `json:"not_sticky"`
}

// DNSBlock configures the DNS provider.
type DNSBlock struct {
	Name   string `json:"name"`
	Mode   string `json:"mode"`
	Port   int    `json:"port"`
	Server string `json:"server"`
}

// KubernetesBlock configures the Kubernetes EndpointSlice provider.
type KubernetesBlock struct {
	APIServer string `json:"api_server"`
	Namespace string `json:"namespace"`
	Selector  string `json:"selector"`
	PortName  string `json:"port_name"`
	TokenFile string `json:"token_file"`
	CAFile    string `json:"ca_file"`
}

// DiscoveryConfig returns the discovery service's config, its session service's config
// (without Source) and the address to serve on.
func (f *File) DiscoveryConfig(log *slog.Logger) (discovery.Config, discovery.SessionConfig, string, error) {
	d := f.Discovery
	var cfg discovery.Config
	var scfg discovery.SessionConfig
	field := func(name string) string { return "discovery." + name }
	n := 0
	if d.Static != nil {
		n++
		cfg.Provider = discovery.Static(d.Static)
	}
	if d.DNS != nil {
		n++
		p, err := discovery.NewDNS(discovery.DNSConfig{Name: d.DNS.Name, Mode: d.DNS.Mode, Port: d.DNS.Port, Server: d.DNS.Server})
		if err != nil {
			return cfg, scfg, "", &Error{File: f.Name, Field: field("dns"), Msg: err.Error()}
		}
		cfg.Provider = p
	}
	if d.Kubernetes != nil {
		n++
		k := d.Kubernetes
		p, err := discovery.NewKubernetes(discovery.KubernetesConfig{APIServer: k.APIServer, Namespace: k.Namespace,
			Selector: k.Selector, PortName: k.PortName, TokenFile: f.resolve(k.TokenFile), CAFile: f.resolve(k.CAFile)})
		if err != nil {
			return cfg, scfg, "", &Error{File: f.Name, Field: field("kubernetes"), Msg: err.Error()}
		}
		cfg.Provider = p
	}
	if d.File != "" {
		n++
		cfg.Provider = discovery.NewFile(f.resolve(d.File))
	}
	if n != 1 {
		return cfg, scfg, "", &Error{File: f.Name, Field: "discovery", Msg: fmt.Sprintf("give exactly one provider (static, dns, kubernetes or file), not %d", n)}
	}
	if d.Port == nil {
		return cfg, scfg, "", &Error{File: f.Name, Field: field("port"), Msg: "required"}
	}
	cfg.RefreshInterval, cfg.PollInterval, cfg.Timeout = time.Duration(d.RefreshInterval), time.Duration(d.PollInterval), time.Duration(d.Timeout)
	cfg.HealthPath, cfg.MetricsPath, cfg.Metrics, cfg.Logger = d.HealthPath, d.MetricsPath, d.Metrics, log
	scfg = discovery.SessionConfig{Metric: d.LoadMetric, NotSticky: d.NotSticky}
	return cfg, scfg, addr(d.Address, d.Port), nil
}

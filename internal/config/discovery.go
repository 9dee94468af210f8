package config

// Discovery is the discovery block: a discovery service in the style of Mira (Qlik's
// engine discovery service) with its session service. Exactly one provider (static, dns,
// kubernetes, file) is given.
type Discovery struct {
	Address    string           `json:"address"`
	Port       *int             `json:"port"`
	Static     []Target         `json:"static"`
	DNS        *DNSBlock        `json:"dns"`
	Kubernetes *KubernetesBlock `json:"kubernetes"`
	File       string           `json:"file"`
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
	// Prepare has the session service prepare each new session on its instance over HTTP.
	Prepare *PrepareBlock `json:"prepare"`
}

// PrepareBlock configures the session service's HTTP preparer (discovery.HTTPPreparer).
type PrepareBlock struct {
	// Path is the instances' preparation endpoint (default "/v1/prepare").
	Path string `json:"path"`
	// TTL is how long an instance keeps a prepared session with no connection (default 5m).
	TTL Duration `json:"ttl"`
	// Timeout bounds one preparation (default 5s).
	Timeout Duration `json:"timeout"`
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

// Target is an instance of a static provider (discovery.Target's fields).
type Target struct {
	ID     string            `json:"id"`
	Addr   string            `json:"addr"`
	Labels map[string]string `json:"labels,omitempty"`
}

package discovery

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"
)

const (
	// k8sServiceAccountDir holds the credentials Kubernetes mounts into pods.
	k8sServiceAccountDir = "/var/run/secrets/kubernetes.io/serviceaccount"
	// k8sDefaultTimeout bounds one Kubernetes.Targets call when
	// KubernetesConfig.Timeout is zero.
	k8sDefaultTimeout = 5 * time.Second
	// k8sMaxBody bounds the size of an EndpointSlice list read.
	k8sMaxBody = 64 << 20
	// k8sErrorBody is how much of the body of a failed answer an error quotes.
	k8sErrorBody = 512
	// k8sMaxPages bounds how many continued list pages one call follows.
	k8sMaxPages = 100
)

// KubernetesConfig configures a Kubernetes provider. Every field has a default:
// its zero value means what its comment says, which suits a pod whose service
// account may list EndpointSlices.
type KubernetesConfig struct {
	// APIServer is the base URL of the Kubernetes API server, such as
	// "https://kubernetes.default.svc" or "http://127.0.0.1:8001" (kubectl
	// proxy). Empty means https://$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT.
	APIServer string
	// Namespace is the namespace of the EndpointSlices. Empty means the
	// namespace of the pod, read by NewKubernetes from
	// /var/run/secrets/kubernetes.io/serviceaccount/namespace.
	Namespace string
	// Selector is the label selector of the EndpointSlices, such as
	// "app=qix-engine" or "kubernetes.io/service-name=engine". Empty means every
	// EndpointSlice of the namespace.
	Selector string
	// PortName is the name of the port of the EndpointSlices to use. Empty means
	// the first port of each slice.
	PortName string
	// TokenFile is the file holding the bearer token, re-read on every call as
	// tokens rotate. Empty means
	// /var/run/secrets/kubernetes.io/serviceaccount/token, or no token when
	// that file does not exist (as through kubectl proxy).
	TokenFile string
	// CAFile is the PEM file of the certificate authorities to trust when
	// APIServer is https, read by NewKubernetes. Empty means
	// /var/run/secrets/kubernetes.io/serviceaccount/ca.crt, or the system's
	// authorities when that file does not exist. Unused when Client is set.
	CAFile string
	// Client sends the requests. Nil means a client of its own, trusting
	// CAFile.
	Client *http.Client
	// Timeout bounds one Targets call. Zero means 5 seconds.
	Timeout time.Duration
}

// Kubernetes is a Provider that lists the ready endpoints of the EndpointSlices
// (discovery.k8s.io/v1) matching a label selector, asking the Kubernetes API
// server directly over HTTP. A Kubernetes is safe for concurrent use.
type Kubernetes struct {
	name          string
	listURL       string // without the continue parameter
	portName      string
	tokenFile     string
	tokenOptional bool // the token file is the default one: missing means no token
	client        *http.Client
	timeout       time.Duration
}

var _ Provider = (*Kubernetes)(nil)

// NewKubernetes returns a Kubernetes provider for cfg. It fails when the API
// server URL is missing or malformed, the namespace is not set and cannot be
// read, or the CA file cannot be read.
func NewKubernetes(cfg KubernetesConfig) (*Kubernetes, error) {
	base := strings.TrimSpace(cfg.APIServer)
	if base == "" {
		host, port := os.Getenv("KUBERNETES_SERVICE_HOST"), os.Getenv("KUBERNETES_SERVICE_PORT")
		if host == "" || port == "" {
			return nil, errors.New("discovery: kubernetes: no API server: APIServer is empty and KUBERNETES_SERVICE_HOST or KUBERNETES_SERVICE_PORT is not set")
		}
		base = "https://" + net.JoinHostPort(host, port)
	}
	u, err := url.Parse(base)
	if err != nil {
		return nil, fmt.Errorf("discovery: kubernetes: API server %q: %w", base, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("discovery: kubernetes: API server %q: want an http or https URL", base)
	}

	ns := strings.TrimSpace(cfg.Namespace)
	if ns == "" {
		if ns, err = k8sReadNamespace(k8sServiceAccountDir + "/namespace"); err != nil {
			return nil, fmt.Errorf("discovery: kubernetes: no namespace: %w", err)
		}
	}
	name := "kubernetes " + ns
	if cfg.Selector != "" {
		name += " " + cfg.Selector
	}

	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("discovery: %s: negative timeout %v", name, cfg.Timeout)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = k8sDefaultTimeout
	}

	tokenFile, tokenOptional := cfg.TokenFile, false
	if tokenFile == "" {
		tokenFile, tokenOptional = k8sServiceAccountDir+"/token", true
	}

	client := cfg.Client
	if client == nil {
		var roots *x509.CertPool
		if u.Scheme == "https" {
			caFile, caOptional := cfg.CAFile, false
			if caFile == "" {
				caFile, caOptional = k8sServiceAccountDir+"/ca.crt", true
			}
			if roots, err = k8sReadCA(caFile, caOptional); err != nil {
				return nil, fmt.Errorf("discovery: %s: %w", name, err)
			}
		}
		client = &http.Client{Transport: k8sTransport(roots)}
	}

	u = u.JoinPath("apis/discovery.k8s.io/v1/namespaces", ns, "endpointslices")
	if cfg.Selector != "" {
		u.RawQuery = url.Values{"labelSelector": {cfg.Selector}}.Encode()
	}
	return &Kubernetes{
		name:          name,
		listURL:       u.String(),
		portName:      cfg.PortName,
		tokenFile:     tokenFile,
		tokenOptional: tokenOptional,
		client:        client,
		timeout:       timeout,
	}, nil
}

// k8sReadNamespace returns the namespace written in the file at path.
func k8sReadNamespace(path string) (string, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	ns := strings.TrimSpace(string(b))
	if ns == "" {
		return "", fmt.Errorf("%s is empty", path)
	}
	return ns, nil
}

// k8sReadCA returns the certificate authorities of the PEM file at path, or nil
// (the system's authorities) when the file does not exist and optional is set.
func k8sReadCA(path string, optional bool) (*x509.CertPool, error) {
	pem, err := os.ReadFile(path)
	if optional && errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("CA file %s: no PEM certificate", path)
	}
	return pool, nil
}

// k8sTransport returns an HTTP transport like http.DefaultTransport that
// trusts roots, or the system's authorities when roots is nil.
func k8sTransport(roots *x509.CertPool) *http.Transport {
	var tr *http.Transport
	if dt, ok := http.DefaultTransport.(*http.Transport); ok {
		tr = dt.Clone()
	} else {
		tr = &http.Transport{Proxy: http.ProxyFromEnvironment, ForceAttemptHTTP2: true}
	}
	tr.TLSClientConfig = &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12}
	return tr
}

// Name implements Provider: it is "kubernetes", the namespace and the selector.
func (k *Kubernetes) Name() string { return k.name }

// Targets implements Provider. It returns one target per address of each ready
// endpoint (an endpoint without a ready condition is ready) on the chosen port
// of its slice: its ID is the name of the endpoint's target reference (the pod)
// if any, else its address; its labels are the labels of the slice plus "node"
// (the endpoint's node) and "pod" (the pod it refers to) when known. The list
// is sorted by ID then address, and an ID seen twice (the same pod in an IPv4
// and an IPv6 slice, or in two slices while they are updated) is listed once,
// with its lowest address (IPv4 before IPv6). Slices without the chosen port are skipped; it is
// an error when no slice with endpoints has it. An answer other than 2xx, an
// unreadable token file and an undecodable answer are errors too.
func (k *Kubernetes) Targets(ctx context.Context) ([]Target, error) {
	ctx, cancel := context.WithTimeout(ctx, k.timeout)
	defer cancel()
	token, err := k.token()
	if err != nil {
		return nil, fmt.Errorf("discovery: %s: %w", k.name, err)
	}
	var items []k8sEndpointSlice
	cont := ""
	for page := 0; ; page++ {
		if page == k8sMaxPages {
			return nil, fmt.Errorf("discovery: %s: list continued over more than %d pages", k.name, k8sMaxPages)
		}
		list, err := k.list(ctx, token, cont)
		if err != nil {
			return nil, fmt.Errorf("discovery: %s: %w", k.name, err)
		}
		items = append(items, list.Items...)
		if cont = list.Metadata.Continue; cont == "" {
			break
		}
	}
	targets, err := k.targets(items)
	if err != nil {
		return nil, fmt.Errorf("discovery: %s: %w", k.name, err)
	}
	return targets, nil
}

// token reads the bearer token; "" means none.
func (k *Kubernetes) token() (string, error) {
	b, err := os.ReadFile(k.tokenFile)
	if err != nil {
		if k.tokenOptional && errors.Is(err, fs.ErrNotExist) {
			return "", nil
		}
		return "", fmt.Errorf("token: %w", err)
	}
	return strings.TrimSpace(string(b)), nil
}

// list gets one page of the EndpointSlice list.
func (k *Kubernetes) list(ctx context.Context, token, cont string) (*k8sEndpointSliceList, error) {
	u := k.listURL
	if cont != "" {
		sep := "?"
		if strings.Contains(u, "?") {
			sep = "&"
		}
		u += sep + url.Values{"continue": {cont}}.Encode()
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, err // *url.Error names the method and URL
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, k8sErrorBody))
		body := strings.Join(strings.Fields(strings.ToValidUTF8(string(b), "?")), " ")
		return nil, fmt.Errorf("GET %s: %s: %s", u, resp.Status, body)
	}
	var list k8sEndpointSliceList
	if err := json.NewDecoder(io.LimitReader(resp.Body, k8sMaxBody)).Decode(&list); err != nil {
		return nil, fmt.Errorf("GET %s: decoding the EndpointSlice list: %w", u, err)
	}
	if list.Kind != "" && list.Kind != "EndpointSliceList" {
		return nil, fmt.Errorf("GET %s: got a %s, want an EndpointSliceList", u, list.Kind)
	}
	return &list, nil
}

// targets turns EndpointSlices into sorted targets.
func (k *Kubernetes) targets(items []k8sEndpointSlice) ([]Target, error) {
	var (
		targets  []Target
		withEPs  bool // some slice has endpoints
		withPort bool // some slice with endpoints has the port
	)
	for _, s := range items {
		if len(s.Endpoints) == 0 {
			continue
		}
		withEPs = true
		port, ok := k.port(s.Ports)
		if !ok {
			continue
		}
		withPort = true
		for _, ep := range s.Endpoints {
			if ep.Conditions.Ready != nil && !*ep.Conditions.Ready {
				continue
			}
			for _, a := range ep.Addresses {
				addr := net.JoinHostPort(a, strconv.Itoa(port))
				t := Target{ID: addr, Addr: addr, Labels: maps.Clone(s.Metadata.Labels)}
				if t.Labels == nil {
					t.Labels = make(map[string]string)
				}
				if ep.NodeName != "" {
					t.Labels["node"] = ep.NodeName
				}
				if ref := ep.TargetRef; ref != nil && ref.Name != "" {
					t.ID = ref.Name
					if ref.Kind == "" || ref.Kind == "Pod" {
						t.Labels["pod"] = ref.Name
					}
				}
				targets = append(targets, t)
			}
		}
	}
	if withEPs && !withPort {
		if k.portName != "" {
			return nil, fmt.Errorf("no EndpointSlice has a port named %q", k.portName)
		}
		return nil, errors.New("no EndpointSlice lists a port")
	}
	slices.SortStableFunc(targets, func(a, b Target) int {
		return cmp.Or(strings.Compare(a.ID, b.ID), compareHostPort(a.Addr, b.Addr))
	})
	return slices.CompactFunc(targets, func(a, b Target) bool { return a.ID == b.ID }), nil
}

// port returns the chosen port of a slice: the one named k.portName, or the
// first. A port without a number (all ports) does not count.
func (k *Kubernetes) port(ports []k8sEndpointPort) (int, bool) {
	for _, p := range ports {
		if k.portName != "" && p.Name != k.portName {
			continue
		}
		if p.Port == nil || *p.Port < 1 || *p.Port > 65535 {
			return 0, false
		}
		return int(*p.Port), true
	}
	return 0, false
}

// k8sEndpointSliceList is the part of a discovery.k8s.io/v1 EndpointSliceList
// that Kubernetes reads.
type k8sEndpointSliceList struct {
	Kind     string `json:"kind"`
	Metadata struct {
		Continue string `json:"continue"`
	} `json:"metadata"`
	Items []k8sEndpointSlice `json:"items"`
}

// k8sEndpointSlice is the part of a discovery.k8s.io/v1 EndpointSlice that
// Kubernetes reads.
type k8sEndpointSlice struct {
	Metadata struct {
		Labels map[string]string `json:"labels"`
	} `json:"metadata"`
	Ports     []k8sEndpointPort `json:"ports"`
	Endpoints []struct {
		Addresses  []string `json:"addresses"`
		Conditions struct {
			Ready *bool `json:"ready"`
		} `json:"conditions"`
		TargetRef *struct {
			Kind string `json:"kind"`
			Name string `json:"name"`
		} `json:"targetRef"`
		NodeName string `json:"nodeName"`
	} `json:"endpoints"`
}

// k8sEndpointPort is a port of an EndpointSlice.
type k8sEndpointPort struct {
	Name string `json:"name"`
	Port *int32 `json:"port"`
}

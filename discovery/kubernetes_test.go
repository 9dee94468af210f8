package discovery

import (
	"context"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// k8sTestSlices is an EndpointSliceList as the API server writes it: an IPv4
// and an IPv6 slice of a dual-stack Service with two ports, and the pods
// qix-engine-6c8f9d7b5-4xk2p (on both), -9mzrt (not ready), -h7v2c (no ready
// condition, so ready) and -tq8wn (terminating, not ready), and an address
// without a target reference.
const k8sTestSlices = `{
  "kind": "EndpointSliceList",
  "apiVersion": "discovery.k8s.io/v1",
  "metadata": {"resourceVersion": "4815162"},
  "items": [
    {
      "metadata": {
        "name": "qix-engine-8xq2z",
        "generateName": "qix-engine-",
        "namespace": "analytics",
        "uid": "5b0e3c1e-2f4a-4c55-9d0b-7a1f3e9c2b11",
        "resourceVersion": "4815160",
        "generation": 7,
        "creationTimestamp": "2024-05-02T08:14:03Z",
        "labels": {
          "app": "qix-engine",
          "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
          "kubernetes.io/service-name": "qix-engine"
        },
        "annotations": {"endpoints.kubernetes.io/last-change-trigger-time": "2024-05-02T09:30:12Z"},
        "ownerReferences": [{"apiVersion": "v1", "kind": "Service", "name": "qix-engine", "uid": "0c6f1a52-8e7d-4b8e-a0c9-1d2e3f4a5b6c", "controller": true, "blockOwnerDeletion": true}]
      },
      "addressType": "IPv4",
      "endpoints": [
        {
          "addresses": ["10.244.2.31"],
          "conditions": {"ready": true, "serving": true, "terminating": false},
          "targetRef": {"kind": "Pod", "namespace": "analytics", "name": "qix-engine-6c8f9d7b5-4xk2p", "uid": "a1b2c3d4-0000-4000-8000-000000000001"},
          "nodeName": "worker-2",
          "zone": "eu-west-1b"
        },
        {
          "addresses": ["10.244.1.9"],
          "conditions": {"ready": false, "serving": false, "terminating": false},
          "targetRef": {"kind": "Pod", "namespace": "analytics", "name": "qix-engine-6c8f9d7b5-9mzrt", "uid": "a1b2c3d4-0000-4000-8000-000000000002"},
          "nodeName": "worker-1",
          "zone": "eu-west-1a"
        },
        {
          "addresses": ["10.244.1.10"],
          "conditions": {},
          "targetRef": {"kind": "Pod", "namespace": "analytics", "name": "qix-engine-6c8f9d7b5-h7v2c", "uid": "a1b2c3d4-0000-4000-8000-000000000003"},
          "nodeName": "worker-1",
          "zone": "eu-west-1a"
        },
        {
          "addresses": ["10.244.3.4"],
          "conditions": {"ready": false, "serving": true, "terminating": true},
          "targetRef": {"kind": "Pod", "namespace": "analytics", "name": "qix-engine-6c8f9d7b5-tq8wn", "uid": "a1b2c3d4-0000-4000-8000-000000000004"},
          "nodeName": "worker-3",
          "zone": "eu-west-1c"
        },
        {
          "addresses": ["192.168.7.20"],
          "conditions": {"ready": true}
        }
      ],
      "ports": [
        {"name": "http", "protocol": "TCP", "port": 9076, "appProtocol": "http"},
        {"name": "metrics", "protocol": "TCP", "port": 9090}
      ]
    },
    {
      "metadata": {
        "name": "qix-engine-w7k4d",
        "generateName": "qix-engine-",
        "namespace": "analytics",
        "uid": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
        "resourceVersion": "4815161",
        "generation": 2,
        "creationTimestamp": "2024-05-02T08:14:03Z",
        "labels": {
          "app": "qix-engine",
          "endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
          "kubernetes.io/service-name": "qix-engine"
        }
      },
      "addressType": "IPv6",
      "endpoints": [
        {
          "addresses": ["fd00:10:244:2::31"],
          "conditions": {"ready": true, "serving": true, "terminating": false},
          "targetRef": {"kind": "Pod", "namespace": "analytics", "name": "qix-engine-6c8f9d7b5-4xk2p", "uid": "a1b2c3d4-0000-4000-8000-000000000001"},
          "nodeName": "worker-2"
        }
      ],
      "ports": [
        {"name": "metrics", "protocol": "TCP", "port": 9090},
        {"name": "http", "protocol": "TCP", "port": 9076, "appProtocol": "http"}
      ]
    }
  ]
}`

// k8sTestCont is a continue token of a list.
const k8sTestCont = "eyJ2IjoibWV0YS5rOHMuaW8vdjEiLCJydiI6NDgxNTE3MH0"

// k8sTestSlice returns an EndpointSliceList of one slice with one ready pod,
// continued by cont when it is not empty.
func k8sTestSlice(pod, addr, cont string) string {
	return fmt.Sprintf(`{
  "kind": "EndpointSliceList",
  "apiVersion": "discovery.k8s.io/v1",
  "metadata": {"resourceVersion": "4815170", "continue": %q},
  "items": [{
    "metadata": {"name": "qix-engine-%s", "namespace": "analytics", "labels": {"app": "qix-engine"}},
    "addressType": "IPv4",
    "endpoints": [{"addresses": [%q], "conditions": {"ready": true}, "targetRef": {"kind": "Pod", "name": %q}, "nodeName": "worker-1"}],
    "ports": [{"name": "http", "protocol": "TCP", "port": 9076}]
  }]
}`, cont, pod, addr, pod)
}

// k8sTestTarget is a target of k8sTestSlice.
func k8sTestTarget(pod, addr string) Target {
	return Target{ID: pod, Addr: addr + ":9076", Labels: map[string]string{"app": "qix-engine", "node": "worker-1", "pod": pod}}
}

// k8sTestServer is a Kubernetes API server serving EndpointSlice lists of the
// namespace "analytics".
type k8sTestServer struct {
	*httptest.Server

	mu       sync.Mutex
	token    string            // bearer token wanted
	selector string            // labelSelector wanted
	status   int               // if not 0, the status to answer with, body being pages[""]
	pages    map[string]string // bodies by continue parameter
	block    chan struct{}     // if not nil, requests wait for it to close
	requests int
}

// newK8sTestServer starts a k8sTestServer, over TLS if tls is set, and stops it
// when the test ends.
func newK8sTestServer(t *testing.T, tls bool) *k8sTestServer {
	t.Helper()
	s := &k8sTestServer{token: "token-1", selector: "app=qix-engine"}
	if tls {
		s.Server = httptest.NewTLSServer(http.HandlerFunc(s.serve))
	} else {
		s.Server = httptest.NewServer(http.HandlerFunc(s.serve))
	}
	t.Cleanup(s.Close)
	return s
}

func (s *k8sTestServer) set(f func(s *k8sTestServer)) {
	s.mu.Lock()
	defer s.mu.Unlock()
	f(s)
}

func (s *k8sTestServer) serve(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	s.requests++
	block := s.block
	token, selector, status := s.token, s.selector, s.status
	body, ok := s.pages[r.URL.Query().Get("continue")]
	s.mu.Unlock()
	if block != nil {
		select {
		case <-block:
		case <-r.Context().Done():
			return
		}
	}

	wantAuth := ""
	if token != "" {
		wantAuth = "Bearer " + token
	}
	k8sStatus := func(code int, reason, msg string) {
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(code)
		fmt.Fprintf(w, `{"kind":"Status","apiVersion":"v1","metadata":{},"status":"Failure","message":%q,"reason":%q,"code":%d}`+"\n", msg, reason, code)
	}
	switch {
	case r.Method != http.MethodGet || r.URL.Path != "/apis/discovery.k8s.io/v1/namespaces/analytics/endpointslices":
		k8sStatus(http.StatusNotFound, "NotFound", "the server could not find the requested resource "+r.Method+" "+r.URL.Path)
	case r.Header.Get("Authorization") != wantAuth:
		k8sStatus(http.StatusUnauthorized, "Unauthorized", "Unauthorized")
	case r.URL.Query().Get("labelSelector") != selector:
		k8sStatus(http.StatusBadRequest, "BadRequest", "unexpected labelSelector "+r.URL.Query().Get("labelSelector"))
	case status != 0:
		w.WriteHeader(status)
		_, _ = w.Write([]byte(body))
	case !ok:
		k8sStatus(http.StatusGone, "Expired", "The provided continue parameter is too old")
	default:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(body))
	}
}

// k8sTestToken writes token into a new token file and returns its path.
func k8sTestToken(t *testing.T, token string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(path, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestKubernetesTargets(t *testing.T) {
	sliceLabels := func(node, pod string) map[string]string {
		l := map[string]string{
			"app":                                    "qix-engine",
			"endpointslice.kubernetes.io/managed-by": "endpointslice-controller.k8s.io",
			"kubernetes.io/service-name":             "qix-engine",
		}
		if node != "" {
			l["node"] = node
		}
		if pod != "" {
			l["pod"] = pod
		}
		return l
	}
	allOn := func(port string) []Target {
		return []Target{
			{ID: "192.168.7.20:" + port, Addr: "192.168.7.20:" + port, Labels: sliceLabels("", "")},
			{ID: "qix-engine-6c8f9d7b5-4xk2p", Addr: "10.244.2.31:" + port, Labels: sliceLabels("worker-2", "qix-engine-6c8f9d7b5-4xk2p")},
			{ID: "qix-engine-6c8f9d7b5-h7v2c", Addr: "10.244.1.10:" + port, Labels: sliceLabels("worker-1", "qix-engine-6c8f9d7b5-h7v2c")},
		}
	}

	tests := []struct {
		name      string
		cfg       KubernetesConfig // APIServer, Namespace and TokenFile are set by the test
		fileToken string           // token in the token file; "" means the one the server wants
		status    int
		pages     map[string]string
		want      []Target
		wantErr   string
	}{{
		name:  "ready endpoints on the first port",
		cfg:   KubernetesConfig{Selector: "app=qix-engine"},
		pages: map[string]string{"": k8sTestSlices},
		want:  allOn("9076"),
	}, {
		name:  "named port that is not the first of every slice",
		cfg:   KubernetesConfig{Selector: "app=qix-engine", PortName: "metrics"},
		pages: map[string]string{"": k8sTestSlices},
		want:  allOn("9090"),
	}, {
		name:    "unknown port name",
		cfg:     KubernetesConfig{Selector: "app=qix-engine", PortName: "websocket"},
		pages:   map[string]string{"": k8sTestSlices},
		wantErr: `discovery: kubernetes analytics app=qix-engine: no EndpointSlice has a port named "websocket"`,
	}, {
		name:  "selector with several terms",
		cfg:   KubernetesConfig{Selector: "app=qix-engine,tier in (a,b)"},
		pages: map[string]string{"": k8sTestSlice("qix-engine-0", "10.0.0.1", "")},
		want:  []Target{k8sTestTarget("qix-engine-0", "10.0.0.1")},
	}, {
		name:  "no selector",
		pages: map[string]string{"": k8sTestSlice("qix-engine-0", "10.0.0.1", "")},
		want:  []Target{k8sTestTarget("qix-engine-0", "10.0.0.1")},
	}, {
		name: "continued list",
		cfg:  KubernetesConfig{Selector: "app=qix-engine"},
		pages: map[string]string{
			"":          k8sTestSlice("qix-engine-b", "10.0.0.2", k8sTestCont),
			k8sTestCont: k8sTestSlice("qix-engine-a", "10.0.0.1", ""),
		},
		want: []Target{k8sTestTarget("qix-engine-a", "10.0.0.1"), k8sTestTarget("qix-engine-b", "10.0.0.2")},
	}, {
		name: "Service without endpoints",
		cfg:  KubernetesConfig{Selector: "app=qix-engine", PortName: "http"},
		pages: map[string]string{"": `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"1"},"items":[
			{"metadata":{"name":"qix-engine-zz9x1","labels":{"app":"qix-engine"}},"addressType":"IPv4","endpoints":null,"ports":null}]}`},
		want: nil,
	}, {
		name:  "no EndpointSlice",
		cfg:   KubernetesConfig{Selector: "app=qix-engine"},
		pages: map[string]string{"": `{"kind":"EndpointSliceList","apiVersion":"discovery.k8s.io/v1","metadata":{"resourceVersion":"1"},"items":[]}`},
		want:  nil,
	}, {
		name:      "wrong token",
		cfg:       KubernetesConfig{Selector: "app=qix-engine"},
		fileToken: "token-0",
		pages:     map[string]string{"": k8sTestSlices},
		wantErr:   `/apis/discovery.k8s.io/v1/namespaces/analytics/endpointslices?labelSelector=app%3Dqix-engine: 401 Unauthorized: {"kind":"Status"`,
	}, {
		name:    "server error",
		cfg:     KubernetesConfig{Selector: "app=qix-engine"},
		status:  http.StatusInternalServerError,
		pages:   map[string]string{"": "etcdserver: request timed out\n" + strings.Repeat("x", 2000)},
		wantErr: "500 Internal Server Error: etcdserver: request timed out xxxx",
	}, {
		name:    "garbage JSON",
		cfg:     KubernetesConfig{Selector: "app=qix-engine"},
		pages:   map[string]string{"": `{"kind":"EndpointSliceList","items":[{"metadata":`},
		wantErr: "decoding the EndpointSlice list: unexpected EOF",
	}, {
		name:    "HTML",
		cfg:     KubernetesConfig{Selector: "app=qix-engine"},
		pages:   map[string]string{"": "<html><body>Welcome</body></html>"},
		wantErr: "decoding the EndpointSlice list: invalid character '<'",
	}, {
		name:    "another kind",
		cfg:     KubernetesConfig{Selector: "app=qix-engine"},
		pages:   map[string]string{"": `{"kind":"EndpointsList","apiVersion":"v1","items":[]}`},
		wantErr: "got a EndpointsList, want an EndpointSliceList",
	}, {
		name:    "expired continue token",
		cfg:     KubernetesConfig{Selector: "app=qix-engine"},
		pages:   map[string]string{"": k8sTestSlice("qix-engine-b", "10.0.0.2", "stale")},
		wantErr: "410 Gone",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newK8sTestServer(t, false)
			srv.set(func(s *k8sTestServer) {
				s.selector = tt.cfg.Selector
				s.status, s.pages = tt.status, tt.pages
			})
			cfg := tt.cfg
			cfg.APIServer, cfg.Namespace = srv.URL, "analytics"
			token := "token-1"
			if tt.fileToken != "" {
				token = tt.fileToken
			}
			cfg.TokenFile = k8sTestToken(t, token)
			k, err := NewKubernetes(cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Targets(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Targets() = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				if !strings.HasPrefix(err.Error(), "discovery: "+k.Name()+": ") {
					t.Errorf("error %q does not start with the provider's name", err)
				}
				if len(err.Error()) > 1000 {
					t.Errorf("error is %d bytes long, want the body cut", len(err.Error()))
				}
				return
			}
			if err != nil {
				t.Fatalf("Targets(): %v", err)
			}
			equalTargetsForTest(t, got, tt.want)
		})
	}
}

func TestKubernetesChangesAndTokenRotation(t *testing.T) {
	srv := newK8sTestServer(t, false)
	tokenFile := k8sTestToken(t, "token-1")
	k, err := NewKubernetes(KubernetesConfig{
		APIServer: srv.URL + "/",
		Namespace: "analytics",
		Selector:  "app=qix-engine",
		TokenFile: tokenFile,
	})
	if err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		name        string
		fileToken   string // written to the token file if not empty
		serverToken string
		body        string
		want        []Target
		wantErr     string
	}{{
		name:        "first list",
		serverToken: "token-1",
		body:        k8sTestSlice("qix-engine-a", "10.0.0.1", ""),
		want:        []Target{k8sTestTarget("qix-engine-a", "10.0.0.1")},
	}, {
		name:        "pod replaced",
		serverToken: "token-1",
		body:        k8sTestSlice("qix-engine-b", "10.0.0.2", ""),
		want:        []Target{k8sTestTarget("qix-engine-b", "10.0.0.2")},
	}, {
		name:        "token rotated by the server, not yet in the file",
		serverToken: "token-2",
		body:        k8sTestSlice("qix-engine-b", "10.0.0.2", ""),
		wantErr:     "401 Unauthorized",
	}, {
		name:        "token rotated in the file",
		fileToken:   "token-2",
		serverToken: "token-2",
		body:        k8sTestSlice("qix-engine-c", "10.0.0.3", ""),
		want:        []Target{k8sTestTarget("qix-engine-c", "10.0.0.3")},
	}}
	for _, step := range steps {
		if step.fileToken != "" {
			if err := os.WriteFile(tokenFile, []byte(step.fileToken), 0o600); err != nil {
				t.Fatal(err)
			}
		}
		srv.set(func(s *k8sTestServer) { s.token, s.pages = step.serverToken, map[string]string{"": step.body} })
		got, err := k.Targets(context.Background())
		if step.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), step.wantErr) {
				t.Fatalf("%s: Targets() = %v, %v; want error containing %q", step.name, got, err, step.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("%s: %v", step.name, err)
		}
		equalTargetsForTest(t, got, step.want)
	}

	if err := os.Remove(tokenFile); err != nil {
		t.Fatal(err)
	}
	if _, err := k.Targets(context.Background()); err == nil || !strings.Contains(err.Error(), "token: open "+tokenFile) {
		t.Errorf("Targets() with a missing token file: %v, want an error naming it", err)
	}
}

func TestKubernetesTLS(t *testing.T) {
	srv := newK8sTestServer(t, true)
	srv.set(func(s *k8sTestServer) { s.pages = map[string]string{"": k8sTestSlice("qix-engine-a", "10.0.0.1", "")} })
	dir := t.TempDir()
	caFile := filepath.Join(dir, "ca.crt")
	if err := os.WriteFile(caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate().Raw}), 0o644); err != nil {
		t.Fatal(err)
	}
	notPEM := filepath.Join(dir, "not.pem")
	if err := os.WriteFile(notPEM, []byte("not a certificate"), 0o644); err != nil {
		t.Fatal(err)
	}
	tokenFile := k8sTestToken(t, "token-1")

	tests := []struct {
		name          string
		cfg           KubernetesConfig
		wantNewErr    string
		wantTargetErr string
	}{{
		name: "CA file",
		cfg:  KubernetesConfig{CAFile: caFile},
	}, {
		name: "client",
		cfg:  KubernetesConfig{CAFile: filepath.Join(dir, "ignored"), Client: srv.Client()},
	}, {
		name:          "untrusted server",
		cfg:           KubernetesConfig{Client: &http.Client{}},
		wantTargetErr: "certificate",
	}, {
		name:       "missing CA file",
		cfg:        KubernetesConfig{CAFile: filepath.Join(dir, "missing.crt")},
		wantNewErr: "discovery: kubernetes analytics app=qix-engine: CA file: open " + filepath.Join(dir, "missing.crt"),
	}, {
		name:       "CA file without certificates",
		cfg:        KubernetesConfig{CAFile: notPEM},
		wantNewErr: "discovery: kubernetes analytics app=qix-engine: CA file " + notPEM + ": no PEM certificate",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := tt.cfg
			cfg.APIServer, cfg.Namespace, cfg.Selector, cfg.TokenFile = srv.URL, "analytics", "app=qix-engine", tokenFile
			k, err := NewKubernetes(cfg)
			if tt.wantNewErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantNewErr) {
					t.Fatalf("NewKubernetes() error %v, want one containing %q", err, tt.wantNewErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			got, err := k.Targets(context.Background())
			if tt.wantTargetErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantTargetErr) {
					t.Fatalf("Targets() = %v, %v; want error containing %q", got, err, tt.wantTargetErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			equalTargetsForTest(t, got, []Target{k8sTestTarget("qix-engine-a", "10.0.0.1")})
		})
	}
}

func TestKubernetesTimeout(t *testing.T) {
	srv := newK8sTestServer(t, false)
	block := make(chan struct{})
	t.Cleanup(func() { close(block) }) // runs before the server closes
	srv.set(func(s *k8sTestServer) {
		s.pages = map[string]string{"": k8sTestSlice("qix-engine-a", "10.0.0.1", "")}
		s.block = block
	})
	tokenFile := k8sTestToken(t, "token-1")

	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		wantIs  error
	}{{
		name:    "config timeout",
		timeout: 100 * time.Millisecond,
		ctx:     func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
		wantIs:  context.DeadlineExceeded,
	}, {
		name: "context canceled",
		ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		},
		wantIs: context.Canceled,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			k, err := NewKubernetes(KubernetesConfig{
				APIServer: srv.URL, Namespace: "analytics", Selector: "app=qix-engine",
				TokenFile: tokenFile, Timeout: tt.timeout,
			})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			got, err := k.Targets(ctx)
			if !errors.Is(err, tt.wantIs) {
				t.Fatalf("Targets() = %v, %v; want an error wrapping %v", got, err, tt.wantIs)
			}
			if elapsed := time.Since(start); elapsed > 10*time.Second {
				t.Errorf("Targets() took %v, want about 100ms", elapsed)
			}
		})
	}
}

func TestKubernetesConfig(t *testing.T) {
	dir := t.TempDir()
	nsFile := filepath.Join(dir, "namespace")
	if err := os.WriteFile(nsFile, []byte("analytics\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	emptyFile := filepath.Join(dir, "empty")
	if err := os.WriteFile(emptyFile, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Run("namespace file", func(t *testing.T) {
		for _, tt := range []struct{ path, want, wantErr string }{
			{path: nsFile, want: "analytics"},
			{path: emptyFile, wantErr: emptyFile + " is empty"},
			{path: filepath.Join(dir, "missing"), wantErr: "open " + filepath.Join(dir, "missing")},
		} {
			got, err := k8sReadNamespace(tt.path)
			if got != tt.want || (err == nil) != (tt.wantErr == "") || (err != nil && !strings.Contains(err.Error(), tt.wantErr)) {
				t.Errorf("k8sReadNamespace(%s) = %q, %v; want %q, error containing %q", tt.path, got, err, tt.want, tt.wantErr)
			}
		}
	})

	tests := []struct {
		name     string
		env      map[string]string
		cfg      KubernetesConfig
		wantURL  string
		wantName string
		wantErr  string
	}{{
		name:     "in-cluster API server",
		env:      map[string]string{"KUBERNETES_SERVICE_HOST": "10.96.0.1", "KUBERNETES_SERVICE_PORT": "443"},
		cfg:      KubernetesConfig{Namespace: "analytics", Selector: "app=qix-engine", CAFile: filepath.Join(dir, "missing-but-unused"), Client: http.DefaultClient},
		wantURL:  "https://10.96.0.1:443/apis/discovery.k8s.io/v1/namespaces/analytics/endpointslices?labelSelector=app%3Dqix-engine",
		wantName: "kubernetes analytics app=qix-engine",
	}, {
		name:     "in-cluster IPv6 API server",
		env:      map[string]string{"KUBERNETES_SERVICE_HOST": "fd00:10:96::1", "KUBERNETES_SERVICE_PORT": "443"},
		cfg:      KubernetesConfig{Namespace: "analytics", Client: http.DefaultClient},
		wantURL:  "https://[fd00:10:96::1]:443/apis/discovery.k8s.io/v1/namespaces/analytics/endpointslices",
		wantName: "kubernetes analytics",
	}, {
		name:     "API server behind a path",
		cfg:      KubernetesConfig{APIServer: "http://127.0.0.1:8001/k8s/clusters/c-1/", Namespace: "analytics", Selector: "app in (qix-engine)"},
		wantURL:  "http://127.0.0.1:8001/k8s/clusters/c-1/apis/discovery.k8s.io/v1/namespaces/analytics/endpointslices?labelSelector=app+in+%28qix-engine%29",
		wantName: "kubernetes analytics app in (qix-engine)",
	}, {
		name:    "no API server",
		env:     map[string]string{"KUBERNETES_SERVICE_HOST": "", "KUBERNETES_SERVICE_PORT": ""},
		cfg:     KubernetesConfig{Namespace: "analytics"},
		wantErr: "discovery: kubernetes: no API server",
	}, {
		name:    "not a URL",
		cfg:     KubernetesConfig{APIServer: "10.96.0.1:443", Namespace: "analytics"},
		wantErr: `discovery: kubernetes: API server "10.96.0.1:443"`,
	}, {
		name:    "not HTTP",
		cfg:     KubernetesConfig{APIServer: "ftp://10.96.0.1", Namespace: "analytics"},
		wantErr: "want an http or https URL",
	}, {
		name:    "negative timeout",
		cfg:     KubernetesConfig{APIServer: "http://10.96.0.1", Namespace: "analytics", Timeout: -1},
		wantErr: "discovery: kubernetes analytics: negative timeout",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			k, err := NewKubernetes(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewKubernetes() error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if k.listURL != tt.wantURL {
				t.Errorf("list URL %s, want %s", k.listURL, tt.wantURL)
			}
			if _, err := url.Parse(k.listURL); err != nil {
				t.Errorf("list URL: %v", err)
			}
			if k.Name() != tt.wantName {
				t.Errorf("Name() = %q, want %q", k.Name(), tt.wantName)
			}
			if k.timeout != 5*time.Second {
				t.Errorf("timeout %v, want 5s", k.timeout)
			}
		})
	}

	// Through kubectl proxy: no token file, no Authorization header.
	srv := newK8sTestServer(t, false)
	srv.set(func(s *k8sTestServer) {
		s.token = ""
		s.selector = ""
		s.pages = map[string]string{"": k8sTestSlice("qix-engine-a", "10.0.0.1", "")}
	})
	k, err := NewKubernetes(KubernetesConfig{APIServer: srv.URL, Namespace: "analytics"})
	if err != nil {
		t.Fatal(err)
	}
	k.tokenFile = filepath.Join(dir, "no-token") // stands for the default file, missing
	got, err := k.Targets(context.Background())
	if err != nil {
		t.Fatalf("Targets() without a token: %v", err)
	}
	equalTargetsForTest(t, got, []Target{k8sTestTarget("qix-engine-a", "10.0.0.1")})
}

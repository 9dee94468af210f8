package discovery

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"
)

// Config configures a discovery Service. The zero value of every field but Provider is a
// documented default.
type Config struct {
	// Provider lists the instances.
	Provider Provider
	// RefreshInterval is how often the provider is asked for the list. Zero means 10s.
	RefreshInterval time.Duration
	// PollInterval is how often every instance's health and metrics are polled. Zero
	// means 5s.
	PollInterval time.Duration
	// Timeout bounds each health or metrics request. Zero means 2s.
	Timeout time.Duration
	// HealthPath is the instances' health endpoint. Empty means "/health".
	HealthPath string
	// MetricsPath is the instances' Prometheus metrics endpoint. Empty means "/metrics";
	// "-" turns metrics polling off.
	MetricsPath string
	// Metrics, when set, names the metric families to keep (say, the load metric the
	// session service uses); only those are parsed. Empty keeps every family.
	Metrics []string
	// Scheme is "http" (default) or "https".
	Scheme string
	// Client makes the requests. Nil means a client that keeps a connection to every
	// instance between polls and follows at most 3 redirects.
	Client *http.Client
	// Concurrency bounds the polls in flight at once. Zero means 64.
	Concurrency int
	// Logger receives provider failures and health changes. Nil means no logging.
	Logger *slog.Logger
}

func (c *Config) setDefaults() {
	if c.RefreshInterval == 0 {
		c.RefreshInterval = 10 * time.Second
	}
	if c.PollInterval == 0 {
		c.PollInterval = 5 * time.Second
	}
	if c.Timeout == 0 {
		c.Timeout = 2 * time.Second
	}
	if c.HealthPath == "" {
		c.HealthPath = "/health"
	}
	if c.MetricsPath == "" {
		c.MetricsPath = "/metrics"
	}
	if c.Scheme == "" {
		c.Scheme = "http"
	}
	if c.Client == nil {
		// Keep a connection to every instance between polls: the default transport keeps
		// only 100 idle connections in all, which at 1,000 instances would mean a new TCP
		// connection for most requests of every poll.
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.MaxIdleConns = 0
		tr.MaxIdleConnsPerHost = 2
		tr.IdleConnTimeout = 3 * max(c.PollInterval, c.RefreshInterval)
		c.Client = &http.Client{Transport: tr, CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if len(via) >= 3 {
				return fmt.Errorf("stopped after %d redirects", len(via))
			}
			return nil
		}}
	}
	if c.Concurrency == 0 {
		c.Concurrency = 64
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// ErrNoProvider means a Config has no Provider.
var ErrNoProvider = errors.New("discovery: no provider")

// Service is a Mira-style discovery service: it refreshes the list of instances from its
// provider, polls each instance's health and metrics endpoints, and keeps the result for
// Instances, Watch and its HTTP API (see Handler). A provider that fails leaves the last
// good list in place; instances it no longer lists are dropped.
type Service struct {
	cfg  Config
	snap atomic.Pointer[Snapshot]

	mu          sync.Mutex // serializes refreshes and polls
	state       map[string]*Instance
	provErr     string
	lastRefresh time.Time
	watchers    map[chan struct{}]struct{}

	keep  map[string]bool // Config.Metrics as a set
	lean  bool            // poll with the lean HTTP/1.1 poller (poller.go)
	conns conns           // its connections

	ctx    context.Context
	cancel context.CancelFunc
	wg     sync.WaitGroup
	once   sync.Once
}

// Snapshot is the state of discovery at one moment. It is immutable.
type Snapshot struct {
	// All holds every instance, sorted by key.
	All []Instance
	// Healthy holds the healthy ones, in the same order.
	Healthy []Instance
	// Provider is the provider's name; ProviderError its last failure ("" after a success).
	Provider      string
	ProviderError string
	// Refreshed is when the provider last answered successfully.
	Refreshed time.Time
	// Version counts snapshots: it changes whenever anything in the snapshot does.
	Version uint64

	indexOnce sync.Once
	index     map[string]int // key -> position in Healthy
}

// HealthyIndex returns the position in Healthy of the instance with key, if it is healthy.
func (s *Snapshot) HealthyIndex(key string) (int, bool) {
	s.indexOnce.Do(func() {
		s.index = make(map[string]int, len(s.Healthy))
		for i := range s.Healthy {
			s.index[s.Healthy[i].Key()] = i
		}
	})
	i, ok := s.index[key]
	return i, ok
}

// filteredVersions numbers the snapshots made by without, apart from the service's own.
var filteredVersions atomic.Uint64

// without returns a snapshot like s whose Healthy leaves out the instances with the given
// keys. It has a Version of its own, so a selector's per-version state is not mixed up.
func (s *Snapshot) without(keys []string) *Snapshot {
	out := &Snapshot{All: s.All, Provider: s.Provider, ProviderError: s.ProviderError, Refreshed: s.Refreshed,
		Version: 1<<63 | filteredVersions.Add(1)}
	for _, in := range s.Healthy {
		if !slices.Contains(keys, in.Key()) {
			out.Healthy = append(out.Healthy, in)
		}
	}
	return out
}

// New returns a Service; Start begins refreshing and polling.
func New(cfg Config) (*Service, error) {
	if cfg.Provider == nil {
		return nil, ErrNoProvider
	}
	lean := cfg.Client == nil && (cfg.Scheme == "" || cfg.Scheme == "http")
	cfg.setDefaults()
	s := &Service{cfg: cfg, state: map[string]*Instance{}, watchers: map[chan struct{}]struct{}{}, lean: lean}
	if len(cfg.Metrics) > 0 {
		s.keep = map[string]bool{}
		for _, m := range cfg.Metrics {
			s.keep[m] = true
		}
	}
	s.ctx, s.cancel = context.WithCancel(context.Background())
	s.snap.Store(&Snapshot{Provider: cfg.Provider.Name()})
	return s, nil
}

// Start refreshes and polls once (unless Refresh was already called), then keeps doing so
// at the configured intervals until Close.
func (s *Service) Start() {
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		if s.Snapshot().Version == 0 {
			s.Refresh(s.ctx)
		}
		refresh := time.NewTicker(s.cfg.RefreshInterval)
		poll := time.NewTicker(s.cfg.PollInterval)
		defer refresh.Stop()
		defer poll.Stop()
		for {
			select {
			case <-s.ctx.Done():
				return
			case <-refresh.C:
				s.Refresh(s.ctx)
			case <-poll.C:
				s.Poll(s.ctx)
			}
		}
	}()
}

// Close stops refreshing and polling and closes the connections to the instances.
func (s *Service) Close() error {
	s.once.Do(func() {
		s.cancel()
		s.wg.Wait()
		s.conns.keep(nil)
	})
	return nil
}

// Snapshot returns the current state. It is cheap: one atomic load.
func (s *Service) Snapshot() *Snapshot { return s.snap.Load() }

// Instances returns every instance, healthy or not.
func (s *Service) Instances() []Instance { return s.snap.Load().All }

// Healthy returns the healthy instances.
func (s *Service) Healthy() []Instance { return s.snap.Load().Healthy }

// Watch returns a channel that receives a value (coalesced) whenever the snapshot
// changes, and a function that stops the watch.
func (s *Service) Watch() (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	s.mu.Lock()
	s.watchers[ch] = struct{}{}
	s.mu.Unlock()
	return ch, func() {
		s.mu.Lock()
		delete(s.watchers, ch)
		s.mu.Unlock()
	}
}

// Refresh asks the provider for the list now, reconciles it, and polls every instance.
// Tests and operators call it to act without waiting for the next interval.
func (s *Service) Refresh(ctx context.Context) {
	rctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout*2)
	targets, err := s.cfg.Provider.Targets(rctx)
	cancel()
	s.mu.Lock()
	if err != nil {
		s.provErr = err.Error()
		s.cfg.Logger.Warn("discovery: provider failed; keeping the last list", "provider", s.cfg.Provider.Name(), "err", err)
	} else {
		s.provErr = ""
		s.lastRefresh = time.Now()
		seen := map[string]bool{}
		for _, t := range targets {
			k := t.Key()
			seen[k] = true
			if in, ok := s.state[k]; ok {
				in.Target = t
				continue
			}
			s.state[k] = &Instance{Target: t, Since: time.Now(), LastError: "not checked yet"}
		}
		live := map[string]bool{}
		for k, in := range s.state {
			if !seen[k] {
				delete(s.state, k)
				continue
			}
			live[in.Addr] = true
		}
		s.conns.keep(live)
	}
	s.publishLocked()
	s.mu.Unlock()
	s.Poll(ctx)
}

// Poll checks every instance's health and metrics now.
func (s *Service) Poll(ctx context.Context) {
	s.mu.Lock()
	targets := make([]Target, 0, len(s.state))
	for _, in := range s.state {
		targets = append(targets, in.Target)
	}
	s.mu.Unlock()

	type result struct {
		key           string
		healthErr     error
		metrics       map[string]float64
		metricsErr    error
		checked       time.Time
		metricsPolled bool
	}
	results := make([]result, len(targets))
	poll := func(i int, t Target) {
		r := result{key: t.Key(), metricsPolled: s.cfg.MetricsPath != "-"}
		if s.lean && r.metricsPolled {
			// Both requests in one write on the instance's connection.
			health := &exchange{path: s.cfg.HealthPath, read: func(io.Reader) error { return nil }}
			metrics := &exchange{path: s.cfg.MetricsPath, read: func(rd io.Reader) error {
				var err error
				r.metrics, err = parseMetrics(rd, s.keep)
				return err
			}}
			s.leanDo(ctx, t.Addr, health, metrics)
			r.healthErr, r.metricsErr, r.checked = health.err, metrics.err, time.Now()
			if r.metricsErr != nil {
				r.metrics = nil
			}
		} else {
			r.healthErr = s.check(ctx, t)
			r.checked = time.Now()
			if r.metricsPolled {
				r.metrics, r.metricsErr = s.metrics(ctx, t)
			}
		}
		results[i] = r
	}
	// A fixed set of goroutines takes the instances in turn: each grows its stack for the
	// parser once per poll, not once per instance.
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(s.cfg.Concurrency, len(targets)) {
		wg.Go(func() {
			for i := int(next.Add(1) - 1); i < len(targets); i = int(next.Add(1) - 1) {
				poll(i, targets[i])
			}
		})
	}
	wg.Wait()

	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range results {
		in, ok := s.state[r.key]
		if !ok {
			continue // dropped by a refresh meanwhile
		}
		healthy := r.healthErr == nil
		if healthy != in.Healthy {
			in.Since = r.checked
			s.cfg.Logger.Info("discovery: health changed", "instance", in.Key(), "healthy", healthy, "err", r.healthErr)
		}
		in.Healthy, in.LastCheck, in.LastError = healthy, r.checked, ""
		if !healthy {
			in.LastError = r.healthErr.Error()
		}
		if r.metricsPolled {
			if r.metricsErr != nil {
				in.MetricsError = r.metricsErr.Error()
			} else {
				in.Metrics, in.MetricsError = r.metrics, ""
			}
		}
	}
	s.publishLocked()
}

// check asks an instance's health endpoint: healthy means 2xx within the timeout.
func (s *Service) check(ctx context.Context, t Target) error {
	if s.lean {
		return s.leanGet(ctx, t.Addr, s.cfg.HealthPath, func(io.Reader) error { return nil })
	}
	resp, err := s.get(ctx, t, s.cfg.HealthPath)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("health %s: status %d", t.Addr, resp.StatusCode)
	}
	return nil
}

// metrics polls an instance's metrics endpoint.
func (s *Service) metrics(ctx context.Context, t Target) (map[string]float64, error) {
	if s.lean {
		var m map[string]float64
		err := s.leanGet(ctx, t.Addr, s.cfg.MetricsPath, func(r io.Reader) error {
			var err error
			m, err = parseMetrics(r, s.keep)
			return err
		})
		return m, err
	}
	resp, err := s.get(ctx, t, s.cfg.MetricsPath)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return nil, fmt.Errorf("metrics %s: status %d", t.Addr, resp.StatusCode)
	}
	m, err := parseMetrics(resp.Body, s.keep)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", t.Addr, err)
	}
	return m, nil
}

func (s *Service) get(ctx context.Context, t Target, path string) (*http.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.Timeout)
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.Scheme+"://"+t.Addr+path, nil)
	if err != nil {
		cancel()
		return nil, err
	}
	resp, err := s.cfg.Client.Do(req)
	if err != nil {
		cancel()
		if errors.Is(err, context.DeadlineExceeded) {
			return nil, fmt.Errorf("%s%s: no answer within %v", t.Addr, path, s.cfg.Timeout)
		}
		return nil, err
	}
	resp.Body = cancelBody{resp.Body, cancel}
	return resp, nil
}

type cancelBody struct {
	io.ReadCloser
	cancel context.CancelFunc
}

func (b cancelBody) Close() error {
	err := b.ReadCloser.Close()
	b.cancel()
	return err
}

// publishLocked builds a new snapshot from the state and wakes the watchers.
func (s *Service) publishLocked() {
	old := s.snap.Load()
	next := &Snapshot{Provider: s.cfg.Provider.Name(), ProviderError: s.provErr, Refreshed: s.lastRefresh, Version: old.Version + 1}
	keys := make([]string, 0, len(s.state))
	for k := range s.state {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		in := *s.state[k]
		next.All = append(next.All, in)
		if in.Healthy {
			next.Healthy = append(next.Healthy, in)
		}
	}
	s.snap.Store(next)
	for ch := range s.watchers {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"
	"github.com/redis/rueidis"

	"github.com/globalsession/globalsession/relay"
	"github.com/globalsession/globalsession/sessioncache"
)

type opKind int

const (
	opGet opKind = iota
	opSet
)

func (o opKind) String() string {
	if o == opGet {
		return "GET"
	}
	return "SET"
}

// workload is the key set and the value every SET writes.
type workload struct {
	keys    [][]byte
	strKeys []string // the same keys for go-redis, converted once
	value   []byte
}

func newWorkload(n, keySize, valueSize int) *workload {
	w := &workload{keys: make([][]byte, n), strKeys: make([]string, n), value: make([]byte, valueSize)}
	for i := range n {
		k := fmt.Sprintf("%0*d", keySize, i)
		w.keys[i], w.strKeys[i] = []byte(k[len(k)-keySize:]), k[len(k)-keySize:]
	}
	r := rand.New(rand.NewPCG(1, 2))
	for i := range w.value {
		w.value[i] = byte('a' + r.IntN(26))
	}
	return w
}

// session is a set of connections to one server; do runs one operation from goroutine g.
type session interface {
	do(g int, op opKind, key int) error
	close()
}

// relaySession is conns relay.Clients; goroutine g uses client g % conns.
type relaySession struct {
	w       *workload
	clients []*relay.Client
}

func dialRelay(w *workload, addr string, tc *tls.Config, conns int) (*relaySession, error) {
	s := &relaySession{w: w}
	for range conns {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		c, err := relay.Dial(ctx, relay.ClientConfig{Addr: addr, TLS: tc, Name: "relaycompare"})
		cancel()
		if err != nil {
			s.close()
			return nil, err
		}
		s.clients = append(s.clients, c)
	}
	return s, nil
}

func (s *relaySession) do(g int, op opKind, key int) error {
	c := s.clients[g%len(s.clients)]
	if op == opSet {
		return c.Set(context.Background(), relay.DefaultAuthPath, s.w.keys[key], sessioncache.Entry{Value: s.w.value})
	}
	e, err := c.Get(context.Background(), relay.DefaultAuthPath, s.w.keys[key])
	v := e.Value
	if err == nil && len(v) != len(s.w.value) {
		err = fmt.Errorf("relay returned %d bytes, want %d", len(v), len(s.w.value))
	}
	return err
}

func (s *relaySession) close() {
	for _, c := range s.clients {
		c.Close()
	}
}

// redisSession is one go-redis client whose pool holds exactly conns connections.
type redisSession struct {
	w  *workload
	rc *redis.Client
}

func redisOptions(addr string, conns int) *redis.Options {
	return &redis.Options{
		Addr:                     addr,
		PoolSize:                 conns,
		MinIdleConns:             conns,
		MaxIdleConns:             conns,
		MaxActiveConns:           conns,
		DisableIdentity:          true,
		MaintNotificationsConfig: &maintnotifications.Config{Mode: maintnotifications.ModeDisabled},
	}
}

func dialRedis(w *workload, addr string, conns int) (*redisSession, error) {
	s := &redisSession{w: w, rc: redis.NewClient(redisOptions(addr, conns))}
	// Open every connection now (MinIdleConns fills the pool in the background).
	var wg sync.WaitGroup
	errs := make([]error, conns)
	for i := range conns {
		wg.Go(func() { errs[i] = s.rc.Ping(context.Background()).Err() })
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		s.close()
		return nil, err
	}
	return s, nil
}

func (s *redisSession) do(_ int, op opKind, key int) error {
	if op == opSet {
		return s.rc.Set(context.Background(), s.w.strKeys[key], s.w.value, 0).Err()
	}
	v, err := s.rc.Get(context.Background(), s.w.strKeys[key]).Result()
	if err == nil && len(v) != len(s.w.value) {
		err = fmt.Errorf("redis returned %d bytes, want %d", len(v), len(s.w.value))
	}
	return err
}

func (s *redisSession) close() { s.rc.Close() }

// pipelinedRedisSession is one rueidis client with conns connections that pipelines the
// commands of concurrent goroutines on them, as a relay.Client does its requests: the same
// client behaviour for both servers.
type pipelinedRedisSession struct {
	w  *workload
	rc rueidis.Client
}

func dialPipelinedRedis(w *workload, addr string, conns int) (*pipelinedRedisSession, error) {
	multiplex := -1 // one connection
	for n := 1; n < conns; n *= 2 {
		multiplex++
	}
	rc, err := rueidis.NewClient(rueidis.ClientOption{InitAddress: []string{addr}, DisableCache: true,
		PipelineMultiplex: multiplex, ForceSingleClient: true})
	if err != nil {
		return nil, err
	}
	s := &pipelinedRedisSession{w: w, rc: rc}
	// Until two of its commands overlap, a rueidis connection runs each command on the
	// caller's goroutine (it writes and reads the socket itself, as go-redis does); the
	// first overlap starts its reader and writer goroutines for good. A relay.Client always
	// has its reader goroutine (it must read pushes and the server's requests), so the
	// same client behaviour means rueidis in that mode too: overlapping GETs on every
	// connection before measuring.
	if err := forAllKeys(min(len(w.keys), 64*conns), func(k int) error { return s.do(0, opGet, k) }); err != nil {
		rc.Close()
		return nil, err
	}
	return s, nil
}

func (s *pipelinedRedisSession) do(_ int, op opKind, key int) error {
	ctx := context.Background()
	if op == opSet {
		return s.rc.Do(ctx, s.rc.B().Set().Key(s.w.strKeys[key]).Value(rueidis.BinaryString(s.w.value)).Build()).Error()
	}
	v, err := s.rc.Do(ctx, s.rc.B().Get().Key(s.w.strKeys[key]).Build()).AsBytes()
	if err == nil && len(v) != len(s.w.value) {
		err = fmt.Errorf("redis returned %d bytes, want %d", len(v), len(s.w.value))
	}
	return err
}

func (s *pipelinedRedisSession) close() { s.rc.Close() }

// rawSession is the floor: one TCP connection to the echo server; each operation writes a
// request of the size of a relay GET frame and reads a reply of the size of its answer.
type rawSession struct {
	c     net.Conn
	br    *bufio.Reader
	req   []byte
	reply []byte
}

func dialRaw(addr string, reqSize, replySize int) (*rawSession, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	req := make([]byte, reqSize)
	binary.BigEndian.PutUint32(req, uint32(reqSize-4))
	binary.BigEndian.PutUint32(req[4:], uint32(replySize-4))
	return &rawSession{c: c, br: bufio.NewReaderSize(c, 64<<10), req: req, reply: make([]byte, replySize)}, nil
}

func (s *rawSession) do(int, opKind, int) error {
	if _, err := s.c.Write(s.req); err != nil {
		return err
	}
	_, err := io.ReadFull(s.br, s.reply)
	return err
}

func (s *rawSession) close() { s.c.Close() }

// result is one measurement: throughput and every operation's latency.
type result struct {
	opsPerSec float64
	lat       []time.Duration
}

// warmUp runs up to n operations of kind op, stopping after d unless d is 0, and returns
// the rate seen.
func warmUp(s session, op opKind, inflight, n, nkeys int, d time.Duration, seed uint64) (float64, error) {
	var deadline time.Time
	if d > 0 {
		deadline = time.Now().Add(d)
	}
	done, elapsed, err := run(s, op, inflight, n, nkeys, seed, nil, deadline)
	if err != nil {
		return 0, fmt.Errorf("warm-up: %w", err)
	}
	return float64(done) / elapsed.Seconds(), nil
}

// measure runs exactly ops operations of kind op on random keys from inflight goroutines,
// and returns the throughput and the latency of every operation.
func measure(s session, op opKind, inflight, ops, nkeys int, seed uint64) (result, error) {
	lat := make([]time.Duration, ops)
	_, elapsed, err := run(s, op, inflight, ops, nkeys, seed, lat, time.Time{})
	if err != nil {
		return result{}, err
	}
	return result{opsPerSec: float64(ops) / elapsed.Seconds(), lat: lat}, nil
}

// run spreads ops operations over inflight goroutines that start together, recording each
// operation's latency into lat when it is not nil. With a nonzero deadline the goroutines
// stop early when it passes. It returns the operations done and the wall time of the whole.
func run(s session, op opKind, inflight, ops, nkeys int, seed uint64, lat []time.Duration, deadline time.Time) (int, time.Duration, error) {
	var (
		wg     sync.WaitGroup
		failed atomic.Bool
		done   atomic.Int64
		errMu  sync.Mutex
		first  error
		start  = make(chan struct{})
	)
	per, extra := ops/inflight, ops%inflight
	lo := 0
	for g := range inflight {
		n := per
		if g < extra {
			n++
		}
		var mine []time.Duration
		if lat != nil {
			mine = lat[lo : lo+n]
		}
		lo += n
		wg.Go(func() {
			r := rand.New(rand.NewPCG(seed, uint64(g)))
			<-start
			i := 0
			defer func() { done.Add(int64(i)) }()
			for ; i < n; i++ {
				if failed.Load() {
					return
				}
				k := r.IntN(nkeys)
				t0 := time.Now()
				if !deadline.IsZero() && t0.After(deadline) {
					return
				}
				err := s.do(g, op, k)
				if mine != nil {
					mine[i] = time.Since(t0)
				}
				if err != nil {
					errMu.Lock()
					if first == nil {
						first = fmt.Errorf("%s: %w", op, err)
					}
					errMu.Unlock()
					failed.Store(true)
					return
				}
			}
		})
	}
	t0 := time.Now()
	close(start)
	wg.Wait()
	return int(done.Load()), time.Since(t0), first
}

// preloadRelay stores every key through one relay client from 16 goroutines.
func preloadRelay(w *workload, addr string, tc *tls.Config) error {
	s, err := dialRelay(w, addr, tc, 1)
	if err != nil {
		return err
	}
	defer s.close()
	return forAllKeys(len(w.keys), func(k int) error { return s.do(0, opSet, k) })
}

// preloadRedis stores every key with SET, pipelined in batches of 500.
func preloadRedis(w *workload, addr string) error {
	rc := redis.NewClient(redisOptions(addr, 1))
	defer rc.Close()
	ctx := context.Background()
	for lo := 0; lo < len(w.keys); lo += 500 {
		p := rc.Pipeline()
		for k := lo; k < min(lo+500, len(w.keys)); k++ {
			p.Set(ctx, w.strKeys[k], w.value, 0)
		}
		if _, err := p.Exec(ctx); err != nil {
			return err
		}
	}
	n, err := rc.DBSize(ctx).Result()
	if err == nil && n != int64(len(w.keys)) {
		err = fmt.Errorf("redis holds %d keys after the preload, want %d", n, len(w.keys))
	}
	return err
}

func forAllKeys(n int, fn func(k int) error) error {
	const workers = 16
	var wg sync.WaitGroup
	errs := make([]error, workers)
	for g := range workers {
		wg.Go(func() {
			for k := g; k < n; k += workers {
				if err := fn(k); err != nil {
					errs[g] = err
					return
				}
			}
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

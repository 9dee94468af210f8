package relief

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisConfig configures a RedisStore.
type RedisConfig struct {
	// Addrs are host:port of a single Redis server, or of several nodes of a Redis Cluster.
	Addrs []string
	// Password authenticates, when the server wants one.
	Password string
	// Prefix is put before every key, so several deployments can share a server.
	// Empty means "gs:".
	Prefix string
	// Timeout bounds each command. Zero means 2s.
	Timeout time.Duration
}

// RedisStore keeps entries in Redis, for deployments whose aged sessions outgrow their
// relief boxes. Each entry is one key whose value starts with its expiry (8 bytes), and
// Redis expires it at the same moment.
type RedisStore struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
}

var _ Store = (*RedisStore)(nil)

// NewRedisStore connects to Redis (a cluster when several addresses are given, or when the
// one address is a cluster node) and checks the connection with a PING.
func NewRedisStore(ctx context.Context, cfg RedisConfig) (*RedisStore, error) {
	if len(cfg.Addrs) == 0 {
		return nil, errors.New("relief: redis store: no address")
	}
	if cfg.Prefix == "" {
		cfg.Prefix = "gs:"
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = 2 * time.Second
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: cfg.Addrs, Password: cfg.Password,
		DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("relief: redis %v: %w", cfg.Addrs, err)
	}
	return &RedisStore{c: c, prefix: cfg.Prefix, timeout: cfg.Timeout}, nil
}

func (r *RedisStore) key(k []byte) string { return r.prefix + string(k) }

func (r *RedisStore) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), r.timeout)
}

// Get implements Store.
func (r *RedisStore) Get(key []byte) ([]byte, time.Time, error) {
	ctx, cancel := r.ctx()
	defer cancel()
	b, err := r.c.Get(ctx, r.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return nil, time.Time{}, ErrNotFound
	}
	if err != nil {
		return nil, time.Time{}, fmt.Errorf("relief: redis get: %w", err)
	}
	if len(b) < 8 {
		return nil, time.Time{}, fmt.Errorf("relief: redis get %q: value of %d bytes has no expiry header", key, len(b))
	}
	exp := int64(binary.LittleEndian.Uint64(b))
	if exp != 0 && exp <= time.Now().UnixNano() {
		return nil, time.Time{}, ErrNotFound
	}
	var t time.Time
	if exp != 0 {
		t = time.Unix(0, exp)
	}
	return b[8:], t, nil
}

// Set implements Store.
func (r *RedisStore) Set(key, value []byte, expiry time.Time) error {
	var exp int64
	var args redis.SetArgs
	if !expiry.IsZero() {
		exp = expiry.UnixNano()
		args.ExpireAt = expiry
	}
	b := make([]byte, 8, 8+len(value))
	binary.LittleEndian.PutUint64(b, uint64(exp))
	b = append(b, value...)
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.c.SetArgs(ctx, r.key(key), b, args).Err(); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("relief: redis set: %w", err)
	}
	return nil
}

// Delete implements Store.
func (r *RedisStore) Delete(key []byte) error {
	ctx, cancel := r.ctx()
	defer cancel()
	if err := r.c.Del(ctx, r.key(key)).Err(); err != nil {
		return fmt.Errorf("relief: redis del: %w", err)
	}
	return nil
}

// Len implements Store: the number of keys under the prefix (a SCAN; meant for tests and
// status pages, not hot paths).
func (r *RedisStore) Len() int {
	ctx, cancel := context.WithTimeout(context.Background(), 10*r.timeout)
	defer cancel()
	var n atomic.Int64 // ForEachMaster scans the masters concurrently
	scan := func(ctx context.Context, c *redis.Client) error {
		it := c.Scan(ctx, 0, r.prefix+"*", 1000).Iterator()
		for it.Next(ctx) {
			n.Add(1)
		}
		return it.Err()
	}
	switch c := r.c.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, scan)
	case *redis.Client:
		_ = scan(ctx, c)
	}
	return int(n.Load())
}

// Close implements Store.
func (r *RedisStore) Close() error { return r.c.Close() }

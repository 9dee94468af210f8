package relief

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/globalsession/globalsession/sessioncache"
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
	// KeepExpiredFor is how long after its expiry a version is still kept, as the deletion
	// of its revision, so that an older version of the key, handed over late or held by
	// another server, is not served after it (see LogConfig.KeepExpiredFor). Redis expires
	// the key that much later. Zero means one hour; negative, not kept.
	KeepExpiredFor time.Duration
}

// RedisStore keeps entries in Redis, for deployments whose aged sessions outgrow their
// relief boxes. Each entry or tombstone is one key whose value starts with a 17-byte header
// (expiry in unix milliseconds, revision, flags; big-endian), and Redis expires it
// RedisConfig.KeepExpiredFor after that: until then a version that expired reads as the
// deletion of its revision. Put compares revisions in a script, so the newest version wins
// in Redis itself. Expiries are kept to the millisecond.
type RedisStore struct {
	c       redis.UniversalClient
	prefix  string
	timeout time.Duration
	keepMs  int64 // KeepExpiredFor in milliseconds; 0: not kept
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
	if cfg.KeepExpiredFor == 0 {
		cfg.KeepExpiredFor = time.Hour
	}
	c := redis.NewUniversalClient(&redis.UniversalOptions{Addrs: cfg.Addrs, Password: cfg.Password,
		DialTimeout: cfg.Timeout, ReadTimeout: cfg.Timeout, WriteTimeout: cfg.Timeout})
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("relief: redis %v: %w", cfg.Addrs, err)
	}
	return &RedisStore{c: c, prefix: cfg.Prefix, timeout: cfg.Timeout, keepMs: max(cfg.KeepExpiredFor.Milliseconds(), 0)}, nil
}

func (r *RedisStore) key(k []byte) string { return r.prefix + string(k) }

// ctx bounds one call by the store's timeout, within the caller's ctx.
func (r *RedisStore) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, r.timeout)
}

const redisHeader = 17

// putScript stores ARGV[1] (header and value) under KEYS[1] unless the key holds a newer
// version (one whose expiry has passed counts as the deletion of its revision), and has
// Redis expire it ARGV[2] milliseconds after the expiry in its header (none for 0). A
// tombstone that replaces a live entry keeps the entry's expiry when that is later. It
// returns 1 when it stored.
var putScript = redis.NewScript(`
local new = ARGV[1]
local keep = tonumber(ARGV[2])
local function ms(s)
  local n = 0
  for i = 1, 8 do n = n * 256 + string.byte(s, i) end
  return n
end
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local exp = ms(new)
local newDeleted = string.byte(new, 17) % 2 == 1
local cur = redis.call('GET', KEYS[1])
if cur and string.len(cur) >= 17 then
  local curRev, newRev = string.sub(cur, 9, 16), string.sub(new, 9, 16)
  local curExp = ms(cur)
  local curDeleted = string.byte(cur, 17) % 2 == 1
  local curLive = not curDeleted and (curExp == 0 or curExp > now)
  if curExp ~= 0 and curExp <= now then curDeleted = true end
  if newRev ~= string.rep('\0', 8) then
    if curRev > newRev then return 0 end
    if curRev == newRev and (curDeleted or not newDeleted) then return 0 end
  end
  if newDeleted and curLive and exp ~= 0 and (curExp == 0 or curExp > exp) then
    exp = curExp
    local b, n = {}, exp
    for i = 8, 1, -1 do
      b[i] = n % 256
      n = math.floor(n / 256)
    end
    new = string.char(unpack(b)) .. string.sub(new, 9)
  end
end
if exp == 0 then
  redis.call('SET', KEYS[1], new)
elseif exp + keep <= now then
  redis.call('DEL', KEYS[1])
else
  redis.call('SET', KEYS[1], new, 'PXAT', exp + keep)
end
return 1
`)

// Get implements Store.
func (r *RedisStore) Get(ctx context.Context, key []byte) (sessioncache.Entry, error) {
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	b, err := r.c.Get(ctx, r.key(key)).Bytes()
	if errors.Is(err, redis.Nil) {
		return sessioncache.Entry{}, ErrNotFound
	}
	if err != nil {
		return sessioncache.Entry{}, fmt.Errorf("relief: redis get: %w", err)
	}
	if len(b) < redisHeader {
		return sessioncache.Entry{}, fmt.Errorf("relief: redis get %q: value of %d bytes has no entry header", key, len(b))
	}
	exp := int64(binary.BigEndian.Uint64(b))
	e := sessioncache.Entry{Rev: binary.BigEndian.Uint64(b[8:]), Deleted: b[16]&1 != 0}
	if exp != 0 {
		e.Expiry = time.UnixMilli(exp)
		if exp <= time.Now().UnixMilli() {
			e.Deleted = true // an expired version stands for the deletion of its revision
		}
	}
	if e.Deleted {
		return e, ErrNotFound
	}
	e.Value = b[redisHeader:]
	return e, nil
}

// Put implements Store.
func (r *RedisStore) Put(ctx context.Context, key []byte, e sessioncache.Entry) (bool, error) {
	var exp int64
	if !e.Expiry.IsZero() {
		exp = e.Expiry.UnixMilli()
		if !e.Expiry.After(time.Now()) {
			// Expired (a version, or the deletion of one, handed over late): it only removes
			// older versions, which a tombstone of its revision does while expired versions
			// are kept (or for a moment when they are not), or as long as the entry it
			// replaces would have lived.
			e = sessioncache.Entry{Rev: e.Rev, Deleted: true}
			if exp+r.keepMs <= time.Now().UnixMilli() {
				// Past keeping too: an expiry that has Redis keep the tombstone one second
				// (the script expires the key keepMs after the header's expiry).
				exp = time.Now().Add(time.Second).UnixMilli() - r.keepMs
			}
		}
	}
	b := make([]byte, redisHeader, redisHeader+len(e.Value))
	binary.BigEndian.PutUint64(b, uint64(exp))
	binary.BigEndian.PutUint64(b[8:], e.Rev)
	if e.Deleted {
		b[16] = 1
	} else {
		b = append(b, e.Value...)
	}
	ctx, cancel := r.ctx(ctx)
	defer cancel()
	n, err := putScript.Run(ctx, r.c, []string{r.key(key)}, b, r.keepMs).Int()
	if err != nil {
		return false, fmt.Errorf("relief: redis put: %w", err)
	}
	return n == 1, nil
}

// Len implements Store: the size of the database (DBSIZE, summed over a cluster's
// masters), which is the store's when it has the database to itself and an upper bound
// when it shares it (counting only the keys under the prefix would mean scanning the
// keyspace).
func (r *RedisStore) Len() int {
	ctx, cancel := r.ctx(context.Background())
	defer cancel()
	var n atomic.Int64 // ForEachMaster asks the masters concurrently
	size := func(ctx context.Context, c *redis.Client) error {
		m, err := c.DBSize(ctx).Result()
		n.Add(m)
		return err
	}
	switch c := r.c.(type) {
	case *redis.ClusterClient:
		_ = c.ForEachMaster(ctx, size)
	case *redis.Client:
		_ = size(ctx, c)
	}
	return int(n.Load())
}

// Close implements Store.
func (r *RedisStore) Close() error { return r.c.Close() }

package gateway

import (
	"context"
	"math"
	"net"
	"net/http"
	"runtime"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// LoginLimits throttle failed logins, per user name and per client address, and bound
// the password checks that run at once. Every zero field means its default.
type LoginLimits struct {
	// UserBurst failed logins of one user name are allowed at once, then one more every
	// UserEvery; a login beyond that gets 429 with Retry-After, before any password check.
	// Zero means 5 and 30s.
	UserBurst int
	UserEvery time.Duration
	// AddrBurst and AddrEvery do the same per client address (the connection's, not a
	// header's). Zero means 20 and 5s.
	AddrBurst int
	AddrEvery time.Duration
	// Checks bounds the password checks that run at once, so that an attack cannot take
	// every CPU from real logins; a login that waits longer than 2s for one gets 503. Zero
	// means the number of CPUs.
	Checks int
}

// throttleKeys bounds the user names and addresses a throttle remembers; beyond it, those
// whose budget is whole again are forgotten first.
const throttleKeys = 100000

// throttle keeps the failed-login budgets and the password-check slots.
type throttle struct {
	lim   LoginLimits
	mu    sync.Mutex
	users map[string]*rate.Limiter
	addrs map[string]*rate.Limiter
	slots chan struct{}
}

func newThrottle(l LoginLimits) *throttle {
	if l.UserBurst == 0 {
		l.UserBurst = 5
	}
	if l.UserEvery == 0 {
		l.UserEvery = 30 * time.Second
	}
	if l.AddrBurst == 0 {
		l.AddrBurst = 20
	}
	if l.AddrEvery == 0 {
		l.AddrEvery = 5 * time.Second
	}
	if l.Checks == 0 {
		l.Checks = runtime.NumCPU()
	}
	return &throttle{lim: l, users: map[string]*rate.Limiter{}, addrs: map[string]*rate.Limiter{},
		slots: make(chan struct{}, l.Checks)}
}

// wait returns how long a login by user from addr must wait: 0 when both still have
// failures to spend.
func (t *throttle) wait(user, addr string) time.Duration {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	return max(until(t.users[user], now), until(t.addrs[addr], now))
}

// until is how long l needs to have a whole token again (0 for nil).
func until(l *rate.Limiter, now time.Time) time.Duration {
	if l == nil {
		return 0
	}
	tokens := l.TokensAt(now)
	if tokens >= 1 {
		return 0
	}
	return time.Duration(math.Ceil((1 - tokens) / float64(l.Limit()) * float64(time.Second)))
}

// failed spends one failure of user's budget and of addr's.
func (t *throttle) failed(user, addr string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := time.Now()
	spend(t.users, user, rate.Every(t.lim.UserEvery), t.lim.UserBurst, now)
	spend(t.addrs, addr, rate.Every(t.lim.AddrEvery), t.lim.AddrBurst, now)
}

func spend(m map[string]*rate.Limiter, key string, every rate.Limit, burst int, now time.Time) {
	l := m[key]
	if l == nil {
		if len(m) >= throttleKeys {
			forgetWhole(m, now)
		}
		l = rate.NewLimiter(every, burst)
		m[key] = l
	}
	l.AllowN(now, 1)
}

// forgetWhole drops the budgets that are whole again; if none is, every budget (a flood
// of names or addresses must not take unbounded memory).
func forgetWhole(m map[string]*rate.Limiter, now time.Time) {
	for k, l := range m {
		if l.TokensAt(now) >= float64(l.Burst()) {
			delete(m, k)
		}
	}
	if len(m) >= throttleKeys {
		clear(m)
	}
}

// enter takes a password-check slot, waiting up to 2s (or ctx), and returns its release.
func (t *throttle) enter(ctx context.Context) (func(), bool) {
	timer := time.NewTimer(2 * time.Second)
	defer timer.Stop()
	select {
	case t.slots <- struct{}{}:
		return func() { <-t.slots }, true
	case <-timer.C:
	case <-ctx.Done():
	}
	return nil, false
}

// clientAddr is the address of r's connection, without its port.
func clientAddr(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

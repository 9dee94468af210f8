package wsproxy

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/globalsession/globalsession/gateway"
)

// CloseSessionEnded (1008, policy violation) is what a browser hears when its proxied
// connection is closed because its session ended: logged out, expired or removed.
const CloseSessionEnded = websocket.ClosePolicyViolation

// livePair is one open proxied connection of a session.
type livePair struct {
	session string
	end     func(code int, text string) // nil until the pair is relayed
	ended   bool                        // end was asked for before it was set
}

// liveSessions keeps the open connections by session and ends them when their session
// ends. Its zero value keeps nothing (a proxy without Sessions).
type liveSessions struct {
	sessions *gateway.Sessions
	mu       sync.Mutex
	pairs    map[string]map[*livePair]struct{}
	unwatch  func()
	quit     chan struct{}
	done     chan struct{}
}

// start watches for ended sessions and checks the open connections' sessions every check.
func (ls *liveSessions) start(s *gateway.Sessions, check time.Duration) {
	ls.sessions, ls.pairs = s, map[string]map[*livePair]struct{}{}
	ls.quit, ls.done = make(chan struct{}), make(chan struct{})
	ls.unwatch = s.WatchEnds(func(id string) {
		if id == "" {
			go ls.checkAll() // ends may have been missed
			return
		}
		ls.endSession(id)
	})
	go func() {
		defer close(ls.done)
		t := time.NewTicker(check)
		defer t.Stop()
		for {
			select {
			case <-ls.quit:
				return
			case <-t.C:
				ls.checkAll()
			}
		}
	}()
}

// stop ends the watching and the checks.
func (ls *liveSessions) stop() {
	if ls.sessions == nil || ls.quit == nil {
		return
	}
	ls.mu.Lock()
	select {
	case <-ls.quit:
		ls.mu.Unlock()
		return
	default:
		close(ls.quit)
	}
	ls.mu.Unlock()
	ls.unwatch()
	<-ls.done
}

// add registers a connection of session (none for ""); ready gives it its end.
func (ls *liveSessions) add(session string) *livePair {
	if ls.sessions == nil || session == "" {
		return nil
	}
	lp := &livePair{session: session}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	m := ls.pairs[session]
	if m == nil {
		m = map[*livePair]struct{}{}
		ls.pairs[session] = m
	}
	m[lp] = struct{}{}
	return lp
}

// ready sets how lp is ended, and ends it at once if its session ended meanwhile.
func (ls *liveSessions) ready(lp *livePair, end func(code int, text string)) {
	if lp == nil {
		return
	}
	ls.mu.Lock()
	lp.end = end
	now := lp.ended
	ls.mu.Unlock()
	if now {
		go end(CloseSessionEnded, "session ended")
	}
}

// remove forgets a connection that closed.
func (ls *liveSessions) remove(lp *livePair) {
	if lp == nil {
		return
	}
	ls.mu.Lock()
	defer ls.mu.Unlock()
	if m := ls.pairs[lp.session]; m != nil {
		delete(m, lp)
		if len(m) == 0 {
			delete(ls.pairs, lp.session)
		}
	}
}

// endSession ends the open connections of a session that ended, without waiting.
func (ls *liveSessions) endSession(id string) {
	ls.mu.Lock()
	var ends []func(int, string)
	for lp := range ls.pairs[id] {
		if lp.end == nil {
			lp.ended = true
			continue
		}
		ends = append(ends, lp.end)
	}
	ls.mu.Unlock()
	for _, end := range ends {
		go end(CloseSessionEnded, "session ended")
	}
}

// checkAll looks up the session of every open connection (a use, which keeps it from its
// idle expiry) and ends the connections of those that ended.
func (ls *liveSessions) checkAll() {
	ls.mu.Lock()
	ids := make([]string, 0, len(ls.pairs))
	for id := range ls.pairs {
		ids = append(ids, id)
	}
	ls.mu.Unlock()
	for _, id := range ids {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		_, err := ls.sessions.LookupID(ctx, id)
		cancel()
		if errors.Is(err, gateway.ErrNoSession) {
			ls.endSession(id)
		}
	}
}

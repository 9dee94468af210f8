package sessioncache

import (
	"context"
	"sync"
	"sync/atomic"
	"time"

	"github.com/cespare/xxhash/v2"
)

// DefaultStaleFor is how long a host keeps serving its local entries after it lost every
// relay, unless ManagerConfig.StaleFor says otherwise.
const DefaultStaleFor = 2 * time.Second

// streamSync follows the change streams of a Manager's relays: it applies their changes,
// records in the table how far it got, and says whether the local table may be trusted
// (at least one stream is in sync, or was lost less than StaleFor ago).
type streamSync struct {
	m       *Manager
	trusted atomic.Bool

	mu        sync.Mutex
	streams   []*relayStream
	live      int         // streams in sync now
	staleTime *time.Timer // pending distrust after the last stream was lost
	stop      chan struct{}
	done      chan struct{}
}

type relayStream struct {
	name   string
	hash   uint64
	pos    StreamPos
	dirty  bool // pos not yet recorded in the table
	live   bool
	synced chan struct{} // closed at the first resumption
	once   sync.Once
}

// subscribe subscribes to every relay: by stream where the relay keeps one (resuming from
// the position the table records), plainly otherwise. It waits up to SyncTimeout for the
// streams' first resumption.
func (m *Manager) subscribe(nodes []remoteNode) {
	var streams []*relayStream
	ss := &streamSync{m: m, stop: make(chan struct{}), done: make(chan struct{})}
	for _, n := range nodes {
		sr, ok := n.r.(StreamRemote)
		if !ok {
			// A relay that is down now is subscribed to when it comes up (the client
			// re-subscribes on every connection), so a failure here is only logged.
			ctx, cancel := context.WithTimeout(m.ctx, m.cfg.SyncTimeout)
			if err := n.r.Subscribe(ctx, m.cfg.AuthPath, m.apply); err != nil {
				m.log.Warn("sessioncache: subscribe to relay", "relay", n.name, "err", err)
			}
			cancel()
			continue
		}
		rs := &relayStream{name: n.name, hash: xxhash.Sum64String(n.name), synced: make(chan struct{})}
		rs.pos, _ = m.table.streamPos(rs.hash)
		streams = append(streams, rs)
		if m.sync == nil {
			m.sync = ss
		}
		ss.streams = append(ss.streams, rs)
		go func() {
			// Retried by the remote on every connection; the first call only starts it.
			ctx, cancel := context.WithTimeout(m.ctx, m.cfg.SyncTimeout)
			defer cancel()
			if err := sr.SubscribeStream(ctx, m.cfg.AuthPath, rs.pos, func(ch Change) { ss.event(rs, ch) }); err != nil {
				m.log.Warn("sessioncache: relay's change stream not in sync yet; local entries are not served until it is",
					"relay", n.name, "err", err)
			}
		}()
	}
	if m.sync == nil {
		return
	}
	go ss.record()
	deadline := time.NewTimer(m.cfg.SyncTimeout)
	defer deadline.Stop()
	for _, rs := range streams {
		select {
		case <-rs.synced:
		case <-deadline.C:
			return
		}
	}
}

// event handles what a relay's stream delivers.
func (ss *streamSync) event(rs *relayStream, ch Change) {
	m := ss.m
	switch ch.Event {
	case StreamChange:
		m.apply(ch)
		ss.mu.Lock()
		rs.pos, rs.dirty = StreamPos{Epoch: ch.Epoch, Seq: ch.Seq}, true
		ss.mu.Unlock()
	case StreamGap:
		if m.enter() {
			n, err := m.table.Clear()
			m.leave()
			m.log.Info("sessioncache: changes were missed while away from the relay; dropped the local entries",
				"relay", rs.name, "dropped", n, "err", err)
			m.notify(Change{Event: StreamGap})
		}
		ss.synced(rs, ch)
	case StreamResumed:
		ss.synced(rs, ch)
	case StreamLost:
		ss.lost(rs)
	}
}

func (ss *streamSync) synced(rs *relayStream, ch Change) {
	ss.mu.Lock()
	rs.pos, rs.dirty = StreamPos{Epoch: ch.Epoch, Seq: ch.Seq}, true
	if !rs.live {
		rs.live = true
		ss.live++
	}
	if ss.staleTime != nil {
		ss.staleTime.Stop()
		ss.staleTime = nil
	}
	ss.trusted.Store(true)
	ss.mu.Unlock()
	rs.once.Do(func() { close(rs.synced) })
}

// lost marks a stream out of sync; when none is left in sync, the local table stops being
// trusted after StaleFor.
func (ss *streamSync) lost(rs *relayStream) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if !rs.live {
		return
	}
	rs.live = false
	ss.live--
	if ss.live > 0 {
		return
	}
	stale := ss.m.cfg.StaleFor
	if stale < 0 {
		ss.trusted.Store(false)
		return
	}
	if ss.staleTime == nil {
		ss.staleTime = time.AfterFunc(stale, func() {
			ss.mu.Lock()
			defer ss.mu.Unlock()
			if ss.live == 0 {
				ss.trusted.Store(false)
				ss.m.log.Warn("sessioncache: no relay for longer than StaleFor; local entries are not served until one is back",
					"stale_for", stale)
			}
			ss.staleTime = nil
		})
	}
}

// record writes the streams' positions to the table every 100ms, and once more when the
// Manager closes.
func (ss *streamSync) record() {
	defer close(ss.done)
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			ss.flush()
		case <-ss.stop:
			ss.flush()
			return
		}
	}
}

func (ss *streamSync) flush() {
	ss.mu.Lock()
	var todo []*relayStream
	var pos []StreamPos
	for _, rs := range ss.streams {
		if rs.dirty && rs.pos.Epoch != 0 {
			todo, pos = append(todo, rs), append(pos, rs.pos)
			rs.dirty = false
		}
	}
	ss.mu.Unlock()
	for i, rs := range todo {
		ss.m.table.setStreamPos(rs.hash, pos[i])
	}
}

// close records the positions a last time and stops the recorder; the table is still open.
func (ss *streamSync) close() {
	ss.mu.Lock()
	if ss.staleTime != nil {
		ss.staleTime.Stop()
	}
	ss.mu.Unlock()
	close(ss.stop)
	<-ss.done
}

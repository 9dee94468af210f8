//go:build linux

package chaos

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// The workload's pace and shape.
const (
	minThink = 10 * time.Millisecond // a client's pause between two calls
	maxThink = 50 * time.Millisecond
	minTTL   = 2 * time.Second // lifetimes are log-uniform between these
	maxTTL   = 10 * time.Minute

	expansionLife = 20 * time.Second // an expansion server's max_life

	workingSet = 64 // live keys a client keeps using; older ones stay for the final check
	deadSet    = 32 // deleted keys a client keeps reading

	probePoll  = 2 * time.Millisecond // revocation probes poll local tables this often
	probeLimit = 2 * time.Second      // for at most this long after the Delete returned
)

// keyState is what a client knows of one of its keys.
type keyState struct {
	key string
	ver int // the last version it set
}

// client makes calls until ctx ends. Each key belongs to one client, which makes its calls
// one at a time, so a key's calls never overlap; the host of each call is random.
func (h *harness) client(ctx context.Context, id int, rng *rand.Rand) {
	var live, dead []*keyState
	n := 0
	pad := func() string {
		b := make([]byte, rng.IntN(64))
		for i := range b {
			b[i] = 'a' + byte(rng.IntN(26))
		}
		return string(b)
	}
	ttl := func() time.Duration {
		return time.Duration(float64(minTTL) * math.Pow(float64(maxTTL)/float64(minTTL), rng.Float64()))
	}
	set := func(host *member, k *keyState) {
		k.ver++
		h.set(id, host, k.key, k.ver, ttl(), pad())
	}
	for {
		think := minThink + time.Duration(rng.Int64N(int64(maxThink-minThink)))
		select {
		case <-ctx.Done():
			return
		case <-time.After(think):
		}
		host := h.pickHost(rng, nil)
		if host == nil {
			continue
		}
		r := rng.Float64()
		switch {
		case len(live) == 0 || r < 0.35: // a new session
			if h.sets.Add(1) > h.maxSets {
				continue
			}
			n++
			k := &keyState{key: fmt.Sprintf("c%d-%d", id, n)}
			set(host, k)
			live = append(live, k)
			if len(live) > workingSet {
				live = live[1:]
			}
		case r < 0.60: // read a live one
			h.get(id, host, live[rng.IntN(len(live))].key)
		case r < 0.68: // set one again
			if h.sets.Add(1) > h.maxSets {
				continue
			}
			set(host, live[rng.IntN(len(live))])
		case r < 0.80: // log out
			i := rng.IntN(len(live))
			k := live[i]
			live = append(live[:i], live[i+1:]...)
			h.del(id, host, k.key, rng)
			dead = append(dead, k)
			if len(dead) > deadSet {
				dead = dead[1:]
			}
		case r < 0.95 && len(dead) > 0: // read a deleted one
			h.get(id, host, dead[rng.IntN(len(dead))].key)
		case len(dead) > 0: // log in again under a deleted id
			if h.sets.Add(1) > h.maxSets {
				continue
			}
			i := rng.IntN(len(dead))
			k := dead[i]
			dead = append(dead[:i], dead[i+1:]...)
			set(host, k)
			live = append(live, k)
		}
	}
}

// pickHost returns a random host that is up, other than not, or nil.
func (h *harness) pickHost(rng *rand.Rand, not *member) *member {
	var up []*member
	for _, m := range h.hosts {
		if m != not && m.isUp() {
			up = append(up, m)
		}
	}
	if len(up) == 0 {
		return nil
	}
	return up[rng.IntN(len(up))]
}

// do makes one call on host and records it; a host that is down makes no call.
func (h *harness) do(o op, host *member, path string, q url.Values) (op, bool) {
	addr := host.address()
	if addr == "" {
		return o, false
	}
	o.host = host.name
	o.start = h.since()
	body, err := h.call(addr, path, q)
	o.end = h.since()
	switch {
	case err != nil:
		o.res, o.detail = resErr, err.Error()
	case body == "ok":
		o.res = resOK
	case body == "notfound":
		o.res = resNotFound
	case strings.HasPrefix(body, "value "):
		o.res = resValue
		v := strings.TrimPrefix(body, "value ")
		if o.kind == opGet {
			v, o.src, _ = strings.Cut(v, " ")
		}
		if key, ver, ok := decodeValue(v); ok && key == o.key {
			o.ver = ver
		} else {
			o.ver, o.detail = -1, v
		}
	case strings.HasPrefix(body, "err "):
		o.res, o.detail = resErr, strings.TrimPrefix(body, "err ")
	default:
		o.res, o.detail = resErr, "unexpected answer: "+body
	}
	if o.res == resOK && o.kind == opGet {
		o.res, o.detail = resErr, "get answered ok without a value"
	}
	return o, true
}

func (h *harness) set(client int, host *member, key string, ver int, ttl time.Duration, pad string) {
	o := op{client: client, kind: opSet, key: key, ver: ver, ttl: ttl}
	q := url.Values{"k": {key}, "v": {encodeValue(key, ver, pad)}, "ttl": {strconv.FormatInt(ttl.Milliseconds(), 10)}}
	if o, ok := h.do(o, host, "/set", q); ok {
		h.rec.add(o)
	}
}

func (h *harness) get(client int, host *member, key string) {
	if o, ok := h.do(op{client: client, kind: opGet, key: key}, host, "/get", url.Values{"k": {key}}); ok {
		h.rec.add(o)
	}
}

// del deletes key on host. Before, it looks at which other connected hosts hold the key in
// their local tables; after a Delete that returned nil, a probe measures how long they
// keep it (revocation latency).
func (h *harness) del(client int, host *member, key string, rng *rand.Rand) {
	var holders []*member
	for _, m := range h.hosts {
		m.mu.Lock()
		ok := m != host && m.up && !m.cut
		m.mu.Unlock()
		if !ok {
			continue
		}
		if body, err := h.call(m.address(), "/local", url.Values{"k": {key}}); err == nil && strings.HasPrefix(body, "value ") {
			holders = append(holders, m)
		}
	}
	o, ok := h.do(op{client: client, kind: opDel, key: key}, host, "/del", url.Values{"k": {key}})
	if !ok {
		return
	}
	h.rec.add(o)
	if o.res != resOK || len(holders) == 0 {
		return
	}
	select {
	case h.probeSem <- struct{}{}:
	default:
		h.revMu.Lock()
		h.revBusy++
		h.revMu.Unlock()
		return
	}
	h.probes.Add(1)
	go func() {
		defer h.probes.Done()
		defer func() { <-h.probeSem }()
		h.probe(o, holders)
	}()
}

// probe polls the local tables of holders until each misses d's key, for at most
// probeLimit after d returned.
func (h *harness) probe(d op, holders []*member) {
	left := holders
	for poll := 0; len(left) > 0; poll++ {
		var still []*member
		for _, m := range left {
			addr := m.address()
			if addr == "" {
				continue // went down: no sample
			}
			body, err := h.call(addr, "/local", url.Values{"k": {d.key}})
			now := h.since()
			switch {
			case err != nil:
			case body == "notfound":
				h.addRev(revSample{host: m.name, from: d.start, to: now, lat: max(0, now-d.end), first: poll == 0})
			case now-d.end > probeLimit:
				h.addRev(revSample{host: m.name, from: d.start, to: now, lat: now - d.end, timedOut: true})
			default:
				still = append(still, m)
			}
		}
		left = still
		if len(left) > 0 {
			time.Sleep(probePoll)
		}
	}
}

func (h *harness) addRev(s revSample) {
	h.revMu.Lock()
	defer h.revMu.Unlock()
	h.revs = append(h.revs, s)
}

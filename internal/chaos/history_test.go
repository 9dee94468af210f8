//go:build linux

package chaos

import (
	"fmt"
	"math"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Times in the history and the fault log are durations since the run started (monotonic).

func fmtT(d time.Duration) string { return fmt.Sprintf("+%.3fs", d.Seconds()) }

const forever = time.Duration(math.MaxInt64)

type opKind uint8

const (
	opSet opKind = iota + 1
	opGet
	opDel
)

func (k opKind) String() string {
	switch k {
	case opSet:
		return "set"
	case opGet:
		return "get"
	case opDel:
		return "del"
	}
	return "?"
}

type result uint8

const (
	resOK       result = iota + 1 // set or delete returned nil
	resValue                      // get returned a value
	resNotFound                   // get returned ErrNotFound
	resErr                        // any error: the outcome is unknown
)

// op is one recorded call. A client drives each of its keys one call at a time, so the
// calls of a key are ordered by start time and never overlap.
type op struct {
	client     int
	host       string // "host0".."hostN", or "fresh" for the final check
	kind       opKind
	key        string
	ver        int           // set: the version written; get: the version read (-1 if the value was not one of ours)
	ttl        time.Duration // set
	start, end time.Duration
	res        result
	detail     string // the error, or a value that could not be decoded
	src        string // a get's value came from the host's local table ("local") or through the relay ("remote")
}

func (o op) String() string {
	s := fmt.Sprintf("%s..%s %-5s c%d %s", fmtT(o.start), fmtT(o.end), o.host, o.client, o.kind)
	if o.kind == opSet {
		s += fmt.Sprintf(" v%d ttl=%v", o.ver, o.ttl)
	}
	switch o.res {
	case resOK:
		s += " -> ok"
	case resValue:
		if o.ver < 0 {
			s += fmt.Sprintf(" -> bad value %q", o.detail)
		} else {
			s += fmt.Sprintf(" -> v%d", o.ver)
		}
		if o.src != "" {
			s += " (" + o.src + ")"
		}
	case resNotFound:
		s += " -> notfound"
	case resErr:
		s += " -> err: " + o.detail
	}
	return s
}

// Values say which key and which version they are, so a stale or foreign value is
// recognized: KEY.VERSION.PADDING (keys hold no dot).
func encodeValue(key string, ver int, pad string) string {
	return key + "." + strconv.Itoa(ver) + "." + pad
}

func decodeValue(v string) (key string, ver int, ok bool) {
	f := strings.SplitN(v, ".", 3)
	if len(f) != 3 {
		return "", 0, false
	}
	n, err := strconv.Atoi(f[1])
	if err != nil || n < 1 {
		return "", 0, false
	}
	return f[0], n, true
}

// recorder is the history of every call.
type recorder struct {
	mu    sync.Mutex
	byKey map[string][]op
	n     int
}

func newRecorder() *recorder { return &recorder{byKey: map[string][]op{}} }

func (r *recorder) add(o op) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.byKey[o.key] = append(r.byKey[o.key], o)
	r.n++
}

// snapshot returns the history by key, each key's calls in order.
func (r *recorder) snapshot() map[string][]op {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make(map[string][]op, len(r.byKey))
	for k, ops := range r.byKey {
		ops = slices.Clone(ops)
		sort.SliceStable(ops, func(i, j int) bool { return ops[i].start < ops[j].start })
		out[k] = ops
	}
	return out
}

// faultLog is every fault with its time, and the intervals during which a target was down
// or cut off.
type faultLog struct {
	mu     sync.Mutex
	events []event
	ivs    []interval
}

type event struct {
	at     time.Duration
	target string
	what   string
}

type interval struct {
	target, kind string // kind: "down" or "cut"
	from, to     time.Duration
	open         bool
}

// note logs an event.
func (f *faultLog) note(at time.Duration, target, what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event{at, target, what})
}

// begin opens an interval (and logs it); end closes it.
func (f *faultLog) begin(at time.Duration, target, kind, what string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event{at, target, what})
	f.ivs = append(f.ivs, interval{target: target, kind: kind, from: at, to: forever, open: true})
	return len(f.ivs) - 1
}

func (f *faultLog) end(i int, at time.Duration, what string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.events = append(f.events, event{at, f.ivs[i].target, what})
	f.ivs[i].to, f.ivs[i].open = at, false
}

// disturbed reports whether host was cut off from the relay at any time in [a, b]: its
// proxy cut, the host down, or the relay down (until slack after it came back, the time
// a host takes to reconnect).
func (f *faultLog) disturbed(host string, a, b, slack time.Duration) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, iv := range f.ivs {
		to := iv.to
		switch iv.target {
		case host:
		case "relay":
			if to != forever {
				to += slack
			}
		default:
			continue
		}
		if iv.from <= b && to >= a {
			return true
		}
	}
	return false
}

// around returns the events in [a, b] and the intervals that overlap it, as lines.
func (f *faultLog) around(a, b time.Duration) []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for _, iv := range f.ivs {
		if iv.from < a && iv.to > a {
			to := "still"
			if !iv.open {
				to = "until " + fmtT(iv.to)
			}
			out = append(out, fmt.Sprintf("    %s %s since %s, %s", iv.target, iv.kind, fmtT(iv.from), to))
		}
	}
	for _, e := range f.events {
		if e.at >= a && e.at <= b {
			out = append(out, fmt.Sprintf("    %s %s: %s", fmtT(e.at), e.target, e.what))
		}
	}
	return out
}

func (f *faultLog) count() map[string]int {
	f.mu.Lock()
	defer f.mu.Unlock()
	n := map[string]int{}
	for _, iv := range f.ivs {
		t := iv.target
		if strings.HasPrefix(t, "host") {
			t = "host"
		} else if strings.HasPrefix(t, "exp-") || strings.HasPrefix(t, "aging-") {
			t = "relief"
		}
		n[t+" "+iv.kind]++
	}
	return n
}

// checkParams are the allowances of the checker.
type checkParams struct {
	stale     time.Duration // a connected host may return a deleted key this long after the Delete returned
	staleFor  time.Duration // ... a host cut off or down around the Delete, this long
	reconnect time.Duration // a host counts as cut off this long after the relay came back
	margin    time.Duration // keys this close to their expiry are not checked
}

// allowance is how long after d returned host may still return what d deleted.
func (p checkParams) allowance(f *faultLog, host string, d op) time.Duration {
	if f.disturbed(host, d.start, d.end+p.stale, p.reconnect) {
		return p.staleFor
	}
	return p.stale
}

// finding is a key that broke a guarantee, and why.
type finding struct {
	key      string
	why      string
	from, to time.Duration // the faults in this interval are the ones that matter
}

// runResult is what the checker found in the calls made during the run.
type runResult struct {
	gets            int
	resurrected     []finding      // a get returned a value an acknowledged delete had removed
	resurrectedFrom map[string]int // ... by where the host found it: "local" or "remote"
	corrupt         []finding      // a get returned a value never written under its key
	stale           []finding      // a get returned an older version than an acknowledged set had written (no delete between)
	staleExpired    []finding      // ... once the newest such set had expired: asserted, apart
	missed          []finding      // a get found nothing while an acknowledged, unexpired, undeleted set existed
	expiredServed   int            // a get returned a version past its expiry
}

// checkRun checks every get of the run against the calls before it.
func checkRun(hist map[string][]op, f *faultLog, p checkParams) runResult {
	r := runResult{resurrectedFrom: map[string]int{}}
	for _, key := range sortedKeys(hist) {
		ops := hist[key]
		setAt := map[int]int{} // version -> index of its set
		for i, o := range ops {
			if o.kind == opSet {
				setAt[o.ver] = i
			}
		}
		for i, g := range ops {
			if g.kind != opGet {
				continue
			}
			r.gets++
			switch g.res {
			case resValue:
				si, ok := setAt[g.ver]
				if g.ver < 0 || !ok || si > i {
					r.corrupt = append(r.corrupt, finding{key, fmt.Sprintf("get on %s at %s returned %q, never written under this key before it",
						g.host, fmtT(g.start), g.detail), g.start - 2*time.Second, g.end + time.Second})
					continue
				}
				s := ops[si]
				resurrected := false
				for j := si + 1; j < i; j++ {
					d := ops[j]
					if d.kind != opDel || d.res != resOK {
						continue
					}
					if allow := p.allowance(f, g.host, d); g.start > d.end+allow {
						r.resurrected = append(r.resurrected, finding{key, fmt.Sprintf(
							"get on %s at %s returned v%d (%s), which the delete on %s that returned at %s removed (allowance %v)",
							g.host, fmtT(g.start), g.ver, g.src, d.host, fmtT(d.end), allow), d.start - 2*time.Second, g.end + 500*time.Millisecond})
						r.resurrectedFrom[g.src]++
						resurrected = true
						break
					}
				}
				if resurrected {
					continue
				}
				for j := si + 1; j < i; j++ {
					w := ops[j]
					if w.kind == opSet && w.res == resOK && g.start > w.end+p.allowance(f, g.host, w) {
						fd := finding{key, fmt.Sprintf("get on %s at %s returned v%d (%s); the set of v%d on %s returned at %s",
							g.host, fmtT(g.start), g.ver, g.src, w.ver, w.host, fmtT(w.end)), w.start - 2*time.Second, g.end + 500*time.Millisecond}
						if newestExpired(ops[si+1:i], g, p.margin) {
							r.staleExpired = append(r.staleExpired, fd)
						} else {
							r.stale = append(r.stale, fd)
						}
						break
					}
				}
				if g.start > s.end+s.ttl+p.margin {
					r.expiredServed++
				}
			case resNotFound:
				a := -1
				for j := i - 1; j >= 0; j-- {
					if o := ops[j]; o.kind == opDel {
						break
					} else if o.kind == opSet && o.res == resOK && o.end < g.start {
						a = j
						break
					}
				}
				if a < 0 {
					continue
				}
				alive := true
				for j := a; j < i; j++ {
					if o := ops[j]; o.kind == opSet && o.start+o.ttl < g.end+p.margin {
						alive = false
					}
				}
				if alive {
					s := ops[a]
					r.missed = append(r.missed, finding{key, fmt.Sprintf("get on %s at %s found nothing; the set on %s that returned at %s stood",
						g.host, fmtT(g.start), s.host, fmtT(s.end)), s.end - 2*time.Second, g.end + 500*time.Millisecond})
				}
			}
		}
	}
	return r
}

// newestExpired reports whether the newest acknowledged set among ops that returned before
// get g started may have expired while g ran (to within margin).
func newestExpired(ops []op, g op, margin time.Duration) bool {
	for j := len(ops) - 1; j >= 0; j-- {
		if o := ops[j]; o.kind == opSet && o.res == resOK && o.end < g.start {
			return o.start+o.ttl < g.end+margin
		}
	}
	return false
}

// expectation is what a fresh host must find under a key at the end.
type expectation struct {
	key      string
	deleted  bool          // it must find nothing
	versions []int         // otherwise one of these (the acknowledged set and failed sets after it)
	until    time.Duration // the earliest expiry among them
	note     string
	call     op // the acknowledged set, or the acknowledged delete
}

// finalExpectation says what a fresh host must find under a key, from its calls; ok is
// false when the calls leave it open (a failed delete after the last acknowledged set, or
// no acknowledged set or delete at all since the last delete).
func finalExpectation(ops []op) (e expectation, ok bool) {
	lastSet, lastDel := -1, -1
	for i, o := range ops {
		switch o.kind {
		case opSet:
			lastSet = i
		case opDel:
			lastDel = i
		}
	}
	if lastSet < 0 {
		return e, false
	}
	e.key = ops[lastSet].key
	if lastDel > lastSet {
		for j := lastSet + 1; j < len(ops); j++ {
			if ops[j].kind == opDel && ops[j].res == resOK {
				e.deleted, e.call = true, ops[j]
				return e, true
			}
		}
		return e, false
	}
	a := -1
	for j := lastSet; j > lastDel; j-- {
		if ops[j].kind == opSet && ops[j].res == resOK {
			a = j
			break
		}
	}
	if a < 0 {
		return e, false
	}
	e.until, e.call = forever, ops[a]
	for j := a; j <= lastSet; j++ {
		if o := ops[j]; o.kind == opSet {
			e.versions = append(e.versions, o.ver)
			e.until = min(e.until, o.start+o.ttl)
		}
	}
	for j := 0; j < a; j++ {
		if o := ops[j]; o.kind == opDel && o.res == resErr {
			e.note = "a delete before the acknowledged set failed (its outcome is unknown)"
		}
	}
	return e, true
}

// judge compares a fresh host's answer with the expectation. It returns "" when the
// answer is right, "skip" when it cannot tell, or "lost" or "resurrected" and why.
func judge(e expectation, g op, margin time.Duration) (verdict, why string) {
	if g.res == resErr {
		return "skip", ""
	}
	if e.deleted {
		if g.res == resValue {
			return "resurrected", fmt.Sprintf("the fresh host read v%d after the key was deleted", g.ver)
		}
		return "", ""
	}
	if g.end+margin > e.until {
		return "skip", "" // (nearly) expired
	}
	switch {
	case g.res == resNotFound:
		why = "the fresh host found nothing"
	case slices.Contains(e.versions, g.ver):
		return "", ""
	case g.ver < 0:
		why = fmt.Sprintf("the fresh host read a value not ours: %q", g.detail)
	default:
		why = fmt.Sprintf("the fresh host read v%d, want v%v", g.ver, e.versions)
	}
	if e.note != "" {
		why += "; " + e.note
	}
	return "lost", why
}

func sortedKeys(m map[string][]op) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}

// revSample is one measurement of revocation: how long after a Delete returned another
// host's local table stopped holding the key.
type revSample struct {
	host     string
	from, to time.Duration // the Delete's start, the last poll's end
	lat      time.Duration // until the end of the first poll that missed the key (an upper bound)
	first    bool          // that was the first poll: gone by the time the Delete returned, or nearly
	timedOut bool
}

func percentile(d []time.Duration, p int) time.Duration {
	if len(d) == 0 {
		return 0
	}
	return d[min(len(d)-1, len(d)*p/100)]
}

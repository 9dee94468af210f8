//go:build linux

package chaos

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/globalsession/globalsession/sessioncache"
)

// reportLimit is how many lost and resurrected keys a failure shows with their histories.
const reportLimit = 10

func TestChaos(t *testing.T) {
	if fi, err := os.Stat(sessioncache.DefaultDir); err != nil || !fi.IsDir() {
		t.Skipf("no %s: %v", sessioncache.DefaultDir, err)
	}
	p := params{
		duration: *flagDuration, seed: *flagSeed, faults: *flagFaults, clients: *flagClients,
		replicas: *flagReplicas, faultMin: *flagFaultMin, faultMax: max(*flagFaultMin, *flagFaultMax),
		keep: *flagKeep, hosts: 3, expansion: 2, aging: 2, relayRecords: *flagRelayRec,
		check: checkParams{stale: *flagStale, staleFor: *flagStaleFor, reconnect: time.Second, margin: time.Second},
	}
	set := map[string]bool{}
	flag.Visit(func(f *flag.Flag) { set[f.Name] = true })
	if testing.Short() && !set["chaos.duration"] {
		p.duration = 8 * time.Second
	}
	if p.seed == 0 {
		p.seed = time.Now().UnixNano()
	}
	t.Logf("seed %d (repeat with -chaos.seed=%d); %v of workload, %d clients, faults %t",
		p.seed, p.seed, p.duration, p.clients, p.faults)

	h := newHarness(t, p)
	h.build()
	h.configure()
	t.Logf("tables of %d records; at most %d sets", h.records, h.maxSets)
	h.startAll()
	t.Logf("tier up after %v", h.since().Round(time.Millisecond))

	// The run: clients, and the faults.
	runStart := h.since()
	ctx, cancel := context.WithTimeout(context.Background(), p.duration)
	defer cancel()
	var clients sync.WaitGroup
	for i := range p.clients {
		rng := rand.New(rand.NewPCG(uint64(p.seed), uint64(i)))
		clients.Go(func() { h.client(ctx, i, rng) })
	}
	var faults sync.WaitGroup
	if p.faults {
		rng := rand.New(rand.NewPCG(uint64(p.seed), 1<<32))
		faults.Go(func() { h.faultLoop(ctx, rng) })
	}
	<-ctx.Done()
	faults.Wait()
	h.stopFaults()
	clients.Wait()
	h.probes.Wait()
	runEnd := h.since()
	h.faults.note(runEnd, "test", "run over; everything healed and restarted")

	// Settle: every process up and connected again.
	settleErr := h.settle(45 * time.Second)
	if settleErr != nil {
		t.Errorf("the tier did not settle: %v", settleErr)
	} else {
		h.faults.note(h.since(), "test", "settled")
	}
	t.Logf("settled %v after the run", (h.since() - runEnd).Round(time.Millisecond))

	// A fresh host (a new process with a new table) reads every key.
	h.fresh = &member{name: "fresh", kind: kindHost, table: h.shm + "fresh.table", log: h.sink("fresh")}
	if err := h.start(h.fresh); err != nil {
		t.Fatalf("fresh host: %v", err)
	}
	if err := h.settle(15 * time.Second); err != nil {
		t.Errorf("the fresh host did not connect: %v", err)
	}
	// The tiers expire entries by the wall clock, the history by this process's monotonic
	// clock: a step of the wall clock against it (a virtual machine paused and resumed, say)
	// makes keys near their expiry look lost or missed. Keys within such a step of their
	// expiry are not checked.
	if step := wallStep(h.t0); step > 100*time.Millisecond {
		t.Logf("the wall clock moved %v against the monotonic clock during the run: keys within that of their expiry are not checked", step.Round(time.Millisecond))
		p.check.margin += step
		h.p.check.margin = p.check.margin
	}
	hist := h.rec.snapshot()
	run := checkRun(hist, h.faults, p.check)
	final := h.finalCheck(hist)

	// Each host verifies its table while it runs; then everything stops and the test
	// verifies every table.
	var live []string
	for _, m := range append(slices.Clone(h.hosts), h.fresh) {
		if body, err := h.call(m.address(), "/verify", nil); err != nil || body != "ok" {
			live = append(live, fmt.Sprintf("%s: %v %s", m.name, err, body))
		}
	}
	h.stopAll()
	tables := h.verifyTables()

	h.report(t, hist, run, final, tables, runEnd-runStart)
	if len(live) > 0 {
		t.Errorf("Verify in the running hosts failed:\n%s", strings.Join(live, "\n"))
	}
}

// finalResult is what the fresh host found.
type finalResult struct {
	live, deleted     int // keys checked
	open, expired     int // keys not checked: their calls leave the outcome open; they (nearly) expired
	unknown           int // keys the fresh host did not answer for
	lost, resurrected []finding
	reads             map[string]op
}

// finalCheck reads, through the fresh host, every key whose calls say what it must hold.
func (h *harness) finalCheck(hist map[string][]op) finalResult {
	var exps []expectation
	res := finalResult{reads: map[string]op{}}
	for _, key := range sortedKeys(hist) {
		if e, ok := finalExpectation(hist[key]); ok {
			exps = append(exps, e)
		} else {
			res.open++
		}
	}
	// Bounded: a minute, or more for a long run's many keys (a read takes about a
	// millisecond); keys not read by then count as unanswered.
	deadline := time.Now().Add(max(time.Minute, time.Duration(len(exps))*10*time.Millisecond))
	reads := make([]op, len(exps))
	var wg sync.WaitGroup
	work := make(chan int)
	for range 8 {
		wg.Go(func() {
			for i := range work {
				// An error is no answer (a relief server may still be receiving what was
				// kept for it while it was away): ask again, for up to 10 s.
				var g op
				for attempt := 0; attempt < 40 && time.Now().Before(deadline); attempt++ {
					if attempt > 0 {
						time.Sleep(250 * time.Millisecond)
					}
					var ok bool
					g, ok = h.do(op{client: -1, kind: opGet, key: exps[i].key}, h.fresh, "/get", url.Values{"k": {exps[i].key}})
					if !ok || g.res != resErr {
						break
					}
				}
				reads[i] = g
			}
		})
	}
	for i := range exps {
		work <- i
	}
	close(work)
	wg.Wait()
	for i, e := range exps {
		g := reads[i]
		if g.res == 0 {
			g.res, g.detail = resErr, "not read: the fresh host was down, or the check's deadline passed"
		}
		res.reads[e.key] = g
		if e.deleted {
			res.deleted++
		} else {
			res.live++
		}
		if g.res == resErr {
			res.unknown++
			continue
		}
		switch verdict, why := judge(e, g, h.p.check.margin); verdict {
		case "lost":
			res.lost = append(res.lost, finding{e.key, why, e.call.start - 2*time.Second, e.call.end + 5*time.Second})
		case "resurrected":
			res.resurrected = append(res.resurrected, finding{e.key, why, e.call.start - 2*time.Second, e.call.end + 5*time.Second})
		case "skip":
			res.expired++
			if e.deleted {
				res.deleted--
			} else {
				res.live--
			}
		}
	}
	return res
}

// report logs the counts, and on failure the first lost and resurrected keys with their
// histories and the faults around them; then it asserts.
func (h *harness) report(t *testing.T, hist map[string][]op, run runResult, final finalResult, tables []tableInfo, runFor time.Duration) {
	var sets, setsOK, gets, getsValue, getsNotFound, dels, delsOK int
	for _, ops := range hist {
		for _, o := range ops {
			switch o.kind {
			case opSet:
				sets++
				if o.res == resOK {
					setsOK++
				}
			case opGet:
				gets++
				switch o.res {
				case resValue:
					getsValue++
				case resNotFound:
					getsNotFound++
				}
			case opDel:
				dels++
				if o.res == resOK {
					delsOK++
				}
			}
		}
	}
	var b strings.Builder
	fmt.Fprintf(&b, "run of %v, seed %d, faults %t\n", runFor.Round(time.Millisecond), h.p.seed, h.p.faults)
	fmt.Fprintf(&b, "calls: %d keys; %d sets (%d ok, %d failed), %d gets (%d values, %d not found, %d failed), %d deletes (%d ok, %d failed)\n",
		len(hist), sets, setsOK, sets-setsOK, gets, getsValue, getsNotFound, gets-getsValue-getsNotFound, dels, delsOK, dels-delsOK)
	counts := h.faults.count()
	names := make([]string, 0, len(counts))
	for k := range counts {
		names = append(names, k)
	}
	slices.Sort(names)
	var fl []string
	for _, k := range names {
		fl = append(fl, fmt.Sprintf("%s %d", k, counts[k]))
	}
	fmt.Fprintf(&b, "faults: %s\n", strings.Join(fl, ", "))
	fmt.Fprintf(&b, "fresh host: %d live keys checked, %d deleted keys checked; not checked: %d expired, %d whose calls leave the outcome open (failed set or delete); %d unanswered\n",
		final.live, final.deleted, final.expired, final.open, final.unknown)
	fmt.Fprintf(&b, "LOST %d   RESURRECTED %d (%d during the run, %d at the fresh host)   CORRUPT %d\n",
		len(final.lost), len(run.resurrected)+len(final.resurrected), len(run.resurrected), len(final.resurrected), len(run.corrupt))
	if len(run.resurrected) > 0 {
		fmt.Fprintf(&b, "resurrected during the run: %d served from the host's local table, %d fetched through the relay\n",
			run.resurrectedFrom["local"], run.resurrectedFrom["remote"])
	}
	fmt.Fprintf(&b, "MISSED %d during the run (a get found nothing though an acknowledged set stood)   EXPIRED-SHADOW %d (an older version served once a newer one had expired)\n",
		len(run.missed), len(run.staleExpired))
	fmt.Fprintf(&b, "not asserted: %d stale reads (older version than an acknowledged set, the newer one unexpired: the README's limitation), %d expired versions served\n",
		len(run.stale), run.expiredServed)

	// Revocation latency, without the samples of hosts that were cut off or down meanwhile.
	h.revMu.Lock()
	var lats []time.Duration
	var timedOut, discarded, first int
	for _, s := range h.revs {
		if h.faults.disturbed(s.host, s.from, s.to, h.p.check.reconnect) {
			discarded++
			continue
		}
		if s.timedOut {
			timedOut++
			continue
		}
		lats = append(lats, s.lat)
		if s.first {
			first++
		}
	}
	busy := h.revBusy
	h.revMu.Unlock()
	slices.Sort(lats)
	fmt.Fprintf(&b, "revocation latency (Delete returned -> another connected host's local table misses; upper bounds, polled every %v): n=%d p50=%v p99=%v max=%v; %d gone at the first poll; %d still held after %v; %d samples dropped (host cut off or down meanwhile), %d deletes not probed (probes busy)\n",
		probePoll, len(lats), percentile(lats, 50).Round(time.Microsecond), percentile(lats, 99).Round(time.Microsecond), percentile(lats, 100).Round(time.Microsecond),
		first, timedOut, probeLimit, discarded, busy)

	verifyFailed := 0
	for _, ti := range tables {
		status := "verify ok"
		if ti.verify != nil {
			status = "VERIFY FAILED: " + ti.verify.Error()
			verifyFailed++
		}
		fmt.Fprintf(&b, "table %-8s %6d/%d entries, %d evictions, %d expired reclaimed, %d lock recoveries; %s\n",
			ti.name, ti.stats.Len, ti.stats.Capacity, ti.stats.Evictions, ti.stats.Expired, ti.stats.Recoveries, status)
		if ti.stats.Evictions > 0 && (ti.name == "relay" || strings.HasPrefix(ti.name, "exp-")) {
			fmt.Fprintf(&b, "  (the %s table evicted entries: capacity, not faults, may explain losses)\n", ti.name)
		}
	}
	t.Log("\n" + b.String())

	resurrected := append(slices.Clone(run.resurrected), final.resurrected...)
	if len(final.lost) > 0 || len(resurrected) > 0 || len(run.corrupt) > 0 || len(run.missed) > 0 || len(run.staleExpired) > 0 {
		var d strings.Builder
		show := func(title string, fs []finding) {
			if len(fs) == 0 {
				return
			}
			fmt.Fprintf(&d, "\n== %s: %d keys; the first %d:\n", title, len(fs), min(len(fs), reportLimit))
			seen := map[string]bool{}
			shown := 0
			for _, f := range fs {
				if seen[f.key] || shown == reportLimit {
					continue
				}
				seen[f.key] = true
				shown++
				d.WriteString(h.describe(f, hist[f.key], final.reads[f.key]))
			}
		}
		show("LOST", final.lost)
		show("RESURRECTED", resurrected)
		show("CORRUPT", run.corrupt)
		show("MISSED", run.missed)
		show("EXPIRED-SHADOW", run.staleExpired)
		d.WriteString(h.tierWarnings())
		t.Log(d.String())
	}
	for _, st := range []struct {
		title string
		fs    []finding
		limit int
	}{{"stale reads", run.stale, reportLimit}} {
		if len(st.fs) == 0 {
			continue
		}
		var d strings.Builder
		fmt.Fprintf(&d, "\n== %s (not asserted): %d; the first %d:\n", st.title, len(st.fs), min(len(st.fs), st.limit))
		for _, f := range st.fs[:min(len(st.fs), st.limit)] {
			d.WriteString(h.describe(f, hist[f.key], final.reads[f.key]))
		}
		t.Log(d.String())
	}
	if len(final.lost) != 0 {
		t.Errorf("lost = %d, want 0", len(final.lost))
	}
	if len(resurrected) != 0 {
		t.Errorf("resurrected = %d, want 0", len(resurrected))
	}
	if len(run.corrupt) != 0 {
		t.Errorf("corrupt reads = %d, want 0", len(run.corrupt))
	}
	if len(run.missed) != 0 {
		t.Errorf("missed reads = %d, want 0", len(run.missed))
	}
	if len(run.staleExpired) != 0 {
		t.Errorf("older versions served once a newer one had expired = %d, want 0", len(run.staleExpired))
	}
	if verifyFailed != 0 {
		t.Errorf("%d tables failed Verify", verifyFailed)
	}
	if final.unknown != 0 {
		t.Errorf("the fresh host could not answer for %d keys", final.unknown)
	}
}

// describe shows a finding: why, the key's calls, the fresh host's read and the faults
// around the calls that show it.
// wallStep returns how far the wall clock has moved against the monotonic clock since t0
// (which carries both readings).
func wallStep(t0 time.Time) time.Duration {
	now := time.Now()
	step := now.Round(0).Sub(t0.Round(0)) - now.Sub(t0)
	return max(step, -step)
}

func (h *harness) describe(f finding, ops []op, fresh op) string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s: %s\n", f.key, f.why)
	if len(ops) == 0 {
		return b.String()
	}
	for _, o := range ops {
		fmt.Fprintf(&b, "    %s\n", o)
	}
	if fresh.kind != 0 {
		fmt.Fprintf(&b, "    %s\n", fresh)
	}
	fmt.Fprintf(&b, "  faults from %s to %s:\n", fmtT(f.from), fmtT(f.to))
	lines := h.faults.around(f.from, f.to)
	if len(lines) == 0 {
		b.WriteString("    none\n")
	}
	for i, l := range lines {
		if i == 30 {
			fmt.Fprintf(&b, "    ... %d more\n", len(lines)-i)
			break
		}
		b.WriteString(l + "\n")
	}
	return b.String()
}

// tierWarnings gathers the warnings and errors that the relay (with its sibling) and the
// relief servers logged during the test, each message once per process with its count and
// first time, for a failure's report.
func (h *harness) tierWarnings() string {
	type seen struct {
		first string
		n     int
	}
	var b strings.Builder
	b.WriteString("\n== warnings and errors of the relay, its sibling and the relief servers (first time, count):\n")
	shown := 0
	for _, m := range append([]*member{h.relay}, h.reliefs...) {
		data, err := os.ReadFile(filepath.Join(h.dir, m.name+".log"))
		if err != nil {
			fmt.Fprintf(&b, "    %s: %v\n", m.name, err)
			continue
		}
		var order []string
		msgs := map[string]*seen{}
		for _, line := range strings.Split(string(data), "\n") {
			if !strings.Contains(line, "level=WARN") && !strings.Contains(line, "level=ERROR") {
				continue
			}
			at, _, _ := strings.Cut(line, " ")
			msg := line
			if i := strings.Index(line, "level="); i >= 0 {
				msg = line[i:]
			}
			if j := strings.Index(msg, " err="); j >= 0 && len(msg) > j+120 {
				msg = msg[:j+120] // one message with errors that differ in detail only
			}
			if s := msgs[msg]; s != nil {
				s.n++
				continue
			}
			msgs[msg] = &seen{first: at, n: 1}
			order = append(order, msg)
		}
		for _, msg := range order {
			if shown == 60 {
				b.WriteString("    ... more\n")
				return b.String()
			}
			shown++
			fmt.Fprintf(&b, "    %-8s %s x%d %s\n", m.name, msgs[msg].first, msgs[msg].n, msg)
		}
	}
	return b.String()
}

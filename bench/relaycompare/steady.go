package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"strings"
	"time"

	"github.com/globalsession/globalsession/internal/wire"
	"github.com/globalsession/globalsession/relay"
)

// The steady-state measurement (-steady): one system at a time, with nothing else running,
// sequential GETs from one caller in rounds, so that each system settles into whatever
// rhythm the machine gives a long run of round trips. Interleaving the systems (as the
// matrix does) disturbs that rhythm: on a virtual machine whose idle processors halt, a
// Go echo's round trip was 26 µs on its own and 40 µs when it took turns with the others.
// Beside relay.Client it drives the relay with a minimal frame client (the caller writes
// a frame and reads the reply itself, one goroutine and no hand-off), which places the
// relay's extra latency on the server or on relay.Client.

const sysRelayFrames = "relay, frame client"

// frameSession is the minimal relay client: one connection, each operation a frame
// written and its reply read by the caller (through wire.Reader, the protocol's framing).
type frameSession struct {
	w   *workload
	c   net.Conn
	r   *wire.Reader
	buf []byte
	id  uint64
	f   wire.Frame
}

func dialFrames(w *workload, addr string) (*frameSession, error) {
	c, err := net.DialTimeout("tcp", addr, 10*time.Second)
	if err != nil {
		return nil, err
	}
	s := &frameSession{w: w, c: c, r: wire.NewReader(c, 0)}
	if _, err := s.roundTrip(&wire.Frame{Op: wire.OpHello, Key: []byte("relaycompare-frames"), Value: []byte{wire.Version}}); err != nil {
		c.Close()
		return nil, fmt.Errorf("hello: %w", err)
	}
	return s, nil
}

// roundTrip sends f and returns its reply, valid until the next call.
func (s *frameSession) roundTrip(f *wire.Frame) (*wire.Frame, error) {
	s.id++
	f.ID = s.id
	var err error
	if s.buf, err = wire.Append(s.buf[:0], f); err != nil {
		return nil, err
	}
	if _, err := s.c.Write(s.buf); err != nil {
		return nil, err
	}
	if err := s.r.Read(&s.f); err != nil {
		return nil, err
	}
	switch {
	case s.f.Op != wire.OpReply || s.f.ID != f.ID:
		return nil, fmt.Errorf("got %s %d in answer to request %d", s.f.Op, s.f.ID, f.ID)
	case s.f.Status == wire.StatusError:
		return nil, fmt.Errorf("the relay answered %s: %s", f.Op, s.f.Value)
	}
	return &s.f, nil
}

func (s *frameSession) do(_ int, op opKind, key int) error {
	f := wire.Frame{Op: wire.OpGet, Path: []byte(relay.DefaultAuthPath), Key: s.w.keys[key]}
	if op == opSet {
		f.Op, f.Value = wire.OpSet, s.w.value
	}
	r, err := s.roundTrip(&f)
	switch {
	case err != nil:
		return err
	case op == opGet && (r.Status != wire.StatusValue || len(r.Value) != len(s.w.value)):
		return fmt.Errorf("GET answered %s with %d bytes, want a %d-byte value", r.Status, len(r.Value), len(s.w.value))
	case op == opSet && r.Status != wire.StatusOK:
		return fmt.Errorf("SET answered %s", r.Status)
	}
	return nil
}

func (s *frameSession) close() { s.c.Close() }

// steady measures each system on its own: a warm-up, then -steady-rounds rounds of
// -steady-ops sequential GETs, and reports each round's median latency.
func steady(dial map[string]func(int) (session, error), w *workload) error {
	if *flagSteadyRounds < 1 || *flagSteadyOps < 1 {
		return errors.New("-steady-rounds and -steady-ops must be positive")
	}
	names := []string{sysRaw, sysRelayFrames, sysRelay, sysRedis}
	meds := map[string][]time.Duration{}
	for i, n := range names {
		s, err := dial[n](1)
		if err != nil {
			return fmt.Errorf("connect to %s: %w", n, err)
		}
		if _, err := warmUp(s, opGet, 1, max(*flagSteadyOps/5, 1000), len(w.keys), 0, uint64(i)^0x5eed); err != nil {
			s.close()
			return fmt.Errorf("%s: warm-up: %w", n, err)
		}
		for r := range *flagSteadyRounds {
			res, err := measure(s, opGet, 1, *flagSteadyOps, len(w.keys), uint64(i*1000+r))
			if err != nil {
				s.close()
				return fmt.Errorf("%s: %w", n, err)
			}
			meds[n] = append(meds[n], percentile(res.lat, 0.5))
		}
		s.close()
		progress("steady: %-20s round medians %v", n, meds[n])
	}
	out := os.Stdout
	fmt.Fprintf(out, "# relaycompare -steady: single-client GET latency, one system at a time\n\n")
	fmt.Fprintf(out, "%d keys of %d bytes, values of %d bytes; each system alone: a warm-up, then %d rounds of %d sequential GETs "+
		"from one caller. Machine: %s.\n\n", *flagKeys, *flagKeySize, *flagValueSize, *flagSteadyRounds, *flagSteadyOps, machine())
	fmt.Fprintf(out, "| path | median of the rounds' medians | / raw | each round's median |\n|---|--:|--:|---|\n")
	raw := median(durations(meds[sysRaw]))
	for _, n := range names {
		m := median(durations(meds[n]))
		rounds := make([]string, len(meds[n]))
		for i, d := range meds[n] {
			rounds[i] = micros(d)
		}
		fmt.Fprintf(out, "| %s | %s | %s | %s |\n", n, micros(time.Duration(m)), ratio(m, raw), strings.Join(rounds, ", "))
	}
	fmt.Fprintf(out, "\n%s: the caller writes each GET frame and reads its reply itself (one goroutine, no hand-off): "+
		"what the relay server adds to a round trip. relay: through relay.Client. redis: through go-redis.\n", sysRelayFrames)
	return nil
}

// durations returns ds as float64 nanoseconds, for median.
func durations(ds []time.Duration) []float64 {
	out := make([]float64, len(ds))
	for i, d := range ds {
		out[i] = float64(d)
	}
	return out
}

package discovery

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"reflect"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/net/dns/dnsmessage"
)

// dnsTestServer is a DNS server on 127.0.0.1, over UDP and TCP on the same
// port, answering from a zone the test can change. It speaks the protocol with
// golang.org/x/net/dns/dnsmessage.
type dnsTestServer struct {
	addr string

	mu       sync.Mutex
	zone     map[string][]dnsTestRecord // by lower-case owner name, with the final dot
	truncate bool                       // answer UDP queries with an empty truncated message
	servfail bool                       // answer every query with SERVFAIL
	queries  map[string]int             // "udp A name." -> count
}

// dnsTestRecord is one record of the zone.
type dnsTestRecord struct {
	name  string
	qtype dnsmessage.Type
	body  dnsmessage.ResourceBody
}

// newDNSTestServer starts a dnsTestServer and stops it when the test ends.
func newDNSTestServer(t *testing.T) *dnsTestServer {
	t.Helper()
	s := &dnsTestServer{queries: make(map[string]int)}
	var (
		pc  net.PacketConn
		ln  net.Listener
		err error
	)
	// Port 0 for UDP, then TCP on the same port, which is almost always free.
	for range 20 {
		if pc, err = net.ListenPacket("udp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
		if ln, err = net.Listen("tcp", pc.LocalAddr().String()); err == nil {
			break
		}
		pc.Close()
	}
	if err != nil {
		t.Fatalf("no port free for both UDP and TCP: %v", err)
	}
	s.addr = pc.LocalAddr().String()
	var wg sync.WaitGroup
	t.Cleanup(func() {
		pc.Close()
		ln.Close()
		wg.Wait()
	})
	wg.Go(func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			if out := s.answer(buf[:n], "udp"); out != nil {
				pc.WriteTo(out, from)
			}
		}
	})
	wg.Go(func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer c.Close()
				c.SetDeadline(time.Now().Add(10 * time.Second))
				for {
					var prefix [2]byte
					if _, err := io.ReadFull(c, prefix[:]); err != nil {
						return
					}
					msg := make([]byte, binary.BigEndian.Uint16(prefix[:]))
					if _, err := io.ReadFull(c, msg); err != nil {
						return
					}
					out := s.answer(msg, "tcp")
					if out == nil {
						return
					}
					if _, err := c.Write(append(binary.BigEndian.AppendUint16(nil, uint16(len(out))), out...)); err != nil {
						return
					}
				}
			})
		}
	})
	return s
}

// set replaces the zone, given in zone file syntax (A, AAAA, SRV and TXT records).
func (s *dnsTestServer) set(t *testing.T, zone []string) {
	t.Helper()
	z := make(map[string][]dnsTestRecord)
	for _, line := range zone {
		rr := dnsTestRR(t, line)
		z[strings.ToLower(rr.name)] = append(z[strings.ToLower(rr.name)], rr)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.zone = z
}

func (s *dnsTestServer) setTruncate(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.truncate = v
}

func (s *dnsTestServer) setServfail(v bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.servfail = v
}

// count returns how often a query was asked, e.g. count("tcp", "A", "x.example.com.").
func (s *dnsTestServer) count(network, qtype, name string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.queries[network+" "+qtype+" "+name]
}

// answer returns the answer to the query msg, or nil to drop a malformed one.
func (s *dnsTestServer) answer(msg []byte, network string) []byte {
	var p dnsmessage.Parser
	h, err := p.Start(msg)
	if err != nil {
		return nil
	}
	q, err := p.Question()
	if err != nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	qtype := strings.TrimPrefix(q.Type.String(), "Type")
	s.queries[network+" "+qtype+" "+q.Name.String()]++
	rh := dnsmessage.Header{ID: h.ID, Response: true, Authoritative: true, RecursionDesired: h.RecursionDesired}
	rrs, exists := s.zone[strings.ToLower(q.Name.String())]
	var answers []dnsTestRecord
	switch {
	case s.servfail:
		rh.RCode = dnsmessage.RCodeServerFailure
	case network == "udp" && s.truncate:
		rh.Truncated = true
	case !exists:
		rh.RCode = dnsmessage.RCodeNameError
	default:
		for _, rr := range rrs {
			if rr.qtype == q.Type {
				answers = append(answers, rr)
			}
		}
	}
	b := dnsmessage.NewBuilder(nil, rh)
	b.EnableCompression()
	if b.StartQuestions() != nil || b.Question(q) != nil || b.StartAnswers() != nil {
		return nil
	}
	for _, rr := range answers {
		rrh := dnsmessage.ResourceHeader{Name: q.Name, Class: dnsmessage.ClassINET, TTL: 60}
		var err error
		switch body := rr.body.(type) {
		case *dnsmessage.AResource:
			err = b.AResource(rrh, *body)
		case *dnsmessage.AAAAResource:
			err = b.AAAAResource(rrh, *body)
		case *dnsmessage.SRVResource:
			err = b.SRVResource(rrh, *body)
		case *dnsmessage.TXTResource:
			err = b.TXTResource(rrh, *body)
		}
		if err != nil {
			return nil
		}
	}
	out, err := b.Finish()
	if err != nil {
		return nil
	}
	return out
}

// dnsTestRR parses one record in zone file syntax: "name ttl IN type data".
func dnsTestRR(t *testing.T, line string) dnsTestRecord {
	t.Helper()
	f := strings.Fields(line)
	if len(f) < 5 || f[2] != "IN" {
		t.Fatalf("bad record %q", line)
	}
	rr := dnsTestRecord{name: f[0]}
	data := f[4:]
	switch f[3] {
	case "A", "AAAA":
		ip, err := netip.ParseAddr(data[0])
		if err != nil {
			t.Fatalf("bad record %q: %v", line, err)
		}
		if f[3] == "A" {
			rr.qtype, rr.body = dnsmessage.TypeA, &dnsmessage.AResource{A: ip.As4()}
		} else {
			rr.qtype, rr.body = dnsmessage.TypeAAAA, &dnsmessage.AAAAResource{AAAA: ip.As16()}
		}
	case "SRV":
		if len(data) != 4 {
			t.Fatalf("bad record %q", line)
		}
		var n [3]uint16
		for i := range n {
			v, err := strconv.ParseUint(data[i], 10, 16)
			if err != nil {
				t.Fatalf("bad record %q: %v", line, err)
			}
			n[i] = uint16(v)
		}
		target, err := dnsmessage.NewName(data[3])
		if err != nil {
			t.Fatalf("bad record %q: %v", line, err)
		}
		rr.qtype, rr.body = dnsmessage.TypeSRV, &dnsmessage.SRVResource{Priority: n[0], Weight: n[1], Port: n[2], Target: target}
	case "TXT":
		rr.qtype, rr.body = dnsmessage.TypeTXT, &dnsmessage.TXTResource{TXT: []string{strings.Trim(strings.Join(data, " "), `"`)}}
	default:
		t.Fatalf("bad record %q: type %s", line, f[3])
	}
	return rr
}

func TestDNSTargets(t *testing.T) {
	zone := []string{
		"engine.example.com. 60 IN A 10.0.0.10",
		"engine.example.com. 60 IN A 10.0.0.2",
		"engine.example.com. 60 IN A 10.0.0.1",
		"engine.example.com. 60 IN A 10.0.0.1",
		"engine.example.com. 60 IN AAAA fd00::1",
		"txt.example.com. 60 IN TXT \"no address here\"",
		"_qix._tcp.example.com. 60 IN SRV 10 5 9076 e1.example.com.",
		"_qix._tcp.example.com. 60 IN SRV 10 50 9077 e2.example.com.",
		"_qix._tcp.example.com. 60 IN SRV 20 0 9078 e3.example.com.",
		"_qix._tcp.example.com. 60 IN SRV 30 0 9079 nxtarget.example.com.",
		"e2.example.com. 60 IN A 10.0.1.2",
		"e2.example.com. 60 IN AAAA fd00::2",
		"e3.example.com. 60 IN TXT \"no address here\"",
		"_none._tcp.example.com. 60 IN SRV 0 0 0 .",
		"_empty._tcp.example.com. 60 IN TXT \"no SRV here\"",
		"e1.example.com. 60 IN A 10.0.1.1",
		"E1.example.com. 60 IN A 10.0.1.11",
	}
	srvLabels := func(target, prio, weight string) map[string]string {
		return map[string]string{
			"dns_name":     "_qix._tcp.example.com",
			"srv_target":   target,
			"srv_priority": prio,
			"srv_weight":   weight,
		}
	}
	target := func(addr string, labels map[string]string) Target {
		return Target{ID: addr, Addr: addr, Labels: labels}
	}
	aLabels := map[string]string{"dns_name": "engine.example.com"}

	tests := []struct {
		name     string
		cfg      DNSConfig
		truncate bool
		servfail bool
		want     []Target
		wantErr  string // substring of the error; "" means no error
	}{{
		name: "A and AAAA",
		cfg:  DNSConfig{Name: "engine.example.com", Port: 9076},
		want: []Target{
			target("10.0.0.1:9076", aLabels),
			target("10.0.0.2:9076", aLabels),
			target("10.0.0.10:9076", aLabels),
			target("[fd00::1]:9076", aLabels),
		},
	}, {
		name: "A and AAAA with explicit mode and trailing dot",
		cfg:  DNSConfig{Name: "engine.example.com.", Mode: "A", Port: 80},
		want: []Target{
			target("10.0.0.1:80", map[string]string{"dns_name": "engine.example.com."}),
			target("10.0.0.2:80", map[string]string{"dns_name": "engine.example.com."}),
			target("10.0.0.10:80", map[string]string{"dns_name": "engine.example.com."}),
			target("[fd00::1]:80", map[string]string{"dns_name": "engine.example.com."}),
		},
	}, {
		name:     "truncated UDP answer asked again over TCP",
		cfg:      DNSConfig{Name: "engine.example.com", Port: 9076},
		truncate: true,
		want: []Target{
			target("10.0.0.1:9076", aLabels),
			target("10.0.0.2:9076", aLabels),
			target("10.0.0.10:9076", aLabels),
			target("[fd00::1]:9076", aLabels),
		},
	}, {
		name: "SRV with target queries and host name fallback",
		cfg:  DNSConfig{Name: "_qix._tcp.example.com"},
		want: []Target{
			target("10.0.1.2:9077", srvLabels("e2.example.com", "10", "50")),
			target("[fd00::2]:9077", srvLabels("e2.example.com", "10", "50")),
			target("10.0.1.1:9076", srvLabels("e1.example.com", "10", "5")),
			target("10.0.1.11:9076", srvLabels("e1.example.com", "10", "5")),
			target("e3.example.com:9078", srvLabels("e3.example.com", "20", "0")),
			target("nxtarget.example.com:9079", srvLabels("nxtarget.example.com", "30", "0")),
		},
	}, {
		name:     "SRV over TCP",
		cfg:      DNSConfig{Name: "_qix._tcp.example.com", Mode: DNSModeSRV},
		truncate: true,
		want: []Target{
			target("10.0.1.2:9077", srvLabels("e2.example.com", "10", "50")),
			target("[fd00::2]:9077", srvLabels("e2.example.com", "10", "50")),
			target("10.0.1.1:9076", srvLabels("e1.example.com", "10", "5")),
			target("10.0.1.11:9076", srvLabels("e1.example.com", "10", "5")),
			target("e3.example.com:9078", srvLabels("e3.example.com", "20", "0")),
			target("nxtarget.example.com:9079", srvLabels("nxtarget.example.com", "30", "0")),
		},
	}, {
		name:    "NXDOMAIN for A",
		cfg:     DNSConfig{Name: "gone.example.com", Port: 9076},
		wantErr: "discovery: dns gone.example.com: no A or AAAA records: no such name",
	}, {
		name:    "NXDOMAIN for SRV",
		cfg:     DNSConfig{Name: "_gone._tcp.example.com"},
		wantErr: "discovery: dns _gone._tcp.example.com: no SRV records: no such name",
	}, {
		name:    "no A or AAAA records",
		cfg:     DNSConfig{Name: "txt.example.com", Port: 9076},
		wantErr: "discovery: dns txt.example.com: no A or AAAA records",
	}, {
		name:    "no SRV records",
		cfg:     DNSConfig{Name: "_empty._tcp.example.com"},
		wantErr: "discovery: dns _empty._tcp.example.com: no SRV records",
	}, {
		name:    "only an SRV record saying the service is not available",
		cfg:     DNSConfig{Name: "_none._tcp.example.com"},
		wantErr: "discovery: dns _none._tcp.example.com: no SRV records",
	}, {
		name:     "SERVFAIL",
		cfg:      DNSConfig{Name: "engine.example.com", Port: 9076},
		servfail: true,
		wantErr:  "discovery: dns engine.example.com: query A engine.example.com. at 127.0.0.1:",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := newDNSTestServer(t)
			srv.set(t, zone)
			srv.setTruncate(tt.truncate)
			srv.setServfail(tt.servfail)
			tt.cfg.Server = srv.addr
			d, err := NewDNS(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got, err := d.Targets(context.Background())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("Targets() = %v, %v; want error containing %q", got, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("Targets(): %v", err)
			}
			equalTargetsForTest(t, got, tt.want)
			if tt.truncate {
				if n := srv.count("tcp", dnsTestFirstType(d), strings.TrimSuffix(tt.cfg.Name, ".")+"."); n != 1 {
					t.Errorf("%d TCP queries after a truncated answer, want 1", n)
				}
			}
		})
	}
}

// dnsTestFirstType returns the type d asks first.
func dnsTestFirstType(d *DNS) string {
	if d.mode == DNSModeSRV {
		return "SRV"
	}
	return "A"
}

func TestDNSRecordsChange(t *testing.T) {
	srv := newDNSTestServer(t)
	d, err := NewDNS(DNSConfig{Name: "engine.example.com", Port: 9076, Server: srv.addr})
	if err != nil {
		t.Fatal(err)
	}
	labels := map[string]string{"dns_name": "engine.example.com"}
	steps := []struct {
		zone    []string
		want    []string // addresses
		wantErr string
	}{{
		zone: []string{"engine.example.com. 60 IN A 10.0.0.1"},
		want: []string{"10.0.0.1:9076"},
	}, {
		zone: []string{"engine.example.com. 60 IN A 10.0.0.1", "engine.example.com. 60 IN A 10.0.0.3"},
		want: []string{"10.0.0.1:9076", "10.0.0.3:9076"},
	}, {
		zone:    nil,
		wantErr: "no such name",
	}, {
		zone: []string{"engine.example.com. 60 IN A 10.0.0.3"},
		want: []string{"10.0.0.3:9076"},
	}}
	for i, step := range steps {
		srv.set(t, step.zone)
		got, err := d.Targets(context.Background())
		if step.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), step.wantErr) {
				t.Fatalf("step %d: Targets() = %v, %v; want error containing %q", i, got, err, step.wantErr)
			}
			continue
		}
		if err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		var want []Target
		for _, a := range step.want {
			want = append(want, Target{ID: a, Addr: a, Labels: labels})
		}
		equalTargetsForTest(t, got, want)
	}
}

func TestDNSUnresponsiveServer(t *testing.T) {
	// A UDP socket nobody reads: queries sent to it are never answered.
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })

	tests := []struct {
		name    string
		timeout time.Duration
		ctx     func() (context.Context, context.CancelFunc)
		wantIs  error
	}{{
		name:    "config timeout",
		timeout: 100 * time.Millisecond,
		ctx:     func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) },
		wantIs:  context.DeadlineExceeded,
	}, {
		name:    "context deadline shorter than the timeout",
		timeout: time.Minute,
		ctx: func() (context.Context, context.CancelFunc) {
			return context.WithTimeout(context.Background(), 100*time.Millisecond)
		},
		wantIs: context.DeadlineExceeded,
	}, {
		name:    "context canceled",
		timeout: time.Minute,
		ctx: func() (context.Context, context.CancelFunc) {
			ctx, cancel := context.WithCancel(context.Background())
			time.AfterFunc(100*time.Millisecond, cancel)
			return ctx, cancel
		},
		wantIs: context.Canceled,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDNS(DNSConfig{Name: "_qix._tcp.example.com", Server: pc.LocalAddr().String(), Timeout: tt.timeout})
			if err != nil {
				t.Fatal(err)
			}
			ctx, cancel := tt.ctx()
			defer cancel()
			start := time.Now()
			got, err := d.Targets(ctx)
			elapsed := time.Since(start)
			if err == nil {
				t.Fatalf("Targets() = %v, want an error", got)
			}
			if !errors.Is(err, tt.wantIs) {
				t.Errorf("Targets() error %v, want it to wrap %v", err, tt.wantIs)
			}
			if !strings.Contains(err.Error(), "_qix._tcp.example.com") {
				t.Errorf("error %q does not name the name", err)
			}
			if elapsed > 10*time.Second {
				t.Errorf("Targets() took %v, want about 100ms", elapsed)
			}
		})
	}
}

func TestDNSConfig(t *testing.T) {
	// dnsFields are the fields NewDNS sets, to compare.
	type dnsFields struct {
		name, fqdn, mode, port, server string
		timeout                        time.Duration
	}
	tests := []struct {
		name    string
		cfg     DNSConfig
		want    dnsFields
		wantErr string
	}{{
		name: "defaults for a name: the system's nameservers",
		cfg:  DNSConfig{Name: "engine.example.com", Port: 9076},
		want: dnsFields{name: "engine.example.com", fqdn: "engine.example.com.", mode: DNSModeA, port: "9076", server: "", timeout: 2 * time.Second},
	}, {
		name: "defaults for a service",
		cfg:  DNSConfig{Name: "_qix._tcp.example.com", Server: "10.1.1.1", Timeout: time.Second},
		want: dnsFields{name: "_qix._tcp.example.com", fqdn: "_qix._tcp.example.com.", mode: DNSModeSRV, port: "0", server: "10.1.1.1:53", timeout: time.Second},
	}, {
		name: "IPv6 server without a port",
		cfg:  DNSConfig{Name: "_qix._tcp.example.com", Server: "[::1]"},
		want: dnsFields{name: "_qix._tcp.example.com", fqdn: "_qix._tcp.example.com.", mode: DNSModeSRV, port: "0", server: "[::1]:53", timeout: 2 * time.Second},
	}, {
		name: "SRV mode for a name without underscore",
		cfg:  DNSConfig{Name: "engine.example.com", Mode: "srv", Server: "127.0.0.1:5353"},
		want: dnsFields{name: "engine.example.com", fqdn: "engine.example.com.", mode: DNSModeSRV, port: "0", server: "127.0.0.1:5353", timeout: 2 * time.Second},
	}, {
		name:    "empty name",
		cfg:     DNSConfig{Port: 9076, Server: "127.0.0.1:53"},
		wantErr: "discovery: dns: empty name",
	}, {
		name:    "bad name",
		cfg:     DNSConfig{Name: "a..b", Port: 9076, Server: "127.0.0.1:53"},
		wantErr: "discovery: dns a..b: not a valid domain name",
	}, {
		name:    "label too long",
		cfg:     DNSConfig{Name: strings.Repeat("x", 64) + ".example.com", Port: 9076},
		wantErr: "not a valid domain name",
	}, {
		name:    "mode a without port",
		cfg:     DNSConfig{Name: "engine.example.com", Server: "127.0.0.1:53"},
		wantErr: `discovery: dns engine.example.com: mode "a" needs a port`,
	}, {
		name:    "port out of range",
		cfg:     DNSConfig{Name: "engine.example.com", Port: 70000, Server: "127.0.0.1:53"},
		wantErr: `mode "a" needs a port in 1..65535, have 70000`,
	}, {
		name:    "unknown mode",
		cfg:     DNSConfig{Name: "engine.example.com", Mode: "mx", Port: 1, Server: "127.0.0.1:53"},
		wantErr: `discovery: dns engine.example.com: unknown mode "mx"`,
	}, {
		name:    "negative timeout",
		cfg:     DNSConfig{Name: "engine.example.com", Port: 1, Server: "127.0.0.1:53", Timeout: -time.Second},
		wantErr: "negative timeout",
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d, err := NewDNS(tt.cfg)
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("NewDNS() = %+v, %v; want error containing %q", d, err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := (dnsFields{d.name, d.fqdn, d.mode, d.port, d.server, d.timeout}); got != tt.want {
				t.Errorf("NewDNS() = %+v, want %+v", got, tt.want)
			}
			if got, want := d.Name(), "dns "+tt.cfg.Name; got != want {
				t.Errorf("Name() = %q, want %q", got, want)
			}
		})
	}
}

// equalTargetsForTest fails the test unless got and want list the same
// targets, labels included, in the same order.
func equalTargetsForTest(t *testing.T, got, want []Target) {
	t.Helper()
	if reflect.DeepEqual(got, want) {
		return
	}
	format := func(ts []Target) string {
		var b strings.Builder
		for _, t := range ts {
			fmt.Fprintf(&b, "\n  id=%q addr=%q labels=%v", t.ID, t.Addr, t.Labels)
		}
		return b.String()
	}
	t.Errorf("targets differ\n got: %s\nwant: %s", format(got), format(want))
}

func TestDNSCanceledContext(t *testing.T) {
	srv := newDNSTestServer(t)
	srv.set(t, []string{"engine.example.com. 60 IN A 10.0.0.1"})
	d, err := NewDNS(DNSConfig{Name: "engine.example.com", Port: 9076, Server: srv.addr})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if got, err := d.Targets(ctx); !errors.Is(err, context.Canceled) {
		t.Errorf("Targets() with a canceled context = %v, %v; want context.Canceled", got, err)
	}
}

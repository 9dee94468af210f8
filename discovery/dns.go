package discovery

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/miekg/dns"
)

// DNSModeA is the DNS mode that lists the A and AAAA records of a name, all on
// the configured port.
const DNSModeA = "a"

// DNSModeSRV is the DNS mode that lists the SRV records of a name, each target
// on the port its record gives.
const DNSModeSRV = "srv"

const (
	// dnsDefaultTimeout bounds one DNS.Targets call when DNSConfig.Timeout is zero.
	dnsDefaultTimeout = 2 * time.Second
	// dnsResolvConf is where the default DNS server is read from.
	dnsResolvConf = "/etc/resolv.conf"
	// dnsUDPSize is the EDNS0 UDP payload size advertised in queries (the DNS
	// flag day 2020 recommendation); larger answers come back truncated and are
	// asked again over TCP.
	dnsUDPSize = 1232
)

// DNSConfig configures a DNS provider. Every field but Name has a default: its
// zero value means what its comment says.
type DNSConfig struct {
	// Name is the domain name to look up, such as "engine.example.com" (mode "a")
	// or "_qix._tcp.example.com" (mode "srv"). It is asked as an absolute name: no
	// search domain is appended.
	Name string
	// Mode is DNSModeA ("a": the A and AAAA records of Name, each on Port) or
	// DNSModeSRV ("srv": the SRV records of Name, each target on the port of its
	// record, its host being the A and AAAA records of the SRV target, or the
	// target name itself when it has none). Empty means "srv" when Name starts
	// with "_", else "a".
	Mode string
	// Port is the port of every target in mode "a", where it is required. Mode
	// "srv" ignores it.
	Port int
	// Server is the "host:port" of the DNS server to ask; a server without a
	// port means port 53. Empty means the first nameserver of /etc/resolv.conf,
	// read once by NewDNS.
	Server string
	// Timeout bounds one Targets call, all of its queries included. Zero means
	// 2 seconds.
	Timeout time.Duration
}

// DNS is a Provider that lists the instances a DNS name resolves to, through
// either its A and AAAA records or its SRV records. It asks one DNS server over
// UDP, and again over TCP when the answer is truncated. A DNS is safe for
// concurrent use.
type DNS struct {
	name    string // as configured, for Name, labels and errors
	fqdn    string // name as asked
	mode    string
	port    string
	server  string
	timeout time.Duration
}

var _ Provider = (*DNS)(nil)

// NewDNS returns a DNS provider for cfg. It fails when the name is missing or
// malformed, the mode is unknown, mode "a" has no valid port, or no DNS server is
// configured and /etc/resolv.conf names none.
func NewDNS(cfg DNSConfig) (*DNS, error) {
	return newDNS(cfg, dnsResolvConf)
}

// newDNS is NewDNS reading the default server from resolvConf.
func newDNS(cfg DNSConfig, resolvConf string) (*DNS, error) {
	name := strings.TrimSpace(cfg.Name)
	if name == "" {
		return nil, errors.New("discovery: dns: empty name")
	}
	if _, ok := dns.IsDomainName(name); !ok {
		return nil, fmt.Errorf("discovery: dns %s: not a valid domain name", name)
	}
	mode := strings.ToLower(cfg.Mode)
	if mode == "" {
		mode = DNSModeA
		if strings.HasPrefix(name, "_") {
			mode = DNSModeSRV
		}
	}
	switch mode {
	case DNSModeA:
		if cfg.Port < 1 || cfg.Port > 65535 {
			return nil, fmt.Errorf("discovery: dns %s: mode %q needs a port in 1..65535, have %d", name, mode, cfg.Port)
		}
	case DNSModeSRV:
	default:
		return nil, fmt.Errorf("discovery: dns %s: unknown mode %q (want %q or %q)", name, cfg.Mode, DNSModeA, DNSModeSRV)
	}
	if cfg.Timeout < 0 {
		return nil, fmt.Errorf("discovery: dns %s: negative timeout %v", name, cfg.Timeout)
	}
	timeout := cfg.Timeout
	if timeout == 0 {
		timeout = dnsDefaultTimeout
	}
	server := strings.TrimSpace(cfg.Server)
	if server == "" {
		var err error
		if server, err = dnsServerFromResolvConf(resolvConf); err != nil {
			return nil, fmt.Errorf("discovery: dns %s: no server configured: %w", name, err)
		}
	} else if _, _, err := net.SplitHostPort(server); err != nil {
		server = net.JoinHostPort(strings.Trim(server, "[]"), "53")
	}
	return &DNS{
		name:    name,
		fqdn:    dns.Fqdn(name),
		mode:    mode,
		port:    strconv.Itoa(cfg.Port),
		server:  server,
		timeout: timeout,
	}, nil
}

// dnsServerFromResolvConf returns "host:port" of the first nameserver listed in
// the resolv.conf(5) file at path.
func dnsServerFromResolvConf(path string) (string, error) {
	cc, err := dns.ClientConfigFromFile(path)
	if err != nil {
		return "", err
	}
	if len(cc.Servers) == 0 {
		return "", fmt.Errorf("no nameserver in %s", path)
	}
	return net.JoinHostPort(cc.Servers[0], cc.Port), nil
}

// Name implements Provider: it is "dns " followed by the configured name.
func (d *DNS) Name() string { return "dns " + d.name }

// Targets implements Provider. It returns one target per address (mode "a") or
// per SRV target address (mode "srv"), sorted by SRV priority, then by
// descending SRV weight, then by address (IP addresses in numeric order, IPv4
// first, before host names), without duplicate addresses. A name that does not
// exist (NXDOMAIN) or has no record of the wanted type is an error, as is any
// failed query: the caller keeps its last good list.
func (d *DNS) Targets(ctx context.Context) ([]Target, error) {
	ctx, cancel := context.WithTimeout(ctx, d.timeout)
	defer cancel()
	var (
		found []dnsFound
		err   error
	)
	if d.mode == DNSModeSRV {
		found, err = d.srvTargets(ctx)
	} else {
		found, err = d.aTargets(ctx)
	}
	if err != nil {
		return nil, fmt.Errorf("discovery: dns %s: %w", d.name, err)
	}
	slices.SortStableFunc(found, func(a, b dnsFound) int {
		return cmp.Or(
			cmp.Compare(a.priority, b.priority),
			cmp.Compare(b.weight, a.weight),
			compareHostPort(a.target.Addr, b.target.Addr),
		)
	})
	targets := make([]Target, 0, len(found))
	seen := make(map[string]bool, len(found))
	for _, f := range found {
		if seen[f.target.Addr] {
			continue
		}
		seen[f.target.Addr] = true
		targets = append(targets, f.target)
	}
	return targets, nil
}

// dnsFound is a target with the SRV priority and weight it is sorted by.
type dnsFound struct {
	target           Target
	priority, weight uint16
}

// aTargets lists the A and AAAA records of the name, each on the configured port.
func (d *DNS) aTargets(ctx context.Context) ([]dnsFound, error) {
	hosts, nx, err := d.addresses(ctx, d.fqdn)
	switch {
	case err != nil:
		return nil, err
	case nx:
		return nil, errors.New("no such name (NXDOMAIN)")
	case len(hosts) == 0:
		return nil, errors.New("no A or AAAA records")
	}
	found := make([]dnsFound, 0, len(hosts))
	for _, h := range hosts {
		addr := net.JoinHostPort(h, d.port)
		found = append(found, dnsFound{target: Target{
			ID:     addr,
			Addr:   addr,
			Labels: map[string]string{"dns_name": d.name},
		}})
	}
	return found, nil
}

// srvTargets lists the SRV records of the name, each target resolved through
// the additional section of the answer, else its own A and AAAA records, else
// taken as a host name.
func (d *DNS) srvTargets(ctx context.Context) ([]dnsFound, error) {
	answer, extra, nx, err := d.query(ctx, d.fqdn, dns.TypeSRV)
	if err != nil {
		return nil, err
	}
	if nx {
		return nil, errors.New("no such name (NXDOMAIN)")
	}
	var srvs []*dns.SRV
	for _, rr := range answer {
		// A target of "." means the service is decidedly not available there.
		if srv, ok := rr.(*dns.SRV); ok && srv.Target != "." {
			srvs = append(srvs, srv)
		}
	}
	if len(srvs) == 0 {
		return nil, errors.New("no SRV records")
	}

	// Addresses by lower-case target name: from the additional section, then
	// from queries of the targets missing there.
	resolved := make(map[string][]string)
	for _, rr := range extra {
		if h := dnsHost(rr); h != "" {
			k := strings.ToLower(rr.Header().Name)
			resolved[k] = dnsAppendNew(resolved[k], h)
		}
	}
	var found []dnsFound
	for _, srv := range srvs {
		k := strings.ToLower(srv.Target)
		hosts, ok := resolved[k]
		if !ok {
			if hosts, _, err = d.addresses(ctx, dns.Fqdn(srv.Target)); err != nil {
				return nil, fmt.Errorf("SRV target %s: %w", srv.Target, err)
			}
			resolved[k] = hosts
		}
		targetName := strings.TrimSuffix(srv.Target, ".")
		if len(hosts) == 0 {
			hosts = []string{targetName}
		}
		port := strconv.Itoa(int(srv.Port))
		for _, h := range hosts {
			addr := net.JoinHostPort(h, port)
			found = append(found, dnsFound{
				target: Target{
					ID:   addr,
					Addr: addr,
					Labels: map[string]string{
						"dns_name":     d.name,
						"srv_target":   targetName,
						"srv_priority": strconv.Itoa(int(srv.Priority)),
						"srv_weight":   strconv.Itoa(int(srv.Weight)),
					},
				},
				priority: srv.Priority,
				weight:   srv.Weight,
			})
		}
	}
	return found, nil
}

// addresses returns the distinct addresses of the A and AAAA records of name,
// and whether the name does not exist.
func (d *DNS) addresses(ctx context.Context, name string) (hosts []string, nx bool, err error) {
	for _, qtype := range []uint16{dns.TypeA, dns.TypeAAAA} {
		answer, _, nx, err := d.query(ctx, name, qtype)
		if err != nil {
			return nil, false, err
		}
		if nx {
			return nil, true, nil
		}
		for _, rr := range answer {
			if h := dnsHost(rr); h != "" {
				hosts = dnsAppendNew(hosts, h)
			}
		}
	}
	return hosts, false, nil
}

// query asks the server for the records of type qtype of name, over UDP and
// then over TCP if the answer is truncated. It returns the answer and
// additional sections, and whether the name does not exist; any other answer
// code than success is an error.
func (d *DNS) query(ctx context.Context, name string, qtype uint16) (answer, extra []dns.RR, nx bool, err error) {
	m := new(dns.Msg)
	m.SetQuestion(name, qtype)
	m.SetEdns0(dnsUDPSize, false)
	r, err := d.exchange(ctx, "udp", m)
	if err == nil && r.Truncated {
		r, err = d.exchange(ctx, "tcp", m)
	}
	if err != nil {
		return nil, nil, false, fmt.Errorf("query %s %s at %s: %w", dns.TypeToString[qtype], name, d.server, err)
	}
	switch r.Rcode {
	case dns.RcodeSuccess:
		return r.Answer, r.Extra, false, nil
	case dns.RcodeNameError:
		return nil, nil, true, nil
	default:
		rcode, ok := dns.RcodeToString[r.Rcode]
		if !ok {
			rcode = strconv.Itoa(r.Rcode)
		}
		return nil, nil, false, fmt.Errorf("query %s %s at %s: server answered %s", dns.TypeToString[qtype], name, d.server, rcode)
	}
}

// exchange sends m to the server over network and reads the answer, giving up
// when ctx is done.
func (d *DNS) exchange(ctx context.Context, network string, m *dns.Msg) (*dns.Msg, error) {
	c := &dns.Client{Net: network, Timeout: d.timeout}
	conn, err := c.DialContext(ctx, d.server)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("no answer: %w", ctxErr)
		}
		return nil, err
	}
	defer conn.Close()
	// ExchangeWithConnContext obeys the deadline of ctx but not its
	// cancellation: closing the connection unblocks it.
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	r, _, err := c.ExchangeWithConnContext(ctx, m, conn)
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return nil, fmt.Errorf("no answer: %w", ctxErr)
		}
		// The read deadline is the deadline of ctx, which may pass a moment
		// before ctx says so.
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return nil, fmt.Errorf("no answer: %w", context.DeadlineExceeded)
		}
		return nil, err
	}
	return r, nil
}

// dnsHost returns the address of an A or AAAA record, or "" for other records.
func dnsHost(rr dns.RR) string {
	switch rr := rr.(type) {
	case *dns.A:
		return rr.A.String()
	case *dns.AAAA:
		return rr.AAAA.String()
	}
	return ""
}

// dnsAppendNew appends s to list unless list holds it already.
func dnsAppendNew(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

// compareHostPort orders "host:port" addresses: IP addresses first, in address
// order (IPv4 before IPv6), then host names in string order, each by port next.
func compareHostPort(a, b string) int {
	ha, pa, _ := net.SplitHostPort(a)
	hb, pb, _ := net.SplitHostPort(b)
	ipa, erra := netip.ParseAddr(ha)
	ipb, errb := netip.ParseAddr(hb)
	pna, _ := strconv.Atoi(pa)
	pnb, _ := strconv.Atoi(pb)
	switch {
	case erra == nil && errb == nil:
		return cmp.Or(ipa.Compare(ipb), cmp.Compare(pna, pnb), strings.Compare(a, b))
	case erra == nil:
		return -1
	case errb == nil:
		return 1
	}
	return cmp.Or(strings.Compare(ha, hb), cmp.Compare(pna, pnb), strings.Compare(a, b))
}
